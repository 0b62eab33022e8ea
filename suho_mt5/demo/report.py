"""What the demo measured, read back from the database the way its users would.

:func:`collect` returns a JSON-ready dict (``suho-mt5 demo --json`` prints it);
:func:`render` prints it as tables. The seed's queries run as an application login
(``mt5_app``) with its tenant set, through the tenant views: the same SQL text as the
seed's README, answered for one tenant at a time.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from suho_mt5.db import make_engine, tenant_connection

__all__ = ["SEED_QUERIES", "collect", "render"]

#: The seed README's queries (deviation, connectivity) and its three benchmark queries,
#: answered from the continuous aggregates.
SEED_QUERIES: dict[str, str] = {
    "deviation": """SELECT
    symbol,
    AVG(price_deviation) AS avg_deviation_pips,
    MAX(ABS(price_deviation)) AS max_deviation
FROM mt5_broker_quotes
WHERE time >= NOW() - INTERVAL '24 hours'
GROUP BY symbol
ORDER BY symbol""",
    "connectivity": """SELECT
    COUNT(*) FILTER (WHERE status = 'online') AS online,
    COUNT(*) FILTER (WHERE status = 'offline') AS offline,
    COUNT(*) AS total
FROM (
    SELECT DISTINCT ON (account_id)
        account_id, status
    FROM mt5_ea_heartbeat
    ORDER BY account_id, time DESC
) latest""",
    "balance_24h": """SELECT a.user_id, b.bucket, b.balance_open, b.balance_close,
    b.equity_low, b.samples
FROM mt5_balance_hourly b JOIN mt5_user_accounts a USING (account_id)
WHERE b.bucket >= NOW() - INTERVAL '24 hours'
ORDER BY a.user_id, b.bucket""",
    "weekly_pnl": """SELECT symbol, SUM(trades)::bigint AS trades, SUM(wins)::bigint AS wins,
    SUM(losses)::bigint AS losses, SUM(net_profit) AS net_profit
FROM mt5_pnl_daily
WHERE bucket >= NOW() - INTERVAL '7 days'
GROUP BY symbol
ORDER BY symbol""",
    "ohlc_1m": """SELECT symbol, bucket, MIN(bid_low) AS low, MAX(bid_high) AS high,
    SUM(ticks)::bigint AS ticks
FROM mt5_quotes_ohlc_1m
WHERE bucket >= NOW() - INTERVAL '1 hour'
GROUP BY symbol, bucket
ORDER BY symbol, bucket""",
}

_TABLES = {
    "mt5_broker_quotes": "quotes",
    "mt5_account_balance_history": "snapshots",
    "mt5_ea_heartbeat": "heartbeats",
    "mt5_trade_orders": "order events",
    "mt5_signal_executions": "execution reports",
}


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _rows(conn: Any, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [{k: _json(v) for k, v in row._asdict().items()}
            for row in conn.execute(text(sql), params or {})]


def signal_hops(metrics_url: str) -> dict[str, dict[str, float]]:
    """The gateway's per-hop latency histogram, read from its ``/metrics``."""
    import urllib.request

    from suho_mt5.gateway import signal_hop_bounds

    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    return {hop: {"signals": n, "p50_ms_at_most": p50, "p99_ms_at_most": p99}
            for hop, (n, p50, p99) in signal_hop_bounds(text).items()}


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    data = sorted(values)
    return round(data[min(len(data) - 1, int(p * len(data)))], 2)


