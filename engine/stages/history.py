"""The stage history: every change of a contact's stage, with its cause.

Each row also keeps, for the reports, the contact's owner when the stage was entered and,
once the contact moves on, when it left (``left_at``) and for which stage (``next_stage``):
so time in stage and conversion are read from one row, not by pairing rows at report time.
:func:`rebuild_stage_intervals` derives them afresh from the rows themselves.

Each change is also queued for the CRM webhook in the same transaction, except those
the CRM itself made (cause ``crm``, i.e. imports): echoing an import back would post
every imported contact to the CRM it came from. Queued rows wait in the outbox until a
webhook URL is configured (``salescycle crm outbox`` shows them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from engine.crm_outbox import CrmEventKind, enqueue_many
from engine.storage.bulk import execute_many
from engine.storage.schema import contacts, stage_history
from engine.vocabulary import StageCause

# Causes whose changes the CRM already knows: it made them.
NOT_SENT_TO_CRM = frozenset({StageCause.CRM})


@dataclass(frozen=True)
class StageChange:
    """One contact moving from one stage (``None`` when new) to another."""

    contact_id: int
    from_stage: str | None
    to_stage: str
    detail: str | None = None


def record_stage_changes(
    connection: Connection, changes: Sequence[StageChange], cause: StageCause, at: datetime
) -> None:
    """Append ``changes`` to the stage history, closing each contact's current stay, and
    queue them for the CRM. Callers update ``contacts.stage`` first: its row lock orders
    concurrent changes of one contact."""
    if not changes:
        return
    rows: list[dict[str, Any]] = []
    last: dict[int, dict[str, Any]] = {}  # a contact's latest row in this batch
    closing: list[dict[str, Any]] = []
    for change in changes:
        row = {
            "contact_id": change.contact_id,
            "from_stage": change.from_stage,
            "to_stage": change.to_stage,
            "cause": cause.value,
            "detail": change.detail,
            "changed_at": at,
            "owner_of": change.contact_id,
        }
        earlier = last.get(change.contact_id)
        if earlier is not None:
            earlier.update(left_at=at, next_stage=change.to_stage)
        elif change.from_stage is not None:  # a new contact has no stay to close
            closing.append({"contact": change.contact_id, "at": at, "next": change.to_stage})
        last[change.contact_id] = row
        rows.append(row)
    h = stage_history.c
    close = (
        update(stage_history)
        .where(h.contact_id == bindparam("contact"), h.left_at.is_(None))
        .values(left_at=bindparam("at"), next_stage=bindparam("next"))
    )
    execute_many(connection, close, closing)
    owner_now = select(contacts.c.owner_id).where(contacts.c.id == bindparam("owner_of"))
    statement = insert(stage_history).values(owner_id=owner_now.scalar_subquery())
    # rows closed within this batch have two more columns: one statement per shape, the
    # closed ones first, so that each contact's rows keep their recorded (id) order
    execute_many(connection, statement, [row for row in rows if "left_at" in row])
    execute_many(connection, statement, [row for row in rows if "left_at" not in row])
    if cause not in NOT_SENT_TO_CRM:
        payloads = [(change.contact_id, _crm_payload(change, cause)) for change in changes]
        enqueue_many(connection, CrmEventKind.STAGE_CHANGED, payloads, at)


def rebuild_stage_intervals(connection: Connection) -> None:
    """Derive every row's ``left_at`` and ``next_stage`` from the next row recorded for its
    contact, and fill in a missing ``owner_id`` with the contact's owner now; rows already
    right are left alone."""
    h = stage_history.c
    # recorded order, as record_stage_changes closes stays: writers' clocks may disagree
    derived = (
        select(
            h.id,
            func.lead(h.changed_at).over(partition_by=h.contact_id, order_by=h.id).label("left_at"),
            func.lead(h.to_stage)
            .over(partition_by=h.contact_id, order_by=h.id)
            .label("next_stage"),
            func.coalesce(h.owner_id, contacts.c.owner_id).label("owner_id"),
        )
        .join(contacts, contacts.c.id == h.contact_id)
        .subquery()
    )
    d = derived.c
    connection.execute(
        update(stage_history)
        .where(
            h.id == d.id,
            h.left_at.is_distinct_from(d.left_at)
            | h.next_stage.is_distinct_from(d.next_stage)
            | h.owner_id.is_distinct_from(d.owner_id),
        )
        .values(left_at=d.left_at, next_stage=d.next_stage, owner_id=d.owner_id)
    )


def _crm_payload(change: StageChange, cause: StageCause) -> dict[str, str | None]:
    return {
        "from_stage": change.from_stage,
        "to_stage": change.to_stage,
        "cause": cause.value,
        "detail": change.detail,
    }
