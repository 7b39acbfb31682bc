"""Sequence steps: what became of the messages sent, counted per message, not per event."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, func, select

from engine.reports.filters import Scope
from engine.storage.schema import events, messages

UNCLASSIFIED = "unclassified"
# outcome -> the events that mark a message with it (opens and clicks by people only)
OUTCOMES: dict[str, ColumnElement[bool]] = {
    "delivered": events.c.kind == "delivered",
    "opened": (events.c.kind == "opened") & events.c.machine.is_(False),
    "bot_opened": (events.c.kind == "opened") & events.c.machine.is_(True),
    "clicked": (events.c.kind == "clicked") & events.c.machine.is_(False),
    "replied": events.c.kind == "replied",
    "auto_replied": events.c.kind == "auto_replied",
    "bounced": events.c.kind == "bounced",
    "unsubscribed": events.c.kind == "unsubscribed",
    "complained": events.c.kind == "complained",
}


@dataclass(frozen=True)
class StepStats:
    """Messages of one step (or one variant of it: ``variant`` set) and their outcomes.

    Every count is of distinct messages; ``bot_opened`` counts messages opened by a
    machine (mail proxies, scanners), kept apart from ``opened``, which counts people.
    """

    sequence: str
    step: str
    variant: str | None
    sent: int
    delivered: int = 0
    opened: int = 0
    bot_opened: int = 0
    clicked: int = 0
    replied: int = 0
    auto_replied: int = 0
    bounced: int = 0
    unsubscribed: int = 0
    complained: int = 0
    intents: dict[str, int] = field(default_factory=dict)
    first_sent: datetime | None = field(default=None, compare=False)

    def rate(self, outcome: str) -> float | None:
        """``outcome`` per message sent."""
        return int(getattr(self, outcome)) / self.sent if self.sent else None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        data.pop("first_sent")
        data["rates"] = {o: self.rate(o) for o in OUTCOMES}
        return data


def variant_stats(connection: Connection, scope: Scope) -> list[StepStats]:
    """One row per sequence, step and variant, in sequence order then first sending."""
    m = messages.c
    keys = (m.sequence, m.step_id, m.variant)
    sent = select(*keys, func.count(), func.min(m.sent_at)).where(*scope.message()).group_by(*keys)
    stats = {
        (seq, step or "", variant): StepStats(seq, step or "", variant, int(n), first_sent=first)
        for seq, step, variant, n, first in connection.execute(sent)
    }
    for key, counts in _outcomes(connection, scope).items():
        if key in stats:
            stats[key] = replace(stats[key], **counts)  # type: ignore[arg-type]
    for key, intents in _intents(connection, scope).items():
        if key in stats:
            stats[key] = replace(stats[key], intents=intents)
    step_first: dict[tuple[str, str], str] = {}
    for row in stats.values():
        first = row.first_sent.isoformat() if row.first_sent else ""
        step = (row.sequence, row.step)
        step_first[step] = min(step_first.get(step, first), first)
    return sorted(
        stats.values(),
        key=lambda r: (r.sequence, step_first[(r.sequence, r.step)], r.step, r.variant or ""),
    )


def step_totals(rows: Iterable[StepStats]) -> list[StepStats]:
    """The variants of each step added up (``variant`` None); ``rows`` as
    :func:`variant_stats` orders them."""
    steps: dict[tuple[str, str], StepStats] = {}
    for row in rows:
        key = (row.sequence, row.step)
        if key not in steps:
            steps[key] = replace(row, variant=None)
            continue
        total = steps[key]
        intents = {
            k: total.intents.get(k, 0) + row.intents.get(k, 0) for k in total.intents | row.intents
        }
        counts = {o: getattr(total, o) + getattr(row, o) for o in ("sent", *OUTCOMES)}
        steps[key] = replace(total, **counts, intents=intents)
    return list(steps.values())  # in the order of ``rows``


def _outcomes(
    connection: Connection, scope: Scope
) -> dict[tuple[str, str, str | None], dict[str, int]]:
    m = messages.c
    keys = (m.sequence, m.step_id, m.variant)
    flags = [func.max(case((cond, 1), else_=0)).label(name) for name, cond in OUTCOMES.items()]
    per_message = (
        select(*keys, *flags)
        .select_from(events.join(messages, events.c.message_id == m.id))
        .where(*scope.message())
        .group_by(m.id, *keys)
        .subquery()
    )
    p = per_message.c
    query = select(
        p.sequence, p.step_id, p.variant, *(func.sum(p[name]) for name in OUTCOMES)
    ).group_by(p.sequence, p.step_id, p.variant)
    return {
        (seq, step or "", variant): {
            name: int(n or 0) for name, n in zip(OUTCOMES, counts, strict=True)
        }
        for seq, step, variant, *counts in connection.execute(query)
    }


def _intents(
    connection: Connection, scope: Scope
) -> dict[tuple[str, str, str | None], dict[str, int]]:
    m = messages.c
    intent = func.coalesce(events.c.detail["intent"].as_string(), UNCLASSIFIED)
    query = (
        select(m.sequence, m.step_id, m.variant, intent, func.count(m.id.distinct()))
        .select_from(events.join(messages, events.c.message_id == m.id))
        .where(events.c.kind == "replied", *scope.message())
        .group_by(m.sequence, m.step_id, m.variant, intent)
    )
    found: dict[tuple[str, str, str | None], dict[str, int]] = {}
    for seq, step, variant, name, n in connection.execute(query):
        found.setdefault((seq, step or "", variant), {})[name] = int(n)
    return {key: dict(sorted(v.items())) for key, v in found.items()}
