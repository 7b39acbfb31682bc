"""Sequence steps: what became of the messages sent, counted per message, not per event
(from the outcomes ``record_events`` keeps on each message row)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, select

from engine.reports.filters import Scope
from engine.storage.schema import messages
from engine.tracking.outcomes import OUTCOMES, has_outcome

_REPLIED = list(OUTCOMES).index("replied")


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
    keys = (m.sequence, m.step_id, m.variant, m.reply_intent)
    counts = [func.sum(case((has_outcome(m.outcomes, name), 1), else_=0)) for name in OUTCOMES]
    query = (
        select(*keys, func.count(), func.min(m.sent_at), *counts)
        .where(*scope.message())
        .group_by(*keys)
    )
    stats: dict[tuple[str, str, str | None], StepStats] = {}
    for seq, step, variant, intent, n, first, *outcomes in connection.execute(query):
        key = (seq, step or "", variant)
        row = StepStats(
            seq, step or "", variant, int(n),
            **{name: int(c or 0) for name, c in zip(OUTCOMES, outcomes, strict=True)},
            intents={intent: int(outcomes[_REPLIED])} if intent is not None else {},
            first_sent=first,
        )  # fmt: skip
        stats[key] = _added(stats[key], row) if key in stats else row
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
        total = steps.get(key)
        steps[key] = replace(row, variant=None) if total is None else _added(total, row)
    return list(steps.values())  # in the order of ``rows``


def _added(total: StepStats, row: StepStats) -> StepStats:
    """``total`` with ``row``'s messages added; the earlier first sending."""
    intents = {
        k: total.intents.get(k, 0) + row.intents.get(k, 0)
        for k in sorted(total.intents | row.intents)
    }
    counts = {o: getattr(total, o) + getattr(row, o) for o in ("sent", *OUTCOMES)}
    firsts = [t for t in (total.first_sent, row.first_sent) if t is not None]
    return replace(total, **counts, intents=intents, first_sent=min(firsts, default=None))
