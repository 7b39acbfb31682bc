"""What an inbound message does, on SQLite and PostgreSQL, from classifications built here.

A contact at an account with colleagues is in ``connecting-outreach`` and got its intro;
a colleague is enrolled too. Each kind of inbound message is then applied to that intro
(``process_inbound``): replies, out-of-office notices, bounces, unsubscribe requests,
referrals, and messages that answer nothing of ours. Applying one twice changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import orjson
import pytest
from _support import count_rows, explain, imported_runtime, invoke, json_output, replace_once
from _web import client_for
from sqlalchemy import func, insert, select, update
from test_step_runner import MONDAY_MORNING, enroll_one, enrollment, make_runner, sent_rows

from engine.delivery.memory import MemoryTransport
from engine.delivery.transport import RetryableError
from engine.replies.forward import Forwarder
from engine.replies.model import BouncedAddress, Classification, InboundKind
from engine.replies.processing import InboundResult, ReplySetup, process_inbound
from engine.sequences.control import Control, control_enrollments
from engine.storage.schema import (
    accounts,
    contacts,
    crm_outbox,
    events,
    messages,
    owners,
    stage_history,
    suppressions,
    webhook_inbox,
)
from engine.tracking import TokenSigner
from engine.tracking.inbox import InboxSource, InboxStatus, store_raw
from engine.vocabulary import ReplyIntent
from engine.web import create_app
from engine.wiring import Runtime
from workers.context import WorkerContext
from workers.inbox import inbox_processor

CPH = ZoneInfo("Europe/Copenhagen")
ARRIVED = MONDAY_MORNING + dt.timedelta(hours=3)
NOW = ARRIVED + dt.timedelta(seconds=5)


@pytest.fixture
def runtime(workspace: Path, workspace_database: str) -> Iterator[Runtime]:
    with imported_runtime(workspace) as opened:
        yield opened


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport()


@dataclass(frozen=True)
class Scene:
    """A contact who got the intro of connecting-outreach, and a colleague enrolled too."""

    contact: dict[str, Any]
    colleague: dict[str, Any]
    enrollment_id: int
    colleague_enrollment_id: int
    intro: dict[str, Any]  # the intro's messages row
    reply_address: str
    owner_email: str


@pytest.fixture
def scene(runtime: Runtime, transport: MemoryTransport) -> Scene:
    with runtime.database.begin() as connection:
        account_id = connection.execute(
            select(contacts.c.account_id)
            .where(contacts.c.account_id.is_not(None), contacts.c.owner_id.is_not(None))
            .group_by(contacts.c.account_id)
            .having(func.count() >= 2)
            .order_by(contacts.c.account_id)
            .limit(1)
        ).scalar_one()
        pair = (
            connection.execute(
                select(contacts.c.id)
                .where(contacts.c.account_id == account_id)
                .order_by(contacts.c.id)
                .limit(2)
            )
            .scalars()
            .all()
        )
        # in the send window at MONDAY_MORNING, and where the first transition rule applies
        connection.execute(
            update(contacts)
            .where(contacts.c.id.in_(pair))
            .values(timezone="Europe/Copenhagen", stage="prospecting")
        )
    enrollment_id = enroll_one(runtime, "connecting-outreach", pair[0], MONDAY_MORNING)
    colleague_enrollment_id = enroll_one(runtime, "connecting-outreach", pair[1], MONDAY_MORNING)
    make_runner(runtime, transport).run(runtime.database, enrollment_id, MONDAY_MORNING)
    [intro] = sent_rows(runtime, enrollment_id)
    assert intro["step_id"] == "intro" and len(transport.sent) == 1
    transport.sent.clear()
    with runtime.database.connect() as connection:
        rows = [
            connection.execute(select(contacts).where(contacts.c.id == i)).mappings().one()
            for i in pair
        ]
        owner = connection.execute(
            select(owners.c.email).where(owners.c.id == rows[0]["owner_id"])
        ).scalar_one()
    reply_address = runtime.tracking_links.for_message(intro["public_id"]).reply_address
    return Scene(
        dict(rows[0]),
        dict(rows[1]),
        enrollment_id,
        colleague_enrollment_id,
        intro,
        reply_address,
        str(owner),
    )


def setup_for(runtime: Runtime, transport: MemoryTransport) -> ReplySetup:
    forwarder = Forwarder(runtime.message_builder(), transport)
    sequences = {s.name: s for s in runtime.sequences}
    return ReplySetup(
        runtime.pipeline,
        sequences,
        runtime.tracking_links.signer,
        forwarder,
        dt.timedelta(days=3),
        runtime.settings.default_timezone,
    )


def reply_to(scene: Scene, **changes: Any) -> Classification:
    """A person's reply to the intro, to its reply address."""
    fields: dict[str, Any] = {
        "kind": InboundKind.REPLY,
        "intent": ReplyIntent.INTERESTED,
        "text": "Yes, call me on Thursday.",
        "reason": "a person's words",
        "sender": scene.contact["email"],
        "recipients": (scene.reply_address,),
        "subject": f"Re: {scene.intro['subject']}",
        "message_id": "<r1@client.example>",
        "in_reply_to": scene.intro["rfc_message_id"],
        "references": (),
        "sent_at": ARRIVED,
    }
    return Classification(**{**fields, **changes})


