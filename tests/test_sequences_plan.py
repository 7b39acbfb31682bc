"""``salescycle sequences plan``: a dry run that sends nothing and writes nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from _support import explain, imported_runtime, invoke, json_output
from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from engine.segments.compiler import SegmentCompiler
from engine.sequences import enroll, named_contacts, read_only, trigger_candidates
from engine.sequences.program import compile_program
from engine.sequences.windows import is_holiday
from engine.storage.schema import accounts, contacts, enrollments, messages, stage_history
from engine.wiring import Runtime

START = "2026-11-30T06:00:00Z"  # a Monday
OPENING, CLOSING = dt.time(8, 30), dt.time(16, 30)
SEQUENCE = "connecting-outreach"


@pytest.fixture
def runtime(workspace: Path, workspace_database: str) -> Iterator[Runtime]:
    """The starter workspace with its 2,000 example contacts imported."""
    with imported_runtime(workspace) as opened:
        yield opened


def plan(workspace: Path, *args: str) -> dict[str, Any]:
    result = invoke("sequences", "plan", SEQUENCE, "--json", "--workspace", workspace, *args)
    assert result.exit_code == 0, explain(result)
    report: dict[str, Any] = json_output(result)
    return report


def snapshot(runtime: Runtime) -> tuple[int, int, int, str]:
    """Row counts of what planning must not write, and a checksum of every contact."""
    with runtime.database.connect() as connection:
        counts = [connection.execute(select(func.count()).select_from(t)).scalar_one()
                  for t in (enrollments, messages, stage_history)]  # fmt: skip
        rows = connection.execute(select(contacts).order_by(contacts.c.id)).all()
    digest = hashlib.sha256(repr([tuple(row) for row in rows]).encode()).hexdigest()
    return counts[0], counts[1], counts[2], digest


def countries(runtime: Runtime) -> dict[int, str | None]:
    with runtime.database.connect() as connection:
        query = select(contacts.c.id, accounts.c.country).outerjoin(
            accounts, contacts.c.account_id == accounts.c.id
        )
        return {row.id: row.country for row in connection.execute(query)}


def open_days_between(first: dt.date, last: dt.date, country: str | None) -> int:
    """Weekdays that are not holidays after ``first``, up to and including ``last``."""
    days = (first + dt.timedelta(n) for n in range(1, (last - first).days + 1))
    return sum(1 for day in days if day.weekday() < 5 and not is_holiday(day, country))


def by_contact(sends: list[dict[str, Any]]) -> dict[int, dict[str, dt.datetime]]:
    found: dict[int, dict[str, dt.datetime]] = defaultdict(dict)
    for send in sends:
        found[send["contact_id"]][send["step_id"]] = dt.datetime.fromisoformat(send["local_time"])
    return found


def would_enroll(runtime: Runtime, start: dt.datetime) -> int:
    """How many contacts `salescycle enroll` would take at ``start`` (then rolled back)."""
    sequence = runtime.sequences.get(SEQUENCE)
    compiler = SegmentCompiler(runtime.segments, runtime.fields, start)
    with runtime.database.connect() as connection, connection.begin() as transaction:
        candidates = trigger_candidates(sequence, compiler)
        assert candidates is not None
        count = enroll(connection, sequence, candidates, runtime.enrollment_rules(), start)
        transaction.rollback()
    return count


def test_a_plan_keeps_to_the_window_and_the_steps_and_writes_nothing(runtime: Runtime) -> None:
    start = dt.datetime.fromisoformat(START)
    expected = would_enroll(runtime, start)
    before = snapshot(runtime)

    report = plan(runtime.workspace.root, "--start", START, "--days", "30")

    assert snapshot(runtime) == before
    assert report["contacts"] == {"enrolled": 0, "new": expected, "capped": False}
    assert expected > 100
    country = countries(runtime)
    for send in report["sends"]:
        local = dt.datetime.fromisoformat(send["local_time"])
        assert local.weekday() < 5 and OPENING <= local.time() < CLOSING, send
        assert not is_holiday(local.date(), country[send["contact_id"]]), send
        assert dt.datetime.fromisoformat(send["at"]) == local
        assert local.utcoffset() == local.astimezone(ZoneInfo(send["timezone"])).utcoffset()
    timeline = by_contact(report["sends"])
    assert len(timeline) == expected
    for contact_id, steps in timeline.items():
        assert steps["intro"] < steps["bump"] < steps["breakup"]
        assert open_days_between(steps["intro"].date(), steps["bump"].date(),
                                 country[contact_id]) >= 3  # fmt: skip
    variants = {s["variant"] for s in report["sends"] if s["step_id"] == "intro"}
    assert variants == {"a", "b"}
    assert {(a["kind"], a["step_id"]) for a in report["actions"]} == {("stage", "stage-1")}


def test_enrolled_contacts_go_on_from_their_step(runtime: Runtime) -> None:
    sequence = runtime.sequences.get(SEQUENCE)
    bump = compile_program(sequence).index_of("bump")
    christmas_eve = dt.datetime(2026, 12, 24, 6, tzinfo=dt.UTC)  # a Thursday; DK: closed
    with runtime.database.begin() as connection:
        danes = danish_contacts(connection, 3)
        added = enroll(connection, sequence, named_contacts(danes), runtime.enrollment_rules(),
                       dt.datetime(2026, 11, 20, tzinfo=dt.UTC))  # fmt: skip
        connection.execute(update(enrollments).where(enrollments.c.contact_id.in_(danes))
                           .values(step_index=bump, next_run_at=christmas_eve))  # fmt: skip
    before = snapshot(runtime)

    report = plan(runtime.workspace.root, "--start", START, "--days", "30")

    assert snapshot(runtime) == before
    assert added == 3 and report["contacts"]["enrolled"] == 3
    mine = [s for s in report["sends"] if s["contact_id"] in danes]
    assert {s["step_id"] for s in mine} == {"bump"}  # breakup falls after the 30 days
    # 24, 25 and 26 December are closed in Denmark, then a weekend
    assert {s["local_time"][:10] for s in mine} == {"2026-12-28"}
    assert not [a for a in report["actions"] if a["email"] in {s["email"] for s in mine}]
    others = {s["contact_id"] for s in report["sends"]} - set(danes)
    assert report["contacts"]["new"] == len(others)


def danish_contacts(connection: Connection, count: int) -> list[int]:
    query = (
        select(contacts.c.id)
        .join(accounts, contacts.c.account_id == accounts.c.id)
        .where(accounts.c.country == "DK")
        .order_by(contacts.c.id)
        .limit(count)
    )
    return list(connection.execute(query).scalars())


def test_sends_keep_the_local_window_across_a_dst_change(runtime: Runtime) -> None:
    sequence = runtime.sequences.get(SEQUENCE)
    with runtime.database.begin() as connection:
        new_yorker = connection.execute(select(contacts.c.id).where(
            contacts.c.timezone == "America/New_York").limit(1)).scalar_one()  # fmt: skip
        enroll(connection, sequence, named_contacts([new_yorker]), runtime.enrollment_rules(),
               dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC))  # fmt: skip

    report = plan(runtime.workspace.root, "--start", "2026-03-02T12:00:00Z", "--days", "20")

    steps = by_contact(report["sends"])[new_yorker]
    assert set(steps) == {"intro", "bump", "breakup"}
    assert steps["breakup"].date() > dt.date(2026, 3, 8) > steps["intro"].date()
    offsets = {local.utcoffset() for local in steps.values()}
    assert offsets == {dt.timedelta(hours=-5), dt.timedelta(hours=-4)}  # EST, then EDT
    for local in steps.values():
        assert OPENING <= local.time() < CLOSING
    # business days keep the wall clock: the same local minute before and after the change
    assert len({local.time() for local in steps.values()}) == 1


def test_the_json_shape_the_limit_and_mistakes(runtime: Runtime) -> None:
    report = plan(runtime.workspace.root, "--start", START, "--days", "7", "--limit", "5")
    human = invoke("sequences", "plan", SEQUENCE, "--start", START, "--limit", "5",
                   "--workspace", runtime.workspace.root)  # fmt: skip
    typo = invoke("sequences", "plan", "connecting-outrech", "--workspace", runtime.workspace.root)

    assert set(report) == {"sequence", "start", "days", "contacts", "sends", "actions"}
    assert report["sequence"] == SEQUENCE and report["days"] == 7
    assert report["start"] == "2026-11-30T06:00:00+00:00"
    assert report["contacts"] == {"enrolled": 0, "new": 5, "capped": True}
    assert {s["step_id"] for s in report["sends"]} == {"intro", "bump"}
    for send in report["sends"]:
        assert set(send) == {"email", "contact_id", "step_id", "template", "variant", "at",
                             "local_time", "timezone"}  # fmt: skip
        assert send["at"].endswith("+00:00")
    for action in report["actions"]:
        assert set(action) == {"email", "step_id", "kind", "at"}
    assert report["sends"] == sorted(report["sends"], key=lambda s: (s["at"], s["email"]))
    assert human.exit_code == 0, explain(human)
    assert "5 contacts planned (0 already enrolled, 5 new)" in human.output
    assert "capped at 5 of" in human.output and "intro (variant " in human.output
    assert typo.exit_code == 1 and "did you mean 'connecting-outreach'" in typo.output


def test_the_planning_connection_refuses_writes(runtime: Runtime) -> None:
    now = dt.datetime.now(dt.UTC)
    row = {"contact_id": 1, "sequence": SEQUENCE, "status": "active", "step_index": 0,
           "enrolled_at": now, "updated_at": now}  # fmt: skip
    with read_only(runtime.database) as connection, pytest.raises(DBAPIError):
        connection.execute(insert(enrollments).values(row))
    with runtime.database.begin() as connection:  # and the pool hands out writable ones again
        connection.execute(insert(enrollments).values(row))
