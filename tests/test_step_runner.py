"""Running enrollments step by step: windows, waits, threads, exits, and exactly-once sends."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from _support import imported_runtime
from sqlalchemy import Engine, func, insert, select, update

from engine.delivery.memory import MemoryTransport
from engine.delivery.message import OutboundMessage
from engine.delivery.transport import AmbiguousError, HandOff, PermanentError, RetryableError
from engine.segments.compiler import SegmentCompiler
from engine.sequences import enroll, named_contacts
from engine.sequences.limits import SendLimits
from engine.sequences.program import compile_program
from engine.sequences.reconcile import retry_unconfirmed
from engine.sequences.records import RunOutcome
from engine.sequences.runner import StepRunner
from engine.sequences.windows import is_holiday
from engine.storage import upgrade
from engine.storage.schema import (
    contacts,
    enrollments,
    events,
    messages,
    stage_history,
    suppressions,
)
from engine.wiring import Runtime

CPH = ZoneInfo("Europe/Copenhagen")
# (after the import, which happens at the real time of the test run)
MONDAY_MORNING = dt.datetime(2026, 12, 7, 9, 0, tzinfo=CPH).astimezone(dt.UTC)


@pytest.fixture
def runtime(workspace: Path, workspace_database: str) -> Iterator[Runtime]:
    with imported_runtime(workspace) as opened:
        yield opened


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport()


@pytest.fixture
def runner(runtime: Runtime, transport: MemoryTransport) -> StepRunner:
    return make_runner(runtime, transport)


def make_runner(runtime: Runtime, transport: MemoryTransport, **options: Any) -> StepRunner:
    """A runner over the runtime's sequences, sending through ``transport``."""
    return StepRunner(
        {s.name: compile_program(s) for s in runtime.sequences}, runtime.message_builder(),
        transport, lambda now: SegmentCompiler(runtime.segments, runtime.fields, now),
        runtime.settings.default_timezone, **options,
    )  # fmt: skip


def danish_contact(runtime: Runtime) -> dict[str, Any]:
    with runtime.database.connect() as connection:
        row = connection.execute(
            select(contacts).where(contacts.c.timezone == "Europe/Copenhagen",
                                   contacts.c.first_name.is_not(None)).order_by(contacts.c.id).limit(1)
        ).mappings().one()  # fmt: skip
    return dict(row)


def enroll_one(runtime: Runtime, sequence: str, contact_id: int, now: dt.datetime) -> int:
    with runtime.database.begin() as connection:
        enroll(connection, runtime.sequences.get(sequence), named_contacts([contact_id]),
               runtime.enrollment_rules(), now)  # fmt: skip
        mine = (enrollments.c.contact_id == contact_id) & (enrollments.c.sequence == sequence)
        return int(connection.execute(select(enrollments.c.id).where(mine)).scalar_one())


def enrollment(runtime: Runtime, enrollment_id: int) -> dict[str, Any]:
    with runtime.database.connect() as connection:
        query = select(enrollments).where(enrollments.c.id == enrollment_id)
        return dict(connection.execute(query).mappings().one())


def sent_rows(runtime: Runtime, enrollment_id: int) -> list[dict[str, Any]]:
    with runtime.database.connect() as connection:
        query = (
            select(messages)
            .where(messages.c.enrollment_id == enrollment_id)
            .order_by(messages.c.id)
        )
        return [dict(r) for r in connection.execute(query).mappings()]


def run_until_waiting(runner: StepRunner, runtime: Runtime, enrollment_id: int) -> dt.datetime:
    """Run at the enrollment's next run time; the new next run time."""
    at = enrollment(runtime, enrollment_id)["next_run_at"]
    runner.run(runtime.database, enrollment_id, at)
    wake: dt.datetime = enrollment(runtime, enrollment_id)["next_run_at"]
    return wake