def inbox_row(runtime: Runtime) -> int:
    with runtime.database.begin() as connection:
        headers = {"content-type": "multipart/form-data; boundary=x"}
        return store_raw(connection, InboxSource.SENDGRID_INBOUND, headers, b"--x--", ARRIVED)


def apply(
    runtime: Runtime,
    transport: MemoryTransport,
    classification: Classification,
    row_id: int | None = None,
    original: str | None = None,
) -> tuple[InboundResult, int]:
    row_id = inbox_row(runtime) if row_id is None else row_id
    with runtime.database.begin() as connection:
        result = process_inbound(
            connection, row_id, classification, NOW, setup_for(runtime, transport), original
        )
    return result, row_id


def contact_row(runtime: Runtime, contact_id: int) -> dict[str, Any]:
    with runtime.database.connect() as connection:
        query = select(contacts).where(contacts.c.id == contact_id)
        return dict(connection.execute(query).mappings().one())


def history(runtime: Runtime, contact_id: int) -> list[tuple[str | None, str, str, str]]:
    with runtime.database.connect() as connection:
        query = (
            select(
                stage_history.c.from_stage,
                stage_history.c.to_stage,
                stage_history.c.cause,
                stage_history.c.detail,
            )
            .where(stage_history.c.contact_id == contact_id)
            .order_by(stage_history.c.id)
        )
        return [tuple(row) for row in connection.execute(query)]


def inbound_events(runtime: Runtime) -> list[dict[str, Any]]:
    with runtime.database.connect() as connection:
        query = select(events).where(events.c.provider == "inbound").order_by(events.c.id)
        return [dict(row) for row in connection.execute(query).mappings()]


def table_counts(runtime: Runtime) -> tuple[int, ...]:
    tables = (events, messages, crm_outbox, stage_history, suppressions, contacts)
    return tuple(count_rows(runtime.database, table) for table in tables)


# replies ------------------------------------------------------------------------------


