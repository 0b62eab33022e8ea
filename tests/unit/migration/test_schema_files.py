"""The offline SQL: schemas/*.sql are what `make sql` generates, and every edition renders."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from suho_mt5.db import Edition
from suho_mt5.migrations.operations import SCHEMA_FILES, render_schema_files, render_sql

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[3]
ALEMBIC_INI = REPO_ROOT / "alembic.ini"


def test_schema_files_are_up_to_date() -> None:
    """`make sql && git diff --exit-code schemas/` in test form."""
    generated = render_schema_files(ALEMBIC_INI)
    assert list(generated) == [f.name for f in SCHEMA_FILES]
    for name, text in generated.items():
        committed = (REPO_ROOT / "schemas" / name).read_text()
        assert committed == text, f"schemas/{name} is out of date: run `make sql`"


def test_no_ini_file_is_needed() -> None:
    """An installed package has no alembic.ini: the configuration built in code renders the
    same files (`make sql` uses it)."""
    assert render_schema_files() == render_schema_files(ALEMBIC_INI)


def test_schema_files_follow_the_seeds_table_and_chain_up() -> None:
    files = render_schema_files(ALEMBIC_INI)
    head = ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_current_head()
    texts = list(files.values())
    assert "CREATE TABLE alembic_version" in texts[0]
    assert "CREATE TABLE alembic_version" not in "".join(texts[1:])
    assert "mt5_user_accounts" in texts[1] and "mt5_broker_quotes" in texts[1]
    assert "CREATE TABLE mt5_trade_orders" in texts[2]
    assert "CREATE TABLE mt5_audit_log" in texts[3] and "v_chunk_summary" in texts[3]
    assert texts[3].rstrip().endswith("COMMIT;")
    assert f"version_num='{head}'" in texts[3]
    for text in texts:
        assert "\\set ON_ERROR_STOP on" in text and "%%" not in text
        assert "distributed" not in text  # trap 10: no multi-node


@pytest.mark.parametrize("edition", list(Edition))
def test_every_edition_renders_up_and_down(edition: Edition) -> None:
    up = render_sql(ALEMBIC_INI, "heads", edition)
    assert "CREATE TABLE mt5_signal_executions" in up
    assert ("create_hypertable" in up) is edition.has_hypertables
    assert ("timescaledb.continuous" in up) is edition.has_continuous_aggregates
    assert ("add_retention_policy" in up) is edition.has_continuous_aggregates
    assert f"SELECT '{edition.value}'::text" in up
    buffer = io.StringIO()
    config = Config(str(ALEMBIC_INI), output_buffer=buffer)
    config.attributes["suho_edition"] = edition
    config.cmd_opts = argparse.Namespace(x=[f"edition={edition.value}"])
    command.downgrade(config, "heads:base", sql=True)
    down = buffer.getvalue()
    assert "DROP TABLE mt5_user_accounts" in down and "DROP ROLE" in down


def test_the_scaling_advice_names_the_multi_node_removal() -> None:
    """Trap 10: the seed's "TimescaleDB multi-node clustering" is gone since 2.14."""
    guide = (REPO_ROOT / "docs" / "schema.md").read_text()
    assert "multi-node" in guide and "2.14" in guide