def test_an_outreach_thread_runs_in_business_hours_with_its_follow_ups_threaded(
    runtime: Runtime, runner: StepRunner, transport: MemoryTransport
) -> None:
    contact = danish_contact(runtime)
    saturday = dt.datetime(2026, 12, 5, 10, 0, tzinfo=CPH).astimezone(dt.UTC)
    enrollment_id = enroll_one(runtime, "connecting-outreach", contact["id"], saturday)

    # Saturday: the stage step runs, the intro waits for Monday's window
    assert runner.run(runtime.database, enrollment_id, saturday) is RunOutcome.WAITING
    monday = enrollment(runtime, enrollment_id)["next_run_at"].astimezone(CPH)
    assert (monday.date(), monday.weekday()) == (dt.date(2026, 12, 7), 0)
    assert dt.time(8, 30) < monday.time() < dt.time(8, 38)  # opening plus jitter
    assert transport.sent == []
    # Monday: the intro goes out, then the sequence waits 3 business days
    thursday = run_until_waiting(runner, runtime, enrollment_id)
    assert len(transport.sent) == 1
    intro = transport.sent[0]
    assert intro.to.email == contact["email"]
    assert thursday.astimezone(CPH).date() == dt.date(2026, 12, 10)
    # Thursday: the bump, in the intro's thread
    run_until_waiting(runner, runtime, enrollment_id)
    bump = transport.sent[1]
    assert bump.subject == f"Re: {intro.subject}"
    assert bump.header("In-Reply-To") == intro.rfc_message_id
    rows = sent_rows(runtime, enrollment_id)
    assert [(r["step_id"], r["status"]) for r in rows] == [("intro", "sent"), ("bump", "sent")]
    assert (
        rows[0]["public_id"] == intro.message_id
        and rows[0]["rfc_message_id"] == intro.rfc_message_id
    )
    # the sequence's own stage step moved the contact on, and is in the history
    with runtime.database.connect() as connection:
        stage = connection.execute(select(contacts.c.stage).where(
            contacts.c.id == contact["id"])).scalar_one()  # fmt: skip
        by_sequence = (stage_history.c.contact_id == contact["id"]) & (
            stage_history.c.cause == "sequence"
        )
        causes = connection.execute(select(stage_history.c.cause).where(by_sequence)).all()
    assert stage == "connecting" and len(causes) == 1
    # the breakup, then the enrollment is complete
    run_until_waiting(runner, runtime, enrollment_id)
    final = enrollment(runtime, enrollment_id)
    assert [m.custom_args["step"] for m in transport.sent] == ["intro", "bump", "breakup"]
    assert final["status"] == "completed" and final["ended_at"] is not None


def test_a_reply_ends_the_enrollment_before_the_next_step(
    runtime: Runtime, runner: StepRunner, transport: MemoryTransport
) -> None:
    contact = danish_contact(runtime)
    enrollment_id = enroll_one(runtime, "connecting-outreach", contact["id"], MONDAY_MORNING)
    runner.run(runtime.database, enrollment_id, MONDAY_MORNING)
    with runtime.database.begin() as connection:
        connection.execute(insert(events).values(
            provider="test", provider_event_id="r1", kind="replied", contact_id=contact["id"],
            occurred_at=MONDAY_MORNING + dt.timedelta(hours=2), detail={},
            created_at=MONDAY_MORNING))  # fmt: skip

    run_until_waiting(runner, runtime, enrollment_id)

    final = enrollment(runtime, enrollment_id)
    assert (final["status"], final["exit_reason"]) == ("exited", "replied")
    assert len(transport.sent) == 1


