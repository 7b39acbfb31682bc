"""Recording events and their effects, on SQLite and PostgreSQL.

Duplicated and reordered batches, suppressions, settling an ambiguous hand-off and
resuming its enrollment, machine opens and clicks, stage transitions (forwards and
backwards) and the ``stage_entered`` sequence a won deal starts; then the inbox: rows
claimed, parsed by source, marked, replayed.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from _support import count_rows, imported_runtime
from sqlalchemy import create_engine, insert, select, update
from test_step_runner import (
    MONDAY_MORNING,
    _CannotTell,
    danish_contact,
    enroll_one,
    enrollment,
    make_runner,
    sent_rows,
)

from engine.delivery import Address, OutboundMessage
from engine.delivery.sendgrid import to_mail_send
from engine.delivery.transport import AmbiguousError
from engine.devtools import AcceptedMail, events_for
from engine.segments.compiler import SegmentCompiler
from engine.sequences.records import RunOutcome
from engine.sequences.scheduler import Scheduler
from engine.stages import StageChange, record_stage_changes
from engine.stages.history import rebuild_stage_intervals
from engine.storage import upgrade
from engine.storage.schema import (
    contacts,
    enrollments,
    events,
    messages,
    stage_history,
    suppressions,
    webhook_inbox,
)
from engine.tracking.events import TrackingEvent
from engine.tracking.inbox import InboxSource, store_raw
from engine.tracking.outcomes import OUTCOME_BITS, fill_exit_stages, refresh_outcomes
from engine.tracking.processing import Recorded, record_events
from engine.tracking.replay import InboxProcessor, pending_ids
from engine.vocabulary import StageCause
from engine.wiring import Runtime

NOW = dt.datetime(2026, 3, 3, 12, 0, tzinfo=dt.UTC)
SENT = NOW - dt.timedelta(hours=2)
EXTRA_RULES = """
  - {on: clicked, link: contract, from: [negotiation], to: customer}
  - {on: clicked, link: comeback, from: [lost], to: prospecting, forward_only: false}
  - {on: opened, to: research}
