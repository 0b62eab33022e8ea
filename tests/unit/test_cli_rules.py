"""The rules every ``suho-mt5`` command keeps, checked on the whole click tree without a
server: a URL that is not one, a server that is down (a refused port), a malformed NATS URL,
a bad file: ONE ``error: ...`` line, exit status 1, never a traceback;
``SUHO_DATABASE_URL`` and ``SUHO_NATS_URL`` stand in for ``--url`` and ``--nats-url``;
``--json`` wherever a program reads the output. (Unknown tenants and accounts need a
database: ``tests/integration/test_cli_rules.py``.)"""

from __future__ import annotations

import uuid
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from suho_mt5.cli import main
from suho_mt5.cli._common import SuhoGroup
from suho_mt5.protocol import HeartbeatPacket, encode
from tests.support.cli import one_error_line
from tests.support.servers import free_port
from tests.unit.test_cli_help import COMMANDS, command_at

ACCOUNT = "3f6c0a3e-0b1d-4c1e-9f4e-2a7d5c9b8e10"
#: The least each command needs besides its URLs (FILE is a valid recording; OUT a path).
ARGS: dict[tuple[str, ...], list[str]] = {
    ("db", "upgrade"): [], ("db", "downgrade"): ["base"], ("db", "current"): [],
    ("db", "check"): [], ("db", "maintain"): [], ("db", "health"): [], ("db", "info"): [],
    ("account", "create"): ["--tenant", "t", "--user", "u", "--broker", "b", "--server", "s",
                            "--login", "1"],
    ("account", "list"): ["t"], ("account", "rotate-key"): [ACCOUNT],
    ("account", "deactivate"): [ACCOUNT], ("monitor",): [],
    ("audit", "verify"): [], ("audit", "digest"): [], ("audit", "checkpoint"): [],
    ("audit", "correct"): ["--tenant", "t", "--event", ACCOUNT, "--reason", "r"],
    ("report", "compliance"): ["--tenant", "t", "--month", "2026-10"],
    ("report", "transactions"): ["--tenant", "t", "--month", "2026-10", "-o", "OUT"],
    ("gdpr", "erase"): ["--tenant", "t", "--user", "u"],
    ("feedback", "export"): ["--tenant", "t", "-o", "OUT"],
    ("ingest", "replay"): ["FILE"], ("ingest", "run"): [], ("gateway", "run"): [],
    ("signal", "send"): ["--tenant", "t", "--account", ACCOUNT, "--symbol", "EURUSD",
                         "--action", "buy", "--volume", "0.1"],
    ("streams", "setup"): [], ("simulate",): ["--gateway", "ws://127.0.0.1:1", "--accounts",
                                              "3"],
    ("demo",): ["--duration", "5"],
    ("cache", "grant-tenant"): ["acme"], ("cache", "grant-writer"): [],
    ("cache", "revoke-tenant"): ["acme"], ("cache", "users"): [], ("cache", "stats"): [],
    ("cache", "rebuild"): ["--cache-url", "redis://u:p@127.0.0.1:1/0"],
    ("cache", "get"): ["quote", "--tenant", "t", "--account", ACCOUNT, "--symbol", "EURUSD"],
}
#: Commands that take a cache URL (``--cache-url``, ``SUHO_CACHE_URL``).
WITH_CACHE = [p for p in COMMANDS if any(x.name == "cache_url" for x in command_at(p).params)]
#: ... and need one (the others run without a cache).
NEED_CACHE = [p for p in WITH_CACHE if p[0] == "cache" and p != ("cache", "get")]
#: Commands that take a database URL / a NATS URL, found on the tree.
WITH_URL = [p for p in COMMANDS if any(x.name == "url" for x in command_at(p).params)]
WITH_NATS = [p for p in COMMANDS if any(x.name == "nats_url" for x in command_at(p).params)]
#: Commands whose output a program reads: each has --json (audit digest prints JSON always,
#: db sql prints SQL; the services log).
WITH_JSON = set(ARGS) - {("audit", "digest"), ("db", "maintain"), ("ingest", "run"),
                         ("gateway", "run"), ("cache", "revoke-tenant"),
                         ("cache", "get")} | {("db", "history")}


@pytest.fixture(autouse=True)
def _no_urls_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUHO_DATABASE_URL", raising=False)
    monkeypatch.delenv("SUHO_NATS_URL", raising=False)
    monkeypatch.delenv("SUHO_CACHE_URL", raising=False)
    monkeypatch.delenv("SUHO_DEBUG", raising=False)




