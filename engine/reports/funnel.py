"""The funnel: contacts per stage now, entries in the period, conversion, and exits."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, func, literal, or_, select, union_all

from engine.reports.filters import Scope
from engine.reports.timeline import timeline
from engine.stages import Pipeline
from engine.storage.schema import contacts, events, stage_history, suppressions
from engine.vocabulary import StageKind

EXIT_REASONS = ("lost", "unsubscribed", "complained", "bounced")
HARD_BOUNCES = ("hard_bounce", "invalid")
NO_STAGE = "(none)"


@dataclass(frozen=True)
class FunnelStage:
    """One stage: contacts in it now, contacts who entered it in the period, and of those,
    how many entered a later (not lost) stage afterwards."""

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
    t = timeline(pipeline, scope)
    moved_on = case((t.c.later_pos > t.c.pos, t.c.contact_id))
    query = (
        select(t.c.stage, func.count(t.c.contact_id.distinct()), func.count(moved_on.distinct()))
        .where(*scope.period(t.c.entered_at))
        .group_by(t.c.stage)
    )
    return {stage: (int(n), int(m)) for stage, n, m in connection.execute(query)}


def _exits(connection: Connection, pipeline: Pipeline, scope: Scope) -> tuple[Exit, ...]:
    h, e, s = stage_history.c, events.c, suppressions.c
    lost = [st.id for st in pipeline.stages if st.kind is StageKind.LOST]
    from_history = select(h.contact_id, literal("lost").label("reason"), h.changed_at.label("at"))
    from_history = from_history.where(
        h.to_stage.in_(lost), *scope.period(h.changed_at), *scope.contact(h.contact_id)
    )
    reason = case((e.kind == "bounced", literal("bounced")), else_=e.kind)
    from_events = select(e.contact_id, reason, e.occurred_at).where(
        e.contact_id.is_not(None),
        or_(
            e.kind.in_(("unsubscribed", "complained")),
            and_(e.kind == "bounced", e.reject_reason.in_(HARD_BOUNCES)),
        ),
        *scope.period(e.occurred_at),
        *scope.contact(e.contact_id),
    )
    from_suppressions = (
        select(contacts.c.id, s.reason, s.created_at)
        .join(contacts, contacts.c.email == s.email)
        .where(s.reason.in_(EXIT_REASONS), *scope.period(s.created_at))
        .where(*scope.contact(contacts.c.id))
    )
    every = union_all(from_history, from_events, from_suppressions).subquery()
    first = (
        select(every.c.contact_id, every.c.reason, func.min(every.c.at).label("at"))
        .group_by(every.c.contact_id, every.c.reason)
        .subquery()
    )
    located = select(
        first.c.reason,
        func.coalesce(_stage_before(first.c.contact_id, first.c.at), NO_STAGE).label("stage"),
    ).subquery()
    query = select(located.c.reason, located.c.stage, func.count()).group_by(
        located.c.reason, located.c.stage
    )
    order = {stage: i for i, stage in enumerate(pipeline.ids)}
    rows = [Exit(r, st, int(n)) for r, st, n in connection.execute(query)]
    rows.sort(key=lambda x: (EXIT_REASONS.index(x.reason), order.get(x.stage, len(order)), x.stage))
    return tuple(rows)


def _stage_before(contact_id: Any, at: Any) -> ColumnElement[str]:
    """The stage a contact was in just before ``at``."""
    before = stage_history.alias("before")
    return (
        select(before.c.to_stage)
        .where(before.c.contact_id == contact_id, before.c.changed_at < at)
        .order_by(before.c.changed_at.desc(), before.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
