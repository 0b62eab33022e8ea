"""Connections to the cache server (redis-py's asyncio client, hiredis parsing when
installed), with bounded timeouts and no retries of its own: the callers decide what a
failure means (the bridge keeps the values for later, a reader goes to the database)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from suho_mt5.errors import (
    CacheError,
    CachePermissionError,
    CacheUnavailableError,
    ConfigError,
)

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["CACHE_URL_ENV", "check_cache_url", "connect", "redacted", "translate_errors"]

#: The environment variable that stands in for ``--cache-url``.
CACHE_URL_ENV = "SUHO_CACHE_URL"
_SCHEMES = ("redis", "rediss", "unix")


def check_cache_url(url: str) -> str:
    """``url`` if it is a Redis-protocol URL (``redis://[user:password@]host:port/db``,
    ``rediss://`` for TLS, ``unix://``), else :class:`ConfigError`.

    >>> check_cache_url("redis://127.0.0.1:6379/0")
    'redis://127.0.0.1:6379/0'
    """
    parsed = urlsplit(url)
    try:
        port_ok = parsed.port is None or parsed.port > 0
    except ValueError:
        port_ok = False
    if parsed.scheme not in _SCHEMES or not port_ok or (
            parsed.scheme != "unix" and not parsed.hostname):
        raise ConfigError(f"not a cache URL: {redacted(url)!r} (for example "
                          "redis://user:password@127.0.0.1:6379/0)")
    return url


def redacted(url: str) -> str:
    """``url`` without its password, for messages and logs.

    >>> redacted("redis://bridge:s3cret@cache:6379/0")
    'redis://bridge:***@cache:6379/0'
    """
    parsed = urlsplit(url)
    if parsed.password is None:
        return url
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return parsed._replace(netloc=netloc).geturl()


def connect(url: str, *, timeout: float, username: str | None = None,
            password: str | None = None, max_connections: int = 8) -> redis.asyncio.Redis:
    """An asyncio client for ``url`` (credentials in it, or given here), every command and
    connection attempt bounded by ``timeout`` seconds, no client-side retries."""
    try:
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError as exc:  # pragma: no cover - the extra is part of the dev install
        raise ConfigError("the cache needs redis-py: pip install 'suho-mt5[cache]'") from exc
    check_cache_url(url)
    extra: dict[str, Any] = {}
    if username is not None:
        extra["username"] = username
    if password is not None:
        extra["password"] = password
    return redis.asyncio.Redis.from_url(
        url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0), max_connections=max_connections, **extra)


def _permission(exc: BaseException) -> bool:
    text = str(exc)
    return (text.startswith(("NOPERM", "WRONGPASS", "NOAUTH")) or "no permissions" in text
            or "can't access" in text)


@contextlib.contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """redis-py's exceptions as the cache's :class:`CacheError` tree, saying ``what`` failed."""
    import redis.exceptions as rx

    try:
        yield
    except CacheError:
        raise
    except (rx.NoPermissionError, rx.AuthenticationError, rx.AuthorizationError) as exc:
        raise CachePermissionError(f"{what}: the cache refused it: {exc}") from exc
    except (rx.ConnectionError, rx.TimeoutError, TimeoutError, OSError) as exc:
        text = str(exc)
        refused = "Error 111 " in text or "refused" in text.lower()
        reason = "Connection refused" if refused else type(exc).__name__
        raise CacheUnavailableError(f"{what}: {reason}: {text}") from exc
    except rx.ResponseError as exc:
        if _permission(exc):
            raise CachePermissionError(f"{what}: the cache refused it: {exc}") from exc
        raise CacheError(f"{what}: {exc}") from exc
    except rx.RedisError as exc:
        raise CacheError(f"{what}: {exc}") from exc