def test_a_reply_exits_pauses_the_colleague_moves_the_stage_and_reaches_the_owner(
    runtime: Runtime, transport: MemoryTransport, scene: Scene
) -> None:
    full = "Yes, call me on Thursday.\n\nOn Mon, Rita wrote:\n> Hi,\n> short question."

    result, row_id = apply(runtime, transport, reply_to(scene), original=full)

    assert (result.status, result.note, result.recorded.new) == (InboxStatus.PROCESSED, None, 1)
    mine = enrollment(runtime, scene.enrollment_id)
    assert (mine["status"], mine["exit_reason"]) == ("exited", "replied")
    theirs = enrollment(runtime, scene.colleague_enrollment_id)
    assert theirs["status"] == "paused" and theirs["next_run_at"] is None
    assert theirs["error"] == f"{scene.contact['email']} at the same account replied (account_stop)"
    [event] = inbound_events(runtime)
    assert (event["kind"], event["provider_event_id"], event["message_id"]) == (
        "replied",
        "<r1@client.example>",
        scene.intro["id"],
    )
    assert (
        event["detail"]["intent"] == "interested" and event["detail"]["raw"]["inbox_row"] == row_id
    )
    assert contact_row(runtime, scene.contact["id"])["stage"] == "qualification"
    assert history(runtime, scene.contact["id"])[-1][:3] == ("connecting", "qualification", "event")
    with runtime.database.connect() as connection:
        crm = (
            connection.execute(select(crm_outbox).where(crm_outbox.c.kind == "replied"))
            .mappings()
            .all()
        )
    assert [(r["contact_id"], r["payload"]["intent"], r["payload"]["message_id"]) for r in crm] == [
        (scene.contact["id"], "interested", scene.intro["id"])
    ]
    [forward] = transport.sent
    name = f"{scene.contact['first_name']} {scene.contact['last_name']}"
    assert forward.to.email == scene.owner_email
    assert forward.subject == f"Reply from {name}: {scene.intro['subject']}"
    assert forward.reply_to.email == scene.contact["email"]
    assert f"Contact:  {name} <{scene.contact['email']}>" in forward.text
    assert "Sequence: connecting-outreach, step intro" in forward.text
    assert "Stage:    qualification" in forward.text and "Intent:   interested" in forward.text
    assert "wrote ----------\nYes, call me on Thursday.\n" in forward.text
    assert "> On Mon, Rita wrote:\n> > Hi," in forward.text  # the whole message, quoted


def test_the_same_row_twice_changes_nothing_and_forwards_once(
    runtime: Runtime, transport: MemoryTransport, scene: Scene
) -> None:
    first, row_id = apply(runtime, transport, reply_to(scene))
    before = table_counts(runtime)
    # someone resumes the colleague by hand: processing the row again must not pause them
    with runtime.database.begin() as connection:
        control_enrollments(connection, Control.RESUME, NOW, contact_id=scene.colleague["id"])

    again, _ = apply(runtime, transport, reply_to(scene), row_id=row_id)
    posted_twice, other_row = apply(runtime, transport, reply_to(scene))  # the provider retried

    assert first.recorded.new == 1 and again.recorded.new == 0
    assert (again.status, again.note) == (InboxStatus.PROCESSED, None)
    assert (posted_twice.status, posted_twice.note) == (
        InboxStatus.PROCESSED,
        f"duplicate of inbox row {row_id}",
    )
    assert other_row != row_id
    assert table_counts(runtime) == before
    assert len(transport.sent) == 1
    assert enrollment(runtime, scene.colleague_enrollment_id)["status"] == "active"


def test_a_refused_forward_is_sent_on_the_next_processing_and_only_then(
    runtime: Runtime, transport: MemoryTransport, scene: Scene
) -> None:
    transport.fail_next(RetryableError("421 try again later"))

    refused, row_id = apply(runtime, transport, reply_to(scene))
    retried, _ = apply(runtime, transport, reply_to(scene), row_id=row_id)
    settled, _ = apply(runtime, transport, reply_to(scene), row_id=row_id)

    assert refused.status is InboxStatus.RECEIVED and refused.note is not None
    assert scene.owner_email in refused.note and "421 try again later" in refused.note
    assert enrollment(runtime, scene.enrollment_id)["exit_reason"] == "replied"  # not held up
    assert (retried.status, settled.status) == (InboxStatus.PROCESSED, InboxStatus.PROCESSED)
    assert len(transport.sent) == 1
    with runtime.database.connect() as connection:
        keys = connection.execute(
            select(messages.c.idempotency_key, messages.c.public_id).where(
                messages.c.template == "(forward)"
            )
        ).all()
    assert [tuple(k) for k in keys] == [(f"inbound:{row_id}:forward", None)]