def collect(run: Any) -> dict[str, Any]:
    """The report of a :class:`~suho_mt5.demo.run.DemoRun` whose traffic has ended."""
    from suho_mt5.gateway.simulator import report_of

    tenants = [t.tenant_id for t in run.tenants]
    sim = report_of(run.eas)
    admin = make_engine(run.database_url)
    app = make_engine(run.app_url)
    try:
        stored: dict[str, int] = {}
        with admin.connect() as conn:
            for table in _TABLES:
                extra = " AND status <> 'offline'" if table == "mt5_ea_heartbeat" else ""
                stored[table] = conn.execute(text(
                    f"SELECT count(*) FROM public.{table} WHERE tenant_id = ANY(:t){extra}"),
                    {"t": tenants}).scalar_one()
            dead = conn.execute(text(
                "SELECT count(*) FROM public.mt5_ingest_dead_letters WHERE time >= now() - "
                "interval '1 hour'")).scalar_one()
            feedback = conn.execute(text(
                "SELECT count(*) AS executions, count(*) FILTER (WHERE trade_closed) AS closed,"
                " coalesce(sum(profit) FILTER (WHERE trade_closed), 0) AS profit"
                " FROM public.mt5_signal_executions WHERE tenant_id = ANY(:t)"),
                {"t": tenants}).one()
            statuses: dict[str, int] = dict(conn.execute(text(
                "SELECT status, count(*) FROM public.mt5_trading_signals"
                " WHERE tenant_id = ANY(:t) GROUP BY status"), {"t": tenants}).all())
            risk = conn.execute(text(
                "SELECT count(*) FROM public.mt5_risk_events WHERE tenant_id = ANY(:t)"),
                {"t": tenants}).scalar_one()
        queries: dict[str, dict[str, Any]] = {}
        for tenant_id in tenants:
            with tenant_connection(app, tenant_id) as conn:
                queries[tenant_id] = {name: _rows(conn, sql)
                                      for name, sql in SEED_QUERIES.items()}
        isolation = _isolation(app, run.tenants[0].tenant_id, run.tenants[1].tenant_id,
                               run.logins)
        hops = signal_hops(run.gateway_metrics_url) if run.gateway_metrics_url else {}
    finally:
        admin.dispose()
        app.dispose()
    total = sum(stored.values())
    latency = sim.latency_ms
    user = make_url(run.app_url).username
    return {
        "engine": run.engine,
        "database": make_url(run.database_url).render_as_string(hide_password=True),
        "nats": run.nats_url,
        "timings_s": dict(run.timings),
        "tenants": {t.tenant_id: {"broker": t.broker.name,
                                  "quotes_offset_pips": t.broker.offset_pips,
                                  "symbols": t.broker.symbol("EURUSD"),
                                  "accounts": [str(a) for a, _ in t.accounts]}
                    for t in run.tenants},
        "eas": {"count": sim.accounts, "sessions": sim.sessions,
                "packets_sent": sim.data_packets, "unacknowledged": sim.unacknowledged,
                "resent": sim.resent, "errors": sim.errors},
        "stored": {**stored, "total": total, "dead_letters": dead,
                   "exactly_once": total == sim.data_packets and sim.unacknowledged == 0},
        "reference_quotes": run.reference_quotes,
        "signals": {
            "published": run.signals_published,
            "received_by_eas": sim.signals,
            "duplicates_at_eas": sim.duplicate_signals,
            "status": statuses,
            "executions_stored": feedback.executions,
            "trades_closed": feedback.closed,
            "closed_profit": _json(feedback.profit),
            "latency_ms": {"count": len(latency), "p50": _percentile(latency, 0.5),
                           "p99": _percentile(latency, 0.99),
                           "max": _percentile(latency, 1.0)},
            "gateway_hops": hops,
        },
        "risk_events": risk,
        "seed_queries": queries,
        "isolation": {**isolation, "login": f"{user} (mt5_app)" if run.logins else user},
        "pids": dict(run.pids),
        "notes": list(run.notes),
    }


def _isolation(app: Any, tenant_a: str, tenant_b: str, logins: bool) -> dict[str, Any]:
    """As tenant A's application login: A's rows, B's rows (0), and the base table."""
    import sqlalchemy.exc

    with tenant_connection(app, tenant_a) as conn:
        own = conn.execute(text("SELECT count(*) FROM mt5_broker_quotes")).scalar_one()
        other = conn.execute(text(
            "SELECT count(*) FROM mt5_broker_quotes WHERE tenant_id = :b"), {"b": tenant_b}
        ).scalar_one()
        other_accounts = conn.execute(text(
            "SELECT count(*) FROM mt5_user_accounts WHERE tenant_id = :b"), {"b": tenant_b}
        ).scalar_one()
    base = "readable (superuser login: no proof)"
    if logins:
        try:
            with app.connect() as conn:
                conn.execute(text("SELECT count(*) FROM public.mt5_broker_quotes")).scalar_one()
            base = "READABLE: isolation is broken"
        except sqlalchemy.exc.ProgrammingError as exc:
            base = "permission denied" if "permission denied" in str(exc) else str(exc.orig)
    return {"as_tenant": tenant_a, "other_tenant": tenant_b, "own_quotes": own,
            "other_tenant_quotes": other, "other_tenant_accounts": other_accounts,
            "public_base_table": base}


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e6:
            return f"{value:,.0f}"
        return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.6g}"
    return str(value)