def test_a_refused_hand_off_is_retried_with_the_same_message(
    runtime: Runtime, runner: StepRunner, transport: MemoryTransport
) -> None:
    contact = danish_contact(runtime)
    enrollment_id = enroll_one(runtime, "qualification-follow-up", contact["id"], MONDAY_MORNING)
    transport.fail_next(RetryableError("429 Too Many Requests", retry_after=30))

    assert runner.run(runtime.database, enrollment_id, MONDAY_MORNING) is RunOutcome.WAITING
    retry_at = enrollment(runtime, enrollment_id)["next_run_at"]
    first = sent_rows(runtime, enrollment_id)
    run_until_waiting(runner, runtime, enrollment_id)
    second = sent_rows(runtime, enrollment_id)

    assert retry_at == MONDAY_MORNING + dt.timedelta(seconds=30)
    assert [(r["status"], r["attempts"]) for r in first] == [("retry", 1)]
    assert [(r["status"], r["attempts"]) for r in second] == [("sent", 2)]
    assert first[0]["public_id"] == second[0]["public_id"] == transport.sent[0].message_id


class _CannotTell(MemoryTransport):
    """A transport with no record to ask (like SMTP)."""

    def reconcile(self, message_id: str) -> bool | None:
        return None


def test_an_ambiguous_hand_off_is_never_resent_blindly(runtime: Runtime) -> None:
    transport = _CannotTell()
    runner = make_runner(runtime, transport)
    contact = danish_contact(runtime)
    enrollment_id = enroll_one(runtime, "qualification-follow-up", contact["id"], MONDAY_MORNING)
    transport.fail_next(AmbiguousError("read timeout after the request was sent"))

    assert runner.run(runtime.database, enrollment_id, MONDAY_MORNING) is RunOutcome.PAUSED
    with runtime.database.begin() as connection:  # a person resumes it without checking
        connection.execute(update(enrollments).values(status="active", next_run_at=MONDAY_MORNING))
    again = runner.run(runtime.database, enrollment_id, MONDAY_MORNING + dt.timedelta(minutes=1))

    assert again is RunOutcome.PAUSED
    assert len(transport.sent) == 1  # the provider got it once; it was not sent again
    assert [r["status"] for r in sent_rows(runtime, enrollment_id)] == ["ambiguous"]
    assert "may have been sent" in enrollment(runtime, enrollment_id)["error"]


def test_an_ambiguous_hand_off_the_transport_can_confirm_is_recorded_as_sent(
    runtime: Runtime, runner: StepRunner, transport: MemoryTransport
) -> None:
    contact = danish_contact(runtime)
    enrollment_id = enroll_one(runtime, "qualification-follow-up", contact["id"], MONDAY_MORNING)
    transport.fail_next(AmbiguousError("read timeout after the request was sent"))
    runner.run(runtime.database, enrollment_id, MONDAY_MORNING)
    with runtime.database.begin() as connection:
        connection.execute(update(enrollments).values(status="active", next_run_at=MONDAY_MORNING))

    again = runner.run(runtime.database, enrollment_id, MONDAY_MORNING + dt.timedelta(minutes=1))

    assert again is RunOutcome.WAITING  # reconciled: sent once, on to the wait
    assert len(transport.sent) == 1
    assert [r["status"] for r in sent_rows(runtime, enrollment_id)] == ["sent"]


class _SettledWhileWaiting(_CannotTell):
    """The provider takes the message and its events settle it (sent) before the answer
    times out: SendGrid's ``processed`` event can beat a 10 s timeout."""

    def __init__(self, database: Engine) -> None:
        super().__init__()
        self.database = database

    def send(self, message: OutboundMessage) -> HandOff:
        with self.database.begin() as connection:
            connection.execute(update(messages).values(status="sent")
                               .where(messages.c.public_id == message.message_id))  # fmt: skip
        self.fail_next(AmbiguousError("read timeout after the request was sent"))
        return super().send(message)


def test_a_timed_out_hand_off_the_events_settled_meanwhile_is_not_paused(
    runtime: Runtime,
) -> None:
    transport = _SettledWhileWaiting(runtime.database)
    runner = make_runner(runtime, transport)
    contact = danish_contact(runtime)
    enrollment_id = enroll_one(runtime, "qualification-follow-up", contact["id"], MONDAY_MORNING)

    first = runner.run(runtime.database, enrollment_id, MONDAY_MORNING)
    again = runner.run(runtime.database, enrollment_id, MONDAY_MORNING)

    assert first is RunOutcome.WAITING  # not paused: due again at once
    assert again is RunOutcome.WAITING  # on past the send, to the wait
    assert len(transport.sent) == 1
    assert [r["status"] for r in sent_rows(runtime, enrollment_id)] == ["sent"]
    assert enrollment(runtime, enrollment_id)["status"] == "active"