def test_intent_moves_the_stage_by_the_rules_of_stages_yaml(
    runtime: Runtime, transport: MemoryTransport, scene: Scene
) -> None:
    with runtime.database.begin() as connection:
        connection.execute(
            update(contacts)
            .where(contacts.c.id == scene.contact["id"])
            .values(stage="qualification")
        )
        connection.execute(
            update(contacts).where(contacts.c.id == scene.colleague["id"]).values(stage="pitching")
        )
    colleague_intro = insert_sent(runtime, scene.colleague, "col0000000000001")

    apply(runtime, transport, reply_to(scene, intent=ReplyIntent.OBJECTION))
    apply(
        runtime,
        transport,
        reply_to(
            scene,
            intent=ReplyIntent.NOT_INTERESTED,
            sender=scene.colleague["email"],
            recipients=(runtime.tracking_links.for_message(colleague_intro).reply_address,),
            message_id="<r2@client.example>",
            in_reply_to=None,
        ),
    )

    assert contact_row(runtime, scene.contact["id"])["stage"] == "objection_handling"
    assert contact_row(runtime, scene.colleague["id"])["stage"] == "lost"
    was, now, cause, detail = history(runtime, scene.contact["id"])[-1]
    assert (was, now, cause) == ("qualification", "objection_handling", "event")
    assert "replied objection (inbound <r1@client.example>)" in detail


def test_on_reply_moves_the_stage_when_no_rule_does_and_never_backwards(
    workspace: Path, runtime: Runtime, transport: MemoryTransport, scene: Scene
) -> None:
    stages = workspace / "config" / "stages.yaml"
    replace_once(
        stages,
        "  - {on: replied, from: [research, prospecting, connecting], to: qualification}\n",
        "",
    )
    reopened = Runtime.open(workspace)  # its pipeline has no generic reply rule
    try:
        apply(reopened, transport, reply_to(scene))
        moved = contact_row(runtime, scene.contact["id"])["stage"]
        was, now, cause, detail = history(runtime, scene.contact["id"])[-1]
        with runtime.database.begin() as connection:
            connection.execute(
                update(contacts)
                .where(contacts.c.id == scene.contact["id"])
                .values(stage="negotiation")
            )
        apply(reopened, transport, reply_to(scene, message_id="<r2@client.example>"))
    finally:
        reopened.close()

    assert moved == "qualification"
    assert (was, now, cause) == ("connecting", "qualification", "reply")
    assert (
        detail == f"reply to message {scene.intro['public_id']} (on_reply of connecting-outreach)"
    )
    assert contact_row(runtime, scene.contact["id"])["stage"] == "negotiation"
    assert len(inbound_events(runtime)) == 2


def insert_sent(runtime: Runtime, contact: dict[str, Any], public_id: str) -> str:
    """A sent message of ours to ``contact`` outside any enrollment; its public id."""
    with runtime.database.begin() as connection:
        connection.execute(
            insert(messages).values(
                idempotency_key=f"test:{public_id}",
                public_id=public_id,
                contact_id=contact["id"],
                template="pitching/proposal",
                to_email=contact["email"],
                from_email="rep@example.com",
                subject="Our proposal",
                rfc_message_id=f"<{public_id}@mail.example.com>",
                status="sent",
                sent_at=MONDAY_MORNING,
                created_at=MONDAY_MORNING,
                updated_at=MONDAY_MORNING,
            )
        )
    return public_id


