"""The stage history: every change of a contact's stage, with its cause.

Each change is also queued for the CRM webhook in the same transaction, except those
the CRM itself made (cause ``crm``, i.e. imports): echoing an import back would post
every imported contact to the CRM it came from. Queued rows wait in the outbox until a
webhook URL is configured (``salescycle crm outbox`` shows them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert

from engine.crm_outbox import CrmEventKind, enqueue_many
from engine.storage.bulk import execute_many
from engine.storage.schema import stage_history
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
    """Append ``changes`` to the stage history in one statement, and queue them for the CRM."""
    if not changes:
        return
    execute_many(
        connection,
        insert(stage_history),
        [
            {
                "contact_id": change.contact_id,
                "from_stage": change.from_stage,
                "to_stage": change.to_stage,
                "cause": cause.value,
                "detail": change.detail,
                "changed_at": at,
            }
            for change in changes
        ],
    )
    if cause not in NOT_SENT_TO_CRM:
        payloads = [(change.contact_id, _crm_payload(change, cause)) for change in changes]
        enqueue_many(connection, CrmEventKind.STAGE_CHANGED, payloads, at)


def _crm_payload(change: StageChange, cause: StageCause) -> dict[str, str | None]:
    return {
        "from_stage": change.from_stage,
        "to_stage": change.to_stage,
        "cause": cause.value,
        "detail": change.detail,
    }
