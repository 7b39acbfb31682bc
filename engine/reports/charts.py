"""Small inline SVG charts for the HTML report (no script, no external resource)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from engine.reports.daily import DailyCount
from engine.reports.funnel import FunnelStage
from engine.reports.stage_times import DAY, StageTime

WIDTH, ROW, LABEL = 640, 24, 170
BAR, LIGHT, ACCENT = "#3b6ea8", "#b9cde4", "#d9822b"


def _svg(height: int, body: list[str], title: str) -> Markup:
    return Markup(
        f'<svg role="img" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}"><title>{escape(title)}</title>{"".join(body)}</svg>'
    )


def _text(x: float, y: float, value: object, anchor: str = "start") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{escape(str(value))}</text>'


def funnel_chart(stages: Sequence[FunnelStage]) -> Markup:
    """A bar per stage: contacts who entered it in the period."""
    top = max((s.entered for s in stages), default=0) or 1
    span = WIDTH - LABEL - 60
    body = []
    for i, s in enumerate(stages):
        y, width = i * ROW, span * s.entered / top
        body.append(_text(LABEL - 8, y + 16, s.name, "end"))
        body.append(f'<rect x="{LABEL}" y="{y + 4}" width="{width:.1f}" height="{ROW - 8}" '
                    f'fill="{BAR}"/>')  # fmt: skip
        body.append(_text(LABEL + width + 6, y + 16, f"{s.entered:,}"))
    return _svg(ROW * len(stages) + 4, body, "Contacts entering each stage")


def stage_time_chart(times: Sequence[StageTime], names: dict[str, str]) -> Markup:
    """Per stage: a light bar to the 90th percentile, a dark mark at the median (days)."""
    top = max((t.p90_s for t in times), default=0.0) or 1.0
    span = WIDTH - LABEL - 110
    body = []
    for i, t in enumerate(times):
        y, p90, median = i * ROW, span * t.p90_s / top, span * t.median_s / top
        body.append(_text(LABEL - 8, y + 16, names.get(t.stage, t.stage), "end"))
        body.append(f'<rect x="{LABEL}" y="{y + 4}" width="{p90:.1f}" height="{ROW - 8}" '
                    f'fill="{LIGHT}"/>')  # fmt: skip
        body.append(f'<rect x="{LABEL + median - 1.5:.1f}" y="{y + 2}" width="3" '
                    f'height="{ROW - 4}" fill="{BAR}"/>')  # fmt: skip
        label = f"{t.median_s / DAY:.1f} d / {t.p90_s / DAY:.1f} d"
        body.append(_text(LABEL + p90 + 6, y + 16, label))
    return _svg(ROW * len(times) + 4, body, "Median and 90th percentile days in stage")


def daily_chart(days: Sequence[DailyCount]) -> Markup:
    """Sends per day as bars, replies per day as a line, on one scale."""
    height, base, left = 220, 190, 50
    top = max((max(d.sent, d.replied) for d in days), default=0) or 1
    step = (WIDTH - left - 10) / max(len(days), 1)
    body = [
        f'<line x1="{left}" y1="{base}" x2="{WIDTH - 10}" y2="{base}" stroke="#888"/>',
        _text(left - 6, 14, f"{top:,}", "end"),
        _text(left - 6, base, "0", "end"),
    ]
    points = []
    for i, d in enumerate(days):
        x = left + i * step
        bar = (base - 10) * d.sent / top
        body.append(f'<rect x="{x + 1:.1f}" y="{base - bar:.1f}" width="{max(step - 2, 1):.1f}" '
                    f'height="{bar:.1f}" fill="{BAR}"><title>{d.day}: {d.sent} sent, '
                    f'{d.replied} replies</title></rect>')  # fmt: skip
        points.append(f"{x + step / 2:.1f},{base - (base - 10) * d.replied / top:.1f}")
    if points:
        body.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{ACCENT}" '
                    'stroke-width="2"/>')  # fmt: skip
        body.append(_text(left, height - 8, days[0].day.isoformat()))
        body.append(_text(WIDTH - 10, height - 8, days[-1].day.isoformat(), "end"))
    return _svg(height, body, "Sends (bars) and replies (line) per day")
