"""Running enrollments forward: exit rules, then steps until a wait, a window or the end.

A worker runs the enrollments of a broker message as one batch: the facts they need are
read in a few statements (``RunBatch``), the messages they send are written before the
hand-off in one statement, and what the hand-offs did is recorded in one transaction.

Exactly once: a send first writes its message row (keyed by enrollment and step) and
commits, then hands the message off, then records the provider's answer. A run that
finds the row already there knows what happened before it:

- ``sent``: a previous run handed it off and crashed before moving on; move on;
- ``retry``: the provider refused it; hand the same message (same ids) off again;
- ``handing_off`` or ``ambiguous``: it may have gone out; the enrollment is paused for
  a person to check (events from the provider settle it once [5/8] reads them), never
  resent blindly.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine, exists, select, update
from sqlalchemy.exc import SQLAlchemyError

from engine.delivery.message import Address, OutboundMessage, new_message_id
from engine.delivery.transport import (
    HandOff,
    HandOffError,
    PermanentError,
    RetryableError,
    Transport,
)
from engine.segments.compiler import SegmentCompiler
from engine.sequences.batch import EnrollmentWrites, RunBatch
from engine.sequences.limits import NoThrottle, SendLimits, Throttle
from engine.sequences.model import (
    ExitStep,
    NotifyStep,
    SendStep,
    Sequence,
    StageStep,
    WaitStep,
)
from engine.sequences.notify import Notifier
from engine.sequences.program import Branch, Jump, Program
from engine.sequences.records import (
    Enrolled,
    MessageStatus,
    RunOutcome,
    end_outcome,
    ended,
    held,
    in_flight,
    insert_messages,
    is_due,
    message_ambiguous,
    message_failed,
    message_row,
    move_stage,
    moved,
    paused,
    rearm_message,
    suppress,
    thread_parent,
)
from engine.sequences.variants import choose_variant
from engine.sequences.windows import add_business_days, contact_timezone, next_open, schedule
from engine.storage.bulk import update_rows
from engine.storage.schema import contacts, messages
from engine.templating import (
    MessageBuilder,
    MessageIdentity,
    Recipient,
    SendRequest,
    TemplateRenderError,
)
from engine.vocabulary import EnrollmentStatus

log = logging.getLogger("salescycle.runner")
MAX_INSTRUCTIONS_PER_RUN = 200  # a loop of branches must not spin forever
RETRY_BACKOFF = (dt.timedelta(minutes=1), dt.timedelta(minutes=5), dt.timedelta(minutes=30),
                 dt.timedelta(hours=2), dt.timedelta(hours=6))  # fmt: skip


@dataclass
class _Run:
    """One enrollment on its way through a batch: where it is, and how it ended if it did."""

    enrolled: Enrolled
    program: Program
    index: int
    outcome: RunOutcome | None = None
    instructions: int = 0


@dataclass
class _HandOff:
    """A message written and committed, to be handed to the transport."""

    run: _Run
    step: SendStep
    message: OutboundMessage
    row: dict[str, Any]


class StepRunner:
    """Runs enrollments' steps; one instance per worker, safe to call again for the same id."""

    def __init__(
        self,
        programs: Mapping[str, Program],
        builder: MessageBuilder,
        transport: Transport,
        compiler: Callable[[dt.datetime], SegmentCompiler],
        default_timezone: str,
        limits: SendLimits | None = None,
        throttle: Throttle | None = None,
        retry_backoff: tuple[dt.timedelta, ...] = RETRY_BACKOFF,
        handoff_grace: dt.timedelta = dt.timedelta(seconds=30),
        notifier: Notifier | None = None,
    ) -> None:
        self.programs = programs
        self.builder = builder
        self.transport = transport
        self.compiler = compiler
        self.default_timezone = default_timezone
        self.limits = limits or SendLimits()
        self.throttle = throttle or NoThrottle()
        self.retry_backoff = retry_backoff
        # A hand-off younger than this may still be under way in another run: leave it.
        self.handoff_grace = handoff_grace
        self.notifier = notifier or Notifier(builder, transport, secrets.token_bytes(32))
        self._sequences = {name: program.sequence for name, program in programs.items()}

    def run(self, database: Engine, enrollment_id: int, now: dt.datetime) -> RunOutcome:
        """Move one enrollment on as far as it can go at ``now``."""
        return self.run_many(database, [enrollment_id], now)[enrollment_id]

    def run_many(
        self, database: Engine, enrollment_ids: Collection[int], now: dt.datetime
    ) -> dict[int, RunOutcome]:
        """Move each enrollment on as far as it can go at ``now``; what each run did."""
        outcomes = dict.fromkeys(enrollment_ids, RunOutcome.NOT_DUE)
        writes = EnrollmentWrites()
        with database.begin() as connection:
            batch = RunBatch.read(connection, enrollment_ids, self._sequences, self._sender,
                                  self.limits, now)  # fmt: skip
            runs = []
            for enrolled in batch.enrolled:
                name = str(enrolled.row["sequence"])
                program = self.programs.get(name)
                if not is_due(enrolled.row, now):
                    continue
                if program is None:
                    why = f"sequence '{name}' no longer exists in config/sequences/"
                    writes.change(enrolled.id, paused(why, now))
                    outcomes[enrolled.id] = RunOutcome.PAUSED
                    continue
                runs.append(self._start(batch, writes, enrolled, program, now))
            hand_offs = self._advance(connection, batch, writes, runs, now)
            writes.flush(connection)
        while hand_offs:
            handed = [(h, self._try_hand_off(h)) for h in hand_offs]
            with database.begin() as connection:
                going_on = self._record(connection, batch, writes, handed, now)
                hand_offs = self._advance(connection, batch, writes, going_on, now)
                writes.flush(connection)
        for run in runs:
            outcomes[run.enrolled.id] = run.outcome or RunOutcome.NOT_DUE
        return outcomes

    def _start(
        self, batch: RunBatch, writes: EnrollmentWrites, enrolled: Enrolled, program: Program,
        now: dt.datetime,
    ) -> _Run:  # fmt: skip
        """The run of a due enrollment; already ended when an exit rule or a colleague's
        reply stops it."""
        run = _Run(enrolled, program, int(enrolled.row["step_index"]))
        reason = batch.exit_reason(enrolled, program.sequence)
        if reason is not None:
            self._finish(writes, run, ended(EnrollmentStatus.EXITED, reason, now))
        elif (colleague := batch.colleague_replied(enrolled, program.sequence)) is not None:
            why = f"{colleague} at the same account replied (account_stop)"
            self._finish(writes, run, paused(why, now))
        return run

    def _advance(
        self, connection: Connection, batch: RunBatch, writes: EnrollmentWrites,
        runs: list[_Run], now: dt.datetime,
    ) -> list[_HandOff]:  # fmt: skip
        """Run each enrollment's instructions up to a send; write the messages to send."""
        prepared: list[_HandOff] = []
        for run in runs:
            try:
                hand_off = self._until_send(connection, batch, writes, run, now)
            except SQLAlchemyError:
                raise  # the transaction is lost: the whole batch is claimed again later
            except Exception:
                # one enrollment's bug must not hold up the batch: it stays where it was
                # (its claim runs out and it is handed out again) and the error is logged
                log.exception("enrollment %s failed; it will be claimed again", run.enrolled.id)
                writes.discard(run.enrolled.id)
                run.outcome = RunOutcome.NOT_DUE
                continue
            if hand_off is not None:
                prepared.append(hand_off)
        return self._claim(connection, batch, writes, self._admit(writes, prepared, now), now)

    def _until_send(
        self, connection: Connection, batch: RunBatch, writes: EnrollmentWrites, run: _Run,
        now: dt.datetime,
    ) -> _HandOff | None:  # fmt: skip
        """One enrollment's instructions up to its next send (or until it waits or ends)."""
        while run.outcome is None:
            run.instructions += 1
            if run.instructions > MAX_INSTRUCTIONS_PER_RUN:
                self._finish(writes, run, paused("too many steps in one run (a loop?)", now))
                break
            instruction = run.program.at(run.index)
            if instruction is None:
                self._finish(writes, run, ended(EnrollmentStatus.COMPLETED, None, now))
            elif isinstance(instruction, SendStep):
                hand_off = self._prepare(connection, batch, writes, run, instruction, now)
                if hand_off is not None:
                    return hand_off
            else:
                self._instruction(connection, writes, run, now)
        return None

    def _instruction(
        self, connection: Connection, writes: EnrollmentWrites, run: _Run, now: dt.datetime
    ) -> None:
        """Every instruction but a send."""
        enrolled, sequence = run.enrolled, run.program.sequence
        instruction = run.program.at(run.index)
        if isinstance(instruction, WaitStep):
            wake = self._wake(instruction, enrolled, sequence, now)
            self._finish(writes, run, moved(run.index + 1, instruction.id, wake, now))
            return
        if isinstance(instruction, Branch):
            holds = self._holds(connection, instruction.condition, enrolled, now)
            run.index = run.index + 1 if holds else instruction.otherwise
            return
        if isinstance(instruction, Jump):
            run.index = instruction.target
            return
        if isinstance(instruction, StageStep):
            move_stage(connection, enrolled, instruction.stage, now)
        elif isinstance(instruction, NotifyStep):
            try:
                self.notifier.notify(connection, enrolled.id, enrolled.contact, enrolled.owner,
                                     sequence, instruction, now)  # fmt: skip
            except HandOffError as exc:
                wake = now + self.retry_backoff[0]
                values = {**moved(run.index, instruction.id, wake, now), "error": f"notify: {exc}"}
                self._finish(writes, run, values)
                return
        elif isinstance(instruction, ExitStep):
            self._finish(writes, run, ended(EnrollmentStatus.EXITED, instruction.reason, now))
            return
        step_id = instruction.id if instruction else None
        run.index += 1
        writes.change(enrolled.id, moved(run.index, step_id, now, now))

    # sending ---------------------------------------------------------------------

    def _prepare(
        self, connection: Connection, batch: RunBatch, writes: EnrollmentWrites, run: _Run,
        step: SendStep, now: dt.datetime,
    ) -> _HandOff | None:  # fmt: skip
        """The message this send step hands off now; ``None`` when the run moved past the
        step or stopped at it instead."""
        enrolled, sequence = run.enrolled, run.program.sequence
        if step.when is not None and not self._holds(connection, step.when, enrolled, now):
            run.index += 1
            writes.change(enrolled.id, moved(run.index, step.id, now, now))
            return None
        if batch.is_suppressed(str(enrolled.contact["email"])):
            self._finish(writes, run, ended(EnrollmentStatus.EXITED, "suppressed", now))
            return None
        wake = self._deferred(batch, enrolled, sequence, step, now)
        if wake is not None:
            self._finish(writes, run, moved(run.index, step.id, wake, now), RunOutcome.WAITING)
            return None
        existing = batch.message(enrolled.id, step.id)
        if in_flight(existing, now - self.handoff_grace):
            run.outcome = RunOutcome.NOT_DUE  # another run is handing it off right now
            return None
        existing = self._settled(connection, batch, existing, now)
        if existing is not None and existing["status"] == MessageStatus.SENT:
            run.index += 1
            writes.change(enrolled.id, moved(run.index, step.id, now, now))
            return None
        if existing is not None and existing["status"] != MessageStatus.RETRY:
            self._finish(writes, run, paused(held(existing), now))
            return None
        try:
            message = self._build(batch, enrolled, sequence, step, existing, now)
        except TemplateRenderError as exc:
            self._finish(writes, run, paused(str(exc), now))
            return None
        batch.count_send(int(enrolled.contact["id"]), self._sender(enrolled), now)
        return _HandOff(run, step, message, message_row(enrolled, step, message, existing, now))

    def _admit(
        self, writes: EnrollmentWrites, prepared: list[_HandOff], now: dt.datetime
    ) -> list[_HandOff]:
        """The sends the throttles let through now; the others wait for them."""
        domains = [h.message.to.email.rpartition("@")[2] for h in prepared]
        admitted = []
        for hand_off, delay in zip(prepared, self.throttle.admit(domains), strict=True):
            if delay is None:
                admitted.append(hand_off)
                continue
            run, step = hand_off.run, hand_off.step
            # a throttled send goes as soon as the throttle allows (no jitter: it is not
            # the window's opening), unless the window closes meanwhile
            tz, country = self._zone(run.enrolled, run.program.sequence)
            window, later = run.program.sequence.window, now + delay
            if next_open(window, later, tz, country) > later:
                later = schedule(window, later, tz, country, f"{run.enrolled.id}:{step.id}")
            self._finish(writes, run, moved(run.index, step.id, later, now), RunOutcome.WAITING)
        return admitted

    def _claim(
        self, connection: Connection, batch: RunBatch, writes: EnrollmentWrites,
        prepared: list[_HandOff], now: dt.datetime,
    ) -> list[_HandOff]:  # fmt: skip
        """Write the prepared messages' rows; the ones this run got to hand off."""
        new = [h for h in prepared if "id" not in h.row]
        written = insert_messages(connection, [h.row for h in new])
        claimed = []
        for hand_off in prepared:
            key = str(hand_off.row["idempotency_key"])
            existing = batch.messages.get(key)
            if existing is not None and rearm_message(connection, existing, hand_off.row):
                claimed.append(hand_off)
            elif existing is None and key in written:
                hand_off.row["id"] = written[key]
                claimed.append(hand_off)
            else:
                hand_off.run.outcome = RunOutcome.NOT_DUE  # another run got there first
            batch.messages[key] = hand_off.row
        return claimed

    def _build(
        self, batch: RunBatch, enrolled: Enrolled, sequence: Sequence, step: SendStep,
        existing: Mapping[str, Any] | None, now: dt.datetime,
    ) -> OutboundMessage:  # fmt: skip
        public_id = str(existing["public_id"]) if existing else new_message_id()
        variant = choose_variant(step.variants, int(enrolled.contact["id"]), sequence.name, step.id)
        request = SendRequest(
            step.template, variant, Recipient(enrolled.contact, enrolled.account, enrolled.owner),
            MessageIdentity(public_id, enrolled.id, sequence.name, step.id), sequence.format,
            thread=thread_parent(batch.message(enrolled.id, step.thread)),
        )  # fmt: skip
        message = self.builder.build(request, now)
        if sequence.sender is not None:
            message = _with_sender(message, sequence.sender.name, sequence.sender.email)
        return message

    def _try_hand_off(self, hand_off: _HandOff) -> HandOff | HandOffError:
        try:
            return self.transport.send(hand_off.message)
        except HandOffError as exc:
            return exc

    def _record(
        self, connection: Connection, batch: RunBatch, writes: EnrollmentWrites,
        handed: list[tuple[_HandOff, HandOff | HandOffError]], now: dt.datetime,
    ) -> list[_Run]:  # fmt: skip
        """Record what the transport did with each message; the runs that go on."""
        sent_rows: dict[int, dict[str, Any]] = {}
        going_on = []
        for hand_off, result in handed:
            run, step = hand_off.run, hand_off.step
            if isinstance(result, HandOffError):
                self._refused(connection, batch, writes, hand_off, result, now)
                continue
            sent = {"status": MessageStatus.SENT, "transport": result.transport,
                    "sent_at": now, "provider_message_id": result.provider_message_id,
                    "updated_at": now}  # fmt: skip
            sent_rows[int(hand_off.row["id"])] = sent
            batch.messages[str(hand_off.row["idempotency_key"])] = {**hand_off.row, **sent}
            run.index += 1
            writes.change(run.enrolled.id, moved(run.index, step.id, now, now))
            going_on.append(run)
        update_rows(connection, messages, sent_rows)
        return going_on

    def _refused(
        self, connection: Connection, batch: RunBatch, writes: EnrollmentWrites,
        hand_off: _HandOff, error: HandOffError, now: dt.datetime,
    ) -> None:  # fmt: skip
        run, step, row_id = hand_off.run, hand_off.step, int(hand_off.row["id"])
        message_id, email = hand_off.message.message_id, str(run.enrolled.contact["email"])
        if isinstance(error, RetryableError):
            attempts = message_failed(connection, row_id, MessageStatus.RETRY, str(error), now)
            delay = dt.timedelta(seconds=error.retry_after) if error.retry_after else None
            backoff = self.retry_backoff[min(attempts, len(self.retry_backoff)) - 1]
            wake = now + (delay or backoff)
            self._finish(writes, run, moved(run.index, step.id, wake, now), RunOutcome.WAITING)
        elif isinstance(error, PermanentError) and error.invalid_address:
            message_failed(connection, row_id, MessageStatus.FAILED, str(error), now)
            suppress(connection, email, "invalid", str(error), now)
            batch.suppressed.add(email.lower())
            self._finish(writes, run, ended(EnrollmentStatus.EXITED, "invalid address", now))
        elif isinstance(error, PermanentError):
            message_failed(connection, row_id, MessageStatus.FAILED, str(error), now)
            why = f"the provider refused {message_id}: {error}"
            self._finish(writes, run, paused(why, now))
        elif not message_ambiguous(connection, row_id, str(error), now):
            # the provider's events settled it (sent) before its answer timed out: run the
            # enrollment again at once, and it moves on past the step
            self._finish(writes, run, moved(run.index, step.id, now, now), RunOutcome.WAITING)
        else:  # ambiguous, or a hand-off error of a kind this runner does not know
            why = f"message {message_id} may have been sent ({error}); check, then resume"
            self._finish(writes, run, paused(why, now))

    def _finish(
        self, writes: EnrollmentWrites, run: _Run, values: Mapping[str, Any],
        outcome: RunOutcome | None = None,
    ) -> None:  # fmt: skip
        """Write the run's last change and say how it ended (from the change unless given)."""
        writes.change(run.enrolled.id, values)
        status = values.get("status")
        if outcome is not None:
            run.outcome = outcome
        elif status == EnrollmentStatus.PAUSED:
            run.outcome = RunOutcome.PAUSED
        elif status is not None:
            run.outcome = end_outcome(EnrollmentStatus(status))
        else:
            run.outcome = RunOutcome.WAITING

    # helpers that need the runner's settings ---------------------------------------------

    def _settled(
        self, connection: Connection, batch: RunBatch, existing: dict[str, Any] | None,
        now: dt.datetime,
    ) -> dict[str, Any] | None:  # fmt: skip
        """An unfinished hand-off (a crash, a timeout) reconciled with the transport.

        Taken: it is recorded as sent. Certainly not taken: it is sent again, same ids.
        Unknown (SMTP; SendGrid until its events arrive): it stays, and the enrollment
        is paused for a person.
        """
        unfinished = (MessageStatus.HANDING_OFF, MessageStatus.AMBIGUOUS)
        if existing is None or existing["status"] not in unfinished:
            return existing
        taken = self.transport.reconcile(str(existing["public_id"]))
        if taken is None:
            return existing
        status = MessageStatus.SENT if taken else MessageStatus.RETRY
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if taken:
            values.update(sent_at=now, transport=self.transport.name)
        connection.execute(update(messages).where(messages.c.id == existing["id"]).values(**values))
        settled = {**existing, **values}
        batch.messages[str(existing["idempotency_key"])] = settled
        return settled

    def _deferred(
        self, batch: RunBatch, enrolled: Enrolled, sequence: Sequence, step: SendStep,
        now: dt.datetime,
    ) -> dt.datetime | None:  # fmt: skip
        """When a send must wait for its window or the caps; ``None``: send now."""
        tz, country = self._zone(enrolled, sequence)
        key = f"{enrolled.id}:{step.id}"
        allowed = batch.allowed_at(self.limits, int(enrolled.contact["id"]),
                                   self._sender(enrolled), now)  # fmt: skip
        if allowed is not None:
            return schedule(sequence.window, allowed, tz, country, key)
        if next_open(sequence.window, now, tz, country) > now:
            return schedule(sequence.window, now, tz, country, key)
        return None

    def _sender(self, enrolled: Enrolled) -> str:
        """The address an enrollment's emails go out from (counted by the daily cap)."""
        program = self.programs.get(str(enrolled.row["sequence"]))
        if program is not None and program.sequence.sender is not None:
            return program.sequence.sender.email
        owner = enrolled.owner or {}
        return str(owner.get("email") or self.builder.fallback_sender.email)

    def _zone(self, enrolled: Enrolled, sequence: Sequence) -> tuple[Any, str | None]:
        country = enrolled.account.get("country") if enrolled.account else None
        tz = contact_timezone(sequence.timezone or enrolled.contact.get("timezone"), country,
                              None, self.default_timezone)  # fmt: skip
        return tz, country

    def _wake(
        self, step: WaitStep, enrolled: Enrolled, sequence: Sequence, now: dt.datetime
    ) -> dt.datetime:
        if step.until is not None:
            return max(step.until, now)
        if step.business_days is not None:
            tz, country = self._zone(enrolled, sequence)
            return add_business_days(now, step.business_days, tz, country, sequence.window.days)
        return now + (step.duration or dt.timedelta())

    def _holds(
        self, connection: Connection, condition: Any, enrolled: Enrolled, now: dt.datetime
    ) -> bool:
        members = (
            self.compiler(now).members_of(condition).where(contacts.c.id == enrolled.contact["id"])
        )
        return connection.execute(select(exists(members.order_by(None)))).scalar_one() is True


def _with_sender(message: OutboundMessage, name: str, email: str) -> OutboundMessage:
    return replace(
        message, sender=Address(email, name), reply_to=Address(message.reply_to.email, name)
    )
