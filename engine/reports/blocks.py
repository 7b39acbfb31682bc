"""The report as blocks of rows: what the table, CSV and HTML renderers all print."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.reports.report import Report
from engine.reports.sequences import StepStats
from engine.reports.stage_times import DAY


class Rate(float):
    """A fraction shown as a percentage."""


class Days(float):
    """A duration in days."""


Cell = str | int | float | None


@dataclass(frozen=True)
class Block:
    """One section: a name (the CSV's section line), a title, a header and rows, and notes."""

    name: str
    title: str
    header: tuple[str, ...]
    rows: list[tuple[Cell, ...]]
    notes: list[str] = field(default_factory=list)


def show(cell: Cell) -> str:
    """A cell as people read it."""
    if cell is None:
        return "-"
    if isinstance(cell, Rate):
        return f"{cell:.1%}"
    if isinstance(cell, Days):
        return f"{cell:.1f} d"
    if isinstance(cell, float):
        return f"{cell:.3f}"
    if isinstance(cell, int):
        return f"{cell:,}"
    return cell


def _rate(value: float | None) -> Rate | None:
    return None if value is None else Rate(value)


def blocks(report: Report) -> list[Block]:
    """Every section of ``report`` in reading order."""
    return [
        _funnel(report),
        _exits(report),
        _time_in_stage(report),
        _steps(report),
        _variants(report),
        _deliverability(report),
        _daily(report),
    ]


def _name(report: Report, stage: str) -> str:
    return report.stage_names.get(stage, f"{stage} (?)")


def _funnel(report: Report) -> Block:
    rows: list[tuple[Cell, ...]] = [
        (s.stage, s.name, s.now, s.entered, s.moved_on, _rate(s.conversion))
        for s in report.funnel.stages
    ]
    header = ("stage", "name", "now", "entered", "moved on", "conversion")
    notes = ["moved on: of those who entered in the period, how many reached a later stage"]
    return Block("funnel", "Funnel", header, rows, notes)


def _exits(report: Report) -> Block:
    rows: list[tuple[Cell, ...]] = [(e.reason, e.stage, e.contacts) for e in report.funnel.exits]
    totals = report.funnel.exits_by_reason()
    notes = [", ".join(f"{reason} {n}" for reason, n in totals.items())]
    return Block("exits", "Where contacts left", ("reason", "stage", "contacts"), rows, notes)


def _time_in_stage(report: Report) -> Block:
    times = report.time_in_stage
    rows: list[tuple[Cell, ...]] = [
        (s.stage, s.owner or "team", s.stays, Days(s.median_s / DAY), Days(s.p90_s / DAY))
        for s in sorted(
            times.by_stage + times.by_owner,
            key=lambda s: (list(report.stage_names).index(s.stage), s.owner or ""),
        )
    ]
    scope = "finished and running stays" if times.open_intervals else "finished stays only"
    notes = [*times.bottlenecks(report.stage_names), f"counted: {scope}"]
    header = ("stage", "owner", "stays", "median", "p90")
    return Block("time_in_stage", "Time in stage", header, rows, notes)


def _step_cells(s: StepStats) -> tuple[Cell, ...]:
    intents = ", ".join(f"{k} {v}" for k, v in s.intents.items())
    return (
        s.sequence, s.step, s.sent, s.delivered, s.opened, _rate(s.rate("opened")),
        s.bot_opened, s.clicked, _rate(s.rate("clicked")), s.replied, _rate(s.rate("replied")),
        intents, s.bounced, s.unsubscribed, s.complained,
    )  # fmt: skip


def _steps(report: Report) -> Block:
    header = ("sequence", "step", "sent", "delivered", "opened", "open rate", "bot opens",
              "clicked", "click rate", "replied", "reply rate", "intents", "bounced",
              "unsubscribed", "complained")  # fmt: skip
    notes = ["counts are messages; opened and clicked by people, bot opens apart; rates per send"]
    return Block(
        "sequences", "Sequence steps", header, [_step_cells(s) for s in report.steps], notes
    )


def _variants(report: Report) -> Block:
    rows: list[tuple[Cell, ...]] = []
    for test in report.variants:
        for v in test.variants:
            rows.append((
                test.sequence, test.step, v.variant, v.sent, _rate(v.rate("opened")),
                _rate(v.rate("replied")), test.reply_p, test.open_p, test.verdict,
            ))  # fmt: skip
    header = ("sequence", "step", "variant", "sent", "open rate", "reply rate", "reply p",
              "open p", "verdict")  # fmt: skip
    notes = [f"{t.sequence} / {t.step}: {t.verdict}" for t in report.variants]
    return Block("variants", "A/B variants", header, rows, notes)


def _deliverability(report: Report) -> Block:
    d = report.deliverability
    row: tuple[Cell, ...] = (
        d.sent, d.delivered, d.bounced, _rate(d.bounce_rate), d.complained,
        _rate(d.complaint_rate), d.status,
    )  # fmt: skip
    header = ("sent", "delivered", "bounced", "bounce rate", "complained", "complaint rate",
              "status")  # fmt: skip
    notes = d.warnings() or ["bounces under 2% and complaints under 0.1%: fine"]
    return Block("deliverability", "Deliverability", header, [row], notes)


def _daily(report: Report) -> Block:
    rows: list[tuple[Cell, ...]] = [(d.day.isoformat(), d.sent, d.replied) for d in report.daily]
    return Block("daily", "Sends and replies per day (UTC)", ("day", "sent", "replied"), rows)
