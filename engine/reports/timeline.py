"""Each contact's stage history as intervals: entered, left, and how far it went afterwards."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Subquery, case, func, literal, select

from engine.reports.filters import Scope
from engine.stages import Pipeline
from engine.storage.schema import contacts, stage_history
from engine.vocabulary import StageKind


def stage_position(pipeline: Pipeline, stage: Any) -> ColumnElement[int]:
    """A stage's position in the pipeline (-1 for a stage the pipeline no longer has)."""
    return case({s.id: s.position for s in pipeline.stages}, value=stage, else_=literal(-1))


def timeline(pipeline: Pipeline, scope: Scope, *, with_owner: bool = False) -> Subquery:
    """One row per stage entry of the contacts in scope, over their whole history.

    ``left_at`` is the next entry's instant (NULL while the contact is still there);
    ``later_pos`` the furthest non-lost stage entered afterwards (NULL if none).
    """
    h = stage_history.c
    lost = [s.id for s in pipeline.stages if s.kind is StageKind.LOST]
    forward = case((h.to_stage.in_(lost), literal(-1)), else_=stage_position(pipeline, h.to_stage))
    order = h.changed_at  # the index's order: a tie in instants is rare, and either way is fine
    columns = [
        h.contact_id,
        h.to_stage.label("stage"),
        h.changed_at.label("entered_at"),
        stage_position(pipeline, h.to_stage).label("pos"),
        func.lead(h.changed_at).over(partition_by=h.contact_id, order_by=order).label("left_at"),
        func.max(forward)
        .over(partition_by=h.contact_id, order_by=order, rows=(1, None))
        .label("later_pos"),
    ]
    if with_owner:
        query = select(*columns, contacts.c.owner_id).join(contacts, contacts.c.id == h.contact_id)
    else:
        query = select(*columns)
    return query.where(*scope.contact(h.contact_id)).subquery("timeline")
