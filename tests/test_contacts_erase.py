"""``salescycle contacts erase``: the person's data is gone, only a hash of the address stays,
and that hash keeps them from being imported, enrolled or emailed again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import explain, imported_runtime, invoke, json_output, read_rejects
from sqlalchemy import func, insert, select
from test_step_runner import MONDAY_MORNING, danish_contact, enroll_one, make_runner
from typer.testing import CliRunner

from engine.cli import app
from engine.cli.contacts_commands import run_import
from engine.contacts.suppressions import hashed_email
from engine.delivery.memory import MemoryTransport
from engine.sequences.records import RunOutcome
from engine.storage.schema import (
    contacts,
    enrollments,
    events,
    messages,
    stage_history,
    suppressions,
)
from engine.wiring import Runtime

HEADER = "Record ID,Email,First Name,Last Name,Lifecycle Stage,Time Zone\n"


@pytest.fixture
def runtime(workspace: Path, workspace_database: str) -> Iterator[Runtime]:
    with imported_runtime(workspace) as opened:
        yield opened


def count(runtime: Runtime, table: Any, *where: Any) -> int:
    with runtime.database.connect() as connection:
        query = select(func.count()).select_from(table).where(*where)
        return int(connection.execute(query).scalar_one())


def sent_to(runtime: Runtime, contact: dict[str, Any]) -> tuple[int, MemoryTransport]:
    """Enroll the contact, send its first email, and record an event that matched no one."""
    transport = MemoryTransport()
    enrollment_id = enroll_one(runtime, "qualification-follow-up", contact["id"], MONDAY_MORNING)
    make_runner(runtime, transport).run(runtime.database, enrollment_id, MONDAY_MORNING)
    with runtime.database.begin() as connection:
        connection.execute(insert(events).values(
            provider="sendgrid", provider_event_id="orphan-1", kind="bounced", contact_id=None,
            occurred_at=MONDAY_MORNING, detail={"recipient": contact["email"].upper()},
            created_at=MONDAY_MORNING))  # fmt: skip
        connection.execute(insert(suppressions).values(
            email=contact["email"], reason="unsubscribed", source="test",
            created_at=MONDAY_MORNING))  # fmt: skip
    return enrollment_id, transport


def test_erase_removes_the_personal_data_and_keeps_only_a_hash(
    runtime: Runtime, workspace: Path
) -> None:
    contact = danish_contact(runtime)
    email, contact_id = contact["email"], contact["id"]
    _, transport = sent_to(runtime, contact)
    assert len(transport.sent) == 1 and count(runtime, messages, messages.c.to_email == email) == 1
    others = count(runtime, contacts)

    result = invoke("contacts", "erase", email.upper(), "--yes", "--json", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    report = json_output(result)
    assert report["contact"] is True and report["messages"] == 1
    assert report["enrollments"] == 1 and report["stage_changes"] >= 1
    assert report["events"] == 1 and report["suppressions_replaced"] == 1
    assert count(runtime, contacts) == others - 1
    assert count(runtime, contacts, contacts.c.email == email) == 0
    for table in (messages, enrollments, stage_history, events):
        assert count(runtime, table, table.c.contact_id == contact_id) == 0, table.name
    assert count(runtime, messages, messages.c.to_email == email) == 0
    assert count(runtime, events) == 0  # the unmatched event named the address too
    with runtime.database.connect() as connection:
        stored = connection.execute(select(suppressions.c.email, suppressions.c.reason)).all()
    assert [tuple(s) for s in stored] == [(hashed_email(email), "erased")]
    assert email not in str(stored)
    shown = invoke("contacts", "show", email, "--workspace", workspace)
    assert shown.exit_code == 1 and "no contact" in shown.output


def test_erase_asks_first_and_refuses_a_bad_address(runtime: Runtime, workspace: Path) -> None:
    email = danish_contact(runtime)["email"]

    args = ["contacts", "erase", email, "--workspace", str(workspace)]
    declined = CliRunner().invoke(app, args, input="n\n")
    aborted = invoke(*args)  # no input at all
    bad = invoke("contacts", "erase", "not an address", "--yes", "--workspace", workspace)

    assert declined.exit_code == 1 and "nothing erased" in declined.output
    assert aborted.exit_code == 1 and "Aborted" in aborted.output
    assert count(runtime, contacts, contacts.c.email == email) == 1
    assert bad.exit_code == 1 and "invalid email" in bad.output
    assert count(runtime, suppressions) == 0


def test_the_hash_blocks_a_later_import_enroll_and_send(
    runtime: Runtime, workspace: Path, tmp_path: Path
) -> None:
    contact = danish_contact(runtime)
    email = contact["email"]
    erased = invoke("contacts", "erase", email, "--yes", "--workspace", workspace)
    assert erased.exit_code == 0, explain(erased)

    # the CRM exports the person again: the row is kept aside, the other one imported
    export = tmp_path / "again.csv"
    export.write_text(HEADER + f"9001,{email.upper()},Pat,Again,qualification,Europe/Copenhagen\n"
                      "9002,new.person@example.dk,New,Person,qualification,Europe/Copenhagen\n",
                      encoding="utf-8")  # fmt: skip
    summary = run_import(runtime, export)
    assert (summary.created, summary.rejected) == (1, 1)
    reject = read_rejects(Path(f"{export}.rejects.csv"))[1]
    assert reject[:2] == ["2", "the person at this address asked to be erased; not imported"]
    assert count(runtime, contacts, contacts.c.email == email) == 0

    # were the address to reach the contacts table by another way, nothing is sent to it
    with runtime.database.begin() as connection:
        back_id = connection.execute(insert(contacts).values(
            email=email, stage="qualification", stage_entered_at=MONDAY_MORNING,
            timezone="Europe/Copenhagen", attributes={}, created_at=MONDAY_MORNING,
            updated_at=MONDAY_MORNING).returning(contacts.c.id)).scalar_one()  # fmt: skip
    transport = MemoryTransport()
    enrollment_id = enroll_one(runtime, "qualification-follow-up", back_id, MONDAY_MORNING)
    outcome = make_runner(runtime, transport).run(runtime.database, enrollment_id, MONDAY_MORNING)

    assert outcome is RunOutcome.EXITED and transport.sent == []
    with runtime.database.connect() as connection:
        row = connection.execute(
            select(enrollments.c.exit_reason).where(enrollments.c.id == enrollment_id)
        ).scalar_one()
    assert row == "suppressed"


def test_erasing_an_unknown_address_still_records_the_request(
    runtime: Runtime, workspace: Path
) -> None:
    result = invoke("contacts", "erase", "Nobody@Example.org", "--yes", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    assert "no contact had this address" in result.output
    assert count(runtime, suppressions, suppressions.c.email == hashed_email("nobody@example.org"))
    again = invoke("contacts", "erase", "nobody@example.org", "--yes", "--workspace", workspace)
    assert again.exit_code == 0 and count(runtime, suppressions) == 1
