"""ACL users of the cache: one per tenant for its readers, one (or a few) for the writers.

A tenant's user (``suho-tenant-<tenant>``) may read its own keys and nothing else::

    ~suho:{<tenant>}:* -@all +@read +@connection -@dangerous
    -keys -scan -randomkey -dbsize -client

``+@read`` alone would still allow the keyless reads that see the whole keyspace (``KEYS``,
``SCAN``, ``RANDOMKEY``, ``DBSIZE``: key patterns do not apply to commands without keys),
and ``+@connection`` brings ``CLIENT TRACKING``, whose broadcast mode would tell the
tenant the names of every key written; all are taken away again. Nothing of ``@dangerous``
(``FLUSHALL``, ``FLUSHDB``, ``SWAPDB``, ``CONFIG``, ``DEBUG``, ...) and nothing of
``@scripting`` (``EVAL``) remains. The read API needs ``HGET`` and ``HGETALL``, both in
``@read``.

A writer's user (``suho-writer`` by default) may run the newer-wins scripts on every
tenant's keys and nothing else::

    ~suho:* -@all +@connection -@dangerous -client +evalsha +eval +hset +pexpire +set
    +<every command the scripts call>

Only commands and rules that redis-server 7 and DragonflyDB both accept are used
(``ACL SETUSER`` with ``on``, ``>password``, ``~pattern``, ``+@cat``/``-@cat``, ``+cmd``/
``-cmd``; ``ACL DELUSER``, ``ACL GETUSER``, ``ACL USERS``, ``ACL SAVE``). DragonflyDB keeps
one password per user and Redis several, so rotating deletes the user (which also closes
its open connections, on both servers) and creates it again.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Final

from suho_mt5.cache._client import connect, translate_errors
from suho_mt5.cache._keys import WRITER_PATTERN, tenant_pattern, tenant_user, valid_tenant
from suho_mt5.cache._scripts import SCRIPT_COMMANDS
from suho_mt5.errors import CacheError, ConfigError

__all__ = [
    "DEFAULT_WRITER",
    "TENANT_RULES",
    "WRITER_RULES",
    "Grant",
    "grant_tenant",
    "grant_writer",
    "list_users",
    "revoke_tenant",
    "revoke_user",
    "user_url",
]

DEFAULT_WRITER: Final = "suho-writer"
#: Command rules of a tenant's user (after ``on``, its password and its key pattern).
TENANT_RULES: Final = ("-@all", "+@read", "+@connection", "-@dangerous", "-keys", "-scan",
                       "-randomkey", "-dbsize", "-client")
#: Command rules of a writer's user.
WRITER_RULES: Final = ("-@all", "+@connection", "-@dangerous", "-client",
                       "+evalsha", "+eval", "+hset", "+pexpire", "+set",
                       *(f"+{c}" for c in SCRIPT_COMMANDS if c not in ("hset", "set")))


@dataclass(frozen=True)
class Grant:
    """A user created or rotated: give ``url`` (it holds the password) to its processes."""

    user: str
    password: str
    url: str
    keys: str
    persisted: bool
    note: str = ""


def user_url(server_url: str, user: str, password: str) -> str:
    """``server_url`` with ``user:password@`` in it (any credentials in it replaced).

    >>> user_url("redis://admin:x@127.0.0.1:6379/0", "suho-tenant-acme", "pw")
    'redis://suho-tenant-acme:pw@127.0.0.1:6379/0'
    """
    from urllib.parse import quote, urlsplit

    parsed = urlsplit(server_url)
    host = parsed.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return parsed._replace(netloc=netloc).geturl()


async def _admin(url: str, what: str, *commands: tuple[Any, ...]) -> list[Any]:
    client = connect(url, timeout=5.0)
    try:
        with translate_errors(what):
            return [await client.execute_command(*c)  # type: ignore[no-untyped-call]
                    for c in commands]
    finally:
        await client.aclose()


async def _save(url: str) -> tuple[bool, str]:
    """``ACL SAVE``: True when the server keeps its users in an ACL file (they survive a
    restart), else False and why."""
    try:
        await _admin(url, "saving the ACL", ("ACL", "SAVE"))
    except CacheError as exc:
        return False, (f"the users live until the server restarts ({exc}); configure an "
                       "aclfile to keep them")
    return True, ""


async def _set_user(admin_url: str, user: str, pattern: str, rules: tuple[str, ...],
                    password: str | None) -> Grant:
    password = password or secrets.token_urlsafe(24)
    await _admin(admin_url, f"creating the cache user {user!r}",
                 ("ACL", "DELUSER", user),
                 ("ACL", "SETUSER", user, "on", f">{password}", f"~{pattern}", *rules))
    persisted, note = await _save(admin_url)
    return Grant(user, password, user_url(admin_url, user, password), pattern, persisted, note)


async def grant_tenant(admin_url: str, tenant_id: str, *, password: str | None = None
                       ) -> Grant:
    """Create, or rotate, the ACL user of ``tenant_id``'s readers (a fresh random password
    unless one is given; the old one stops working and its connections are closed).

    ``admin_url`` is a user that may run ``ACL`` (``+@admin``)."""
    valid_tenant(tenant_id)
    return await _set_user(admin_url, tenant_user(tenant_id), tenant_pattern(tenant_id),
                           TENANT_RULES, password)


async def grant_writer(admin_url: str, user: str = DEFAULT_WRITER, *,
                       password: str | None = None) -> Grant:
    """Create, or rotate, a writer's ACL user (the bridge's, the gateway's, the signal
    publisher's, a rebuild's): every tenant's keys, the scripts' commands, nothing else."""
    if not user or any(c.isspace() for c in user) or user.startswith("suho-tenant-"):
        raise ConfigError(f"not a writer user name: {user!r}")
    return await _set_user(admin_url, user, WRITER_PATTERN, WRITER_RULES, password)


async def revoke_user(admin_url: str, user: str) -> bool:
    """Delete ``user`` (its open connections are closed); False if it did not exist."""
    deleted = await _admin(admin_url, f"deleting the cache user {user!r}",
                           ("ACL", "DELUSER", user))
    await _save(admin_url)
    return bool(deleted[0])


async def revoke_tenant(admin_url: str, tenant_id: str, *, purge: bool = False
                        ) -> tuple[bool, int]:
    """Delete the tenant's user; with ``purge`` also its keys. Returns (user existed, keys
    deleted)."""
    valid_tenant(tenant_id)
    existed = await revoke_user(admin_url, tenant_user(tenant_id))
    deleted = 0
    if purge:
        client = connect(admin_url, timeout=5.0)
        try:
            with translate_errors(f"deleting the keys of tenant {tenant_id!r}"):
                batch: list[str] = []
                async for key in client.scan_iter(match=tenant_pattern(tenant_id),
                                                  count=1000):
                    batch.append(key)
                    if len(batch) >= 500:
                        deleted += await client.unlink(*batch)
                        batch.clear()
                if batch:
                    deleted += await client.unlink(*batch)
        finally:
            await client.aclose()
    return existed, deleted


async def list_users(admin_url: str) -> list[dict[str, Any]]:
    """The cache's ACL users of suho-mt5 (tenants' and writers'), with their key patterns
    and command rules, as ``ACL GETUSER`` reports them."""
    names = (await _admin(admin_url, "listing the cache users", ("ACL", "USERS")))[0]
    out = []
    for name in sorted(names):
        info = (await _admin(admin_url, f"reading the cache user {name!r}",
                             ("ACL", "GETUSER", name)))[0]
        if not isinstance(info, dict):  # RESP2: a flat list
            info = dict(zip(info[::2], info[1::2], strict=False))
        keys = info.get("keys")
        out.append({"user": name, "flags": info.get("flags"), "keys": keys,
                    "commands": info.get("commands")})
    return out