def test_a_crash_before_the_hand_off_sends_the_message_after_reconciling(
    runtime: Runtime, runner: StepRunner, transport: MemoryTransport
) -> None:
    # Given a message row left "handing_off" by a worker killed before the hand-off
    contact = danish_contact(runtime)
    enrollment_id = enroll_one(runtime, "qualification-follow-up", contact["id"], MONDAY_MORNING)
    with runtime.database.begin() as connection:
        connection.execute(insert(messages).values(
            idempotency_key=f"{enrollment_id}:recap", public_id="crashed0000001",
            enrollment_id=enrollment_id, contact_id=contact["id"], sequence="x", step_id="recap",
            template="qualification/recap", to_email=contact["email"], from_email="o@x",
            subject="s", rfc_message_id="<crashed0000001@x>", status="handing_off",
            attempts=1, created_at=MONDAY_MORNING, updated_at=MONDAY_MORNING))  # fmt: skip

    in_flight = runner.run(runtime.database, enrollment_id, MONDAY_MORNING)
    runner.run(runtime.database, enrollment_id, MONDAY_MORNING + dt.timedelta(minutes=5))

    # Then it is left alone while it might still be under way, and later, since the
    # provider never had it, it is sent, once, with the same id
    assert in_flight is RunOutcome.NOT_DUE
    assert [m.message_id for m in transport.sent] == ["crashed0000001"]
    assert [(r["status"], r["attempts"]) for r in sent_rows(runtime, enrollment_id)] == [
        ("sent", 2)
    ]


def test_a_rejected_address_is_suppressed_and_the_enrollment_ends(
    runtime: Runtime, runner: StepRunner, transport: MemoryTransport
) -> None:
    contact = danish_contact(runtime)
    enrollment_id = enroll_one(runtime, "qualification-follow-up", contact["id"], MONDAY_MORNING)
    transport.fail_next(PermanentError("550 5.1.1 no such user", invalid_address=True))

    assert runner.run(runtime.database, enrollment_id, MONDAY_MORNING) is RunOutcome.EXITED

    with runtime.database.connect() as connection:
        suppressed = connection.execute(select(suppressions.c.email, suppressions.c.reason)).all()
    assert [tuple(s) for s in suppressed] == [(contact["email"], "invalid")]
    assert enrollment(runtime, enrollment_id)["exit_reason"] == "invalid address"
    assert [r["status"] for r in sent_rows(runtime, enrollment_id)] == ["failed"]


def test_running_twice_at_the_same_moment_sends_once(
    runtime: Runtime, runner: StepRunner, transport: MemoryTransport
) -> None:
    contact = danish_contact(runtime)
    enrollment_id = enroll_one(runtime, "qualification-follow-up", contact["id"], MONDAY_MORNING)

    first = runner.run(runtime.database, enrollment_id, MONDAY_MORNING)
    second = runner.run(runtime.database, enrollment_id, MONDAY_MORNING)

    assert (first, second) == (RunOutcome.WAITING, RunOutcome.NOT_DUE)
    assert len(transport.sent) == 1


def test_a_suppressed_contact_is_never_sent_to(
    runtime: Runtime, runner: StepRunner, transport: MemoryTransport
) -> None:
    contact = danish_contact(runtime)
    enrollment_id = enroll_one(runtime, "qualification-follow-up", contact["id"], MONDAY_MORNING)
    with runtime.database.begin() as connection:
        connection.execute(insert(suppressions).values(
            email=contact["email"], reason="unsubscribed", source="test",
            created_at=MONDAY_MORNING))  # fmt: skip

    assert runner.run(runtime.database, enrollment_id, MONDAY_MORNING) is RunOutcome.EXITED
    assert transport.sent == []
    assert enrollment(runtime, enrollment_id)["exit_reason"] == "suppressed"


