"""URLs of clustered servers: a list of NATS nodes, a libpq multi-host database URL, and
``prepare_threshold`` for PgBouncer (docs/operations.md). No server: the parsing only."""

from __future__ import annotations

import doctest
import importlib

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from suho_mt5._nats import nats_servers
from suho_mt5.cli import main
from suho_mt5.db import make_engine, normalize_url, prepare_threshold, psycopg_conninfo
from suho_mt5.errors import ConfigError


@pytest.mark.parametrize("module", ["suho_mt5._nats", "suho_mt5.db.engine"])
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(("url", "servers"), [
    ("nats://127.0.0.1:4222", ["nats://127.0.0.1:4222"]),
    ("nats://a:1,nats://b:2,nats://c:3", ["nats://a:1", "nats://b:2", "nats://c:3"]),
    (" nats://a:1 , tls://b:2 ", ["nats://a:1", "tls://b:2"]),
])
def test_a_nats_url_or_a_list_of_them(url: str, servers: list[str]) -> None:
    assert nats_servers(url) == servers


@pytest.mark.parametrize(("url", "named"), [
    ("nats://a:1,http://b:2", "'http://b:2' in 'nats://a:1,http://b:2'"),
    ("nats://a:1,", "''"),
    ("nats://a:0", "'nats://a:0'"),
    ("nats://a:x", "'nats://a:x'"),
    (",", "no NATS URL given"),
])
def test_each_part_of_the_list_is_checked(url: str, named: str) -> None:
    with pytest.raises(ConfigError, match="NATS URL") as caught:
        nats_servers(url)
    assert named in str(caught.value)


def test_the_command_line_takes_a_list_and_names_the_bad_part() -> None:
    runner = CliRunner()
    bad = runner.invoke(main, ["streams", "setup", "--nats-url", "nats://127.0.0.1:1,ftp://x"])
    assert bad.exit_code == 1
    assert bad.output.startswith("error: not a NATS URL: 'ftp://x' in ")
    # A good list gets as far as connecting (nothing listens on these ports).
    down = runner.invoke(main, ["streams", "setup", "--nats-url",
                                "nats://127.0.0.1:1,nats://127.0.0.1:2"])
    assert down.exit_code == 1 and "error: cannot connect to NATS at nats://127.0.0.1:1,nats" \
        in down.output


MULTI = [
    "postgresql://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write",
    "postgresql+psycopg://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write",
    "host=h1,h2 port=5432,5433 user=u password=p dbname=db target_session_attrs=read-write",
    "postgresql+psycopg://u:p@/db?host=h1:5432&host=h2:5433&target_session_attrs=read-write",
]


@pytest.mark.parametrize("url", MULTI)
def test_a_multi_host_url_reaches_libpq_with_every_host(url: str) -> None:
    engine = make_engine(url)
    try:
        args = engine.dialect.create_connect_args(engine.url)[1]
    finally:
        engine.dispose()
    assert (args["host"], args["port"]) == ("h1,h2", "5432,5433")
    assert (args["user"], args["password"], args["dbname"]) == ("u", "p", "db")
    assert args["target_session_attrs"] == "read-write"
    assert psycopg_conninfo(url) == (
        "postgresql://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write", False)


def test_one_port_for_several_hosts_and_the_default_port() -> None:
    assert normalize_url("host=a,b port=6432 dbname=d").query["host"] == ("a:6432", "b:6432")
    assert normalize_url("postgresql://u@a,b:7/d").query["host"] == ("a:5432", "b:7")
    assert psycopg_conninfo("host=a port=7 dbname=d user=u")[0] == "postgresql://u@a:7/d"


@pytest.mark.parametrize(("url", "message"), [
    ("host=a,b port=1,2,3 dbname=x", "2 hosts but 3 ports"),
    ("postgresql://u@h1:x,h2/db", "not a database URL"),
    ("mysql://u@h1,h2/db", "needs PostgreSQL"),
    ("host=a dbname", "not a database URL"),
])
def test_a_bad_multi_host_url_is_one_config_error(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        normalize_url(url)


def test_the_cli_url_check_takes_a_multi_host_url() -> None:
    from suho_mt5.commands._connect import check_database_url

    check_database_url(MULTI[0])  # no ConfigError, no connection
    with pytest.raises(ConfigError):
        check_database_url("host=a,b port=1,2,3 dbname=x")


def test_prepare_threshold_reaches_psycopg_and_not_libpq() -> None:
    assert (prepare_threshold("none"), prepare_threshold("NEVER"), prepare_threshold("3")) == \
        (None, None, 3)
    with pytest.raises(ConfigError, match="prepare_threshold"):
        prepare_threshold("soon")
    url = "postgresql://u:p@h:6432/db?prepare_threshold=none"
    engine = make_engine(url)
    sent: dict[str, object] = {}

    @sa.event.listens_for(engine, "do_connect")
    def _grab(_dialect: object, _record: object, _args: object,
              params: dict[str, object]) -> None:
        sent.update(params)
        raise RuntimeError("no server here: what psycopg.connect would get is enough")

    try:
        with pytest.raises(RuntimeError, match="no server"):
            engine.connect()
    finally:
        engine.dispose()
    assert "prepare_threshold" in sent and sent["prepare_threshold"] is None
    assert (sent["host"], sent["port"], sent["dbname"]) == ("h", 6432, "db")
    assert psycopg_conninfo(url) == ("postgresql://u:p@h:6432/db", False)
