"""Running one enrollment forward: exit rules, then steps until a wait, a window or the end.

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
import secrets
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Engine, exists, select, update

from engine.delivery.message import Address, OutboundMessage, new_message_id
from engine.delivery.transport import (
    AmbiguousError,
    HandOffError,
    PermanentError,
    RetryableError,
    Transport,
)
from engine.segments.compiler import SegmentCompiler
from engine.sequences.limits import NoThrottle, SendLimits, Throttle, earliest_allowed
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
    claim_message,
    colleague_replied,
    end,
    exit_reason,
    held,
    in_flight,
    is_due,
    load,
    message_failed,
    message_for,
    move,
    move_stage,
    pause,
    suppress,
    suppressed,
    thread_parent,
)
from engine.sequences.variants import choose_variant
from engine.sequences.windows import add_business_days, contact_timezone, next_open, schedule
from engine.storage.schema import (
    contacts,
    enrollments,
    messages,
)
from engine.templating import (
    MessageBuilder,
    MessageIdentity,
    Recipient,
    SendRequest,
    TemplateRenderError,
)
from engine.vocabulary import EnrollmentStatus

MAX_INSTRUCTIONS_PER_RUN = 200  # a loop of branches must not spin forever
RETRY_BACKOFF = (dt.timedelta(minutes=1), dt.timedelta(minutes=5), dt.timedelta(minutes=30),
                 dt.timedelta(hours=2), dt.timedelta(hours=6))  # fmt: skip


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

    def run(self, database: Engine, enrollment_id: int, now: dt.datetime) -> RunOutcome:
        """Move one enrollment on as far as it can go at ``now``."""
        with database.begin() as connection:
            enrolled = load(connection, enrollment_id)
            if enrolled is None or not is_due(enrolled.row, now):
                return RunOutcome.NOT_DUE
            program = self.programs.get(str(enrolled.row["sequence"]))
            if program is None:
                return pause(connection, enrolled, f"sequence '{enrolled.row['sequence']}' "
                              "no longer exists in config/sequences/", now)  # fmt: skip
            reason = exit_reason(connection, enrolled, program.sequence)
            if reason is not None:
                return end(connection, enrolled, EnrollmentStatus.EXITED, reason, now)
            colleague = colleague_replied(connection, enrolled, program.sequence)
            if colleague is not None:
                why = f"{colleague} at the same account replied (account_stop)"
                return pause(connection, enrolled, why, now)
        return self._steps(database, enrolled, program, now)

    def _steps(
        self, database: Engine, enrolled: Enrolled, program: Program, now: dt.datetime
    ) -> RunOutcome:
        index = int(enrolled.row["step_index"])
        for _ in range(MAX_INSTRUCTIONS_PER_RUN):
            instruction = program.at(index)
            if instruction is None:
                with database.begin() as connection:
                    return end(connection, enrolled, EnrollmentStatus.COMPLETED, None, now)
            if isinstance(instruction, SendStep):
                outcome, index = self._send(database, enrolled, program, instruction, index, now)
                if outcome is not None:
                    return outcome
                continue
            with database.begin() as connection:
                outcome, index = self._instruction(connection, enrolled, program, index, now)
            if outcome is not None:
                return outcome
        with database.begin() as connection:
            return pause(connection, enrolled, "too many steps in one run (a loop?)", now)

    def _instruction(
        self, connection: Connection, enrolled: Enrolled, program: Program, index: int,
        now: dt.datetime,
    ) -> tuple[RunOutcome | None, int]:  # fmt: skip
        """Every instruction but a send; a returned outcome ends this run."""
        instruction = program.at(index)
        if isinstance(instruction, WaitStep):
            wake = self._wake(instruction, enrolled, program.sequence, now)
            move(connection, enrolled, index + 1, instruction.id, wake, now)
            return RunOutcome.WAITING, index + 1
        if isinstance(instruction, Branch):
            holds = self._holds(connection, instruction.condition, enrolled, now)
            return None, index + 1 if holds else instruction.otherwise
        if isinstance(instruction, Jump):
            return None, instruction.target
        if isinstance(instruction, StageStep):
            move_stage(connection, enrolled, instruction.stage, now)
        elif isinstance(instruction, NotifyStep):
            try:
                self.notifier.notify(connection, enrolled.id, enrolled.contact, enrolled.owner,
                                     program.sequence, instruction, now)  # fmt: skip
            except HandOffError as exc:
                wake = now + self.retry_backoff[0]
                move(connection, enrolled, index, instruction.id, wake, now)
                connection.execute(update(enrollments).where(enrollments.c.id == enrolled.id)
                                   .values(error=f"notify: {exc}"))  # fmt: skip
                return RunOutcome.WAITING, index
        elif isinstance(instruction, ExitStep):
            return end(
                connection, enrolled, EnrollmentStatus.EXITED, instruction.reason, now
            ), index
        move(connection, enrolled, index + 1, instruction.id if instruction else None, now, now)
        return None, index + 1

    # sending ---------------------------------------------------------------------

    def _send(
        self, database: Engine, enrolled: Enrolled, program: Program, step: SendStep, index: int,
        now: dt.datetime,
    ) -> tuple[RunOutcome | None, int]:  # fmt: skip
        sequence = program.sequence
        with database.begin() as connection:
            if step.when is not None and not self._holds(connection, step.when, enrolled, now):
                move(connection, enrolled, index + 1, step.id, now, now)
                return None, index + 1
            if suppressed(connection, str(enrolled.contact["email"])):
                return end(connection, enrolled, EnrollmentStatus.EXITED, "suppressed", now), index
            wake = self._deferred(connection, enrolled, sequence, step, now)
            if wake is not None:
                move(connection, enrolled, index, step.id, wake, now)
                return RunOutcome.WAITING, index
            existing = message_for(connection, enrolled.id, step.id)
            if in_flight(existing, now - self.handoff_grace):
                return RunOutcome.NOT_DUE, index  # another run is handing it off right now
            existing = self._settled(connection, existing, now)
            if existing is not None and existing["status"] == MessageStatus.SENT:
                move(connection, enrolled, index + 1, step.id, now, now)
                return None, index + 1
            if existing is not None and existing["status"] != MessageStatus.RETRY:
                return pause(connection, enrolled, held(existing), now), index
            try:
                message = self._build(connection, enrolled, sequence, step, existing, now)
            except TemplateRenderError as exc:
                return pause(connection, enrolled, str(exc), now), index
            row_id = claim_message(connection, enrolled, step, message, existing, now)
            if row_id is None:
                return RunOutcome.NOT_DUE, index
        return self._hand_off(database, enrolled, step, index, message, row_id, now)

    def _build(
        self, connection: Connection, enrolled: Enrolled, sequence: Sequence, step: SendStep,
        existing: Mapping[str, Any] | None, now: dt.datetime,
    ) -> OutboundMessage:  # fmt: skip
        public_id = str(existing["public_id"]) if existing else new_message_id()
        variant = choose_variant(step.variants, int(enrolled.contact["id"]), sequence.name, step.id)
        request = SendRequest(
            step.template, variant, Recipient(enrolled.contact, enrolled.account, enrolled.owner),
            MessageIdentity(public_id, enrolled.id, sequence.name, step.id), sequence.format,
            thread=thread_parent(connection, enrolled.id, step.thread),
        )  # fmt: skip
        message = self.builder.build(request, now)
        if sequence.sender is not None:
            message = _with_sender(message, sequence.sender.name, sequence.sender.email)
        return message

    def _hand_off(
        self, database: Engine, enrolled: Enrolled, step: SendStep, index: int,
        message: OutboundMessage, row_id: int, now: dt.datetime,
    ) -> tuple[RunOutcome | None, int]:  # fmt: skip
        try:
            handed = self.transport.send(message)
        except RetryableError as exc:
            with database.begin() as connection:
                attempts = message_failed(connection, row_id, MessageStatus.RETRY, str(exc), now)
                delay = dt.timedelta(seconds=exc.retry_after) if exc.retry_after else None
                backoff = self.retry_backoff[min(attempts, len(self.retry_backoff)) - 1]
                wake = now + (delay or backoff)
                move(connection, enrolled, index, step.id, wake, now)
            return RunOutcome.WAITING, index
        except AmbiguousError as exc:
            with database.begin() as connection:
                message_failed(connection, row_id, MessageStatus.AMBIGUOUS, str(exc), now)
                return pause(connection, enrolled, f"message {message.message_id} may have "
                              f"been sent ({exc}); check, then resume", now), index  # fmt: skip
        except PermanentError as exc:
            with database.begin() as connection:
                message_failed(connection, row_id, MessageStatus.FAILED, str(exc), now)
                if exc.invalid_address:
                    suppress(connection, str(enrolled.contact["email"]), "invalid", str(exc), now)
                    return end(connection, enrolled, EnrollmentStatus.EXITED,
                                "invalid address", now), index  # fmt: skip
                return pause(connection, enrolled, f"the provider refused {message.message_id}: "
                              f"{exc}", now), index  # fmt: skip
        with database.begin() as connection:
            sent = {
                "status": MessageStatus.SENT,
                "transport": handed.transport,
                "sent_at": now,
                "provider_message_id": handed.provider_message_id,
                "updated_at": now,
            }
            connection.execute(update(messages).where(messages.c.id == row_id).values(**sent))
            move(connection, enrolled, index + 1, step.id, now, now)
        return None, index + 1

    # helpers that need the runner's settings ---------------------------------------------

    def _settled(
        self, connection: Connection, existing: dict[str, Any] | None, now: dt.datetime
    ) -> dict[str, Any] | None:
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
        return {**existing, **values}

    def _deferred(
        self, connection: Connection, enrolled: Enrolled, sequence: Sequence, step: SendStep,
        now: dt.datetime,
    ) -> dt.datetime | None:  # fmt: skip
        """When a send must wait for its window, the caps or a throttle; ``None``: send now."""
        tz, country = self._zone(enrolled, sequence)
        key = f"{enrolled.id}:{step.id}"
        sender = sequence.sender.email if sequence.sender else self._sender_email(enrolled)
        allowed = earliest_allowed(
            connection, self.limits, int(enrolled.contact["id"]), sender, now
        )
        if allowed is not None:
            return schedule(sequence.window, allowed, tz, country, key)
        if next_open(sequence.window, now, tz, country) > now:
            return schedule(sequence.window, now, tz, country, key)
        delay = self.throttle.admit(str(enrolled.contact["email"]).rpartition("@")[2])
        if delay is None:
            return None
        # a throttled send goes as soon as the throttle allows (no jitter: it is not the
        # window's opening), unless the window closes meanwhile
        later = now + delay
        return (
            later
            if next_open(sequence.window, later, tz, country) <= later
            else schedule(sequence.window, later, tz, country, key)
        )

    def _sender_email(self, enrolled: Enrolled) -> str:
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
