"""A template that fails for one contact pauses that one enrollment, with the error shown."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from _support import explain, invoke, json_output
from sqlalchemy import select

from engine.cli.contacts_commands import run_import
from engine.delivery.memory import MemoryTransport
from engine.segments.compiler import SegmentCompiler
from engine.sequences import enroll, named_contacts
from engine.sequences.program import compile_program
from engine.sequences.records import RunOutcome
from engine.sequences.runner import StepRunner
from engine.storage import upgrade
from engine.storage.schema import contacts, enrollments
from engine.wiring import Runtime

MONDAY = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)
NAMELESS = "a.nameless@example.com"


def test_a_failing_template_pauses_only_its_enrollment(
    workspace: Path, workspace_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two enrolled contacts, one without a first name, and a template that prints it
    export = workspace / "people.csv"
    export.write_text("Email,First Name,Lifecycle Stage,Time Zone\n"
                      f"{NAMELESS},,customer,Europe/Copenhagen\n"
                      "bo@example.com,Bo,customer,Europe/Copenhagen\n")  # fmt: skip
    welcome = workspace / "templates" / "nurture" / "welcome.md"
    welcome.write_text("---\nsubject: Welcome\n---\nHi {{ contact.first_name }}\n")
    runtime = Runtime.open(workspace)
    upgrade(runtime.database)
    run_import(runtime, export)
    sequence = runtime.sequences.get("customer-nurture")
    transport = MemoryTransport()
    runner = StepRunner(
        {sequence.name: compile_program(sequence)}, runtime.message_builder(), transport,
        lambda now: SegmentCompiler(runtime.segments, runtime.fields, now), "Europe/Copenhagen",
    )  # fmt: skip
    with runtime.database.begin() as connection:
        ids = connection.execute(select(contacts.c.id).order_by(contacts.c.id)).scalars().all()
        enroll(connection, sequence, named_contacts(ids), runtime.enrollment_rules(), MONDAY)
        runs = connection.execute(select(enrollments.c.id, enrollments.c.contact_id)).all()

    # When both run
    outcomes = {contact: runner.run(runtime.database, run, MONDAY) for run, contact in runs}
    runtime.close()

    # Then only the nameless contact's enrollment is paused, and Bo got his welcome
    assert sorted(outcomes.values()) == [RunOutcome.PAUSED, RunOutcome.WAITING]
    assert [m.to.email for m in transport.sent] == ["bo@example.com"]
    shown = invoke("contacts", "show", NAMELESS, "--json", "--workspace", workspace)
    assert shown.exit_code == 0, explain(shown)
    [enrollment] = json_output(shown)["enrollments"]
    assert enrollment["status"] == "paused"
    assert enrollment["error"].startswith(
        "templates/nurture/welcome.md:4: contact.first_name is empty"
    )
    monkeypatch.setenv("COLUMNS", "250")  # the table prints the whole error
    table = invoke("contacts", "show", NAMELESS, "--workspace", workspace)
    assert "paused" in table.output and "contact.first_name is empty" in table.output
