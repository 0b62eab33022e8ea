"""Tenant isolation in the cache, command by command, on a real redis-server 7: a tenant's
user reads its own keys and nothing else; the writer's user writes every tenant's keys and
nothing else; the default user is off."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from suho_mt5.cache import acl
from suho_mt5.cache._keys import quote_key, tenant_pattern
from suho_mt5.cache._scripts import PUT_LATEST
from tests.support.servers import RedisServer

ACME = "acme"
OTHER = "globex.eu"
#: A tenant whose id starts with ACME's: "suho:acme:*" would match its keys.
LOOKALIKE = "acme:eu"
ACCOUNT = "00000000-0000-0000-0000-000000000001"


def own(tenant: str = ACME) -> str:
    return f"suho:{{{tenant}}}:quote:{ACCOUNT}:EURUSD"


@pytest.fixture
def users(redis_cache: RedisServer) -> Iterator[dict[str, Any]]:
    """The tenants' and the writer's users, and keys of three tenants written by the admin."""
    admin = redis.Redis.from_url(redis_cache.admin_url, decode_responses=True)
    for tenant in (ACME, OTHER, LOOKALIKE):
        admin.hset(own(tenant), mapping={"t": 1, "s": 1, "v": f"quote of {tenant}"})
    admin.set("not-suho:key", "x")
    grants = {t: asyncio.run(acl.grant_tenant(redis_cache.admin_url, t))
              for t in (ACME, OTHER)}
    writer = asyncio.run(acl.grant_writer(redis_cache.admin_url))
    clients = {t: redis.Redis.from_url(g.url, decode_responses=True) for t, g in grants.items()}
    clients["writer"] = redis.Redis.from_url(writer.url, decode_responses=True)
    yield {"admin": admin, "grants": grants, "writer_grant": writer, **clients}
    for c in (admin, *clients.values()):
        c.close()


def refused(client: redis.Redis, *command: Any) -> str:
    with pytest.raises(redis.exceptions.NoPermissionError) as info:
        client.execute_command(*command)
    return str(info.value)


def test_a_tenant_reads_its_own_keys(users: dict[str, Any]) -> None:
    acme = users[ACME]
    assert acme.hget(own(), "v") == "quote of acme"
    assert acme.hgetall(own())["v"] == "quote of acme"
    assert acme.hmget(own(), "t", "v") == ["1", "quote of acme"]
    assert acme.exists(own()) == 1 and acme.ping()


OTHER_TENANT_READS = [
    ("GET", own(OTHER)), ("HGET", own(OTHER), "v"), ("HGETALL", own(OTHER)),
    ("HMGET", own(OTHER), "v"), ("EXISTS", own(OTHER)), ("TYPE", own(OTHER)),
    ("DUMP", own(OTHER)), ("HGET", own(LOOKALIKE), "v"), ("GET", "not-suho:key"),
    ("MGET", own(), own(OTHER)),  # one foreign key among its own refuses the whole command
]


@pytest.mark.parametrize("command", OTHER_TENANT_READS, ids=lambda c: " ".join(c[:2]))
def test_a_tenant_cannot_read_another_tenants_keys(users: dict[str, Any],
                                                   command: tuple[str, ...]) -> None:
    assert "no permissions to access one of the keys" in refused(users[ACME], *command)


WRITES = [
    ("SET", own(), "x"), ("HSET", own(), "v", "forged"), ("DEL", own()), ("UNLINK", own()),
    ("EXPIRE", own(), 1), ("HDEL", own(), "v"), ("SET", own(OTHER), "x"),
    ("HSET", own(OTHER), "v", "forged"), ("DEL", own(OTHER)), ("RENAME", own(), own(OTHER)),
]


@pytest.mark.parametrize("command", WRITES, ids=lambda c: " ".join(c[:2]))
def test_a_tenant_writes_nothing_not_even_its_own_keys(users: dict[str, Any],
                                                        command: tuple[str, ...]) -> None:
    refused(users[ACME], *command)
    assert users["admin"].hget(own(OTHER), "v") == "quote of globex.eu"
    assert users["admin"].hget(own(), "v") == "quote of acme"


WHOLE_KEYSPACE = [
    ("KEYS", "*"), ("KEYS", tenant_pattern(ACME)), ("SCAN", 0),
    ("SCAN", 0, "MATCH", tenant_pattern(ACME)), ("RANDOMKEY",), ("DBSIZE",),
    ("FLUSHALL",), ("FLUSHDB",), ("FLUSHALL", "ASYNC"), ("SWAPDB", 0, 1),
    ("CONFIG", "GET", "*"), ("CONFIG", "SET", "maxmemory", "1"), ("CONFIG", "RESETSTAT"),
    ("DEBUG", "OBJECT", own()), ("DEBUG", "SLEEP", 0), ("INFO",), ("MONITOR",),
    ("CLIENT", "LIST"), ("CLIENT", "KILL", "TYPE", "normal"), ("CLIENT", "TRACKING", "ON", "BCAST"),
    ("ACL", "SETUSER", "x"), ("ACL", "LIST"), ("SAVE",), ("SHUTDOWN",), ("MOVE", own(), 1),
    ("EVAL", "return redis.call('HGET', KEYS[1], 'v')", 1, own(OTHER)),
    ("EVAL", "return redis.call('HGET', 'suho:{globex.eu}:quote:x:EURUSD', 'v')", 0),
    ("EVAL", "return 1", 0), ("EVALSHA", PUT_LATEST.sha, 0), ("SCRIPT", "LOAD", "return 1"),
    ("FUNCTION", "LIST"), ("PUBLISH", "c", "m"), ("SUBSCRIBE", "c"),
]


@pytest.mark.parametrize("command", WHOLE_KEYSPACE, ids=lambda c: " ".join(map(str, c[:2])))
def test_a_tenant_can_neither_scan_nor_flush_nor_configure(users: dict[str, Any],
                                                           command: tuple[Any, ...]) -> None:
    assert "no permissions to run" in refused(users[ACME], *command)
    assert users["admin"].dbsize() == 4


def test_the_acl_itself_refuses_what_the_server_might_allow(redis_cache: RedisServer,
                                                             users: dict[str, Any]) -> None:
    """DEBUG is refused by the ACL, not only by ``enable-debug-command`` (the fixture's
    server allows it from loopback); ACL DRYRUN asks the ACL alone."""
    admin = users["admin"]
    for command in (("DEBUG", "OBJECT", own()), ("KEYS", "*"), ("SCAN", "0"), ("FLUSHALL",),
                    ("EVAL", "return 1", "0"), ("CLIENT", "TRACKING", "ON", "BCAST")):
        verdict = admin.execute_command("ACL", "DRYRUN", "suho-tenant-acme", *command)
        assert "no permissions" in verdict, (command, verdict)
    assert admin.execute_command("ACL", "DRYRUN", "suho-tenant-acme", "HGET", own(), "v") \
        == "OK"
    assert admin.execute_command("DEBUG", "SLEEP", "0") == "OK"  # the server allows DEBUG


def test_the_writer_writes_every_tenant_and_nothing_else(users: dict[str, Any]) -> None:
    writer = users["writer"]
    for tenant in (ACME, OTHER):
        key = quote_key(tenant, uuid.UUID(ACCOUNT), "XAUUSD")
        assert writer.eval(PUT_LATEST.source, 1, key, "", 5, 1, 9_999_999_999_999, "v") == 1
        assert writer.evalsha(PUT_LATEST.sha, 1, key, "", 4, 1, 9_999_999_999_999, "old") == 0
        assert users["admin"].hget(key, "v") == "v"
    # A key the script does not declare is checked when the script calls it: refused too,
    # as an error of the script (redis-server words it so; DragonflyDB refuses undeclared
    # keys whoever runs the script).
    with pytest.raises(redis.exceptions.ResponseError, match="can't access"):
        writer.eval("return redis.call('SET', 'not-suho:key', 'y')", 0)
    for command in (("SET", "not-suho:key", "y"), ("HSET", "app:session", "f", "v"),
                    ("EVAL", "return redis.call('SET', KEYS[1], 'y')", 1, "not-suho:key"),
                    ("FLUSHALL",), ("FLUSHDB",), ("KEYS", "*"), ("SCAN", 0),
                    ("CONFIG", "GET", "*"), ("ACL", "LIST"), ("SWAPDB", 0, 1),
                    ("DEBUG", "SLEEP", 0), ("CLIENT", "LIST")):
        refused(writer, *command)
    assert users["admin"].get("not-suho:key") == "x"


def test_the_default_user_is_off(redis_cache: RedisServer) -> None:
    anonymous = redis.Redis(host="127.0.0.1", port=redis_cache.port)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()
    anonymous.close()


def test_rotating_a_tenant_closes_the_old_password(redis_cache: RedisServer,
                                                   users: dict[str, Any]) -> None:
    old = users["grants"][ACME]
    connected = users[ACME]
    assert connected.ping()
    new = asyncio.run(acl.grant_tenant(redis_cache.admin_url, ACME))
    assert new.password != old.password and new.persisted
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(old.url).ping()
    with pytest.raises(redis.exceptions.ConnectionError):
        connected.ping()  # the old connection was closed with the user
    fresh = redis.Redis.from_url(new.url, decode_responses=True)
    assert fresh.hget(own(), "v") == "quote of acme"
    fresh.close()


def test_revoking_a_tenant_deletes_its_user_and_optionally_its_keys(
        redis_cache: RedisServer, users: dict[str, Any]) -> None:
    existed, deleted = asyncio.run(acl.revoke_tenant(redis_cache.admin_url, ACME, purge=True))
    assert existed and deleted == 1
    admin = users["admin"]
    assert "suho-tenant-acme" not in admin.acl_users()
    assert admin.exists(own()) == 0 and admin.exists(own(LOOKALIKE)) == 1  # not a prefix
    assert asyncio.run(acl.revoke_tenant(redis_cache.admin_url, ACME)) == (False, 0)


def test_users_survive_a_restart_through_the_acl_file(
        make_redis_server: Any) -> None:
    server: RedisServer = make_redis_server()
    grant = asyncio.run(acl.grant_tenant(server.admin_url, ACME))
    assert grant.persisted
    server.kill()
    server.restart()
    client = redis.Redis.from_url(grant.url)
    assert client.ping() and client.hget(own(), "v") is None  # a user, of an empty cache
    client.close()
    listed = {u["user"] for u in asyncio.run(acl.list_users(server.admin_url))}
    assert {"suho-tenant-acme", "suho-admin", "default"} <= listed
