"""The funnel: contacts per stage now, entries in the period, conversion, and exits."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, and_, case, func, literal, or_, select, union_all

from engine.reports.filters import Scope
from engine.stages import Pipeline
from engine.storage.schema import contacts, events, stage_history
from engine.vocabulary import StageKind

EXIT_REASONS = ("lost", "unsubscribed", "complained", "bounced")
HARD_BOUNCES = ("hard_bounce", "invalid")
NO_STAGE = "(none)"


@dataclass(frozen=True)
class FunnelStage:
    """One stage: contacts in it now, entries into it in the period, and of those, how many
    moved on next to a later stage that is not a lost one (conversion to the next stage)."""

    stage: str
    name: str
    kind: str
    now: int
    entered: int
    moved_on: int

    @property
    def conversion(self) -> float | None:
        return self.moved_on / self.entered if self.entered else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "conversion": self.conversion}


@dataclass(frozen=True)
class Exit:
    """Contacts who left the funnel in the period for ``reason``, by the stage they were in."""

    reason: str
    stage: str
    contacts: int


@dataclass(frozen=True)
class Funnel:
    """Every stage in pipeline order (unknown stored stages last), and the exits."""

    stages: tuple[FunnelStage, ...]
    exits: tuple[Exit, ...]

    def exits_by_reason(self) -> dict[str, int]:
        return {r: sum(e.contacts for e in self.exits if e.reason == r) for r in EXIT_REASONS}

    def as_dict(self) -> dict[str, Any]:
        return {
            "stages": [s.as_dict() for s in self.stages],
            "exits": [asdict(e) for e in self.exits],
            "exits_by_reason": self.exits_by_reason(),
        }


def funnel(connection: Connection, pipeline: Pipeline, scope: Scope) -> Funnel:
    """The funnel of the contacts in ``scope``."""
    now = _now_counts(connection, scope)
    entered = _entries(connection, pipeline, scope)
    stored = sorted((set(now) | set(entered)) - set(pipeline.ids))
    stages = [
        FunnelStage(s.id, s.name, s.kind.value, now.get(s.id, 0), *entered.get(s.id, (0, 0)))
        for s in pipeline.stages
    ] + [
        FunnelStage(s, f"{s} (?)", "unknown", now.get(s, 0), *entered.get(s, (0, 0)))
        for s in stored
    ]
    return Funnel(tuple(stages), _exits(connection, pipeline, scope))


def _now_counts(connection: Connection, scope: Scope) -> dict[str, int]:
    query = (
        select(contacts.c.stage, func.count())
        .where(*scope.contact(contacts.c.id))
        .group_by(contacts.c.stage)
    )
    return {stage: int(n) for stage, n in connection.execute(query)}


def _entries(
    connection: Connection, pipeline: Pipeline, scope: Scope
) -> dict[str, tuple[int, int]]:
    """Entries per stage in the period, and of those, how many next went further on (to a
    later stage that is not a lost one)."""
    h = stage_history.c
    query = (
        select(h.to_stage, h.next_stage, func.count())
        .where(*scope.period(h.changed_at), *scope.history())
        .group_by(h.to_stage, h.next_stage)
    )
    position = {s.id: s.position for s in pipeline.stages}
    lost = {s.id for s in pipeline.stages if s.kind is StageKind.LOST}
    counts: dict[str, tuple[int, int]] = {}
    for stage, following, n in connection.execute(query):
        went_on = (
            following is not None
            and following not in lost
            and (position.get(following, -1) > position.get(stage, -1))
        )
        entered, moved_on = counts.get(stage, (0, 0))
        counts[stage] = (entered + int(n), moved_on + (int(n) if went_on else 0))
    return counts


def _exits(connection: Connection, pipeline: Pipeline, scope: Scope) -> tuple[Exit, ...]:
    """Contacts per reason and stage left from: entries into a lost stage (from the stage
    before), and exit events (from the stage the contact was in), the first of each."""
    h, e = stage_history.c, events.c
    lost = [st.id for st in pipeline.stages if st.kind is StageKind.LOST]
    from_history = select(
        h.contact_id, literal("lost").label("reason"), h.changed_at.label("at"),
        h.from_stage.label("stage"),
    ).where(h.to_stage.in_(lost), *scope.period(h.changed_at), *scope.history())  # fmt: skip
    reason = case((e.kind == "bounced", literal("bounced")), else_=e.kind)
    from_events = select(e.contact_id, reason, e.occurred_at, e.contact_stage).where(
        e.contact_id.is_not(None),
        or_(
            e.kind.in_(("unsubscribed", "complained")),
            and_(e.kind == "bounced", e.reject_reason.in_(HARD_BOUNCES)),
        ),
        *scope.period(e.occurred_at),
        *scope.contact(e.contact_id),
    )
    every = union_all(from_history, from_events).subquery()
    first = select(
        every.c.reason,
        every.c.stage,
        func.row_number()
        .over(partition_by=(every.c.contact_id, every.c.reason), order_by=every.c.at)
        .label("nth"),
    ).subquery()
    stage = func.coalesce(first.c.stage, NO_STAGE)
    query = (
        select(first.c.reason, stage, func.count())
        .where(first.c.nth == 1)
        .group_by(first.c.reason, stage)
    )
    order = {stage: i for i, stage in enumerate(pipeline.ids)}
    rows = [Exit(r, st, int(n)) for r, st, n in connection.execute(query)]
    rows.sort(key=lambda x: (EXIT_REASONS.index(x.reason), order.get(x.stage, len(order)), x.stage))
    return tuple(rows)
