"""After pytest exits, normally or on failure, no server it started is still running.

Runs a separate pytest session whose tests start all three servers and then fail, and
checks afterwards that every process those fixtures started is gone. The same for the
clustered servers (a NATS cluster, Patroni with its PostgreSQL and etcd, PgBouncer,
HAProxy), with Patroni SIGKILLed first under its PostgreSQL, which it started in a session
of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.servers import REPO_ROOT

INNER_TESTS = textwrap.dedent(
    """
    import json, os

    def test_start_everything_then_fail(pg_server, pg_url, timescale_engine, nats_server):
        pids = {
            "postgres": pg_server.pid,
            "timescale": timescale_engine.pid,
            "nats": nats_server.pid,
        }
        with open(os.environ["SUHO_PID_FILE"], "w") as out:
            json.dump(pids, out)
        assert False, "failing on purpose: the servers must still be stopped"

    def test_an_error_too(start_timescale_engine):
        engine = start_timescale_engine()
        with open(os.environ["SUHO_PID_FILE"] + ".extra", "w") as out:
            out.write(str(engine.pid))
        raise RuntimeError("an unexpected error must not leave the engine behind")
    """
)


CLUSTER_TESTS = textwrap.dedent(
    """
    import json, os, signal
    from tests.support.servers import ProxiedService, ProxyServer

    def test_start_every_cluster_then_fail(nats_cluster, patroni_cluster, start_pgbouncer,
                                           start_haproxy):
        primary = patroni_cluster.primary()
        bouncer = start_pgbouncer(primary.port, {"postgres": "postgres"})
        proxy = start_haproxy([ProxiedService("pg", (ProxyServer("a", bouncer.port),))])
        pids = {f"nats-{n.index}": n.pid for n in nats_cluster.nodes}
        for node in patroni_cluster.nodes:
            pids[f"patroni-{node.index}"] = node.pid
            pids[f"postmaster-{node.index}"] = node.postmaster_pid()
        pids["etcd"] = patroni_cluster.etcd.pid
        pids["pgbouncer"] = bouncer.pid
        pids["haproxy"] = proxy.pid
        with open(os.environ["SUHO_PID_FILE"], "w") as out:
            json.dump(pids, out)
        # Patroni gone, its PostgreSQL orphaned: the fixture must still end it.
        os.kill(patroni_cluster.nodes[1].pid, signal.SIGKILL)
        assert False, "failing on purpose: everything must still be stopped"
    """
)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for every practical purpose (and is not ours to reap).
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def _inner_session(tmp_path: Path, tests: str, timeout: float = 240
                   ) -> tuple[str, dict[str, int]]:
    """Run ``tests`` in a pytest session of their own: its output and the pids it wrote."""
    (tmp_path / "test_inner.py").write_text(tests)
    pid_file = tmp_path / "pids.json"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "SUHO_PID_FILE": str(pid_file),
    }
    env.pop("SUHO_TEST_PG_URL", None)  # the inner session must start its own server
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.fixtures", "-p",
         "no:cacheprovider", "-q", str(tmp_path / "test_inner.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stdout, json.loads(pid_file.read_text())


def test_no_server_outlives_a_failing_pytest_session(tmp_path: Path) -> None:
    output, pids = _inner_session(tmp_path, INNER_TESTS)
    assert "2 failed" in output, output
    pids["timescale-extra"] = int((tmp_path / "pids.json.extra").read_text())
    assert all(isinstance(pid, int) for pid in pids.values()), pids
    leftovers = {name: pid for name, pid in pids.items() if _running(pid)}
    assert leftovers == {}, f"still running after pytest exited: {leftovers}"


@pytest.mark.timeout(480)
def test_no_clustered_server_outlives_a_failing_pytest_session(tmp_path: Path) -> None:
    # Nine servers start and stop in the inner session: about 20 s on a quiet machine.
    output, pids = _inner_session(tmp_path, CLUSTER_TESTS, timeout=420)
    assert "1 failed" in output, output
    assert len(pids) == 3 + 2 * 2 + 3 and all(isinstance(p, int) for p in pids.values()), pids
    leftovers = {name: pid for name, pid in pids.items() if _running(pid)}
    assert leftovers == {}, f"still running after pytest exited: {leftovers}"
