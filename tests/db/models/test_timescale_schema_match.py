"""The models match the migrated TimescaleDB schema (hypertables, chunks, continuous
aggregates), and the hypertable settings declared on them are the ones TimescaleDB has."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from suho_mt5.models import hypertables
from tests.db.models.test_schema_match import (
    conn,
    test_aggregate_classes_name_the_aggregates_behind_their_views,
    test_drift_check_finds_nothing_on_a_freshly_migrated_database,
    test_drift_check_ignores_what_timescaledb_makes_and_the_views,
    test_drift_check_refuses_a_connection_outside_the_public_schema,
    test_drift_check_reports_a_change_made_by_hand,
    test_drift_check_takes_an_engine,
    test_every_enum_has_exactly_the_values_of_its_check_constraint,
    test_hypertable_settings_match_the_migrations_catalog,
    test_the_models_build_exactly_the_tables_the_migrations_build,
    test_the_read_only_classes_match_their_views,
)
from tests.db.schema._support import Schema

pytestmark = pytest.mark.engines("timescale", "pglite")

__all__ = [
    "conn",
    "test_aggregate_classes_name_the_aggregates_behind_their_views",
    "test_drift_check_finds_nothing_on_a_freshly_migrated_database",
    "test_drift_check_ignores_what_timescaledb_makes_and_the_views",
    "test_drift_check_refuses_a_connection_outside_the_public_schema",
    "test_drift_check_reports_a_change_made_by_hand",
    "test_drift_check_takes_an_engine",
    "test_every_enum_has_exactly_the_values_of_its_check_constraint",
    "test_hypertable_settings_match_the_migrations_catalog",
    "test_the_models_build_exactly_the_tables_the_migrations_build",
    "test_the_read_only_classes_match_their_views",
]


def test_hypertable_settings_match_timescaledb_dimensions(db: Schema) -> None:
    """``timescaledb_hypertable`` on each model == what TimescaleDB built: the time
    dimension with its chunk interval, the hash dimension on tenant_id with its partitions."""
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT hypertable_name, dimension_number, column_name, dimension_type, "
            "time_interval, num_partitions FROM timescaledb_information.dimensions "
            "WHERE hypertable_schema = 'public' ORDER BY 1, 2")).all()
    built: dict[str, list[tuple[str, str, timedelta | int | None]]] = {}
    for table, _, column, kind, interval, partitions in rows:
        built.setdefault(table, []).append(
            (column, kind, interval if kind == "Time" else partitions)
        )
    declared = {
        name: [(s.time_column, "Time", s.chunk_interval),
               (s.partitioning_column, "Space", s.number_partitions)]
        for name, s in hypertables().items()
    }
    assert built == declared


@pytest.mark.engines("timescale")
def test_columnstore_settings_match_the_models(db: Schema) -> None:
    """``columnstore`` on each model == what TimescaleDB has: segmentby, orderby, the sparse
    indexes revision 0013 configured, and the delay of the columnstore policy; the models
    without one have none."""
    with db.engine.connect() as conn:
        settings = {r.hypertable: r for r in conn.execute(sa.text(
            "SELECT hypertable::text AS hypertable, segmentby, orderby, index"
            " FROM timescaledb_information.hypertable_columnstore_settings"
            " WHERE segmentby IS NOT NULL")).all()}
        after = dict(conn.execute(sa.text(
            "SELECT hypertable_name, (config->>'compress_after')::interval"
            " FROM timescaledb_information.jobs WHERE proc_name = 'policy_compression'")).all())
    built = {
        table: (tuple(r.segmentby.split(",")), r.orderby.replace('"', "").replace(",", ", "),
                ", ".join(f"{i['type']}({i['column']})" for i in r.index
                          if i["source"] == "config"), after[table])
        for table, r in settings.items()
    }
    declared = {
        name: (s.columnstore.segmentby, s.columnstore.orderby, s.columnstore.sparse_index,
               s.columnstore.after_interval)
        for name, s in hypertables().items() if s.columnstore is not None
    }
    assert built == declared