def test_pause_resume_and_stop_by_hand(
    runtime: Runtime, runner: StepRunner, transport: MemoryTransport, workspace: Path
) -> None:
    from _support import explain, invoke, json_output

    contact = danish_contact(runtime)
    enrollment_id = enroll_one(runtime, "qualification-follow-up", contact["id"], MONDAY_MORNING)
    email = contact["email"]

    paused = invoke("enrollments", "pause", "--contact", email, "--workspace", workspace)
    skipped = runner.run(runtime.database, enrollment_id, MONDAY_MORNING)
    sent_while_paused = len(transport.sent)
    resumed = invoke("enrollments", "resume", "--contact", email, "--sequence",
                     "qualification-follow-up", "--workspace", workspace)  # fmt: skip
    # resuming makes it due now; run it inside the send window, whatever the time of day
    ran = runner.run(runtime.database, enrollment_id, _a_monday_morning_after_now())
    stopped = invoke("enrollments", "stop", "--sequence", "qualification-follow-up", "--json",
                     "--workspace", workspace)  # fmt: skip
    shown = invoke("contacts", "show", email, "--json", "--workspace", workspace)

    assert paused.exit_code == 0 and "paused 1 enrollment(s)" in paused.output, explain(paused)
    assert skipped is RunOutcome.NOT_DUE and sent_while_paused == 0
    assert resumed.exit_code == 0 and "resumed 1 enrollment(s)" in resumed.output
    assert ran is not RunOutcome.NOT_DUE and len(transport.sent) == 1
    assert json_output(stopped) == {"action": "stop", "changed": 1}
    view = json_output(shown)
    assert [(e["status"], e["exit_reason"]) for e in view["enrollments"]] == [("exited", "stopped")]
    assert [(m["step_id"], m["status"]) for m in view["messages"]] == [("recap", "sent")]
    nothing = invoke("enrollments", "pause", "--workspace", workspace)
    assert nothing.exit_code == 1 and "give --sequence NAME, --contact EMAIL" in nothing.output


def _a_monday_morning_after_now() -> dt.datetime:
    """10:00 in Copenhagen on a Monday after today (resuming makes an enrollment due now)."""
    day = dt.datetime.now(CPH).date() + dt.timedelta(days=1)
    while day.weekday() != 0 or is_holiday(day, "DK"):
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(10), CPH).astimezone(dt.UTC)


def test_a_contact_gets_at_most_one_email_in_48_hours_across_sequences(
    runtime: Runtime, runner: StepRunner, transport: MemoryTransport
) -> None:
    contact = danish_contact(runtime)
    first = enroll_one(runtime, "qualification-follow-up", contact["id"], MONDAY_MORNING)
    second = enroll_one(runtime, "customer-nurture", contact["id"], MONDAY_MORNING)

    runner.run(runtime.database, first, MONDAY_MORNING)
    outcome = runner.run(runtime.database, second, MONDAY_MORNING + dt.timedelta(hours=1))

    assert outcome is RunOutcome.WAITING and len(transport.sent) == 1
    wake = enrollment(runtime, second)["next_run_at"]
    assert wake >= MONDAY_MORNING + dt.timedelta(hours=48)
    assert wake.astimezone(CPH).date() == dt.date(2026, 12, 9)  # Wednesday, in its window


