"""Stage transitions from events: the ``transitions:`` rules of ``config/stages.yaml``.

A rule matches an event by kind, and by link tag, reply intent or the sequence of the
message when it names one; it
applies when the contact stands in one of its ``from:`` stages (any stage when there is
none) and, unless ``forward_only: false``, only moves the contact further down the
pipeline. The first rule that applies wins. A contact's events are applied in the order
they happened, each seeing the stage the one before left. Every change is written to the
contact and to the stage history (cause ``event``), where ``stage_entered`` sequences
find it on the scheduler's next trigger pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select, update

from engine.stages.history import StageChange, record_stage_changes
from engine.stages.pipeline import Pipeline, TransitionSpec
from engine.storage.schema import contacts
from engine.vocabulary import EventKind, ReplyIntent, StageCause


@dataclass(frozen=True)
class StageTrigger:
    """One event that may move one contact; ``detail`` goes into the stage history."""

    contact_id: int
    kind: EventKind
    occurred_at: dt.datetime
    detail: str
    link_tag: str | None = None
    intent: ReplyIntent | None = None
    sequence: str | None = None  # of the message the event is about


def triggering_kinds(pipeline: Pipeline) -> frozenset[str]:
    """The event kinds some rule listens to (others need no look-up at all)."""
    return frozenset(rule.on for rule in pipeline.transitions)


def matching_rule(pipeline: Pipeline, stage: str, trigger: StageTrigger) -> TransitionSpec | None:
    """The first rule that moves a contact in ``stage`` on ``trigger``, if any."""
    for rule in pipeline.transitions:
        if rule.on != trigger.kind or rule.to == stage or rule.to not in pipeline:
            continue
        if rule.link is not None and rule.link != trigger.link_tag:
            continue
        if rule.intent is not None and rule.intent != trigger.intent:
            continue
        if rule.sequence is not None and rule.sequence != trigger.sequence:
            continue
        if rule.from_ is not None and stage not in rule.from_:
            continue
        if rule.forward_only and not _is_forward(pipeline, stage, rule.to):
            continue
        return rule
    return None


def apply_transitions(
    connection: Connection,
    pipeline: Pipeline,
    triggers: Sequence[StageTrigger],
    now: dt.datetime,
) -> list[StageChange]:
    """Move contacts as the rules say; the changes made (already recorded)."""
    kinds = triggering_kinds(pipeline)
    relevant = sorted(
        (t for t in triggers if t.kind in kinds), key=lambda t: (t.contact_id, t.occurred_at)
    )
    if not relevant:
        return []
    stages = _locked_stages(connection, sorted({t.contact_id for t in relevant}))
    changes: list[StageChange] = []
    for trigger in relevant:
        stage = stages.get(trigger.contact_id)
        if stage is None:
            continue  # the contact was erased meanwhile
        rule = matching_rule(pipeline, stage, trigger)
        if rule is not None:
            changes.append(StageChange(trigger.contact_id, stage, rule.to, trigger.detail))
            stages[trigger.contact_id] = rule.to
    _write(connection, changes, now)
    return changes


def _is_forward(pipeline: Pipeline, stage: str, to: str) -> bool:
    if stage not in pipeline:
        return False  # a stage no longer in the file: only an explicit backwards rule
    return pipeline.get(to).position > pipeline.get(stage).position


def _locked_stages(connection: Connection, contact_ids: list[int]) -> dict[int, str]:
    """Current stages, locked (in id order, so workers never deadlock) until the commit."""
    stages: dict[int, str] = {}
    for start in range(0, len(contact_ids), 1000):
        chunk = contact_ids[start : start + 1000]
        query = select(contacts.c.id, contacts.c.stage).where(contacts.c.id.in_(chunk))
        if connection.dialect.name == "postgresql":
            query = query.order_by(contacts.c.id).with_for_update()
        stages.update({int(i): str(s) for i, s in connection.execute(query)})
    return stages


def _write(connection: Connection, changes: list[StageChange], now: dt.datetime) -> None:
    if not changes:
        return
    final = {change.contact_id: change.to_stage for change in changes}
    statement = (
        update(contacts)
        .where(contacts.c.id == bindparam("moved_id"))
        .values(stage=bindparam("new_stage"), stage_entered_at=now, updated_at=now)
    )
    connection.execute(statement, [{"moved_id": c, "new_stage": s} for c, s in final.items()])
    record_stage_changes(connection, changes, StageCause.EVENT, now)
