"""Time in stage: median and 90th percentile per stage and per owner, and the bottlenecks.

A duration is one stay in an open stage, from entering it to entering the next one; it
counts in the period when it ended there, for the owner the contact had when it began.
With ``open_intervals`` the stays still running count too, as ending ``now``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, literal, select

from engine.reports._sql import (
    Histogram,
    duration_bucket,
    histogram_quantiles,
    merge,
    seconds_between,
)
from engine.reports.filters import Scope
from engine.stages import Pipeline
from engine.storage.schema import owners, stage_history
from engine.storage.types import UTCDateTime
from engine.vocabulary import StageKind

UNASSIGNED = "(no owner)"
DAY = 86400.0


@dataclass(frozen=True)
class StageTime:
    """Stays in one stage (of one owner's contacts, or the whole team's: ``owner`` None)."""

    stage: str
    owner: str | None
    stays: int
    median_s: float
    p90_s: float


@dataclass(frozen=True)
class OwnerGap:
    """The owner whose median in one stage is furthest from the team's median there."""

    owner: str
    stage: str
    median_s: float
    team_median_s: float


@dataclass(frozen=True)
class TimeInStage:
    """Per stage (team) and per stage and owner, with the two bottleneck lines."""

    open_intervals: bool
    by_stage: tuple[StageTime, ...]
    by_owner: tuple[StageTime, ...]
    slowest: StageTime | None
    furthest: OwnerGap | None

    def bottlenecks(self, names: dict[str, str] | None = None) -> list[str]:
        """The slowest stage and the owner furthest from the team, as sentences."""
        names = names or {}
        lines = []
        if self.slowest is not None:
            s = self.slowest
            lines.append(
                f"slowest stage: {names.get(s.stage, s.stage)}, median {days(s.median_s)}, "
                f"90% within {days(s.p90_s)} ({s.stays} stays)"
            )
        if self.furthest is not None:
            f = self.furthest
            direction = "slower" if f.median_s > f.team_median_s else "faster"
            lines.append(
                f"furthest from the team: {f.owner} in {names.get(f.stage, f.stage)}, median "
                f"{days(f.median_s)} against the team's {days(f.team_median_s)} ({direction})"
            )
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {
            "open_intervals": self.open_intervals,
            "by_stage": [asdict(s) for s in self.by_stage],
            "by_owner": [asdict(s) for s in self.by_owner],
            "slowest": asdict(self.slowest) if self.slowest else None,
            "furthest": asdict(self.furthest) if self.furthest else None,
            "bottlenecks": self.bottlenecks(),
        }


def days(seconds: float) -> str:
    """``1.5 d``, or hours under a day."""
    if seconds < DAY:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / DAY:.1f} d"


def time_in_stage(
    connection: Connection,
    pipeline: Pipeline,
    scope: Scope,
    now: datetime,
    *,
    open_intervals: bool = False,
) -> TimeInStage:
    """Durations of stays in open stages of the contacts in ``scope``, credited to the owner
    when the stage was entered; percentiles within 1% (see ``_sql.ACCURACY``)."""
    h = stage_history.c
    ended = func.coalesce(h.left_at, literal(now, UTCDateTime())) if open_intervals else h.left_at
    bucket = duration_bucket(seconds_between(connection.dialect.name, h.changed_at, ended))
    owner = func.coalesce(h.owner_id, -1)
    query = (
        select(h.to_stage, owner, bucket, func.count())
        .where(
            h.to_stage.in_([s.id for s in pipeline.stages if s.kind is StageKind.OPEN]),
            *([] if open_intervals else [h.left_at.is_not(None)]),
            *scope.period(ended),
            *scope.history(),
        )
        .group_by(h.to_stage, owner, bucket)
    )
    histograms: dict[tuple[str, int], Histogram] = {}
    for stage, owner_id, at, n in connection.execute(query):
        histograms.setdefault((stage, int(owner_id)), {})[int(at)] = int(n)
    by_stage_histograms: dict[str, list[Histogram]] = {}
    for (stage, _), histogram in histograms.items():
        by_stage_histograms.setdefault(stage, []).append(histogram)
    emails = _owner_emails(connection)
    order = {stage: i for i, stage in enumerate(pipeline.ids)}
    by_stage = sorted(
        (
            StageTime(stage, None, *histogram_quantiles(merge(parts)))
            for stage, parts in by_stage_histograms.items()
        ),
        key=lambda s: order[s.stage],
    )
    by_owner = sorted(
        (
            StageTime(stage, emails.get(o, UNASSIGNED), *histogram_quantiles(histogram))
            for (stage, o), histogram in histograms.items()
        ),
        key=lambda s: (order[s.stage], s.owner or ""),
    )
    return TimeInStage(
        open_intervals,
        tuple(by_stage),
        tuple(by_owner),
        _slowest(by_stage),
        _furthest(by_stage, by_owner),
    )


def _owner_emails(connection: Connection) -> dict[int, str]:
    return {int(i): e for i, e in connection.execute(select(owners.c.id, owners.c.email))}


def _slowest(by_stage: list[StageTime]) -> StageTime | None:
    return max(by_stage, key=lambda s: s.median_s, default=None)


def _furthest(by_stage: list[StageTime], by_owner: list[StageTime]) -> OwnerGap | None:
    """The (owner, stage) whose median differs most from the team's, in either direction."""
    team = {s.stage: s.median_s for s in by_stage}
    gaps = [
        OwnerGap(s.owner or UNASSIGNED, s.stage, s.median_s, team[s.stage])
        for s in by_owner
        if s.owner != UNASSIGNED
    ]
    return max(gaps, key=lambda g: abs(g.median_s - g.team_median_s), default=None)
