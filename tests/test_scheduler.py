"""The scheduler's election and claims (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from engine.cli.contacts_commands import run_import
from engine.sequences import enroll, named_contacts
from engine.sequences.scheduler import Scheduler
from engine.storage import upgrade
from engine.storage.schema import contacts, enrollments
from engine.wiring import Runtime

NOW = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def runtime(workspace: Path, workspace_database: str) -> Iterator[Runtime]:
    opened = Runtime.open(workspace)
    upgrade(opened.database)
    run_import(opened, workspace / "examples" / "crm-contacts.csv")
    with opened.database.begin() as connection:
        ids = connection.execute(select(contacts.c.id).order_by(contacts.c.id).limit(30)).scalars()
        enroll(connection, opened.sequences.get("customer-nurture"), named_contacts(list(ids)),
               opened.enrollment_rules(), NOW)  # fmt: skip
        # ten of them wait until tomorrow
        later = select(enrollments.c.id).order_by(enrollments.c.id).limit(10).scalar_subquery()
        connection.execute(update(enrollments).where(enrollments.c.id.in_(later))
                           .values(next_run_at=NOW + dt.timedelta(days=1)))  # fmt: skip
    yield opened
    opened.close()


def test_claims_take_what_is_due_once_until_the_lease_runs_out(runtime: Runtime) -> None:
    first = Scheduler(runtime.database, "first", claim_lease=dt.timedelta(minutes=5))
    second = Scheduler(runtime.database, "second", claim_lease=dt.timedelta(minutes=5))

    a = first.claim(NOW, 15)
    b = second.claim(NOW, 15)
    c = second.claim(NOW + dt.timedelta(minutes=1), 15)
    d = second.claim(NOW + dt.timedelta(minutes=6), 50)  # a's and b's leases ran out

    assert len(a) == 15 and len(b) == 5 and c == []
    assert set(a).isdisjoint(b)
    assert sorted(d) == sorted(a + b)  # the ten waiting until tomorrow are not due
    with runtime.database.connect() as connection:
        holders = set(connection.execute(select(enrollments.c.claimed_by).where(
            enrollments.c.id.in_(d))).scalars())  # fmt: skip
    assert holders == {"second"}


def test_one_scheduler_is_elected_until_its_lease_expires_or_it_resigns(runtime: Runtime) -> None:
    first = Scheduler(runtime.database, "first", leader_lease=dt.timedelta(seconds=30))
    second = Scheduler(runtime.database, "second", leader_lease=dt.timedelta(seconds=30))

    assert first.elect(NOW) and not second.elect(NOW + dt.timedelta(seconds=5))
    assert first.elect(NOW + dt.timedelta(seconds=20))  # renewed
    assert not second.elect(NOW + dt.timedelta(seconds=45))
    assert second.elect(NOW + dt.timedelta(seconds=51))  # the renewal ran out at 50 s
    second.resign()
    assert first.elect(NOW + dt.timedelta(seconds=52))
