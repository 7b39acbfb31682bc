"""Enrolling contacts: set-based, idempotent, and kept within the rules (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from _support import explain, imported_runtime, invoke, json_output
from sqlalchemy import insert, select, update

from engine.cli.contacts_commands import run_import
from engine.segments.compiler import SegmentCompiler, count_members
from engine.sequences import enroll, named_contacts, stage_entrants
from engine.storage.schema import contacts, enrollments, suppressions
from engine.wiring import Runtime

NOW = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def runtime(workspace: Path, workspace_database: str) -> Iterator[Runtime]:
    """The starter workspace with its 2,000 example contacts imported."""
    with imported_runtime(workspace) as opened:
        yield opened


def enrolled_in(runtime: Runtime, sequence: str) -> set[int]:
    with runtime.database.connect() as connection:
        query = select(enrollments.c.contact_id).where(enrollments.c.sequence == sequence)
        return set(connection.execute(query).scalars())


def test_a_segment_is_enrolled_in_one_statement_and_only_once(runtime: Runtime) -> None:
    sequence = runtime.sequences.get("connecting-outreach")
    with runtime.database.begin() as connection:
        compiler = SegmentCompiler(runtime.segments, runtime.fields, NOW)
        members = count_members(connection, compiler, "ready-for-outreach")
        first = enroll(connection, sequence, compiler.members("ready-for-outreach"),
                       runtime.enrollment_rules(), NOW)  # fmt: skip
        again = enroll(connection, sequence, compiler.members("ready-for-outreach"),
                       runtime.enrollment_rules(), NOW)  # fmt: skip
        rows = connection.execute(select(enrollments).where(
            enrollments.c.sequence == "connecting-outreach")).mappings().all()  # fmt: skip
    runtime.close()

    assert members > 100 and first == members and again == 0
    assert {r["status"] for r in rows} == {"active"}
    assert {r["next_run_at"] for r in rows} == {NOW} and {r["step_index"] for r in rows} == {0}


def test_suppressed_addresses_and_the_outreach_limit_keep_contacts_out(runtime: Runtime) -> None:
    outreach = runtime.sequences.get("connecting-outreach")
    other = runtime.sequences.get("negotiation-check-in")  # also outreach
    nurture = runtime.sequences.get("customer-nurture")
    with runtime.database.begin() as connection:
        ids = list(connection.execute(select(contacts.c.id, contacts.c.email)
                                      .order_by(contacts.c.id).limit(3)))  # fmt: skip
        connection.execute(insert(suppressions).values(
            email=ids[2].email, reason="unsubscribed", source="test", created_at=NOW))  # fmt: skip
        rules = runtime.enrollment_rules()
        assert rules.max_concurrent_outreach == 1
        first = enroll(connection, outreach, named_contacts([ids[0].id, ids[2].id]), rules, NOW)
        second = enroll(connection, other, named_contacts([ids[0].id, ids[1].id]), rules, NOW)
        third = enroll(connection, nurture, named_contacts([ids[0].id]), rules, NOW)
    runtime.close()

    assert first == 1  # the suppressed address stays out
    assert second == 1  # the first contact is already in an outreach sequence
    assert third == 1  # nurture does not count against the outreach limit
    assert enrolled_in(runtime, "negotiation-check-in") == {ids[1].id}


def test_reenrollment_follows_the_policy(runtime: Runtime) -> None:
    never = runtime.sequences.get("connecting-outreach")
    monthly = runtime.sequences.get("negotiation-check-in")  # reenroll: 30d
    rules = runtime.enrollment_rules()
    with runtime.database.begin() as connection:
        contact_id = connection.execute(select(contacts.c.id).limit(1)).scalar_one()
        for sequence in (never, monthly):
            assert enroll(connection, sequence, named_contacts([contact_id]), rules, NOW) == 1
            connection.execute(update(enrollments).where(
                enrollments.c.sequence == sequence.name).values(
                status="completed", ended_at=NOW - dt.timedelta(days=10)))  # fmt: skip
        soon = NOW + dt.timedelta(days=5)
        later = NOW + dt.timedelta(days=25)
        assert enroll(connection, never, named_contacts([contact_id]), rules, later) == 0
        assert enroll(connection, monthly, named_contacts([contact_id]), rules, soon) == 0
        assert enroll(connection, monthly, named_contacts([contact_id]), rules, later) == 1
    runtime.close()


def test_stage_entered_takes_contacts_who_moved_not_those_imported_there(
    runtime: Runtime, workspace: Path
) -> None:
    nurture = runtime.sequences.get("customer-nurture")
    rules = runtime.enrollment_rules()
    with runtime.database.begin() as connection:
        customers = select(contacts.c.id).where(contacts.c.stage == "customer")
        imported_customers = connection.execute(customers).scalars().all()
        before = enroll(connection, nurture, stage_entrants(nurture), rules, NOW)
    # a CRM export that moves one negotiating contact to customer
    with runtime.database.connect() as connection:
        mover = connection.execute(select(contacts.c.email, contacts.c.crm_id).where(
            contacts.c.stage == "negotiation").limit(1)).one()  # fmt: skip
    export = workspace / "won.csv"
    export.write_text(f"Record ID,Email,Lifecycle Stage\n{mover.crm_id},{mover.email},customer\n")
    run_import(runtime, export)
    with runtime.database.begin() as connection:
        after = enroll(connection, nurture, stage_entrants(nurture), rules, NOW + dt.timedelta(1))
        again = enroll(connection, nurture, stage_entrants(nurture), rules, NOW + dt.timedelta(2))
        mover_id = connection.execute(
            select(contacts.c.id).where(contacts.c.email == mover.email)).scalar_one()  # fmt: skip
    runtime.close()

    assert imported_customers and before == 0
    assert after == 1 and again == 0
    assert enrolled_in(runtime, "customer-nurture") == {mover_id}


def test_the_enroll_command(runtime: Runtime, workspace: Path) -> None:
    runtime.close()

    by_trigger = invoke("enroll", "connecting-outreach", "--json", "--workspace", workspace)
    thomas = "THOMAS.williams@redwateranalytics.com"
    by_contact = invoke("enroll", "customer-nurture", "--contact", thomas, "--workspace", workspace)
    unknown = invoke("enroll", "customer-nurture", "--contact", "no@body.example",
                     "--workspace", workspace)  # fmt: skip
    typo = invoke("enroll", "connecting-outrech", "--workspace", workspace)
    bad_segment = invoke("enroll", "customer-nurture", "--segment", "decision-maker",
                         "--workspace", workspace)  # fmt: skip

    assert by_trigger.exit_code == 0, explain(by_trigger)
    report = json_output(by_trigger)
    assert report["enrolled"] == report["candidates"] > 0
    assert by_contact.exit_code == 0, explain(by_contact)
    assert "enrolled 1 of 1 candidates in customer-nurture" in by_contact.output
    assert unknown.exit_code == 1 and "no contact with email no@body.example" in unknown.output
    assert typo.exit_code == 1 and "did you mean 'connecting-outreach'" in typo.output
    assert bad_segment.exit_code == 1 and "did you mean 'decision-makers'" in bad_segment.output
