"""The wheel alone migrates a database: built from the package's files, installed into a fresh
virtualenv outside the checkout, ``suho-mt5 db upgrade`` and ``suho-mt5 db downgrade base``
leave what the in-repo migrations leave, on plain PostgreSQL (the postgresql edition, named:
TimescaleDB is installed on the machine but that server does not preload it) and on native
TimescaleDB (the edition detected: timescale).

For speed the new virtualenv has no pip and no copies of the third-party dependencies: a
``.pth`` file appends this virtualenv's site-packages to its path (after its own, so our
wheel comes first; ``.pth`` files of an appended directory, such as the editable install's
finder, are not run). suho_mt5 itself can only come from the wheel: the test checks where
it was imported from, and runs with the working directory outside the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from suho_mt5.db import Edition, make_engine
from tests.integration.schema._support import alembic, catalog_snapshot, leftovers

REPO_ROOT = Path(__file__).resolve().parents[2]
#: What the package is built from (setuptools finds suho_mt5* and the package data).
SOURCES = ("pyproject.toml", "README.md", "suho_mt5")
#: server -> (its database factory fixture, the edition it builds, whether to name it)
SERVERS: dict[str, tuple[str, Edition, bool]] = {
    "postgresql": ("make_pg_database", Edition.POSTGRESQL, True),
    "timescaledb": ("make_ts_database", Edition.TIMESCALE, False),  # detected
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel`` of a copy of the package's sources (no build files in the checkout)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(root / "dist"),
         str(src)], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    (built,) = (root / "dist").glob("suho_mt5-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed; its ``bin`` directory."""
    home = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True,
                   timeout=120)
    python = home / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "_suho_test_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    return home / "bin"


def run_installed(bin_dir: Path, *args: str, url: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "SUHO_DATABASE_URL", "VIRTUAL_ENV")}
    if url is not None:
        env["SUHO_DATABASE_URL"] = url
    result = subprocess.run([str(bin_dir / args[0]), *args[1:]], capture_output=True,
                            text=True, timeout=300, check=False, env=env, cwd=bin_dir.parent)
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def test_the_wheel_carries_the_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    versions = sorted((REPO_ROOT / "suho_mt5" / "migrations" / "versions").glob("0*.py"))
    assert versions
    for path in [*versions, REPO_ROOT / "suho_mt5/migrations/env.py",
                 REPO_ROOT / "suho_mt5/migrations/script.py.mako",
                 REPO_ROOT / "suho_mt5/py.typed"]:
        assert path.relative_to(REPO_ROOT).as_posix() in names
    assert not any(name.startswith("tests/") for name in names)


def _snapshot(engine: Engine) -> dict[str, object]:
    with engine.connect() as conn:
        return catalog_snapshot(conn)


def _leftovers(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return leftovers(conn)


def test_the_package_is_imported_from_the_virtualenv(venv: Path) -> None:
    where = run_installed(venv, "python", "-c",
                          "import suho_mt5.migrations as m; print(m.__file__)")
    assert Path(where.strip()).is_relative_to(venv.parent), where


@pytest.mark.parametrize("server", list(SERVERS))
def test_the_installed_package_migrates_up_and_down(
    venv: Path, server: str, request: pytest.FixtureRequest
) -> None:
    factory_name, edition, named = SERVERS[server]
    make_database: Callable[[], str] = request.getfixturevalue(factory_name)
    installed_url, in_repo_url = make_database(), make_database()
    installed, in_repo = make_engine(installed_url), make_engine(in_repo_url)
    try:
        option = ["--edition", edition.value] if named else []
        out = run_installed(venv, "suho-mt5", "db", "upgrade", *option, "--url", installed_url)
        assert "(head)" in out
        alembic(in_repo, "upgrade", "head", edition=edition)
        snapshot = _snapshot(installed)
        assert bool(snapshot.get("jobs")) is edition.has_continuous_aggregates
        expected = _snapshot(in_repo)
        for key in expected:  # one key at a time: a readable difference
            assert (sorted(set(snapshot[key]) - set(expected[key]), key=str),
                    sorted(set(expected[key]) - set(snapshot[key]), key=str)) == ([], []), key
        assert snapshot == expected
        # The models in the wheel match what its migrations built.
        assert "no drift" in run_installed(venv, "suho-mt5", "db", "check", "--url", installed_url)

        run_installed(venv, "suho-mt5", "db", "downgrade", "base", url=installed_url)
        alembic(in_repo, "downgrade", "base", edition=edition)
        assert _leftovers(installed) == _leftovers(in_repo) == []
    finally:
        installed.dispose()
        in_repo.dispose()