def args_of(path: tuple[str, ...], tmp_path: Path) -> list[str]:
    recording = tmp_path / "r.bin"
    recording.write_bytes(encode(HeartbeatPacket(1, 1, uuid.UUID(ACCOUNT).bytes, "1.0", 1, 1,
                                                 True, True)))
    files = {"FILE": str(recording), "OUT": str(tmp_path / "out")}
    return [*path, *(files.get(a, a) for a in ARGS[path])]




def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(main, list(args))


def test_the_tables_cover_every_command() -> None:
    leaves = {p for p in COMMANDS if not isinstance(command_at(p), click.Group)}
    assert leaves - set(ARGS) == {("db", "sql"), ("db", "history")}  # no server, no URL
    # the demo starts its own servers: --database-url and --nats-url, no environment;
    # cache get's database is a tenant login (--url, the name database_url)
    assert set(WITH_URL) == set(ARGS) - {("streams", "setup"), ("demo",)} - {
        p for p in ARGS if p[0] == "cache" and p != ("cache", "rebuild")}
    assert set(WITH_CACHE) == {p for p in ARGS if p[0] == "cache"} | {
        ("ingest", "run"), ("gateway", "run"), ("monitor",)}
    assert set(WITH_NATS) == {("streams", "setup"), ("ingest", "run"), ("ingest", "replay"),
                              ("gateway", "run"), ("signal", "send"), ("monitor",), ("demo",)}


@pytest.mark.parametrize("path", WITH_URL, ids=" ".join)
def test_the_url_options_read_the_environment(path: tuple[str, ...]) -> None:
    (url,) = [p for p in command_at(path).params if p.name == "url"]
    assert url.envvar == "SUHO_DATABASE_URL"
    nats = [p for p in command_at(path).params if p.name == "nats_url"]
    assert all(p.envvar == "SUHO_NATS_URL" for p in nats)


@pytest.mark.parametrize("path", [p for p in WITH_URL if p != ("simulate",)], ids=" ".join)
def test_a_url_that_is_not_one_is_one_line(path: tuple[str, ...], tmp_path: Path) -> None:
    one_error_line(run(*args_of(path, tmp_path), "--url", "not a url"),
                   "not a database URL: 'not a url'")


@pytest.mark.parametrize("path", [p for p in WITH_URL if p != ("simulate",)], ids=" ".join)
def test_the_database_url_comes_from_the_environment(path: tuple[str, ...],
                                                     tmp_path: Path) -> None:
    one_error_line(run(*args_of(path, tmp_path), env={"SUHO_DATABASE_URL": "nor this one"}),
                   "not a database URL: 'nor this one'")


# ingest run rides out a database that is down (it retries, acks nothing: docs/ingest.md);
# simulate asks the database only for --accounts N, after the gateway answered.
DB_DOWN = [p for p in WITH_URL if p not in {("ingest", "run"), ("simulate",)}]