def test_an_owner_daily_cap_moves_the_rest_to_the_next_day(
    runtime: Runtime, transport: MemoryTransport
) -> None:
    capped = make_runner(runtime, transport, limits=SendLimits(None, owner_daily_cap=2))
    with runtime.database.connect() as connection:
        owner_id = connection.execute(select(contacts.c.owner_id).where(
            contacts.c.timezone == "Europe/Copenhagen").limit(1)).scalar_one()  # fmt: skip
        same_owner = connection.execute(select(contacts.c.id).where(
            contacts.c.owner_id == owner_id, contacts.c.timezone == "Europe/Copenhagen")
            .order_by(contacts.c.id).limit(3)).scalars().all()  # fmt: skip
    ids = [enroll_one(runtime, "customer-nurture", c, MONDAY_MORNING) for c in same_owner]

    outcomes = [capped.run(runtime.database, i, MONDAY_MORNING) for i in ids]

    assert len(transport.sent) == 2
    assert outcomes[2] is RunOutcome.WAITING
    assert enrollment(runtime, ids[2])["next_run_at"].astimezone(CPH).date() == dt.date(2026, 12, 8)


def test_a_throttled_domain_waits_and_then_sends(
    runtime: Runtime, transport: MemoryTransport
) -> None:
    class OnceBusy:
        def __init__(self) -> None:
            self.asked: list[str] = []

        def admit(self, recipient_domains: Sequence[str]) -> list[dt.timedelta | None]:
            self.asked.extend(recipient_domains)
            busy = len(self.asked) == 1
            return [dt.timedelta(seconds=90) if busy else None for _ in recipient_domains]

    throttle = OnceBusy()
    throttled = make_runner(runtime, transport, throttle=throttle)
    contact = danish_contact(runtime)
    enrollment_id = enroll_one(runtime, "qualification-follow-up", contact["id"], MONDAY_MORNING)

    first = throttled.run(runtime.database, enrollment_id, MONDAY_MORNING)
    wake = enrollment(runtime, enrollment_id)["next_run_at"]
    throttled.run(runtime.database, enrollment_id, wake)

    assert first is RunOutcome.WAITING
    assert (
        MONDAY_MORNING + dt.timedelta(seconds=90)
        <= wake
        <= MONDAY_MORNING + dt.timedelta(minutes=10)
    )
    assert throttle.asked == [contact["email"].rpartition("@")[2]] * 2
    assert len(transport.sent) == 1


def test_a_reply_from_a_colleague_pauses_outreach_at_the_same_account(
    runtime: Runtime, runner: StepRunner, transport: MemoryTransport
) -> None:
    with runtime.database.connect() as connection:
        account_id, first, second = connection.execute(
            select(contacts.c.account_id, func.min(contacts.c.id), func.max(contacts.c.id))
            .where(contacts.c.timezone == "Europe/Copenhagen")
            .group_by(contacts.c.account_id).having(func.count() > 1).limit(1)
        ).one()  # fmt: skip
        colleague_email = connection.execute(
            select(contacts.c.email).where(contacts.c.id == second)).scalar_one()  # fmt: skip
    enrollment_id = enroll_one(runtime, "connecting-outreach", first, MONDAY_MORNING)
    runner.run(runtime.database, enrollment_id, MONDAY_MORNING)
    with runtime.database.begin() as connection:
        connection.execute(insert(events).values(
            provider="test", provider_event_id="colleague", kind="replied", contact_id=second,
            occurred_at=MONDAY_MORNING + dt.timedelta(hours=3), detail={},
            created_at=MONDAY_MORNING))  # fmt: skip

    outcome = run_until_waiting(runner, runtime, enrollment_id)

    row = enrollment(runtime, enrollment_id)
    assert outcome is None and row["status"] == "paused"
    assert row["error"] == f"{colleague_email} at the same account replied (account_stop)"
    assert account_id is not None and len(transport.sent) == 1


