"""The full report: every section for one filter, built in one read-only pass."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from engine.reports.ab_test import VariantComparison, compare_variants
from engine.reports.daily import DailyCount, daily_counts
from engine.reports.deliverability import Deliverability, deliverability
from engine.reports.filters import ReportFilter, resolve_filter
from engine.reports.funnel import Funnel, funnel
from engine.reports.sequences import StepStats, step_totals, variant_stats
from engine.reports.stage_times import TimeInStage, time_in_stage
from engine.stages import Pipeline


@dataclass(frozen=True)
class Report:
    """Every section of ``salescycle report`` for one filter, as of ``generated_at``."""

    filter: ReportFilter
    generated_at: datetime
    stage_names: dict[str, str]
    funnel: Funnel
    time_in_stage: TimeInStage
    steps: tuple[StepStats, ...]
    variants: tuple[VariantComparison, ...]
    deliverability: Deliverability
    daily: tuple[DailyCount, ...]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (instants as ISO 8601 text)."""
        return {
            "filter": self.filter.as_dict(),
            "generated_at": self.generated_at.isoformat(),
            "funnel": self.funnel.as_dict(),
            "time_in_stage": self.time_in_stage.as_dict(),
            "sequences": [s.as_dict() for s in self.steps],
            "variants": [v.as_dict() for v in self.variants],
            "deliverability": self.deliverability.as_dict(),
            "daily": [
                {"day": d.day.isoformat(), "sent": d.sent, "replied": d.replied} for d in self.daily
            ],
        }


def build_report(
    connection: Connection,
    pipeline: Pipeline,
    filter: ReportFilter,
    now: datetime,
    *,
    open_intervals: bool = False,
    known_sequences: Collection[str] = (),
) -> Report:
    """Build every section; raises ``ReportFilterError`` for an owner or sequence that
    matches nothing (``known_sequences``: the workspace's, valid even before any send)."""
    scope = resolve_filter(connection, filter, known_sequences)
    if connection.dialect.name == "postgresql":
        # for this transaction only: sorts and hashes over millions of rows stay in memory;
        # each query is one scan of a fraction of a second, which compiling it (JIT) would
        # slow down, and which parallel workers speed up even when they pass on many rows
        connection.exec_driver_sql(
            "SET LOCAL work_mem = '128MB'; SET LOCAL jit = off; "
            "SET LOCAL parallel_setup_cost = 100; SET LOCAL parallel_tuple_cost = 0.001"
        )
    variants = variant_stats(connection, scope)
    steps = step_totals(variants)
    return Report(
        filter=filter,
        generated_at=now,
        stage_names={s.id: s.name for s in pipeline.stages},
        funnel=funnel(connection, pipeline, scope),
        time_in_stage=time_in_stage(
            connection, pipeline, scope, now, open_intervals=open_intervals
        ),
        steps=tuple(steps),
        variants=tuple(compare_variants(variants)),
        deliverability=deliverability(steps),
        daily=tuple(daily_counts(connection, scope)),
    )