@pytest.mark.parametrize("path", DB_DOWN, ids=" ".join)
def test_a_database_that_is_down_is_one_line(path: tuple[str, ...], tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/suho"
    # signal send and replay ask the database first; no NATS server is reached here.
    result = run(*args_of(path, tmp_path), "--url", url)
    one_error_line(result, "Connection refused")
    assert not (tmp_path / "out").exists()  # no empty export left behind


@pytest.mark.parametrize("path", WITH_NATS, ids=" ".join)
def test_a_nats_url_that_is_not_one_is_one_line(path: tuple[str, ...], tmp_path: Path) -> None:
    url = ["--url", "postgresql://u@127.0.0.1:1/x"] if path in WITH_URL else []
    one_error_line(run(*args_of(path, tmp_path), "--nats-url", "not a url", *url),
                   "not a NATS URL: 'not a url'")
    if path == ("demo",):  # reads no environment (it would run a whole demo here)
        assert command_at(path).params[[p.name for p in command_at(path).params].index(
            "nats_url")].envvar is None
        return
    one_error_line(run(*args_of(path, tmp_path), *url, env={"SUHO_NATS_URL": "http://h:1"}),
                   "not a NATS URL: 'http://h:1'")


@pytest.mark.parametrize("args", [
    ["streams", "setup"],
    ["ingest", "run", "--url", "postgresql://u@127.0.0.1:1/x"],  # the database may be down
    ["ingest", "replay", "FILE", "--tenant", "acme"],
], ids=lambda a: " ".join(a[:2]))
def test_a_nats_server_that_is_down_is_one_line(args: list[str], tmp_path: Path) -> None:
    args = [*args_of(("ingest", "replay"), tmp_path)[:2], *args[2:]] if args[0] == "ingest" \
        and args[1] == "replay" else args
    args = [args_of(("ingest", "replay"), tmp_path)[2] if a == "FILE" else a for a in args]
    url = f"nats://127.0.0.1:{free_port()}"
    for result in (run(*args, "--nats-url", url), run(*args, env={"SUHO_NATS_URL": url})):
        one_error_line(result, "cannot connect to ")
        assert url in result.output


def test_a_gateway_that_is_down_or_not_a_url_is_one_line(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.json"
    accounts.write_text(f'[{{"account_id": "{ACCOUNT}", "api_key": "k"}}]')
    one_error_line(run("simulate", "--gateway", f"tcp://127.0.0.1:{free_port()}",
                       "--accounts", str(accounts)), "cannot connect to tcp://127.0.0.1")
    one_error_line(run("simulate", "--gateway", "http://h:1", "--accounts", str(accounts)),
                   "unsupported gateway URL")
    one_error_line(run("simulate", "--gateway", "ws://127.0.0.1:1", "--accounts",
                       str(tmp_path / "none.json")), "cannot read simulator accounts")


def without_cache_url(path: tuple[str, ...], tmp_path: Path) -> list[str]:
    args = args_of(path, tmp_path)
    if "--cache-url" in args:
        at = args.index("--cache-url")
        del args[at : at + 2]
    return args


@pytest.mark.parametrize("path", WITH_CACHE, ids=" ".join)
def test_a_cache_url_that_is_not_one_is_one_line(path: tuple[str, ...], tmp_path: Path) -> None:
    url = ["--url", "postgresql://u@127.0.0.1:1/x"] if path in WITH_URL else []
    (option,) = [p for p in command_at(path).params if p.name == "cache_url"]
    assert option.envvar == "SUHO_CACHE_URL"
    args = without_cache_url(path, tmp_path)
    one_error_line(run(*args, "--cache-url", "http://h:1", *url),
                   "not a cache URL: 'http://h:1'")
    one_error_line(run(*args, *url, env={"SUHO_CACHE_URL": "nope"}),
                   "not a cache URL: 'nope'")


@pytest.mark.parametrize("path", NEED_CACHE, ids=" ".join)
def test_a_cache_that_is_down_or_missing_is_one_line(path: tuple[str, ...],
                                                     tmp_path: Path) -> None:
    args = without_cache_url(path, tmp_path)
    url = ["--url", "postgresql://u@127.0.0.1:1/x"] if path in WITH_URL else []
    one_error_line(run(*args, *url), "no cache URL")
    if path == ("cache", "rebuild"):  # the database is read first: it is the one down
        return
    cache = f"redis://admin:pw@127.0.0.1:{free_port()}/0"
    one_error_line(run(*args, "--cache-url", cache), "Connection refused")


@pytest.mark.parametrize(("args", "message"), [
    (["ingest", "replay", "NOFILE", "--url", "postgresql://u@h/db"], "No such file"),
    (["ingest", "replay", "DIR", "--url", "postgresql://u@h/db"], "is a directory"),
    (["audit", "verify", "--since", "NOFILE", "--url", "postgresql://u@h/db"],
     "cannot read digest"),
    (["audit", "verify", "--since", "DIR", "--url", "postgresql://u@h/db"],
     "cannot read digest"),
    (["gateway", "run", "--tls-cert", "NOFILE", "--tls-key", "DIR", "--url",
      "postgresql://u@h/db"], "not a readable file"),
    (["streams", "setup", "--config", "NOFILE"], "cannot read the bus contract"),
    (["streams", "setup", "--config", "DIR"], "cannot read the bus contract"),
    (["simulate", "--gateway", "ws://127.0.0.1:1", "--accounts", "DIR"],
     "cannot read simulator accounts"),
])
def test_a_bad_file_is_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    files = {"NOFILE": str(tmp_path / "none"), "DIR": str(tmp_path)}
    one_error_line(run(*[files.get(a, a) for a in args]), message)


@pytest.mark.parametrize("path", sorted(WITH_JSON), ids=" ".join)
def test_json_where_a_program_reads_the_output(path: tuple[str, ...]) -> None:
    assert any(p.name == "as_json" for p in command_at(path).params), path


def test_an_unexpected_exception_is_one_line_unless_debugging(
        monkeypatch: pytest.MonkeyPatch) -> None:
    @click.command("boom")
    def boom() -> None:
        raise KeyError("no such thing\nsecond line")

    group = SuhoGroup(commands={"boom": boom})
    one_error_line(CliRunner().invoke(group, ["boom"]), "unexpected KeyError")
    monkeypatch.setenv("SUHO_DEBUG", "1")
    assert isinstance(CliRunner().invoke(group, ["boom"]).exception, KeyError)


def test_signal_send_offers_every_action_the_schema_takes() -> None:
    from suho_mt5.cli.signal import ACTIONS
    from suho_mt5.commands.signal import ACTIONS as SCHEMA_ACTIONS

    assert ACTIONS == SCHEMA_ACTIONS
