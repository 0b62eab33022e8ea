"""The ``suho-mt5`` command line: a thin click layer over :mod:`suho_mt5.commands`.

Each command parses options, calls a plain typed function that tests call directly, and turns
a :class:`~suho_mt5.errors.SuhoError` into a one-line message and exit status 1. Each layer's
commands live in a module of their own here and are added to :func:`main` below.
"""

from __future__ import annotations

import logging

import click

from suho_mt5 import __version__
from suho_mt5.cli._common import SuhoGroup
from suho_mt5.cli.account import account
from suho_mt5.cli.cache import cache
from suho_mt5.cli.compliance import audit, feedback, gdpr, report
from suho_mt5.cli.db import db
from suho_mt5.cli.demo import demo
from suho_mt5.cli.gateway import gateway, simulate
from suho_mt5.cli.ingest import ingest, streams
from suho_mt5.cli.monitor import monitor
from suho_mt5.cli.signal import signal

__all__ = ["main"]


@click.group(cls=SuhoGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="suho-mt5")
def main() -> None:
    """Connect MetaTrader 5 Expert Advisors to a multi-tenant TimescaleDB backend.

    A command that uses the database takes --url (or $SUHO_DATABASE_URL), one that talks
    to NATS --nats-url (or $SUHO_NATS_URL). Errors are one "error: ..." line on stderr
    and exit status 1; usage mistakes exit 2. `suho-mt5 COMMAND --help` shows each
    command with an example.
    """
    # nats-py logs a connection failure with its traceback when nothing else handles it;
    # the command raises its own one-line error. A service that configures logging (gateway
    # run) still gets these records through the root logger.
    logging.getLogger("nats").addHandler(logging.NullHandler())


main.add_command(db)
main.add_command(ingest)
main.add_command(streams)
main.add_command(account)
main.add_command(monitor)
main.add_command(cache)
main.add_command(gateway)
main.add_command(simulate)
main.add_command(signal)
main.add_command(demo)
for _group in (audit, report, gdpr, feedback):
    main.add_command(_group)
