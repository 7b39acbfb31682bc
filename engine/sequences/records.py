"""The rows a run reads and writes: one enrollment with its contact, and its messages.

Every function takes the caller's connection, so a run decides what commits together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import LABEL_STYLE_TABLENAME_PLUS_COL, Connection, Table, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from engine.delivery.message import OutboundMessage
from engine.sequences.model import STAGE_CHANGED, SendStep, Sequence, SequenceKind
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
from engine.templating import ThreadParent
from engine.vocabulary import EnrollmentStatus, StageCause


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


def load(connection: Connection, enrollment_id: int) -> Enrolled | None:
    """The enrollment with its contact, account and owner, in one query."""
    query = (
        select(enrollments, contacts, accounts, owners)
        .select_from(
            enrollments.join(contacts, contacts.c.id == enrollments.c.contact_id)
            .outerjoin(accounts, accounts.c.id == contacts.c.account_id)
            .outerjoin(owners, owners.c.id == contacts.c.owner_id)
        )
        .where(enrollments.c.id == enrollment_id)
        .set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)
    )
    row = connection.execute(query).mappings().first()
    if row is None:
        return None

    def part(table: Table) -> dict[str, Any] | None:
        values = {column.name: row[f"{table.name}_{column.name}"] for column in table.columns}
        return None if values["id"] is None else values

    enrollment, contact = part(enrollments), part(contacts)
    assert enrollment is not None and contact is not None
    return Enrolled(enrollment, contact, part(accounts), part(owners))


def is_due(row: Mapping[str, Any], now: dt.datetime) -> bool:
    return row["status"] == EnrollmentStatus.ACTIVE and (
        row["next_run_at"] is None or row["next_run_at"] <= now
    )


def exit_reason(connection: Connection, enrolled: Enrolled, sequence: Sequence) -> str | None:
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


def colleague_replied(connection: Connection, enrolled: Enrolled, sequence: Sequence) -> str | None:
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


def move(
    connection: Connection, enrolled: Enrolled, index: int, step_id: str | None,
    next_run_at: dt.datetime | None, now: dt.datetime,
) -> None:  # fmt: skip
    connection.execute(update(enrollments).where(enrollments.c.id == enrolled.id).values(
        step_index=index, step_id=step_id, next_run_at=next_run_at, claimed_by=None,
        claimed_until=None, updated_at=now))  # fmt: skip


def end(
    connection: Connection, enrolled: Enrolled, status: EnrollmentStatus, reason: str | None,
    now: dt.datetime,
) -> RunOutcome:  # fmt: skip
    connection.execute(update(enrollments).where(enrollments.c.id == enrolled.id).values(
        status=status, exit_reason=reason, next_run_at=None, ended_at=now, claimed_by=None,
        claimed_until=None, updated_at=now))  # fmt: skip
    return RunOutcome.COMPLETED if status is EnrollmentStatus.COMPLETED else RunOutcome.EXITED


def pause(connection: Connection, enrolled: Enrolled, error: str, now: dt.datetime) -> RunOutcome:
    connection.execute(update(enrollments).where(enrollments.c.id == enrolled.id).values(
        status=EnrollmentStatus.PAUSED, error=error, next_run_at=None, claimed_by=None,
        claimed_until=None, updated_at=now))  # fmt: skip
    return RunOutcome.PAUSED


def move_stage(connection: Connection, enrolled: Enrolled, stage: str, now: dt.datetime) -> None:
    current = enrolled.contact["stage"]
    if current == stage:
        return
    connection.execute(update(contacts).where(contacts.c.id == enrolled.contact["id"]).values(
        stage=stage, stage_entered_at=now, updated_at=now))  # fmt: skip
    change = StageChange(int(enrolled.contact["id"]), current, stage, f"enrollment {enrolled.id}")
    record_stage_changes(connection, [change], StageCause.SEQUENCE, now)


def suppressed(connection: Connection, email: str) -> bool:
    query = select(suppressions.c.id).where(suppressions.c.email == email.lower())
    return connection.execute(query).first() is not None


def suppress(
    connection: Connection, email: str, reason: str, detail: str, now: dt.datetime
) -> None:
    try:
        with connection.begin_nested():
            connection.execute(insert(suppressions).values(
                email=email.lower(), reason=reason, source="transport", detail=detail,
                created_at=now))  # fmt: skip
    except IntegrityError:
        pass  # already suppressed


def message_for(connection: Connection, enrollment_id: int, step_id: str) -> dict[str, Any] | None:
    query = select(messages).where(messages.c.idempotency_key == f"{enrollment_id}:{step_id}")
    row = connection.execute(query).mappings().first()
    return None if row is None else dict(row)


def thread_parent(
    connection: Connection, enrollment_id: int, thread: str | None
) -> ThreadParent | None:
    if thread is None:
        return None
    parent = message_for(connection, enrollment_id, thread)
    if parent is None or parent["status"] != MessageStatus.SENT:
        return None  # the earlier step was skipped: start a thread of its own
    return ThreadParent(str(parent["rfc_message_id"]), str(parent["subject"]))


def claim_message(
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
    row = {
        "idempotency_key": f"{enrolled.id}:{step.id}", "public_id": message.message_id,
        "enrollment_id": enrolled.id, "contact_id": enrolled.contact["id"],
        "sequence": enrolled.row["sequence"], "step_id": step.id,
        "rfc_message_id": message.rfc_message_id, "attempts": 1, "created_at": now, **values,
    }  # fmt: skip
    # ON CONFLICT DO NOTHING: a taken idempotency key means the other run sends it
    written = connection.execute(_insert_or_nothing(connection).values(**row)
                                 .returning(messages.c.id)).scalar()  # fmt: skip
    return None if written is None else int(written)


def _insert_or_nothing(connection: Connection) -> Any:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(messages).on_conflict_do_nothing(index_elements=["idempotency_key"])


def message_failed(
    connection: Connection, row_id: int, status: MessageStatus, error: str, now: dt.datetime
) -> int:
    connection.execute(update(messages).where(messages.c.id == row_id).values(
        status=status, last_error=error, updated_at=now))  # fmt: skip
    return int(
        connection.execute(select(messages.c.attempts).where(messages.c.id == row_id)).scalar_one()
    )


def in_flight(existing: Mapping[str, Any] | None, since: dt.datetime) -> bool:
    return (
        existing is not None
        and existing["status"] == MessageStatus.HANDING_OFF
        and existing["updated_at"] > since
    )


def held(existing: Mapping[str, Any]) -> str:
    return (f"message {existing['public_id']} is {existing['status']} "
            f"({existing['last_error'] or 'a hand-off did not finish'}); it may have been sent: "
            "check, then resume")  # fmt: skip
