"""``suho-mt5 audit|report|gdpr|feedback ...``: the compliance commands."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from suho_mt5.cli._common import reports_errors, url_option
from suho_mt5.commands import compliance as commands
from suho_mt5.commands._connect import database_url
from suho_mt5.compliance.feedback import FORMATS
from suho_mt5.compliance.reports import REPORT_TYPES, TRANSACTION_FIELDS_NOT_HELD
from suho_mt5.errors import AuditChainError, ComplianceError, ReportError

__all__ = ["audit", "feedback", "gdpr", "report"]

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print the result as one JSON document.")
tenant_option = click.option("--tenant", "tenant_id", required=True, help="Tenant id.")
month_option = click.option("--month", required=True, metavar="YYYY-MM",
                            help="Calendar month (UTC).")


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group()
def audit() -> None:
    """Verify the audit trail and export its chain heads."""


@audit.command("verify")
@url_option
@click.option("--tenant", "tenant_id", default=None, help="Only this tenant's chain.")
@click.option("--since", "since", default=None, metavar="DIGEST_FILE",
              help="Also prove every position in this digest still holds its hash.")
@json_option
@reports_errors
def audit_verify(url: str | None, tenant_id: str | None, since: str | None,
                 as_json: bool) -> None:
    """Recompute every chain; exit 1 naming the first broken position of each.

    \b
    Example:
      suho-mt5 audit verify --since digests/2026-11-01.json --json
    """
    result = commands.audit_verify(database_url(url), tenant_id=tenant_id, since=since)
    if as_json:
        _echo_json(result.as_json())
    else:
        for chain in result.chains:
            where = f"positions {chain.first}..{chain.last}" if chain.events else "no events"
            start = (f", starts after retention checkpoint {chain.starts_after_checkpoint}"
                     if chain.starts_after_checkpoint else "")
            state = "ok" if chain.ok else "BROKEN"
            click.echo(f"{chain.tenant_id}  {state}  {chain.events} events, {where}{start}")
    if not result.ok:
        problems = result.problems
        raise AuditChainError(f"{len(problems)} chain(s) broken; first: {problems[0]}",
                              tuple(problems))


@audit.command("digest")
@url_option
@click.option("--tenant", "tenant_id", default=None, help="Only this tenant's head.")
@reports_errors
def audit_digest(url: str | None, tenant_id: str | None) -> None:
    """Print the chain heads (tenant, position, hash, time) as JSON: keep the file outside
    the database (WORM storage, signed, another system).

    \b
    Example:
      suho-mt5 audit digest > digests/$(date -u +%F).json
    """
    digest = commands.audit_digest(database_url(url), tenant_id=tenant_id)
    sys.stdout.write(digest.dumps())


@audit.command("checkpoint")
@url_option
@json_option
@reports_errors
def audit_checkpoint(url: str | None, as_json: bool) -> None:
    """Record retention checkpoints (run before retention; daily is plenty).

    \b
    Example:
      suho-mt5 audit checkpoint --json
    """
    written = commands.audit_checkpoint(database_url(url))
    if as_json:
        _echo_json({"checkpoints": written})
    else:
        click.echo(f"{written} checkpoint(s) written")


@audit.command("correct")
@url_option
@tenant_option
@click.option("--event", "event_id", required=True, help="The event_id of the event to correct.")
@click.option("--reason", required=True, help="Why (kept in the trail).")
@click.option("--set", "changes", multiple=True, metavar="FIELD=VALUE",
              help="A corrected value (repeatable).")
@json_option
@reports_errors
def audit_correct(url: str | None, tenant_id: str, event_id: str, reason: str,
                  changes: tuple[str, ...], as_json: bool) -> None:
    """Append a correction that names the original event (which stays as it was).

    \b
    Example:
      suho-mt5 audit correct --tenant tenant_demo \\
          --event 0b9a7c1e-5d4f-4e2a-9c3b-1f2e3d4c5b6a --reason "wrong broker" \\
          --set broker_name="IC Markets"
    """
    correction: dict[str, object] = {}
    for change in changes:
        field, sep, value = change.partition("=")
        if not sep or not field:
            raise ComplianceError(f"--set needs FIELD=VALUE, got {change!r}")
        correction[field] = value
    position = commands.audit_correct(database_url(url), tenant_id=tenant_id,
                                      event_id=event_id, reason=reason, correction=correction)
    if as_json:
        _echo_json({"tenant_id": tenant_id, "corrects": event_id, "position": position})
    else:
        click.echo(f"correction of {event_id} recorded at position {position} of {tenant_id}")


@click.group()
def report() -> None:
    """Compliance reports."""


@report.command("compliance")
@url_option
@tenant_option
@month_option
@click.option("--type", "report_type", type=click.Choice(REPORT_TYPES),
              default="monthly_trading", show_default=True)
@json_option
@reports_errors
def report_compliance(url: str | None, tenant_id: str, month: str, report_type: str,
                      as_json: bool) -> None:
    """Generate and store a monthly report (again: replaces it).

    \b
    Example:
      suho-mt5 report compliance --tenant tenant_demo --month 2026-10 --json
    """
    stored = commands.report_compliance(database_url(url), tenant_id=tenant_id,
                                        month=month, report_type=report_type)
    if as_json:
        _echo_json(stored.as_json())
    else:
        click.echo(f"{stored.report_type} {tenant_id} {month}: report {stored.report_id}")
        for key, value in stored.data.items():
            click.echo(f"  {key}: {json.dumps(value, default=str)}")


@report.command("transactions")
@url_option
@tenant_option
@month_option
@click.option("--output", "-o", required=True, metavar="FILE",
              help="CSV file to write ('-': standard output).")
@json_option
@reports_errors
def report_transactions(url: str | None, tenant_id: str, month: str, output: str,
                        as_json: bool) -> None:
    """Export the month's executed trades with the MiFID II RTS 22 fields the schema holds.

    \b
    Example:
      suho-mt5 report transactions --tenant tenant_demo --month 2026-10 -o trades.csv
    """
    # lazy: a command that fails before its first row leaves no empty file behind
    try:
        with click.open_file(output, "w", encoding="utf-8", lazy=True) as out:
            rows = commands.report_transactions(database_url(url),
                                                 tenant_id=tenant_id, month=month, out=out)
    except click.FileError as exc:  # opened at the first row: an unwritable path
        raise ReportError(f"cannot write {output}: {exc.message}") from exc
    summary = {"rows": rows, "output": output,
               "fields_not_held": list(TRANSACTION_FIELDS_NOT_HELD)}
    if as_json:
        click.echo(json.dumps(summary, indent=2), err=output == "-")
    else:
        click.echo(f"{rows} transaction(s) written to {output}; "
                   f"{len(TRANSACTION_FIELDS_NOT_HELD)} RTS 22 field groups are not held "
                   "(docs/compliance.md)", err=True)


@click.group()
def gdpr() -> None:
    """GDPR: erasure by pseudonymisation."""


@gdpr.command("erase")
@url_option
@tenant_option
@click.option("--user", "user_id", required=True, help="The user id to erase.")
@json_option
@reports_errors
def gdpr_erase(url: str | None, tenant_id: str, user_id: str, as_json: bool) -> None:
    """Pseudonymise a user's personal fields; keep money, reports and the audit chain.

    \b
    Example:
      suho-mt5 gdpr erase --tenant tenant_demo --user user_001 --json
    """
    erasure = commands.gdpr_erase(database_url(url), tenant_id=tenant_id,
                                  user_id=user_id)
    if as_json:
        _echo_json(erasure.as_json())
    else:
        click.echo(f"erased: {erasure.accounts} account(s), {erasure.consents} consent(s) now"
                   f" carry {erasure.subject}")


@click.group()
def feedback() -> None:
    """The ML feedback loop."""


@feedback.command("export")
@url_option
@tenant_option
@click.option("--output", "-o", required=True, help="File to write ('-': standard output).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True)
@json_option
@reports_errors
def feedback_export(url: str | None, tenant_id: str, output: str, fmt: str,
                    as_json: bool) -> None:
    """Write closed trades with features and outcomes; mark them included_in_training.

    \b
    Example:
      suho-mt5 feedback export --tenant tenant_demo -o feedback.csv --format csv
    """
    done = commands.feedback_export(database_url(url), tenant_id=tenant_id,
                                    destination=output, fmt=fmt)
    if as_json:
        click.echo(json.dumps(done.as_json(), indent=2), err=output == "-")
    else:
        click.echo(f"{done.rows} row(s) exported to {output} and marked included_in_training",
                   err=output == "-")