"""
LINKS: list[dict[str, Any]] = [
    {"url": "https://example.com/case-study", "tag": None},
    {"url": "https://cal.example.com/rita", "tag": "booking"},
]


@pytest.fixture
def runtime(workspace: Path, workspace_database: str) -> Iterator[Runtime]:
    """The starter workspace (three more transition rules) with its example contacts."""
    stages = workspace / "config" / "stages.yaml"
    stages.write_text(stages.read_text(encoding="utf-8") + EXTRA_RULES, encoding="utf-8")
    with imported_runtime(workspace) as opened:
        yield opened


def contact_in(runtime: Runtime, stage: str, offset: int = 0) -> dict[str, Any]:
    with runtime.database.connect() as connection:
        query = select(contacts).where(contacts.c.stage == stage).order_by(contacts.c.id)
        return dict(connection.execute(query.offset(offset).limit(1)).mappings().one())


def add_message(
    runtime: Runtime, contact: dict[str, Any], public_id: str, **values: Any
) -> OutboundMessage:
    """A sent message row for ``contact``; the message as SendGrid would have been given it."""
    row = {
        "idempotency_key": f"test:{public_id}", "public_id": public_id,
        "contact_id": contact["id"], "template": "connecting/intro",
        "to_email": contact["email"], "from_email": "rep@example.com", "subject": "Hello",
        "rfc_message_id": f"<{public_id}@example.com>", "status": "sent", "sent_at": SENT,
        "links": LINKS, "provider_message_id": f"sg-{public_id}", "created_at": SENT,
        "updated_at": SENT, **values,
    }  # fmt: skip
    with runtime.database.begin() as connection:
        connection.execute(insert(messages).values(**row))
    return OutboundMessage(
        message_id=public_id, rfc_message_id=row["rfc_message_id"], date=SENT,
        sender=Address("rep@example.com"), to=Address(contact["email"]),
        reply_to=Address("reply@example.com"), subject="Hello", text="Hi",
        html=f'<a href="{LINKS[1]["url"]}">book</a>', headers=(),
        custom_args={"message_id": public_id},
    )  # fmt: skip


def sendgrid(
    message: OutboundMessage, kinds: Sequence[str], at: dt.datetime, seed: int = 1
) -> list[dict[str, Any]]:
    """What SendGrid posts about ``message`` (one item per kind)."""
    mail = AcceptedMail.from_body(to_mail_send(message), f"sg-{message.message_id}", at)
    return events_for(mail, kinds, at, random.Random(seed))


def a_minute_later(item: dict[str, Any]) -> dict[str, Any]:
    """``item`` a minute on (a person clicks some time after the delivery, not with it)."""
    item["timestamp"] += 60
    return item


def parsed(items: list[dict[str, Any]]) -> list[TrackingEvent]:
    from engine.tracking.sendgrid import SendGridEvents

    result = SendGridEvents().parse(orjson.dumps(items))
    assert result.problems == []
    return result.events


def record(runtime: Runtime, batch: Sequence[TrackingEvent], now: dt.datetime = NOW) -> Recorded:
    with runtime.database.begin() as connection:
        return record_events(connection, batch, now, runtime.pipeline)


def stored_events(runtime: Runtime) -> list[dict[str, Any]]:
    with runtime.database.connect() as connection:
        query = select(events).order_by(events.c.provider_event_id)
        return [dict(row) for row in connection.execute(query).mappings()]


def stage_of(runtime: Runtime, contact_id: int) -> str:
    with runtime.database.connect() as connection:
        query = select(contacts.c.stage).where(contacts.c.id == contact_id)
        return str(connection.execute(query).scalar_one())


def history_of(runtime: Runtime, contact_id: int) -> list[tuple[Any, ...]]:
    with runtime.database.connect() as connection:
        query = (
            select(stage_history.c.from_stage, stage_history.c.to_stage, stage_history.c.cause,
                   stage_history.c.detail)
            .where(stage_history.c.contact_id == contact_id, stage_history.c.cause == "event")
            .order_by(stage_history.c.id)
        )  # fmt: skip
        return [tuple(row) for row in connection.execute(query)]


def suppressed(runtime: Runtime) -> dict[str, tuple[str, str]]:
    with runtime.database.connect() as connection:
        rows = connection.execute(
            select(suppressions.c.email, suppressions.c.reason, suppressions.c.source)
        )
        return {row.email: (row.reason, row.source) for row in rows}


# duplicates and order -------------------------------------------------------------------


def test_the_same_batch_three_times_records_and_acts_once(runtime: Runtime) -> None:
    contact = contact_in(runtime, "connecting")
    message = add_message(runtime, contact, "dup0000000000001")
    at = SENT + dt.timedelta(hours=1)
    items = sendgrid(message, ["processed", "delivered", "open", "click", "unsubscribe"], at)
    a_minute_later(items[3])
    batch = parsed(items)

    reports = [record(runtime, batch) for _ in range(3)]

    assert [(r.received, r.new, r.duplicates) for r in reports] == [(5, 5, 0), (5, 0, 5), (5, 0, 5)]
    assert [r.suppressed for r in reports] == [1, 0, 0]
    assert [r.stage_changes for r in reports] == [1, 0, 0]  # the booking click
    rows = stored_events(runtime)
    assert len(rows) == 5 and {r["message_id"] for r in rows} == {rows[0]["message_id"]}
    assert {r["contact_id"] for r in rows} == {contact["id"]}
    assert suppressed(runtime) == {contact["email"]: ("unsubscribed", "sendgrid")}
    assert history_of(runtime, contact["id"])[0][:3] == ("connecting", "qualification", "event")
    assert len(history_of(runtime, contact["id"])) == 1


def test_an_open_before_its_delivery_and_repeats_across_batches_end_the_same(
    runtime: Runtime,
) -> None:
    contact = contact_in(runtime, "prospecting")
    message = add_message(runtime, contact, "ord0000000000001")
    at = SENT + dt.timedelta(minutes=30)
    items = sendgrid(message, ["processed", "delivered", "open", "click"], at)
    a_minute_later(items[3])
    rng = random.Random(5)
    late = [items[3], items[2]]  # the click and the open arrive first
    early = [items[1], items[0], items[2]]  # then the delivery, with the open again
    shuffled = items * 2
    rng.shuffle(shuffled)

    first = record(runtime, parsed(late))
    second = record(runtime, parsed(early))
    third = record(runtime, parsed(shuffled))

    assert (first.new, second.new, second.duplicates, third.new) == (2, 2, 1, 0)
    rows = stored_events(runtime)
    assert sorted(r["kind"] for r in rows) == ["clicked", "delivered", "opened", "queued"]
    click = next(r for r in rows if r["kind"] == "clicked")
    assert (click["url"], click["link_tag"], click["machine"]) == (
        LINKS[1]["url"],
        "booking",
        False,
    )
    assert click["detail"]["message"] == "ord0000000000001" and click["detail"]["link_index"] == 1
    assert click["detail"]["raw"] == items[3]  # the payload, kept
    assert click["occurred_at"] == at.replace(microsecond=0) + dt.timedelta(minutes=1)
    assert stage_of(runtime, contact["id"]) == "qualification"


def test_events_about_no_message_of_ours_are_kept_and_find_the_contact_by_address(
    runtime: Runtime,
) -> None:
    contact = contact_in(runtime, "research")
    stranger = add_message(runtime, contact, "unknown000000001")  # a row, then forgotten
    with runtime.database.begin() as connection:
        connection.execute(messages.delete())
    items = sendgrid(stranger, ["delivered", "spamreport"], SENT)
    items[0]["message_id"] = "note000000000001"  # an owner note: no message row

    report = record(runtime, parsed(items))

    rows = stored_events(runtime)
    assert report.unmatched == 2 and {r["message_id"] for r in rows} == {None}
    assert {r["contact_id"] for r in rows} == {contact["id"]}
    assert suppressed(runtime) == {contact["email"]: ("complained", "sendgrid")}


# suppressions ---------------------------------------------------------------------------


def test_unsubscribes_complaints_hard_bounces_and_invalid_drops_suppress(
    runtime: Runtime,
) -> None:
    people = [contact_in(runtime, "research", offset=i) for i in range(8)]
    kinds = ["unsubscribe", "spamreport", "bounce", "blocked", "dropped", "dropped",
             "deferred", "group_unsubscribe"]  # fmt: skip
    items = []
    for i, (person, kind) in enumerate(zip(people, kinds, strict=True)):
        message = add_message(runtime, person, f"sup{i:013d}")
        items += sendgrid(message, [kind], SENT, seed=i)
    items[4]["reason"] = "Invalid"
    items[5]["reason"] = "Spam Content"
    with runtime.database.begin() as connection:  # someone suppressed by hand before
        connection.execute(insert(suppressions).values(
            email=people[0]["email"], reason="manual", source="cli", created_at=SENT))  # fmt: skip

    report = record(runtime, parsed(items))
    again = record(runtime, parsed(items))

    assert suppressed(runtime) == {
        people[0]["email"]: ("manual", "cli"),  # the first reason is kept
        people[1]["email"]: ("complained", "sendgrid"),
        people[2]["email"]: ("bounced", "sendgrid"),
        people[4]["email"]: ("invalid", "sendgrid"),
        people[7]["email"]: ("unsubscribed", "sendgrid"),
    }
    assert (report.suppressed, again.suppressed) == (4, 0)


def test_an_unsubscribe_through_our_own_link_suppresses_the_message_recipient(
    runtime: Runtime,
) -> None:
    contact = contact_in(runtime, "connecting")
    add_message(runtime, contact, "own0000000000001")
    hit = {"kind": "unsubscribed", "message_id": "own0000000000001", "at": NOW.isoformat()}
    with runtime.database.begin() as connection:
        store_raw(connection, InboxSource.TRACKING, {}, orjson.dumps(hit), NOW)

    report = InboxProcessor(runtime.database, runtime.pipeline).process_received(NOW)

    assert (report.processed, report.events.new, report.events.suppressed) == (1, 1, 1)
    assert suppressed(runtime) == {contact["email"]: ("unsubscribed", "tracking")}


# settling an unfinished hand-off --------------------------------------------------------


def test_an_ambiguous_hand_off_is_settled_by_its_events_and_its_enrollment_resumes(
    runtime: Runtime,
) -> None:
    transport = _CannotTell()
    runner = make_runner(runtime, transport)
    contact = danish_contact(runtime)
    enrollment_id = enroll_one(runtime, "qualification-follow-up", contact["id"], MONDAY_MORNING)
    other = danish_contact_other(runtime, contact["id"])
    paused_by_hand = enroll_one(runtime, "qualification-follow-up", other, MONDAY_MORNING)
    with runtime.database.begin() as connection:
        connection.execute(update(enrollments).where(enrollments.c.id == paused_by_hand).values(
            status="paused", error="paused by hand", next_run_at=None))  # fmt: skip
    transport.fail_next(AmbiguousError("read timeout after the request was sent"))
    assert runner.run(runtime.database, enrollment_id, MONDAY_MORNING) is RunOutcome.PAUSED
    handed = transport.sent[0]
    later = MONDAY_MORNING + dt.timedelta(minutes=3)

    report = record(runtime, parsed(sendgrid(handed, ["delivered"], later)), later)
    again = runner.run(runtime.database, enrollment_id, later)

    assert (report.settled, report.resumed) == (1, 1)
    [row] = sent_rows(runtime, enrollment_id)
    assert (row["status"], row["sent_at"]) == ("sent", later.replace(microsecond=0))
    assert again is RunOutcome.WAITING and len(transport.sent) == 1  # on to the wait, not resent
    assert enrollment(runtime, enrollment_id)["error"] is None
    assert enrollment(runtime, paused_by_hand)["status"] == "paused"


def danish_contact_other(runtime: Runtime, not_id: int) -> int:
    with runtime.database.connect() as connection:
        query = select(contacts.c.id).where(contacts.c.id != not_id).order_by(contacts.c.id)
        return int(connection.execute(query.limit(1)).scalar_one())


def test_a_handing_off_message_is_settled_even_when_its_open_comes_first(
    runtime: Runtime,
) -> None:
    contact = contact_in(runtime, "research")
    message = add_message(runtime, contact, "hof0000000000001", status="handing_off",
                          sent_at=None)  # fmt: skip
    at = SENT + dt.timedelta(minutes=10)

    report = record(runtime, parsed(sendgrid(message, ["open", "processed"], at)))

    with runtime.database.connect() as connection:
        row = connection.execute(select(messages.c.status, messages.c.sent_at)).one()
    assert report.settled == 1 and report.resumed == 0
    assert tuple(row) == ("sent", at.replace(microsecond=0))


# machines -------------------------------------------------------------------------------


def test_machine_opens_and_clicks_are_recorded_flagged_and_move_no_one(runtime: Runtime) -> None:
    contact = contact_in(runtime, "connecting")
    message = add_message(runtime, contact, "bot0000000000001")
    scanner, proxy, person = sendgrid(message, ["click", "open", "open"], SENT, seed=3)
    scanner["timestamp"] = int(SENT.timestamp()) + 2  # two seconds after the hand-off
    proxy["sg_machine_open"] = True
    person["useragent"] = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"
    person["timestamp"] = int(SENT.timestamp()) + 600

    report = record(runtime, parsed([scanner, proxy, person]))

    reasons = {
        r["provider_event_id"]: r["detail"].get("machine_reason") for r in stored_events(runtime)
    }
    assert [r["machine"] for r in stored_events(runtime)] == [True, True, True]
    assert reasons == {
        scanner["sg_event_id"]: "clicked 2 s after hand-off",
        proxy["sg_event_id"]: "SendGrid machine open (a mail proxy fetched it)",
        person["sg_event_id"]: "user agent of Barracuda",
    }
    assert report.machine == 3 and report.stage_changes == 0
    assert stage_of(runtime, contact["id"]) == "connecting"


def test_every_link_clicked_at_once_flags_the_clicks_already_recorded_too(
    runtime: Runtime,
) -> None:
    contact = contact_in(runtime, "research")
    message = add_message(runtime, contact, "all0000000000001")
    at = SENT + dt.timedelta(hours=1)
    first, second = sendgrid(message, ["click", "click"], at, seed=4)
    first["url"] = LINKS[0]["url"]
    second["url"] = LINKS[1]["url"]
    second["timestamp"] = first["timestamp"] + 3

    record(runtime, parsed([first]))
    report = record(runtime, parsed([second]))

    rows = {r["url"]: r for r in stored_events(runtime)}
    assert report.machine == 1 and report.stage_changes == 0  # the booking link moved no one
    assert [rows[link["url"]]["machine"] for link in LINKS] == [True, True]
    assert rows[LINKS[0]["url"]]["detail"]["machine_reason"] == "every link clicked within 10 s"
    assert stage_of(runtime, contact["id"]) == "research"


# stage transitions ----------------------------------------------------------------------


def test_transitions_move_forwards_backwards_and_never_back_unless_the_rule_says(
    runtime: Runtime,
) -> None:
    lost = contact_in(runtime, "lost")
    pitching = contact_in(runtime, "pitching")
    connecting = contact_in(runtime, "connecting")
    back = [{"url": "https://example.com/back", "tag": "comeback"}]
    comeback = add_message(runtime, lost, "bck0000000000001", links=back)
    booking = add_message(runtime, pitching, "pit0000000000001")
    opened = add_message(runtime, connecting, "opn0000000000001")
    at = SENT + dt.timedelta(hours=1)
    items = sendgrid(comeback, ["click"], at) + sendgrid(booking, ["click"], at, seed=2)
    items += sendgrid(opened, ["open"], at, seed=3)
    items[0]["url"] = "https://example.com/back"
    items[1]["url"] = LINKS[1]["url"]  # booking, but pitching is not among the rule's stages

    report = record(runtime, parsed(items))

    assert report.stage_changes == 1
    assert stage_of(runtime, lost["id"]) == "prospecting"  # backwards, as the rule allows
    assert stage_of(runtime, pitching["id"]) == "pitching"
    assert stage_of(runtime, connecting["id"]) == "connecting"  # opened -> research: backwards
    [(was, now, cause, detail)] = history_of(runtime, lost["id"])
    assert (was, now, cause) == ("lost", "prospecting", "event")
    assert detail.startswith("event ") and "clicked comeback (sendgrid " in detail
    assert items[0]["sg_event_id"] in detail


def test_a_tracked_click_takes_its_tag_from_the_link_position(runtime: Runtime) -> None:
    contact = contact_in(runtime, "prospecting")
    add_message(runtime, contact, "trk0000000000001")
    hit = {"kind": "clicked", "message_id": "trk0000000000001", "link_index": 1,
           "url": None, "user_agent": "Mozilla/5.0 (Macintosh)", "ip": "192.0.2.4",
           "at": (SENT + dt.timedelta(hours=3)).isoformat()}  # fmt: skip
    with runtime.database.begin() as connection:
        row_id = store_raw(connection, InboxSource.TRACKING, {}, orjson.dumps(hit), NOW)

    InboxProcessor(runtime.database, runtime.pipeline).process_received(NOW)

    [row] = stored_events(runtime)
    assert (row["provider"], row["provider_event_id"]) == ("tracking", f"tracking:{row_id}")
    assert (row["url"], row["link_tag"], row["machine"]) == (LINKS[1]["url"], "booking", False)
    assert (row["detail"]["user_agent"], row["detail"]["ip"]) == ("Mozilla/5.0 (Macintosh)",
                                                                   "192.0.2.4")  # fmt: skip
    assert stage_of(runtime, contact["id"]) == "qualification"


def test_a_won_deal_enrolls_the_contact_in_post_sale_nurture(runtime: Runtime) -> None:
    contact = contact_in(runtime, "negotiation")
    contract = [{"url": "https://sign.example.com/c", "tag": "contract"}]
    message = add_message(runtime, contact, "won0000000000001", links=contract)
    click = sendgrid(message, ["click"], SENT + dt.timedelta(days=1))
    click[0]["url"] = "https://sign.example.com/c"
    scheduler = Scheduler(runtime.database)

    def trigger_pass(at: dt.datetime) -> dict[str, int]:
        return scheduler.enroll_by_triggers(
            runtime.sequences, lambda now: SegmentCompiler(runtime.segments, runtime.fields, now),
            runtime.enrollment_rules(), at)  # fmt: skip

    before = trigger_pass(NOW)
    record(runtime, parsed(click), NOW + dt.timedelta(minutes=1))
    after = trigger_pass(NOW + dt.timedelta(minutes=2))

    with runtime.database.connect() as connection:
        nurture = connection.execute(select(enrollments.c.contact_id).where(
            enrollments.c.sequence == "customer-nurture")).scalars().all()  # fmt: skip
    assert before.get("customer-nurture") == 0
    assert after["customer-nurture"] == 1 and nurture == [contact["id"]]
    assert stage_of(runtime, contact["id"]) == "customer"


# the inbox ------------------------------------------------------------------------------


def test_the_inbox_is_processed_by_source_marked_and_replayed_idempotently(
    runtime: Runtime,
) -> None:
    contact = contact_in(runtime, "research")
    message = add_message(runtime, contact, "inb0000000000001")
    items = sendgrid(message, ["processed", "delivered", "open"], SENT)
    broken = [*items[:1], {"event": "open"}, "nonsense"]
    bodies = [
        (InboxSource.SENDGRID_EVENTS, orjson.dumps(items)),
        (InboxSource.SENDGRID_EVENTS, orjson.dumps(items)),  # SendGrid retried
        (InboxSource.SENDGRID_EVENTS, orjson.dumps(broken)),
        (InboxSource.SENDGRID_EVENTS, b"{not json"),
        (InboxSource.TRACKING, b'{"kind": "opened"}'),
        (InboxSource.SENDGRID_INBOUND, b"--boundary\r\n..."),  # no inbound handler: left alone
    ]
    with runtime.database.begin() as connection:
        ids = [store_raw(connection, source, {"x": "y"}, body, SENT) for source, body in bodies]
        waiting = pending_ids(connection)
    processor = InboxProcessor(runtime.database, runtime.pipeline, chunk_rows=2)

    report = processor.process_received(NOW)
    nothing = processor.process_ids(ids, NOW)
    replayed = processor.replay(SENT - dt.timedelta(days=1), NOW + dt.timedelta(hours=1))

    assert waiting == ids  # the workers' sweep hands inbound rows out too
    assert (report.rows, report.processed, report.failed, report.malformed_events) == (5, 3, 2, 2)
    assert (report.events.new, report.events.duplicates) == (3, 4)
    assert nothing.rows == 0
    assert (replayed.rows, replayed.events.new, replayed.events.received) == (5, 0, 7)
    with runtime.database.connect() as connection:
        rows = connection.execute(select(webhook_inbox).order_by(webhook_inbox.c.id)).mappings()
        inbox = [(r["status"], r["attempts"], r["error"], r["body"]) for r in rows]
    assert [(status, attempts) for status, attempts, _, _ in inbox] == [
        ("processed", 2), ("processed", 2), ("processed", 2), ("failed", 2), ("failed", 2),
        ("received", 0),
    ]  # fmt: skip
    assert inbox[0][2] is None
    assert inbox[2][2] == (
        "2 malformed event(s) left out: item 1: 'timestamp' must be Unix seconds, got None; "
        "item 2: expected an event object, got a string"
    )
    assert inbox[3][2] is not None and inbox[3][2].startswith("not JSON")
    assert inbox[4][2] is not None and "message_id" in inbox[4][2] and "at" in inbox[4][2]
    assert [body for _, _, _, body in inbox] == [body for _, body in bodies]  # kept as they came
    assert count_rows(runtime.database, events) == 3


def test_numbers_beyond_json_doubles_and_64_bit_integers_are_kept(runtime: Runtime) -> None:
    body = (
        b'[{"email": "a@b.example", "timestamp": 1700000000, "event": "deferred", '
        b'"sg_event_id": "huge", "attempt": 123456789012345678901234567890, "weight": 1e400}]'
    )
    with runtime.database.begin() as connection:
        store_raw(connection, InboxSource.SENDGRID_EVENTS, {}, body, SENT)

    report = InboxProcessor(runtime.database, runtime.pipeline).process_received(NOW)

    [row] = stored_events(runtime)
    assert (report.processed, report.failed, row["kind"]) == (1, 0, "deferred")
    assert str(row["detail"]["raw"]["attempt"]) == "123456789012345678901234567890"


def test_a_row_that_fails_to_record_is_marked_failed_and_the_others_go_on(
    runtime: Runtime,
) -> None:
    contact = contact_in(runtime, "research")
    message = add_message(runtime, contact, "bad0000000000001")
    good = sendgrid(message, ["delivered"], SENT)
    too_long = sendgrid(message, ["unsubscribe"], SENT, seed=9)
    too_long[0]["email"] = "z" * 400 + "@example.com"  # longer than suppressions.email
    with runtime.database.begin() as connection:
        for body in (good, too_long):
            store_raw(connection, InboxSource.SENDGRID_EVENTS, {}, orjson.dumps(body), SENT)

    report = InboxProcessor(runtime.database, runtime.pipeline).process_received(NOW)

    with runtime.database.connect() as connection:
        query = select(webhook_inbox.c.status, webhook_inbox.c.error).order_by(webhook_inbox.c.id)
        rows = [tuple(row) for row in connection.execute(query)]
    if runtime.database.dialect.name == "sqlite":
        # SQLite does not enforce lengths: both are recorded
        assert rows == [("processed", None), ("processed", None)] and report.events.new == 2
    else:
        assert rows[0] == ("processed", None) and rows[1][0] == "failed"
        assert rows[1][1].startswith("recording failed: DataError")
        assert (report.processed, report.failed, report.events.new) == (1, 1, 1)
    assert count_rows(runtime.database, events) == report.events.new


def test_rows_another_worker_holds_are_skipped_on_postgresql(
    workspace: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESCYCLE_DATABASE_URL", postgres_url)
    runtime = Runtime.open(workspace)
    upgrade(runtime.database)
    hit = {"kind": "opened", "message_id": "nobody0000000001", "at": NOW.isoformat()}
    with runtime.database.begin() as connection:
        first, second = (store_raw(connection, InboxSource.TRACKING, {}, orjson.dumps(hit), NOW)
                         for _ in range(2))  # fmt: skip
    other = create_engine(runtime.database_url)
    try:
        with other.begin() as holding:  # another worker has claimed the first row
            holding.execute(select(webhook_inbox.c.id).where(webhook_inbox.c.id == first)
                            .with_for_update())  # fmt: skip
            report = InboxProcessor(runtime.database, runtime.pipeline).process_received(NOW)
    finally:
        other.dispose()
    with runtime.database.connect() as connection:
        statuses = dict(
            connection.execute(select(webhook_inbox.c.id, webhook_inbox.c.status)).all()
        )
    runtime.close()

    assert report.rows == 1
    assert statuses == {first: "received", second: "processed"}


def test_a_rule_for_one_sequence_moves_only_on_that_sequences_messages(
    runtime: Runtime, workspace: Path
) -> None:
    stages = workspace / "config" / "stages.yaml"
    rule = "  - {on: clicked, sequence: pitching-follow-up, from: [pitching], to: negotiation}\n"
    stages.write_text(stages.read_text(encoding="utf-8") + rule, encoding="utf-8")
    pipeline = Runtime.open(workspace).pipeline
    ours, other = contact_in(runtime, "pitching"), contact_in(runtime, "pitching", 1)
    followed = add_message(runtime, ours, "seq0000000000001", sequence="pitching-follow-up")
    elsewhere = add_message(runtime, other, "seq0000000000002", sequence="connecting-outreach")
    at = SENT + dt.timedelta(hours=1)
    items = sendgrid(followed, ["click"], at) + sendgrid(elsewhere, ["click"], at, seed=2)

    with runtime.database.begin() as connection:
        report = record_events(connection, parsed(items), NOW, pipeline)

    assert report.stage_changes == 1
    assert stage_of(runtime, ours["id"]) == "negotiation"
    assert stage_of(runtime, other["id"]) == "pitching"


# the report columns ---------------------------------------------------------------------


def report_columns(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    """What the engine keeps for the reports as it writes, row by row."""
    with runtime.database.connect() as connection:
        h, m, e = stage_history.c, messages.c, events.c
        queries = {
            "stage_history": select(h.id, h.owner_id, h.left_at, h.next_stage).order_by(h.id),
            "messages": select(m.id, m.outcomes, m.reply_intent).order_by(m.id),
            "events": select(e.id, e.contact_stage).order_by(e.id),
        }
        return {name: [tuple(r) for r in connection.execute(q)] for name, q in queries.items()}


def test_the_report_columns_kept_while_recording_equal_a_rebuild_from_the_rows(
    runtime: Runtime,
) -> None:
    contact = contact_in(runtime, "connecting")
    message = add_message(runtime, contact, "rpt0000000000001")
    at = SENT + dt.timedelta(hours=1)
    delivered, opened, booked = sendgrid(message, ["delivered", "open", "click"], at, seed=5)
    booked["url"] = LINKS[1]["url"]
    record(runtime, parsed([delivered, opened, a_minute_later(booked)]))
    (scanned,) = sendgrid(message, ["click"], at, seed=6)  # every link within 10 s: a machine
    scanned.update(url=LINKS[0]["url"], timestamp=booked["timestamp"] + 3)
    (unsubscribed,) = sendgrid(message, ["unsubscribe"], at + dt.timedelta(hours=1), seed=7)
    record(runtime, parsed([scanned, unsubscribed]), NOW + dt.timedelta(minutes=5))
    with runtime.database.begin() as connection:  # two changes of one contact in one call
        changes = [StageChange(contact["id"], "qualification", "pitching"),
                   StageChange(contact["id"], "pitching", "negotiation")]  # fmt: skip
        record_stage_changes(connection, changes, StageCause.MANUAL, NOW + dt.timedelta(hours=1))

    kept = report_columns(runtime)
    with runtime.database.begin() as connection:
        rebuild_stage_intervals(connection)
        refresh_outcomes(connection)
        fill_exit_stages(connection)

    assert report_columns(runtime) == kept
    [(_, outcomes, intent)] = [row for row in kept["messages"] if row[0] == message_id(runtime)]
    assert {name for name, bit in OUTCOME_BITS.items() if outcomes & bit} == {
        "delivered", "opened", "unsubscribed"  # the booking click was a scanner's after all
    }  # fmt: skip
    assert intent is None
    assert [stage for _, stage in kept["events"] if stage] == ["qualification"]
    with runtime.database.connect() as connection:
        h = stage_history.c
        query = select(h.to_stage, h.next_stage, h.left_at, h.owner_id).order_by(h.id)
        mine = [tuple(r) for r in connection.execute(query.where(h.contact_id == contact["id"]))]
    assert [(to, following) for to, following, _, _ in mine[-3:]] == [
        ("qualification", "pitching"), ("pitching", "negotiation"), ("negotiation", None),
    ]  # fmt: skip
    assert mine[-3][2] == mine[-2][2] == NOW + dt.timedelta(hours=1) and mine[-1][2] is None
    assert {owner for *_, owner in mine} == {contact["owner_id"]}


def message_id(runtime: Runtime) -> int:
    with runtime.database.connect() as connection:
        query = select(messages.c.id).where(messages.c.public_id == "rpt0000000000001")
        return int(connection.execute(query).scalar_one())