def test_a_reply_matches_by_in_reply_to_or_references_and_a_forged_token_matches_nothing(
    runtime: Runtime, transport: MemoryTransport, scene: Scene
) -> None:
    token = scene.reply_address.split("+", 1)[1].split("@")[0]
    forged = scene.reply_address.replace(token, token[:-1] + ("0" if token[-1] != "0" else "1"))

    by_references, _ = apply(
        runtime,
        transport,
        reply_to(
            scene,
            recipients=("sales@salescycle-demo.example",),
            in_reply_to="<unknown@x.example>",
            references=(scene.intro["rfc_message_id"], "<later@x.example>"),
        ),
    )
    nothing, _ = apply(
        runtime,
        transport,
        reply_to(scene, recipients=(forged,), in_reply_to=None, message_id="<r9@client.example>"),
    )

    assert by_references.status is InboxStatus.PROCESSED
    assert inbound_events(runtime)[0]["detail"]["raw"]["matched_by"] == "references"
    assert nothing.status is InboxStatus.UNMATCHED and nothing.note is not None
    assert scene.contact["email"] in nothing.note and "no reply token" in nothing.note
    assert len(inbound_events(runtime)) == 1  # nothing recorded for the unmatched one
    assert len(transport.sent) == 1


# out-of-office, bounces, unsubscribes, referrals ----------------------------------------


def test_an_out_of_office_keeps_the_enrollment_and_moves_its_next_run_past_the_return(
    runtime: Runtime, transport: MemoryTransport, scene: Scene
) -> None:
    waiting = enrollment(runtime, scene.enrollment_id)["next_run_at"]
    away = reply_to(
        scene,
        kind=InboundKind.AUTO_REPLY,
        intent=None,
        text="I am away until 4 January.",
        returns_on=dt.date(2027, 1, 4),
        message_id="<ooo1@client.example>",
    )
    soon = replace(away, returns_on=dt.date(2026, 12, 8), message_id="<ooo2@client.example>")

    result, _ = apply(runtime, transport, away)
    moved = enrollment(runtime, scene.enrollment_id)
    apply(runtime, transport, soon)  # back before the next run anyway: nothing moves earlier

    assert result.status is InboxStatus.PROCESSED
    assert moved["status"] == "active" and moved["exit_reason"] is None
    assert moved["next_run_at"] == dt.datetime(2027, 1, 5, tzinfo=CPH) > waiting
    assert enrollment(runtime, scene.enrollment_id)["next_run_at"] == moved["next_run_at"]
    assert [e["kind"] for e in inbound_events(runtime)] == ["auto_replied", "auto_replied"]
    assert contact_row(runtime, scene.contact["id"])["stage"] == "connecting"
    assert transport.sent == []


def test_a_hard_bounce_suppresses_and_ends_the_enrollment_and_a_soft_one_does_not(
    runtime: Runtime, transport: MemoryTransport, scene: Scene
) -> None:
    bounced = (
        BouncedAddress(scene.contact["email"], hard=True),
        BouncedAddress(scene.colleague["email"], hard=False),
    )
    dsn = reply_to(
        scene,
        kind=InboundKind.BOUNCE,
        intent=None,
        bounced=bounced,
        sender="mailer-daemon@mx.example",
        message_id="<dsn1@mx.example>",
    )

    result, _ = apply(runtime, transport, dsn)
    again, _ = apply(runtime, transport, dsn)

    assert (result.status, result.recorded.new, again.recorded.new) == (InboxStatus.PROCESSED, 2, 0)
    mine = enrollment(runtime, scene.enrollment_id)
    assert (mine["status"], mine["exit_reason"]) == ("exited", "bounced")
    assert enrollment(runtime, scene.colleague_enrollment_id)["status"] == "active"
    with runtime.database.connect() as connection:
        rows = connection.execute(
            select(suppressions.c.email, suppressions.c.reason, suppressions.c.source)
        ).all()
    assert [tuple(r) for r in rows] == [(scene.contact["email"], "bounced", "inbound")]
    kinds = {(e["detail"]["recipient"], e["reject_reason"]) for e in inbound_events(runtime)}
    assert kinds == {
        (scene.contact["email"], "hard_bounce"),
        (scene.colleague["email"], "soft_bounce"),
    }
    assert transport.sent == []


