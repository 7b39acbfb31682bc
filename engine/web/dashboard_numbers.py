"""The dashboard's numbers, from ``engine.reports``: the funnel with time in stage, and each
sequence's step funnel and A/B variants."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, replace

from sqlalchemy import Connection

from engine.reports import ReportFilter, StepStats, VariantComparison, build_report
from engine.sequences.model import Sequence
from engine.stages import Pipeline
from engine.web.dashboard_queries import send_steps


@dataclass(frozen=True)
class StageRow:
    """One stage: contacts in it now, entries in the period and how many moved on, and
    the median and 90th percentile of stays in it (running stays counted to now)."""

    id: str
    name: str
    kind: str
    contacts: int
    entered: int
    conversion: float | None
    stays: int
    median: dt.timedelta | None
    p90: dt.timedelta | None


@dataclass(frozen=True)
class PipelineNumbers:
    """The stages in pipeline order, the exits by reason, and the bottleneck sentences."""

    stages: list[StageRow]
    exits: dict[str, int]
    bottlenecks: list[str]


@dataclass(frozen=True)
class SequenceNumbers:
    """Every send step of the sequence in order (zeros for those never sent), and the
    comparison of each step sent in more than one variant."""

    steps: list[StepStats]
    variants: list[VariantComparison]


def pipeline_numbers(
    connection: Connection,
    pipeline: Pipeline,
    sequences: Collection[str],
    now: dt.datetime,
    since: dt.datetime | None = None,
) -> PipelineNumbers:
    """The funnel (entries since ``since``) with time in stage per stage."""
    report = build_report(connection, pipeline, ReportFilter(since=since), now,
                          open_intervals=True, known_sequences=sequences)  # fmt: skip
    times = {t.stage: t for t in report.time_in_stage.by_stage}
    rows = []
    for stage in report.funnel.stages:
        time = times.get(stage.stage)
        rows.append(
            StageRow(
                stage.stage, stage.name, stage.kind, stage.now, stage.entered, stage.conversion,
                time.stays if time else 0,
                dt.timedelta(seconds=time.median_s) if time else None,
                dt.timedelta(seconds=time.p90_s) if time else None,
            )
        )  # fmt: skip
    exits = report.funnel.exits_by_reason()
    return PipelineNumbers(rows, exits, report.time_in_stage.bottlenecks(report.stage_names))


def sequence_numbers(
    connection: Connection, pipeline: Pipeline, sequence: Sequence, now: dt.datetime
) -> SequenceNumbers:
    """Per send step, what became of the messages the sequence sent; and its A/B tests."""
    wanted = ReportFilter(sequence=sequence.name)
    report = build_report(connection, pipeline, wanted, now, known_sequences=[sequence.name])
    totals = {s.step: s for s in report.steps}
    never = StepStats(sequence.name, "", None, 0)
    steps = [
        totals.pop(step.id) if step.id in totals else replace(never, step=step.id)
        for step in send_steps(sequence.steps)
    ]
    steps += totals.values()  # sent by steps no longer in the file
    return SequenceNumbers(steps, list(report.variants))
