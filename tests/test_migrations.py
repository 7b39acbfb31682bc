"""Migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, insert, inspect, select, text
from sqlalchemy.exc import StatementError

from engine.storage import (
    create_database_engine,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from engine.storage.schema import leases, metadata

MODEL_TABLES = set(metadata.tables)


@pytest.fixture
def database(database_url: str) -> Iterator[Engine]:
    """An empty database (SQLite, then PostgreSQL), not migrated."""
    engine = create_database_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def _schema_differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def test_the_models_have_the_tables_of_the_design() -> None:
    assert {
        "owners",
        "accounts",
        "contacts",
        "stage_history",
        "enrollments",
        "messages",
        "events",
        "suppressions",
        "webhook_inbox",
        "leases",
    } <= MODEL_TABLES


def test_upgrade_head_creates_every_table(database: Engine) -> None:
    assert _tables(database) == set()

    upgrade(database)

    assert _tables(database) == MODEL_TABLES | {"alembic_version"}
    assert current_revision(database) == head_revision()


def test_downgrade_base_removes_every_table_and_upgrade_works_again(database: Engine) -> None:
    upgrade(database)

    downgrade(database, "base")

    assert _tables(database) <= {"alembic_version"}
    assert current_revision(database) is None

    upgrade(database)

    assert _tables(database) == MODEL_TABLES | {"alembic_version"}
    assert current_revision(database) == head_revision()
    assert _schema_differences(database) == []


def test_models_and_migrations_agree(database: Engine) -> None:
    # Given a database built by the migrations alone
    upgrade(database)

    # Then autogenerate finds nothing to add, drop or alter
    assert _schema_differences(database) == []


def test_the_comparison_would_see_a_difference(database: Engine) -> None:
    # Guard against a vacuous comparison: a dropped table must show up as a difference
    upgrade(database)
    with database.begin() as connection:
        connection.execute(text("DROP TABLE leases"))

    differences = _schema_differences(database)

    assert any("leases" in repr(difference) for difference in differences), differences


# --------------------------------------------------------------------------
# instants: stored in UTC, read back aware, naive ones refused


def _write_lease(engine: Engine, name: str, expires_at: datetime) -> None:
    with engine.begin() as connection:
        connection.execute(insert(leases).values(name=name, holder="test", expires_at=expires_at))


def _read_lease(engine: Engine, name: str) -> datetime:
    with engine.connect() as connection:
        value: datetime = connection.execute(
            select(leases.c.expires_at).where(leases.c.name == name)
        ).scalar_one()
    return value


def test_an_aware_instant_reads_back_equal_and_in_utc(database: Engine) -> None:
    upgrade(database)
    written = datetime(2026, 3, 29, 2, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))

    _write_lease(database, "plus-two", written)
    read = _read_lease(database, "plus-two")

    assert read == written
    assert read.utcoffset() == timedelta(0)
    assert read.replace(tzinfo=None) == datetime(2026, 3, 29, 0, 30, 15, 123456)


def test_both_occurrences_of_a_repeated_local_time_stay_distinct(database: Engine) -> None:
    upgrade(database)
    # 02:30 happens twice in Copenhagen when summer time ends: first at +02:00, then at +01:00
    copenhagen = ZoneInfo("Europe/Copenhagen")
    first = datetime(2026, 10, 25, 2, 30, fold=0, tzinfo=copenhagen)
    second = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=copenhagen)

    _write_lease(database, "first", first)
    _write_lease(database, "second", second)

    # (== across zones is always False inside a fold, PEP 495: compare instants instead)
    assert _read_lease(database, "first") == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert _read_lease(database, "second") == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert _read_lease(database, "first").timestamp() == first.timestamp()
    assert _read_lease(database, "second").timestamp() == second.timestamp()


def test_instants_sort_by_time_whatever_offset_they_were_written_in(database: Engine) -> None:
    upgrade(database)
    # 10:00 at +02:00 is 08:00 UTC: earlier than 09:00 UTC, though "10" sorts after "09"
    _write_lease(database, "later", datetime(2026, 5, 1, 9, 0, tzinfo=UTC))
    _write_lease(
        database, "earlier", datetime(2026, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    )

    with database.connect() as connection:
        ordered = connection.execute(select(leases.c.name).order_by(leases.c.expires_at)).scalars()
        assert list(ordered) == ["earlier", "later"]
        cutoff = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
        due = connection.execute(select(leases.c.name).where(leases.c.expires_at < cutoff))
        assert list(due.scalars()) == ["earlier"]


def test_a_naive_datetime_is_refused(database: Engine) -> None:
    upgrade(database)

    with pytest.raises(StatementError, match="naive"):
        _write_lease(database, "naive", datetime(2026, 3, 29, 2, 30))

    with database.connect() as connection:
        assert connection.execute(select(leases)).all() == []