@pytest.mark.parametrize("how", ["in words", "to the unsubscribe address"])
def test_an_unsubscribe_request_suppresses_ends_and_tells_the_owner(
    runtime: Runtime, transport: MemoryTransport, scene: Scene, how: str
) -> None:
    if how == "in words":
        request = reply_to(
            scene,
            kind=InboundKind.UNSUBSCRIBE_REQUEST,
            intent=ReplyIntent.UNSUBSCRIBE_REQUEST,
            text="Please remove me.",
        )
    else:
        links = runtime.tracking_links.for_message(scene.intro["public_id"])
        address = links.unsubscribe_mailto.removeprefix("mailto:").split("?")[0]
        request = reply_to(
            scene,
            recipients=(address,),
            in_reply_to=None,
            intent=None,
            text="unsubscribe",
            subject="unsubscribe",
        )

    result, _ = apply(runtime, transport, request)

    assert result.status is InboxStatus.PROCESSED
    mine = enrollment(runtime, scene.enrollment_id)
    assert (mine["status"], mine["exit_reason"]) == ("exited", "unsubscribed")
    with runtime.database.connect() as connection:
        rows = connection.execute(select(suppressions.c.email, suppressions.c.reason)).all()
    assert [tuple(r) for r in rows] == [(scene.contact["email"], "unsubscribed")]
    assert [e["kind"] for e in inbound_events(runtime)] == ["unsubscribed"]
    assert enrollment(runtime, scene.colleague_enrollment_id)["status"] == "active"
    [told] = transport.sent
    assert told.to.email == scene.owner_email and told.subject.startswith(
        "Unsubscribe request from "
    )
    assert told.text.startswith(
        f"{scene.contact['first_name']} {scene.contact['last_name']} "
        "asked to be removed from our emails"
    )


def test_a_referral_creates_the_named_colleague_for_review_once(
    runtime: Runtime, transport: MemoryTransport, scene: Scene
) -> None:
    domain = scene.contact["email"].split("@")[1]
    with runtime.database.begin() as connection:
        connection.execute(
            insert(suppressions).values(
                email=f"gone@{domain}", reason="unsubscribed", source="manual", created_at=NOW
            )
        )
    named = (
        f"Ana.Newman@{domain}",
        scene.colleague["email"],
        f"gone@{domain}",
        "not an address",
        scene.reply_address,
    )
    referral = reply_to(
        scene,
        intent=ReplyIntent.REFERRAL,
        referrals=named,
        text=f"Talk to my colleague Ana.Newman@{domain}.",
    )

    apply(runtime, transport, referral)
    before = table_counts(runtime)
    apply(runtime, transport, referral)

    with runtime.database.connect() as connection:
        created = (
            connection.execute(
                select(contacts).where(contacts.c.referred_by_id == scene.contact["id"])
            )
            .mappings()
            .all()
        )
    [ana] = created
    assert ana["email"] == f"ana.newman@{domain}"
    assert (ana["owner_id"], ana["account_id"]) == (
        scene.contact["owner_id"],
        scene.contact["account_id"],
    )
    assert ana["stage"] == runtime.pipeline.initial
    assert ana["attributes"] == {"referred_by": scene.contact["email"], "needs_review": True}
    assert history(runtime, ana["id"]) == [
        (None, runtime.pipeline.initial, "reply", f"referred by {scene.contact['email']}")
    ]
    assert table_counts(runtime) == before


