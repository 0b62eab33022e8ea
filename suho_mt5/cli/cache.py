"""``suho-mt5 cache ...``: the latest-state cache's users, rebuild, statistics, reads."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from suho_mt5.cli._common import reports_errors, url_option
from suho_mt5.errors import ConfigError

__all__ = ["cache", "cache_ttl_option", "cache_url_option"]


def _check_cache_url(ctx: click.Context, param: click.Parameter, value: str | None
                     ) -> str | None:
    if not value:
        return None
    from suho_mt5.cache._client import check_cache_url

    return check_cache_url(value)


#: ``--cache-url`` / ``$SUHO_CACHE_URL`` (optional: a command that needs it says so).
cache_url_option = click.option(
    "--cache-url", envvar="SUHO_CACHE_URL", callback=_check_cache_url,
    help="Cache URL, redis://user:password@host:6379/0 [env: SUHO_CACHE_URL].")


def _ttls(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> Any:
    if not value:
        return None
    from suho_mt5.cache import CacheTTLs

    return CacheTTLs.parse(value)


#: ``--cache-ttl KIND=SECONDS`` (repeatable): how long each kind of value lives.
cache_ttl_option = click.option(
    "--cache-ttl", "cache_ttls", multiple=True, metavar="KIND=SECONDS", callback=_ttls,
    help="How long a kind of value lives, from its packet's time (quote, reference, "
         "snapshot, status, signals, closing, or all); repeatable. Defaults: quote and "
         "reference 300, snapshot 3600, status and signals 86400.")


def _need(url: str | None, what: str = "an admin user's URL") -> str:
    if not url:
        raise ConfigError(f"no cache URL: give --cache-url (or SUHO_CACHE_URL), {what}")
    return url


def _dump(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group()
def cache() -> None:
    """The latest-state cache (Redis protocol: DragonflyDB, redis-server): users, rebuild,
    statistics, reads. Admin commands take --cache-url of a user that may run ACL, SCAN
    and INFO."""


def _print_grant(grant: Any, as_json: bool) -> None:
    if as_json:
        _dump({"user": grant.user, "password": grant.password, "url": grant.url,
               "keys": grant.keys, "persisted": grant.persisted, "note": grant.note})
        return
    click.echo(f"user:     {grant.user}")
    click.echo(f"keys:     {grant.keys}")
    click.echo(f"password: {grant.password}")
    click.echo(f"url:      {grant.url}")
    click.echo("The password is shown once; give the URL to the processes that use it.")
    if not grant.persisted:
        click.echo(f"warning: {grant.note}", err=True)


@cache.command("grant-tenant")
@click.argument("tenant_id", metavar="TENANT")
@cache_url_option
@click.option("--password", help="Use this password instead of a random one.")
@click.option("--json", "as_json", is_flag=True, help="Print the user as JSON.")
@reports_errors
def grant_tenant(tenant_id: str, cache_url: str | None, password: str | None,
                 as_json: bool) -> None:
    """Create (or rotate) TENANT's reader user: its keys suho:{TENANT}:* only, read
    commands only, nothing of @dangerous. Rotating closes the old password's connections.

    \b
    Example:
      suho-mt5 cache grant-tenant acme --cache-url redis://admin:secret@cache:6379/0
    """
    from suho_mt5.commands.cache import grant_tenant as grant

    _print_grant(grant(_need(cache_url), tenant_id, password), as_json)


@cache.command("grant-writer")
@click.argument("user", metavar="[USER]", default="suho-writer")
@cache_url_option
@click.option("--password", help="Use this password instead of a random one.")
@click.option("--json", "as_json", is_flag=True, help="Print the user as JSON.")
@reports_errors
def grant_writer(user: str, cache_url: str | None, password: str | None,
                 as_json: bool) -> None:
    """Create (or rotate) a writer's user (default suho-writer): every tenant's keys, the
    newer-wins scripts, nothing else. For `ingest run`, `gateway run` and `cache rebuild`.

    \b
    Example:
      suho-mt5 cache grant-writer --cache-url redis://admin:secret@cache:6379/0
    """
    from suho_mt5.commands.cache import grant_writer as grant

    _print_grant(grant(_need(cache_url), user, password), as_json)


@cache.command("revoke-tenant")
@click.argument("tenant_id", metavar="TENANT")
@cache_url_option
@click.option("--purge", is_flag=True, help="Delete the tenant's keys too.")
@reports_errors
def revoke_tenant(tenant_id: str, cache_url: str | None, purge: bool) -> None:
    """Delete TENANT's reader user (its connections are closed); --purge its keys too.

    \b
    Example:
      suho-mt5 cache revoke-tenant acme --purge --cache-url redis://admin:secret@cache/0
    """
    from suho_mt5.commands.cache import revoke_tenant as revoke

    existed, deleted = revoke(_need(cache_url), tenant_id, purge)
    click.echo(f"user of {tenant_id}: {'deleted' if existed else 'did not exist'}"
               + (f"; {deleted} key(s) deleted" if purge else ""))


@cache.command("users")
@cache_url_option
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
@reports_errors
def users(cache_url: str | None, as_json: bool) -> None:
    """List the cache's ACL users with their key patterns and command rules.

    \b
    Example:
      suho-mt5 cache users --cache-url redis://admin:secret@cache:6379/0
    """
    from suho_mt5.commands.cache import users as list_users

    found = list_users(_need(cache_url))
    if as_json:
        _dump(found)
        return
    for u in found:
        click.echo(f"{u['user']}: flags {' '.join(map(str, u['flags'] or []))}; "
                   f"keys {u['keys']}; commands {u['commands']}")


@cache.command("rebuild")
@url_option
@cache_url_option
@click.option("--tenant", "tenant_id", help="Only this tenant's keys.")
@click.option("--role", help="SET ROLE to this role first (e.g. mt5_maintenance).")
@cache_ttl_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@reports_errors
def rebuild(url: str | None, cache_url: str | None, tenant_id: str | None,
            role: str | None, cache_ttls: Any, quiet: bool, as_json: bool) -> None:
    """Fill the cache again from the database: the latest row per key of every kind, within
    the kinds' TTLs. Safe while bridges write (newer values win). --url is a login of
    mt5_maintenance (or a superuser); --cache-url a writer's or admin's.

    \b
    Example:
      suho-mt5 cache rebuild --url postgresql://maint:secret@db/suho \\
          --cache-url redis://suho-writer:secret@cache:6379/0 --tenant acme
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from suho_mt5.commands._connect import database_url
    from suho_mt5.commands.cache import rebuild as run

    show = not quiet and sys.stderr.isatty()
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True),
                  disable=not show, transient=True) as bar:
        task = bar.add_task("reading", total=None)

        def progress(phase: str, done: int, total: int) -> None:
            bar.update(task, description=phase, completed=done, total=total or None)

        report = run(database_url(url), _need(cache_url, "a writer's or admin's URL"),
                     tenant_id=tenant_id, role=role, ttls=cache_ttls, progress=progress)
    if as_json:
        _dump(report.as_json())
        return
    rows = ", ".join(f"{n} {k}" for k, n in report.rows.items())
    click.echo(f"rebuilt {tenant_id or 'every tenant'} in {report.seconds:.1f} s: read {rows}; "
               f"{report.written} value(s) written, {report.older} kept (the cache had a "
               f"newer one), {report.expired} past their TTL")
    if not report.broker_names:
        click.echo("note: this login cannot read mt5_user_accounts: per-broker symbol "
                   "overrides were not applied to the market references", err=True)


