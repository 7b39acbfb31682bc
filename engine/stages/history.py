"""The stage history: every change of a contact's stage, with its cause."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert

from engine.storage.bulk import execute_many
from engine.storage.schema import stage_history
from engine.vocabulary import StageCause


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
    """Append ``changes`` to the stage history in one statement."""
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
