"""Inbound mail end to end, over real HTTP, with the workspace's own transport (the file
outbox): SendGrid's sample posts in both forms are kept as unmatched, and a person's
reply posted in the parsed form (no raw MIME) lands in the owner's mailbox."""

from __future__ import annotations

import datetime as dt
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path

import orjson
import pytest
import sendgrid
from _support import explain, invoke, json_output
from _web import client_for
from sqlalchemy import select, update
from test_step_runner import MONDAY_MORNING, enroll_one, sent_rows

from engine.cli.contacts_commands import run_import
from engine.storage import upgrade
from engine.storage.schema import contacts, owners, webhook_inbox
from engine.tracking.tokens import TokenSigner
from engine.web import create_app
from engine.wiring import Runtime
from workers.context import open_context
from workers.inbox import inbox_processor

SAMPLES = Path(sendgrid.__file__).parent / "helpers" / "inbound" / "sample_data"
SECRET = "inbound-secret-end-to-end-7x"
ARRIVED = MONDAY_MORNING + dt.timedelta(hours=2)


def sample_post(name: str) -> tuple[bytes, str]:
    """One of SendGrid's own sample posts, with the CRLF line breaks a real post has."""
    body = (SAMPLES / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return body, "multipart/form-data; boundary=xYzZY"


def test_samples_are_kept_and_a_parsed_reply_reaches_the_owner_through_the_outbox(
    workspace: Path, workspace_database: str
) -> None:
    runtime = Runtime.open(workspace)
    try:
        upgrade(runtime.database)
        run_import(runtime, workspace / "examples" / "crm-contacts.csv")
        context = open_context(runtime)  # the configured transport: the file outbox
        with runtime.database.begin() as connection:
            contact = (
                connection.execute(
                    select(contacts)
                    .where(contacts.c.owner_id.is_not(None))
                    .order_by(contacts.c.id)
                    .limit(1)
                )
                .mappings()
                .one()
            )
            connection.execute(update(contacts).where(contacts.c.id == contact["id"]).values(
                timezone="Europe/Copenhagen", stage="prospecting"))  # fmt: skip
            owner = connection.execute(
                select(owners.c.email).where(owners.c.id == contact["owner_id"])
            ).scalar_one()
        enrollment_id = enroll_one(runtime, "connecting-outreach", contact["id"], MONDAY_MORNING)
        context.runner.run(runtime.database, enrollment_id, MONDAY_MORNING)
        [intro] = sent_rows(runtime, enrollment_id)
        reply_address = runtime.tracking_links.for_message(intro["public_id"]).reply_address
        app = create_app(runtime.database, TokenSigner(runtime.secret_key),
                         webhook_public_key=None, inbound_secret=SECRET,
                         clock=lambda: ARRIVED)  # fmt: skip
        reply_form = {
            "headers": (f"From: {contact['email']}\nTo: {reply_address}\n"
                        f"Subject: Re: {intro['subject']}\nMessage-ID: <e2e-1@client.example>\n"
                        f"In-Reply-To: {intro['rfc_message_id']}\n"
                        "Date: Mon, 07 Dec 2026 12:00:00 +0100\n"),
            "text": "Yes please, send me the case study and a time on Thursday.\n\n"
                    "On Mon, 7 Dec 2026, Rita wrote:\n> Hi there\n",
            "from": contact["email"], "to": reply_address,
            "subject": f"Re: {intro['subject']}",
            "envelope": orjson.dumps({"to": [reply_address], "from": contact["email"]}).decode(),
            "charsets": orjson.dumps({"text": "utf-8", "subject": "utf-8"}).decode(),
        }  # fmt: skip
        with client_for(app) as client:
            for name in ("default_data.txt", "raw_data.txt"):
                body, content_type = sample_post(name)
                answer = client.post(
                    "/webhooks/sendgrid/inbound",
                    params={"secret": SECRET},
                    content=body,
                    headers={"Content-Type": content_type},
                )
                assert answer.status_code == 200, answer.text
            as_multipart = {name: (None, value) for name, value in reply_form.items()}
            answer = client.post("/webhooks/sendgrid/inbound", params={"secret": SECRET},
                                 files=as_multipart)  # fmt: skip
            assert answer.status_code == 200, answer.text
            refused = client.post("/webhooks/sendgrid/inbound", files=as_multipart)
        before = {p.name for p in (workspace / "var" / "outbox").glob("*.eml")}

        report = inbox_processor(context).process_received(ARRIVED + dt.timedelta(minutes=1))

        with runtime.database.connect() as connection:
            statuses = connection.execute(
                select(webhook_inbox.c.status).order_by(webhook_inbox.c.id)
            ).scalars().all()  # fmt: skip
        listed = invoke("inbound", "unmatched", "--json", "--workspace", workspace)
    finally:
        runtime.close()

    assert refused.status_code == 401
    assert list(statuses) == ["unmatched", "unmatched", "processed"]
    assert (report.unmatched, report.processed, report.failed) == (2, 1, 0)
    assert listed.exit_code == 0, explain(listed)
    assert json_output(listed)["total"] == 2
    new = [p for p in (workspace / "var" / "outbox").glob("*.eml") if p.name not in before]
    [forward] = [message_from_bytes(p.read_bytes(), policy=email_policy.default) for p in new]
    assert forward["To"].addresses[0].addr_spec == owner
    assert forward["Reply-To"].addresses[0].addr_spec == contact["email"]
    plain = forward.get_body(("plain",))
    assert plain is not None
    text = plain.get_content()
    assert "Intent:   interested" in text.replace("\r\n", "\n"), text
    assert "Yes please, send me the case study" in text


@pytest.mark.parametrize("name", ["default_data.txt", "raw_data_with_attachments.txt"])
def test_the_inbound_classify_command_reads_a_stored_sample_post(name: str, tmp_path: Path) -> None:
    body, _ = sample_post(name)
    stored = tmp_path / name
    stored.write_bytes(body)

    result = invoke("inbound", "classify", stored, "--json")

    assert result.exit_code == 0, explain(result)
    shown = json_output(result)
    assert (shown["kind"], shown["headers"]["from"]) == ("reply", "test@example.com")
    assert shown["text"].startswith("Hello Twilio SendGrid!")
