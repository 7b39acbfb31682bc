"""The rows a run writes: an enrollment's position and status, and its messages.

Every function takes the caller's connection, so a run decides what commits together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from engine.contacts.suppressions import add_suppressions
from engine.delivery.message import OutboundMessage
from engine.sequences.model import SendStep
from engine.stages import StageChange, record_stage_changes
from engine.storage.schema import (
    contacts,
    messages,
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


def is_due(row: Mapping[str, Any], now: dt.datetime) -> bool:
    return row["status"] == EnrollmentStatus.ACTIVE and (
        row["next_run_at"] is None or row["next_run_at"] <= now
    )


def moved(
    index: int, step_id: str | None, next_run_at: dt.datetime | None, now: dt.datetime
) -> dict[str, Any]:
    """The enrollment's new position, released from its claim."""
    return {"step_index": index, "step_id": step_id, "next_run_at": next_run_at,
            "claimed_by": None, "claimed_until": None, "updated_at": now}  # fmt: skip


def ended(status: EnrollmentStatus, reason: str | None, now: dt.datetime) -> dict[str, Any]:
    return {"status": status, "exit_reason": reason, "next_run_at": None, "ended_at": now,
            "claimed_by": None, "claimed_until": None, "updated_at": now}  # fmt: skip


def paused(error: str, now: dt.datetime) -> dict[str, Any]:
    return {"status": EnrollmentStatus.PAUSED, "error": error, "next_run_at": None,
            "claimed_by": None, "claimed_until": None, "updated_at": now}  # fmt: skip


def end_outcome(status: EnrollmentStatus) -> RunOutcome:
    return RunOutcome.COMPLETED if status is EnrollmentStatus.COMPLETED else RunOutcome.EXITED


def move_stage(connection: Connection, enrolled: Enrolled, stage: str, now: dt.datetime) -> None:
    current = enrolled.contact["stage"]
    if current == stage:
        return
    connection.execute(update(contacts).where(contacts.c.id == enrolled.contact["id"]).values(
        stage=stage, stage_entered_at=now, updated_at=now))  # fmt: skip
    change = StageChange(int(enrolled.contact["id"]), current, stage, f"enrollment {enrolled.id}")
    record_stage_changes(connection, [change], StageCause.SEQUENCE, now)


def suppress(
    connection: Connection, email: str, reason: str, detail: str, now: dt.datetime
) -> None:
    """Suppress an address the transport refused (unless it already is)."""
    add_suppressions(connection, [{"email": email.lower(), "reason": reason,
                                   "source": "transport", "detail": detail,
                                   "created_at": now}])  # fmt: skip


def thread_parent(parent: Mapping[str, Any] | None) -> ThreadParent | None:
    """What a threaded step replies to: the earlier step's message, when it went out."""
    if parent is None or parent["status"] != MessageStatus.SENT:
        return None  # the earlier step was skipped: start a thread of its own
    return ThreadParent(str(parent["rfc_message_id"]), str(parent["subject"]))


def message_row(
    enrolled: Enrolled, step: SendStep, message: OutboundMessage,
    existing: Mapping[str, Any] | None, now: dt.datetime,
) -> dict[str, Any]:  # fmt: skip
    """The message row as written (or re-armed) before the hand-off."""
    values = {
        "status": MessageStatus.HANDING_OFF, "subject": message.subject,
        "variant": message.custom_args.get("variant"), "template": step.template,
        "to_email": message.to.email, "from_email": message.sender.email,
        "in_reply_to": message.header("In-Reply-To"), "updated_at": now,
        "links": [{"url": url, "tag": tag} for url, tag in message.tracked_links],
    }  # fmt: skip
    if existing is not None:
        return {**existing, **values, "attempts": existing["attempts"] + 1}
    return {
        "idempotency_key": f"{enrolled.id}:{step.id}", "public_id": message.message_id,
        "enrollment_id": enrolled.id, "contact_id": enrolled.contact["id"],
        "sequence": enrolled.row["sequence"], "step_id": step.id,
        "rfc_message_id": message.rfc_message_id, "attempts": 1, "created_at": now, **values,
    }  # fmt: skip


def insert_messages(connection: Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Write new message rows in one statement: row id by idempotency key, for the rows
    written. ON CONFLICT DO NOTHING: a taken key means another run hands that one off."""
    if not rows:
        return {}
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(messages)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(messages.c.id, messages.c.idempotency_key)
    )
    return {str(key): int(row_id) for row_id, key in connection.execute(statement, rows)}


def rearm_message(
    connection: Connection, existing: Mapping[str, Any], row: Mapping[str, Any]
) -> bool:
    """Re-arm a refused message for another hand-off; compare-and-set, so of two runs that
    both found it refused, one gets it."""
    values = {k: v for k, v in row.items() if k not in ("id", "idempotency_key", "created_at")}
    rearmed = connection.execute(update(messages).where(
        messages.c.id == existing["id"], messages.c.status == MessageStatus.RETRY,
        messages.c.attempts == existing["attempts"],
    ).values(**values)).rowcount  # fmt: skip
    return rearmed == 1


def message_failed(
    connection: Connection, row_id: int, status: MessageStatus, error: str, now: dt.datetime
) -> int:
    connection.execute(update(messages).where(messages.c.id == row_id).values(
        status=status, last_error=error, updated_at=now))  # fmt: skip
    return int(
        connection.execute(select(messages.c.attempts).where(messages.c.id == row_id)).scalar_one()
    )


def message_ambiguous(connection: Connection, row_id: int, error: str, now: dt.datetime) -> bool:
    """Mark a hand-off that may have gone out ``ambiguous``, unless the provider's events
    settled it (``sent``) while its answer was awaited; whether it was marked."""
    unsettled = (messages.c.id == row_id) & (messages.c.status == MessageStatus.HANDING_OFF)
    values = {"status": MessageStatus.AMBIGUOUS, "last_error": error, "updated_at": now}
    return connection.execute(update(messages).where(unsettled).values(values)).rowcount == 1


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
