"""A template that fails for one contact pauses that one enrollment, with the error shown."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from _support import explain, invoke, json_output
from sqlalchemy import insert, select

from engine.cli.contacts_commands import run_import
from engine.contacts import find_contact
from engine.sequences import pause_for_error
from engine.storage import upgrade
from engine.storage.schema import enrollments
from engine.templating import (
    MessageFormat,
    MessageIdentity,
    Recipient,
    SendRequest,
    TemplateRenderError,
)
from engine.wiring import Runtime

NOW = dt.datetime(2026, 11, 28, 9, 30, tzinfo=dt.UTC)
NAMELESS = "a.nameless@example.com"


def test_a_failing_template_pauses_only_its_enrollment(
    workspace: Path, workspace_database: str
) -> None:
    # Given two enrolled contacts, one without a first name, and a template that prints it
    export = workspace / "people.csv"
    export.write_text("Email,First Name,Lifecycle Stage\n"
                      f"{NAMELESS},,connecting\nbo@example.com,Bo,connecting\n")  # fmt: skip
    (workspace / "templates" / "t").mkdir()
    (workspace / "templates" / "t" / "hi.md").write_text(
        "---\nsubject: Hi\n---\nHi {{ contact.first_name }}\n"
    )
    runtime = Runtime.open(workspace)
    upgrade(runtime.database)
    run_import(runtime, export)
    builder = runtime.message_builder()
    with runtime.ready_database().begin() as connection:
        ids = {}
        for email in (NAMELESS, "bo@example.com"):
            view = find_contact(connection, email)
            assert view is not None
            ids[email] = connection.execute(
                insert(enrollments).values(
                    contact_id=view.contact["id"], sequence="outreach", status="active",
                    step_id="intro", next_run_at=NOW, enrolled_at=NOW, updated_at=NOW,
                ).returning(enrollments.c.id)
            ).scalar_one()  # fmt: skip

        # When each is rendered, and the failure is recorded for the enrollment it hit
        outcomes = {}
        for email, enrollment_id in ids.items():
            view = find_contact(connection, email)
            assert view is not None
            request = SendRequest("t/hi", "a", Recipient(view.contact, view.account, view.owner),
                                  MessageIdentity(f"m{enrollment_id}", enrollment_id),
                                  MessageFormat.TEXT)  # fmt: skip
            try:
                outcomes[email] = builder.build(request, NOW).text
            except TemplateRenderError as exc:
                assert pause_for_error(connection, enrollment_id, str(exc), NOW)
                outcomes[email] = "paused"
        statuses = dict(connection.execute(select(enrollments.c.id, enrollments.c.status)).all())
    runtime.close()

    # Then only the nameless contact's enrollment is paused, and the other message was built
    assert outcomes[NAMELESS] == "paused"
    assert outcomes["bo@example.com"].startswith("Hi Bo")
    assert statuses == {ids[NAMELESS]: "paused", ids["bo@example.com"]: "active"}
    shown = invoke("contacts", "show", NAMELESS, "--json", "--workspace", workspace)
    assert shown.exit_code == 0, explain(shown)
    [enrollment] = json_output(shown)["enrollments"]
    assert enrollment["status"] == "paused"
    assert enrollment["error"].startswith("templates/t/hi.md:4: contact.first_name is empty")
    table = invoke("contacts", "show", NAMELESS, "--workspace", workspace)
    assert "paused" in table.output and "contact.first_name is empty" in table.output


def test_pausing_an_enrollment_that_is_not_active_changes_nothing(
    workspace: Path, workspace_database: str
) -> None:
    runtime = Runtime.open(workspace)
    upgrade(runtime.database)
    with runtime.database.begin() as connection:
        assert not pause_for_error(connection, 12345, "template failed", NOW)
    runtime.close()


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # the enrollments table prints the whole error
