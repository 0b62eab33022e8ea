"""The Lua scripts that make every write newer-wins, atomically, on the server.

They run on redis-server (Lua 5.1) and DragonflyDB (Lua 5.4) alike: only ``redis.call`` of
commands both servers have (``HMGET``, ``HGET``, ``HSET``, ``HSETNX``, ``HDEL``, ``PTTL``,
``PEXPIREAT``, ``ZADD``, ``ZCARD``, ``ZRANGE``, ``ZREMRANGEBYRANK``, ``GET``, ``SET``), no
script flags, and **every key a script touches is declared in KEYS**: DragonflyDB refuses
undeclared keys ("script tried accessing undeclared key") unless a script is flagged
``allow-undeclared-keys``, which would make it stop every other operation while it runs; and
the ACL of the calling user is checked against the declared keys before the script starts.

Times are microseconds since the epoch and sequences integers (-1 for none): both exact in
Lua 5.1's doubles until the year 2255 and for sequences below 2^53.

Each script is sent as ``EVALSHA``; a server that does not know it yet (``NOSCRIPT``: fresh,
restarted, or ``SCRIPT FLUSH``) gets ``EVAL`` once, which also caches it. The writer user
therefore needs ``EVALSHA`` and ``EVAL`` but not ``SCRIPT LOAD``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

__all__ = [
    "PUT_LATEST",
    "SCRIPT_COMMANDS",
    "SIGNAL_BASE",
    "SIGNAL_CLOSE",
    "SIGNAL_EXEC",
    "Script",
]


@dataclass(frozen=True)
class Script:
    name: str
    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


#: Keep the value of a key (or of one part of it, ``prefix``) only if it is newer.
#: KEYS: the keys, of one tenant. ARGV: per key five values: field prefix, time, sequence,
#: expire-at (ms since the epoch) and the value. Returns how many were newer and written.
PUT_LATEST: Final = Script("put_latest", """
local written = 0
for i, key in ipairs(KEYS) do
  local b = (i - 1) * 5
  local p = ARGV[b + 1]
  local t = tonumber(ARGV[b + 2])
  local s = tonumber(ARGV[b + 3])
  local cur = redis.call('HMGET', key, p .. 't', p .. 's')
  local ct = false
  if cur[1] then ct = tonumber(cur[1]) end
  if not ct or t > ct or (t == ct and s > tonumber(cur[2])) then
    redis.call('HSET', key, p .. 't', ARGV[b + 2], p .. 's', ARGV[b + 3], p .. 'v', ARGV[b + 5])
    -- The main value sets the key's life; a secondary part (the gateway of an EA status)
    -- only gives a key that has none a life of its own.
    if p == '' or redis.call('PTTL', key) < 0 then
      redis.call('PEXPIREAT', key, ARGV[b + 4])
    end
    written = written + 1
  end
end
return written
""")

# Shared by the signal scripts. One hash per account (KEYS[1]) holds, per signal id <id>:
# s:<id> what was published (JSON), r:<id> "<rank>|<status>", e:<id> executed-at, x:<id> the
# ticket its execution opened, k:<id> closed-at; and t:<ticket> -> <id>. A sorted set
# (KEYS[2]) orders the signals by time so that only the newest ``limit`` are kept.
_SIGNAL_LIB = """
local function set_status(h, sid, rank, status)
  local cur = redis.call('HGET', h, 'r:' .. sid)
  if cur and tonumber(string.match(cur, '^(%d+)')) >= rank then return 0 end
  redis.call('HSET', h, 'r:' .. sid, rank .. '|' .. status)
  return 1
end
local function trim(h, z, limit)
  local n = redis.call('ZCARD', z)
  if n <= limit then return end
  local old = redis.call('ZRANGE', z, 0, n - limit - 1)
  for _, sid in ipairs(old) do
    local ticket = redis.call('HGET', h, 'x:' .. sid)
    redis.call('HDEL', h, 's:' .. sid, 'r:' .. sid, 'e:' .. sid, 'x:' .. sid, 'k:' .. sid)
    if ticket then redis.call('HDEL', h, 't:' .. ticket) end
  end
  redis.call('ZREMRANGEBYRANK', z, 0, n - limit - 1)
