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
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, exists, insert, select, update
from sqlalchemy.exc import IntegrityError

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
    STAGE_CHANGED,
    ExitStep,
    NotifyStep,
    SendStep,
    Sequence,
    SequenceKind,
    StageStep,
    WaitStep,
)
from engine.sequences.notify import Notifier
from engine.sequences.program import Branch, Jump, Program
from engine.sequences.variants import choose_variant
from engine.sequences.windows import add_business_days, contact_timezone, next_open, schedule
from engine.stages import StageChange, record_stage_changes
from engine.storage.schema import (
    accounts,
    contacts,
    enrollments,
    events,
    messages,
    owners,
    stage_history,
    suppressions,
)
from engine.templating import (
    MessageBuilder,
    MessageIdentity,
    Recipient,
    SendRequest,
    TemplateRenderError,
    ThreadParent,
)
from engine.vocabulary import EnrollmentStatus, StageCause

MAX_INSTRUCTIONS_PER_RUN = 200  # a loop of branches must not spin forever
RETRY_BACKOFF = (dt.timedelta(minutes=1), dt.timedelta(minutes=5), dt.timedelta(minutes=30),
                 dt.timedelta(hours=2), dt.timedelta(hours=6))  # fmt: skip


class MessageStatus(StrEnum):
    """Where one message stands on its way out."""

    HANDING_OFF = "handing_off"
    SENT = "sent"
    RETRY = "retry"
    AMBIGUOUS = "ambiguous"
    FAILED = "failed"


class RunOutcome(StrEnum):
    """What one run did with an enrollment."""

    NOT_DUE = "not_due"
    WAITING = "waiting"
    COMPLETED = "completed"
    EXITED = "exited"
    PAUSED = "paused"