@cache.command("stats")
@cache_url_option
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
@reports_errors
def stats(cache_url: str | None, as_json: bool) -> None:
    """Keys per tenant and kind, the server's hit ratio, each writer's lag.

    \b
    Example:
      suho-mt5 cache stats --cache-url redis://admin:secret@cache:6379/0 --json
    """
    from suho_mt5.commands.cache import stats as read

    s = read(_need(cache_url))
    if as_json:
        _dump({"keys": s.keys, "tenants": {t: dict(c) for t, c in s.tenants.items()},
               "hits": s.hits, "misses": s.misses, "hit_ratio": s.hit_ratio,
               "writers": [w.__dict__ for w in s.writers], "epoch": s.epoch,
               "rebuilt": s.rebuilt, "truncated": s.truncated})
        return
    ratio = "-" if s.hit_ratio is None else f"{s.hit_ratio:.1%}"
    click.echo(f"{s.keys} key(s); server hit ratio {ratio} ({s.hits} hits, {s.misses} "
               f"misses); epoch {s.epoch or '-'}; last rebuild {s.rebuilt.get('at', 'never')}")
    for tenant, kinds in sorted(s.tenants.items()):
        click.echo(f"  {tenant}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    for w in s.writers:
        click.echo(f"  writer {w.name}: updated {w.age_s:.1f} s ago, lag {w.lag_ms} ms, "
                   f"{w.pending} pending, {w.errors} error(s), {w.written} written")


@cache.command("get")
@click.argument("kind", type=click.Choice(["quote", "snapshot", "status", "reference",
                                           "signals"]))
@click.option("--tenant", "tenant_id", required=True, help="The tenant to read as.")
@click.option("--account", help="Account id (quote, snapshot, status, signals).")
@click.option("--symbol", help="Broker symbol (quote) or canonical symbol (reference).")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Signals to show.")
@cache_url_option
@click.option("--url", "database_url", envvar="SUHO_DATABASE_URL",
              help="A tenant login (mt5_app, mt5_readonly) to answer misses "
                   "[env: SUHO_DATABASE_URL].")
@cache_ttl_option
@reports_errors
def get(kind: str, tenant_id: str, account: str | None, symbol: str | None, limit: int,
        cache_url: str | None, database_url: str | None, cache_ttls: Any) -> None:
    """Read one value the way applications do: as TENANT's cache user (the URL
    grant-tenant printed), the database on a miss. Prints JSON (null: nothing fresh).

    \b
    Example:
      suho-mt5 cache get quote --tenant acme --account "$ACCOUNT" --symbol EURUSD \\
          --cache-url redis://suho-tenant-acme:secret@cache:6379/0
    """
    from suho_mt5.commands.cache import get as read

    if not cache_url and not database_url:
        raise ConfigError("give --cache-url (the tenant's) or --url (a tenant login)")
    _dump(read(cache_url, kind, tenant_id, account=account, symbol=symbol,
               database_url=database_url, limit=limit, ttls=cache_ttls))