end
local function extend(key, expire_at, now)
  local ttl = redis.call('PTTL', key)
  if ttl < 0 or now + ttl < expire_at then redis.call('PEXPIREAT', key, expire_at) end
end
"""

#: A signal as published (or as the database has it): KEYS hash, index. ARGV: id, time,
#: JSON, rank, status, expire-at, now (ms), limit, executed-at, ticket, closed-at (0: none;
#: the last three only from the database, in a rebuild).
SIGNAL_BASE: Final = Script("signal_base", _SIGNAL_LIB + """
local h, z = KEYS[1], KEYS[2]
local sid = ARGV[1]
redis.call('HSET', h, 's:' .. sid, ARGV[3])
local changed = set_status(h, sid, tonumber(ARGV[4]), ARGV[5])
if ARGV[9] ~= '0' then redis.call('HSETNX', h, 'e:' .. sid, ARGV[9]) end
if ARGV[10] ~= '0' then redis.call('HSET', h, 'x:' .. sid, ARGV[10], 't:' .. ARGV[10], sid) end
if ARGV[11] ~= '0' then redis.call('HSETNX', h, 'k:' .. sid, ARGV[11]) end
redis.call('ZADD', z, ARGV[2], sid)
trim(h, z, tonumber(ARGV[8]))
extend(h, tonumber(ARGV[6]), tonumber(ARGV[7]))
extend(z, tonumber(ARGV[6]), tonumber(ARGV[7]))
return changed
""")

#: An execution report of a signal: KEYS hash, index[, closing key of its ticket]. ARGV:
#: id, time, ticket (0: none), status (executed/rejected), expire-at, now (ms), limit.
SIGNAL_EXEC: Final = Script("signal_exec", _SIGNAL_LIB + """
local h, z = KEYS[1], KEYS[2]
local sid, ticket = ARGV[1], ARGV[3]
local changed = set_status(h, sid, 2, ARGV[4])
-- Like the database's trigger: the execution time is recorded when the status moves on.
if changed == 1 then redis.call('HSETNX', h, 'e:' .. sid, ARGV[2]) end
if KEYS[3] then
  redis.call('HSET', h, 'x:' .. sid, ticket, 't:' .. ticket, sid)
  local closed = redis.call('GET', KEYS[3])
  if closed then redis.call('HSETNX', h, 'k:' .. sid, closed) end
end
redis.call('ZADD', z, 'NX', ARGV[2], sid)
trim(h, z, tonumber(ARGV[7]))
extend(h, tonumber(ARGV[5]), tonumber(ARGV[6]))
extend(z, tonumber(ARGV[5]), tonumber(ARGV[6]))
return changed
""")

#: A trade that closed (ORDER_EVENT, status closed): KEYS hash, closing key of its ticket
#: [, of its position]. ARGV: time, ticket[, position id], closing TTL (ms). The signal whose
#: execution opened that ticket is marked closed; a close that came before the execution
#: report is kept in the closing key until the report arrives (or the key expires).
SIGNAL_CLOSE: Final = Script("signal_close", """
local h = KEYS[1]
local found = 0
for i = 2, #KEYS do
  local ticket = ARGV[i]
  local sid = redis.call('HGET', h, 't:' .. ticket)
  if sid then
    found = found + redis.call('HSETNX', h, 'k:' .. sid, ARGV[1])
  else
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[#ARGV])
  end
end
return found
""")

#: Every command the scripts call: the writer user needs each of them.
SCRIPT_COMMANDS: Final = ("hmget", "hget", "hset", "hsetnx", "hdel", "pttl", "pexpireat",
                          "zadd", "zcard", "zrange", "zremrangebyrank", "get", "set")