@dataclass(frozen=True)
class Enrolled:
    """One enrollment with the rows its steps need."""

    row: Mapping[str, Any]
    contact: Mapping[str, Any]
    account: Mapping[str, Any] | None
    owner: Mapping[str, Any] | None

    @property
    def id(self) -> int:
        return int(self.row["id"])


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
            enrolled = _load(connection, enrollment_id)
            if enrolled is None or not _is_due(enrolled.row, now):
                return RunOutcome.NOT_DUE
            program = self.programs.get(str(enrolled.row["sequence"]))
            if program is None:
                return _pause(connection, enrolled, f"sequence '{enrolled.row['sequence']}' "
                              "no longer exists in config/sequences/", now)  # fmt: skip
            reason = _exit_reason(connection, enrolled, program.sequence)
            if reason is not None:
                return _end(connection, enrolled, EnrollmentStatus.EXITED, reason, now)
            colleague = _colleague_replied(connection, enrolled, program.sequence)
            if colleague is not None:
                why = f"{colleague} at the same account replied (account_stop)"
                return _pause(connection, enrolled, why, now)
        return self._steps(database, enrolled, program, now)

    def _steps(
        self, database: Engine, enrolled: Enrolled, program: Program, now: dt.datetime
    ) -> RunOutcome:
        index = int(enrolled.row["step_index"])
        for _ in range(MAX_INSTRUCTIONS_PER_RUN):
            instruction = program.at(index)
            if instruction is None:
                with database.begin() as connection:
                    return _end(connection, enrolled, EnrollmentStatus.COMPLETED, None, now)
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
            return _pause(connection, enrolled, "too many steps in one run (a loop?)", now)

    def _instruction(
        self, connection: Connection, enrolled: Enrolled, program: Program, index: int,
        now: dt.datetime,
    ) -> tuple[RunOutcome | None, int]:  # fmt: skip
        """Every instruction but a send; a returned outcome ends this run."""
        instruction = program.at(index)
        if isinstance(instruction, WaitStep):
            wake = self._wake(instruction, enrolled, program.sequence, now)
            _move(connection, enrolled, index + 1, instruction.id, wake, now)
            return RunOutcome.WAITING, index + 1
        if isinstance(instruction, Branch):
            holds = self._holds(connection, instruction.condition, enrolled, now)
            return None, index + 1 if holds else instruction.otherwise
        if isinstance(instruction, Jump):
            return None, instruction.target
        if isinstance(instruction, StageStep):
            _move_stage(connection, enrolled, instruction.stage, now)
        elif isinstance(instruction, NotifyStep):
            try:
                self.notifier.notify(connection, enrolled.id, enrolled.contact, enrolled.owner,
                                     program.sequence, instruction, now)  # fmt: skip
            except HandOffError as exc:
                wake = now + self.retry_backoff[0]
                _move(connection, enrolled, index, instruction.id, wake, now)
                connection.execute(update(enrollments).where(enrollments.c.id == enrolled.id)
                                   .values(error=f"notify: {exc}"))  # fmt: skip
                return RunOutcome.WAITING, index
        elif isinstance(instruction, ExitStep):
            return _end(
                connection, enrolled, EnrollmentStatus.EXITED, instruction.reason, now
            ), index
        _move(connection, enrolled, index + 1, instruction.id if instruction else None, now, now)
        return None, index + 1

    # sending ---------------------------------------------------------------------

    def _send(
        self, database: Engine, enrolled: Enrolled, program: Program, step: SendStep, index: int,
        now: dt.datetime,
    ) -> tuple[RunOutcome | None, int]:  # fmt: skip
        sequence = program.sequence
        with database.begin() as connection:
            if step.when is not None and not self._holds(connection, step.when, enrolled, now):
                _move(connection, enrolled, index + 1, step.id, now, now)
                return None, index + 1
            if _suppressed(connection, str(enrolled.contact["email"])):
                return _end(connection, enrolled, EnrollmentStatus.EXITED, "suppressed", now), index
            wake = self._deferred(connection, enrolled, sequence, step, now)
            if wake is not None:
                _move(connection, enrolled, index, step.id, wake, now)
                return RunOutcome.WAITING, index
            existing = _message_for(connection, enrolled.id, step.id)
            if _in_flight(existing, now - self.handoff_grace):
                return RunOutcome.NOT_DUE, index  # another run is handing it off right now
            existing = self._settled(connection, existing, now)
            if existing is not None and existing["status"] == MessageStatus.SENT:
                _move(connection, enrolled, index + 1, step.id, now, now)
                return None, index + 1
            if existing is not None and existing["status"] != MessageStatus.RETRY:
                return _pause(connection, enrolled, _held(existing), now), index
            try:
                message = self._build(connection, enrolled, sequence, step, existing, now)
            except TemplateRenderError as exc:
                return _pause(connection, enrolled, str(exc), now), index
            row_id = _claim_message(connection, enrolled, step, message, existing, now)
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
            thread=_thread_parent(connection, enrolled.id, step.thread),
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
                attempts = _message_failed(connection, row_id, MessageStatus.RETRY, str(exc), now)
                delay = dt.timedelta(seconds=exc.retry_after) if exc.retry_after else None
                backoff = self.retry_backoff[min(attempts, len(self.retry_backoff)) - 1]
                wake = now + (delay or backoff)
                _move(connection, enrolled, index, step.id, wake, now)
            return RunOutcome.WAITING, index
        except AmbiguousError as exc:
            with database.begin() as connection:
                _message_failed(connection, row_id, MessageStatus.AMBIGUOUS, str(exc), now)
                return _pause(connection, enrolled, f"message {message.message_id} may have "
                              f"been sent ({exc}); check, then resume", now), index  # fmt: skip
        except PermanentError as exc:
            with database.begin() as connection:
                _message_failed(connection, row_id, MessageStatus.FAILED, str(exc), now)
                if exc.invalid_address:
                    _suppress(connection, str(enrolled.contact["email"]), "invalid", str(exc), now)
                    return _end(connection, enrolled, EnrollmentStatus.EXITED,
                                "invalid address", now), index  # fmt: skip
                return _pause(connection, enrolled, f"the provider refused {message.message_id}: "
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
            _move(connection, enrolled, index + 1, step.id, now, now)
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


# database steps ------------------------------------------------------------------------


def _load(connection: Connection, enrollment_id: int) -> Enrolled | None:
    row = (
        connection.execute(select(enrollments).where(enrollments.c.id == enrollment_id))
        .mappings()
        .first()
    )
    if row is None:
        return None
    contact = (
        connection.execute(select(contacts).where(contacts.c.id == row["contact_id"]))
        .mappings()
        .one()
    )
    account = owner = None
    if contact["account_id"] is not None:
        account = (
            connection.execute(select(accounts).where(accounts.c.id == contact["account_id"]))
            .mappings()
            .first()
        )
    if contact["owner_id"] is not None:
        owner = (
            connection.execute(select(owners).where(owners.c.id == contact["owner_id"]))
            .mappings()
            .first()
        )
    return Enrolled(dict(row), dict(contact), dict(account) if account else None,
                    dict(owner) if owner else None)  # fmt: skip


def _is_due(row: Mapping[str, Any], now: dt.datetime) -> bool:
    return row["status"] == EnrollmentStatus.ACTIVE and (
        row["next_run_at"] is None or row["next_run_at"] <= now
    )


def _exit_reason(connection: Connection, enrolled: Enrolled, sequence: Sequence) -> str | None:
    """The first ``exit_when`` rule met since the contact enrolled, if any."""
    since = enrolled.row["enrolled_at"]
    kinds = sorted(sequence.exit_when - {STAGE_CHANGED})
    if kinds:
        found = connection.execute(
            select(events.c.kind)
            .where(
                events.c.contact_id == enrolled.contact["id"],
                events.c.kind.in_(kinds),
                events.c.occurred_at >= since,
                events.c.machine.is_(False),
            )
            .limit(1)
        ).scalar()
        if found is not None:
            return str(found)
    if STAGE_CHANGED in sequence.exit_when:
        own = f"enrollment {enrolled.id}"
        moved = connection.execute(
            select(stage_history.c.id)
            .where(
                stage_history.c.contact_id == enrolled.contact["id"],
                stage_history.c.changed_at > since,
                (stage_history.c.detail.is_(None)) | (stage_history.c.detail != own),
            )
            .limit(1)
        ).first()
        if moved is not None:
            return STAGE_CHANGED
    return None


def _colleague_replied(
    connection: Connection, enrolled: Enrolled, sequence: Sequence
) -> str | None:
    """With ``account_stop``, the address of someone at the contact's account who replied."""
    account_id = enrolled.contact.get("account_id")
    if not sequence.account_stop or sequence.kind is not SequenceKind.OUTREACH or not account_id:
        return None
    query = (
        select(contacts.c.email)
        .join(events, events.c.contact_id == contacts.c.id)
        .where(
            contacts.c.account_id == account_id,
            contacts.c.id != enrolled.contact["id"],
            events.c.kind == "replied",
            events.c.machine.is_(False),
            events.c.occurred_at >= enrolled.row["enrolled_at"],
        )
        .limit(1)
    )
    found = connection.execute(query).scalar()
    return None if found is None else str(found)


def _move(
    connection: Connection, enrolled: Enrolled, index: int, step_id: str | None,
    next_run_at: dt.datetime | None, now: dt.datetime,
) -> None:  # fmt: skip
    connection.execute(update(enrollments).where(enrollments.c.id == enrolled.id).values(
        step_index=index, step_id=step_id, next_run_at=next_run_at, claimed_by=None,
        claimed_until=None, updated_at=now))  # fmt: skip


def _end(
    connection: Connection, enrolled: Enrolled, status: EnrollmentStatus, reason: str | None,
    now: dt.datetime,
) -> RunOutcome:  # fmt: skip
    connection.execute(update(enrollments).where(enrollments.c.id == enrolled.id).values(
        status=status, exit_reason=reason, next_run_at=None, ended_at=now, claimed_by=None,
        claimed_until=None, updated_at=now))  # fmt: skip
    return RunOutcome.COMPLETED if status is EnrollmentStatus.COMPLETED else RunOutcome.EXITED


def _pause(connection: Connection, enrolled: Enrolled, error: str, now: dt.datetime) -> RunOutcome:
    connection.execute(update(enrollments).where(enrollments.c.id == enrolled.id).values(
        status=EnrollmentStatus.PAUSED, error=error, next_run_at=None, claimed_by=None,
        claimed_until=None, updated_at=now))  # fmt: skip
    return RunOutcome.PAUSED


def _move_stage(connection: Connection, enrolled: Enrolled, stage: str, now: dt.datetime) -> None:
    current = enrolled.contact["stage"]
    if current == stage:
        return
    connection.execute(update(contacts).where(contacts.c.id == enrolled.contact["id"]).values(
        stage=stage, stage_entered_at=now, updated_at=now))  # fmt: skip
    change = StageChange(int(enrolled.contact["id"]), current, stage, f"enrollment {enrolled.id}")
    record_stage_changes(connection, [change], StageCause.SEQUENCE, now)


def _suppressed(connection: Connection, email: str) -> bool:
    query = select(suppressions.c.id).where(suppressions.c.email == email.lower())
    return connection.execute(query).first() is not None


def _suppress(
    connection: Connection, email: str, reason: str, detail: str, now: dt.datetime
) -> None:
    try:
        with connection.begin_nested():
            connection.execute(insert(suppressions).values(
                email=email.lower(), reason=reason, source="transport", detail=detail,
                created_at=now))  # fmt: skip
    except IntegrityError:
        pass  # already suppressed


def _message_for(connection: Connection, enrollment_id: int, step_id: str) -> dict[str, Any] | None:
    query = select(messages).where(messages.c.idempotency_key == f"{enrollment_id}:{step_id}")
    row = connection.execute(query).mappings().first()
    return None if row is None else dict(row)


def _thread_parent(
    connection: Connection, enrollment_id: int, thread: str | None
) -> ThreadParent | None:
    if thread is None:
        return None
    parent = _message_for(connection, enrollment_id, thread)
    if parent is None or parent["status"] != MessageStatus.SENT:
        return None  # the earlier step was skipped: start a thread of its own
    return ThreadParent(str(parent["rfc_message_id"]), str(parent["subject"]))


def _claim_message(
    connection: Connection, enrolled: Enrolled, step: SendStep, message: OutboundMessage,
    existing: Mapping[str, Any] | None, now: dt.datetime,
) -> int | None:  # fmt: skip
    """Write (or re-arm) the message row before the hand-off: its id, or ``None`` when
    another run of the same enrollment got there first (it hands the message off)."""
    values = {
        "status": MessageStatus.HANDING_OFF, "subject": message.subject,
        "variant": message.custom_args.get("variant"), "template": step.template,
        "to_email": message.to.email, "from_email": message.sender.email,
        "in_reply_to": message.header("In-Reply-To"), "updated_at": now,
        "links": [{"url": url, "tag": tag} for url, tag in message.tracked_links],
    }  # fmt: skip
    if existing is not None:
        # compare-and-set: of two runs that both found it refused, one re-arms it
        rearmed = connection.execute(update(messages).where(
            messages.c.id == existing["id"], messages.c.status == MessageStatus.RETRY,
            messages.c.attempts == existing["attempts"],
        ).values(attempts=existing["attempts"] + 1, **values)).rowcount  # fmt: skip
        return int(existing["id"]) if rearmed == 1 else None
    try:
        with connection.begin_nested():
            return int(connection.execute(insert(messages).values(
                idempotency_key=f"{enrolled.id}:{step.id}", public_id=message.message_id,
                enrollment_id=enrolled.id, contact_id=enrolled.contact["id"],
                sequence=enrolled.row["sequence"], step_id=step.id,
                rfc_message_id=message.rfc_message_id, attempts=1, created_at=now, **values,
            ).returning(messages.c.id)).scalar_one())  # fmt: skip
    except IntegrityError:
        return None  # the idempotency key is taken: the other run sends it


def _message_failed(
    connection: Connection, row_id: int, status: MessageStatus, error: str, now: dt.datetime
) -> int:
    connection.execute(update(messages).where(messages.c.id == row_id).values(
        status=status, last_error=error, updated_at=now))  # fmt: skip
    return int(
        connection.execute(select(messages.c.attempts).where(messages.c.id == row_id)).scalar_one()
    )


def _in_flight(existing: Mapping[str, Any] | None, since: dt.datetime) -> bool:
    return (
        existing is not None
        and existing["status"] == MessageStatus.HANDING_OFF
        and existing["updated_at"] > since
    )


def _held(existing: Mapping[str, Any]) -> str:
    return (f"message {existing['public_id']} is {existing['status']} "
            f"({existing['last_error'] or 'a hand-off did not finish'}); it may have been sent: "
            "check, then resume")  # fmt: skip


def _with_sender(message: OutboundMessage, name: str, email: str) -> OutboundMessage:
    return replace(
        message, sender=Address(email, name), reply_to=Address(message.reply_to.email, name)
    )