def test_a_notify_step_calls_a_signed_webhook_once(runtime: Runtime, workspace: Path) -> None:
    import http.server
    import threading

    from engine.sequences.notify import Notifier, verify_signature

    received: list[tuple[dict[str, str], bytes]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = workspace / "config" / "sequences" / "negotiation-check-in.yaml"
        url = f"http://127.0.0.1:{server.server_port}/task"
        note = "Negotiation check-in sent three days ago and no reply yet."
        old = f'{{notify: owner, message: "{note}"}}'
        replace_once_in(path, old, f'{{notify: {{webhook: "{url}"}}, message: "call"}}')
        fresh = Runtime.open(workspace)
        transport = MemoryTransport()
        secret = b"webhook-secret-of-32-bytes-0000000"
        notifier = Notifier(fresh.message_builder(), transport, secret)
        hooked = make_runner(fresh, transport, notifier=notifier)
        contact = danish_contact(fresh)
        enrollment_id = enroll_one(fresh, "negotiation-check-in", contact["id"], MONDAY_MORNING)
        hooked.run(fresh.database, enrollment_id, MONDAY_MORNING + dt.timedelta(days=1))
        wake = enrollment(fresh, enrollment_id)["next_run_at"]
        hooked.run(fresh.database, enrollment_id, wake)
        hooked.run(fresh.database, enrollment_id, wake + dt.timedelta(days=1))
        fresh.close()
    finally:
        server.shutdown()
        server.server_close()

    assert len(received) == 1  # once, though the enrollment ran again afterwards
    headers, body = received[0]
    assert verify_signature(secret, headers["X-Salescycle-Timestamp"], body,
                            headers["X-Salescycle-Signature"])  # fmt: skip
    assert not verify_signature(b"another-secret-of-32-bytes-000000", headers[
        "X-Salescycle-Timestamp"], body, headers["X-Salescycle-Signature"])  # fmt: skip
    assert b'"message":"call"' in body and contact["email"].encode() in body
    assert enrollment(runtime, enrollment_id)["status"] == "completed"


def replace_once_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


class _TimedOutUnseen(_CannotTell):
    """The answer timed out and the provider never took the message (no event will come)."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts = 1

    def send(self, message: OutboundMessage) -> HandOff:
        if self.timeouts:
            self.timeouts -= 1
            raise AmbiguousError("read timeout after the request was sent")
        return super().send(message)


def test_a_hand_off_no_event_confirmed_is_sent_again_once_after_the_wait(
    runtime: Runtime,
) -> None:
    transport = _TimedOutUnseen()
    runner = make_runner(runtime, transport)
    contact = danish_contact(runtime)
    enrollment_id = enroll_one(runtime, "qualification-follow-up", contact["id"], MONDAY_MORNING)
    assert runner.run(runtime.database, enrollment_id, MONDAY_MORNING) is RunOutcome.PAUSED
    [paused] = sent_rows(runtime, enrollment_id)
    soon, later = MONDAY_MORNING + dt.timedelta(minutes=5), MONDAY_MORNING + dt.timedelta(hours=1)

    with runtime.database.begin() as connection:
        too_soon = retry_unconfirmed(connection, MONDAY_MORNING - dt.timedelta(minutes=30), soon)
    with runtime.database.begin() as connection:
        resent = retry_unconfirmed(connection, later - dt.timedelta(minutes=30), later)
    again = runner.run(runtime.database, enrollment_id, later)

    assert (too_soon, resent) == (0, 1)
    assert again is RunOutcome.WAITING  # sent, on to the wait
    [message] = transport.sent
    assert message.message_id == paused["public_id"]  # the same ids: a late event matches
    [row] = sent_rows(runtime, enrollment_id)
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert enrollment(runtime, enrollment_id)["status"] == "active"


def test_only_sendgrid_with_its_event_webhook_resends_unconfirmed_hand_offs(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.devtools import EventSigner
    from workers.chores import standard_chores

    def chores() -> list[str]:
        opened = Runtime.open(workspace)
        try:
            upgrade(opened.database)
            return [chore.name for chore in standard_chores(opened, lambda ids: None)]
        finally:
            opened.close()

    outbox = chores()
    monkeypatch.setenv("SALESCYCLE_SENDING__TRANSPORT", "sendgrid")
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.test")
    without_events = chores()
    monkeypatch.setenv("SALESCYCLE_SENDGRID_WEBHOOK_PUBLIC_KEY", EventSigner().public_key_base64)

    assert "unconfirmed hand-offs" not in outbox + without_events
    assert "unconfirmed hand-offs" in chores()
