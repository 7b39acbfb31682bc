"""The report as one self-contained HTML file: inline CSS and SVG, nothing fetched."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, select_autoescape

from engine.reports.blocks import blocks, show
from engine.reports.charts import daily_chart, funnel_chart, stage_time_chart
from engine.reports.report import Report

_environment = Environment(
    loader=PackageLoader("engine.reports", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters["show"] = show


def to_html(report: Report) -> str:
    """The whole report as an HTML page."""
    times = report.time_in_stage
    charts = {
        "funnel": funnel_chart(report.funnel.stages),
        "time_in_stage": stage_time_chart(times.by_stage, report.stage_names),
        "daily": daily_chart(report.daily),
    }
    template = _environment.get_template("report.html.j2")
    return template.render(report=report, blocks=blocks(report), charts=charts)