def render(report: dict[str, Any], console: Any) -> None:
    """Print ``report`` with rich to ``console``."""
    from rich.table import Table

    def table(title: str, rows: list[dict[str, Any]], columns: list[str] | None = None
              ) -> None:
        if not rows:
            console.print(f"[bold]{title}[/]: no rows")
            return
        cols = columns or list(rows[0])
        t = Table(title=title, title_justify="left", title_style="bold")
        for c in cols:
            t.add_column(c, justify="right" if not isinstance(rows[0].get(c), str) else "left")
        for r in rows:
            t.add_row(*(_fmt(r.get(c)) for c in cols))
        console.print(t)

    eas, stored, sig = report["eas"], report["stored"], report["signals"]
    console.rule("[bold]suho-mt5 demo")
    console.print(f"engine [bold]{report['engine']}[/]  database {report['database']}  "
                  f"nats {report['nats']}")
    console.print("timings (s): " + ", ".join(f"{k} {v}" for k, v in report["timings_s"].items()))
    for tenant_id, info in report["tenants"].items():
        console.print(f"tenant [bold]{tenant_id}[/]: {len(info['accounts'])} accounts at "
                      f"{info['broker']} (symbols like {info['symbols']}, quoting "
                      f"{info['quotes_offset_pips']:+} pips from the reference)")
    table("EA packets -> rows (each row type counted in its table)", [
        *({"table": k, "rows": v} for k, v in stored.items()
          if k.startswith("mt5_")),
        {"table": "total stored", "rows": stored["total"]},
        {"table": "packets the EAs sent", "rows": eas["packets_sent"]},
        {"table": "dead letters", "rows": stored["dead_letters"]},
    ])
    console.print(f"exactly once: [bold]{'yes' if stored['exactly_once'] else 'NO'}[/] "
                  f"({eas['count']} EAs, {eas['sessions']} sessions, "
                  f"{eas['unacknowledged']} packets unacknowledged)")
    lat = sig["latency_ms"]
    console.print(
        f"signals: {sig['published']} published, {sig['received_by_eas']} received by the EAs, "
        f"{sig['executions_stored']} executions stored, {sig['trades_closed']} trades closed "
        f"(profit {sig['closed_profit']:+.2f}); status {sig['status']}")
    console.print(f"signal delivery latency (signal created -> EA socket): "
                  f"[bold]p50 {_fmt(lat['p50'])} ms, p99 {_fmt(lat['p99'])} ms[/] "
                  f"(max {_fmt(lat['max'])} ms, {lat['count']} signals)")
    table("each hop, from the gateway's histogram (bucket bounds, ms)",
          [{"hop": hop, **values} for hop, values in sig["gateway_hops"].items()])
    console.print(f"risk events written: {report['risk_events']}")
    for tenant_id, answers in report["seed_queries"].items():
        console.rule(f"seed queries as tenant {tenant_id}")
        table("price deviation per symbol (pips, last 24 h)", answers["deviation"])
        table("EA connectivity", answers["connectivity"])
        table("last 24 h balance (hourly aggregate)", answers["balance_24h"])
        table("weekly P&L (daily aggregate, closed trades)", answers["weekly_pnl"])
        table("quote OHLC, 1 minute (bid)", answers["ohlc_1m"])
    if report.get("cache"):
        console.rule("latest state, read from the cache as each tenant's own user")
        for tenant, state in report["cache"].items():
            console.print(f"[bold]{tenant}[/] ({'/'.join(state['sources'])}): {state['line']}")
    iso = report["isolation"]
    console.rule("tenant isolation")
    console.print(
        f"as {iso['login']} with tenant {iso['as_tenant']}: own quotes {iso['own_quotes']}, "
        f"[bold]{iso['other_tenant']}'s quotes {iso['other_tenant_quotes']}, accounts "
        f"{iso['other_tenant_accounts']}[/]; public.mt5_broker_quotes: "
        f"{iso['public_base_table']}")
    for note in report["notes"]:
        console.print(f"note: {note}")