def test_an_unmatched_unsubscribe_request_is_kept_and_its_sender_suppressed(
    runtime: Runtime, transport: MemoryTransport, scene: Scene
) -> None:
    stranger = reply_to(
        scene,
        kind=InboundKind.UNSUBSCRIBE_REQUEST,
        sender="who@else.example",
        recipients=("sales@salescycle-demo.example",),
        in_reply_to=None,
    )

    result, _ = apply(runtime, transport, stranger)

    assert result.status is InboxStatus.UNMATCHED
    assert result.note is not None and result.note.endswith("the sender is suppressed")
    with runtime.database.connect() as connection:
        rows = connection.execute(select(suppressions.c.email, suppressions.c.reason)).all()
    assert [tuple(r) for r in rows] == [("who@else.example", "unsubscribed")]
    assert enrollment(runtime, scene.enrollment_id)["status"] == "active"


# end to end -----------------------------------------------------------------------------

INBOUND_SECRET = "inbound-secret-e2e-4kq"


def _reply_mime(sender: str, to: str, subject: str, in_reply_to: str | None, text: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(ARRIVED)
    message["Message-ID"] = f"<{hashlib.sha256(text.encode()).hexdigest()[:20]}@client.example>"
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message.set_content(text)
    return message.as_bytes()


def _post_raw(client: httpx2.Client, mime: bytes, envelope_to: str) -> None:
    form = {
        "envelope": orjson.dumps({"to": [envelope_to], "from": "x@y.example"}).decode(),
        "SPF": "pass",
    }
    response = client.post(
        "/webhooks/sendgrid/inbound",
        params={"secret": INBOUND_SECRET},
        data=form,
        files={"email": (None, mime, "text/plain")},
    )
    assert response.status_code == 200, response.text


def test_a_reply_posted_over_http_exits_pauses_moves_forwards_and_strays_are_listed(
    runtime: Runtime, transport: MemoryTransport, scene: Scene
) -> None:
    with runtime.database.begin() as connection:  # where an objection moves a contact on
        connection.execute(
            update(contacts)
            .where(contacts.c.id == scene.contact["id"])
            .values(stage="qualification")
        )
    name = f"{scene.contact['first_name']} {scene.contact['last_name']}"
    reply = _reply_mime(
        f"{name} <{scene.contact['email']}>",
        scene.reply_address,
        f"Re: {scene.intro['subject']}",
        scene.intro["rfc_message_id"],
        "Thanks, but honestly it is too expensive for us.\n\n"
        "On Mon, 7 Dec 2026 at 09:00, Rita wrote:\n> Hi,\n> a short question.\n",
    )
    stray = _reply_mime(
        "someone@else.example", "sales@salescycle-demo.example", "A question", None, "Who are you?"
    )
    app = create_app(
        runtime.database,
        TokenSigner(runtime.secret_key),
        webhook_public_key=None,
        inbound_secret=INBOUND_SECRET,
        clock=lambda: ARRIVED,
    )
    with client_for(app) as client:
        _post_raw(client, reply, scene.reply_address)
        _post_raw(client, stray, "sales@salescycle-demo.example")
    context = WorkerContext(runtime, make_runner(runtime, transport), runtime.database)

    report = inbox_processor(context).process_received(NOW)
    replayed = inbox_processor(context).replay(ARRIVED - dt.timedelta(minutes=1), NOW)
    listed = invoke("inbound", "unmatched", "--json", "--workspace", runtime.workspace.root)

    assert (report.rows, report.processed, report.unmatched, report.failed) == (2, 1, 1, 0)
    assert (replayed.rows, replayed.events.new) == (2, 0)
    mine = enrollment(runtime, scene.enrollment_id)
    assert (mine["status"], mine["exit_reason"]) == ("exited", "replied")
    assert enrollment(runtime, scene.colleague_enrollment_id)["status"] == "paused"
    assert contact_row(runtime, scene.contact["id"])["stage"] == "objection_handling"
    [forward] = transport.sent  # once, though the inbox was replayed
    assert (
        forward.to.email == scene.owner_email and forward.reply_to.email == scene.contact["email"]
    )
    assert forward.subject == f"Reply from {name}: {scene.intro['subject']}"
    header = forward.text.split("\n\n")[0].splitlines()
    assert header == [
        f"Contact:  {name} <{scene.contact['email']}>",
        f"Account:  {contact_account_name(runtime, scene.contact)}",
        "Sequence: connecting-outreach, step intro",
        "Stage:    objection_handling",
        "Intent:   objection",
    ]
    own = forward.text.split(" wrote ----------\n", 1)[1]
    assert own.startswith("Thanks, but honestly it is too expensive for us.\n\n")
    assert "> > a short question." in forward.text
    assert listed.exit_code == 0, explain(listed)
    shown = json_output(listed)
    assert shown["total"] == 1
    [kept] = shown["messages"]
    assert (kept["sender"], kept["subject"]) == ("someone@else.example", "A question")
    assert "no reply token" in kept["note"]


def contact_account_name(runtime: Runtime, contact: dict[str, Any]) -> str:
    with runtime.database.connect() as connection:
        query = select(accounts.c.name).where(accounts.c.id == contact["account_id"])
        return str(connection.execute(query).scalar_one())


def test_an_unreadable_post_is_kept_failed_with_its_reason(
    runtime: Runtime, transport: MemoryTransport
) -> None:
    with runtime.database.begin() as connection:
        row_id = store_raw(
            connection,
            InboxSource.SENDGRID_INBOUND,
            {"content-type": "text/plain"},
            b"not a form",
            ARRIVED,
        )
    context = WorkerContext(runtime, make_runner(runtime, transport), runtime.database)

    report = inbox_processor(context).process_received(NOW)

    assert (report.rows, report.failed) == (1, 1)
    with runtime.database.connect() as connection:
        row = connection.execute(select(webhook_inbox).where(webhook_inbox.c.id == row_id)).one()
    assert (row.status, bytes(row.body)) == ("failed", b"not a form")
    assert row.error and not row.error.startswith("processing failed")  # the reader's reason


def test_a_refused_forward_leaves_the_row_waiting_for_the_next_processing(
    runtime: Runtime, transport: MemoryTransport, scene: Scene
) -> None:
    mime = _reply_mime(
        scene.contact["email"],
        scene.reply_address,
        "Re: hello",
        scene.intro["rfc_message_id"],
        "Sounds good, call me.",
    )
    request = httpx2.Request(
        "POST",
        "http://inbound.test/",
        files={"email": (None, mime)},
        data={"envelope": orjson.dumps({"to": [scene.reply_address]}).decode()},
    )
    headers = {"content-type": request.headers["content-type"]}
    with runtime.database.begin() as connection:
        store_raw(connection, InboxSource.SENDGRID_INBOUND, headers, request.read(), ARRIVED)
    context = WorkerContext(runtime, make_runner(runtime, transport), runtime.database)
    transport.fail_next(RetryableError("451 mailbox busy"))

    refused = inbox_processor(context).process_received(NOW)
    waiting = inbox_rows_now(runtime)
    sent = inbox_processor(context).process_received(NOW + dt.timedelta(minutes=1))
    after = inbox_processor(context).process_received(NOW + dt.timedelta(minutes=2))

    assert (refused.rows, refused.waiting, refused.processed) == (1, 1, 0)
    [(status, attempts, error)] = waiting
    assert (status, attempts) == ("received", 1) and error is not None and "451" in error
    assert enrollment(runtime, scene.enrollment_id)["exit_reason"] == "replied"
    assert (sent.rows, sent.processed, after.rows) == (1, 1, 0)
    assert inbox_rows_now(runtime) == [("processed", 2, None)]
    assert len(transport.sent) == 1 and transport.sent[0].to.email == scene.owner_email


def inbox_rows_now(runtime: Runtime) -> list[tuple[str, int, str | None]]:
    with runtime.database.connect() as connection:
        query = select(webhook_inbox.c.status, webhook_inbox.c.attempts, webhook_inbox.c.error)
        return [
            (str(s), int(a), e)
            for s, a, e in connection.execute(query.order_by(webhook_inbox.c.id))
        ]
