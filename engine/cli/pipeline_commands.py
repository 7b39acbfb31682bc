"""``salescycle pipeline``: contacts per stage and per owner."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from engine.cli.app import JsonOption, WorkspaceOption, app, print_json, stdout
from engine.reports import PipelineReport, pipeline_report
from engine.wiring import Runtime


@app.command(epilog="Example: salescycle pipeline --json")
def pipeline(workspace: WorkspaceOption = Path(), as_json: JsonOption = False) -> None:
    """Show contacts per stage and per owner."""
    runtime = Runtime.open(workspace)
    try:
        with runtime.ready_database().connect() as connection:
            report = pipeline_report(connection, runtime.pipeline)
    finally:
        runtime.close()
    if as_json:
        print_json(report.as_dict())
    else:
        print_pipeline(report, runtime)


def print_pipeline(report: PipelineReport, runtime: Runtime) -> None:
    """The pipeline as a table: one row per stage, one column per owner."""
    table = Table(title=f"pipeline: {report.total} contacts", title_justify="left")
    table.add_column("stage", no_wrap=True)
    table.add_column("all", justify="right")
    for owner in report.owners:
        table.add_column(report.owner_names[owner].split(" ")[0], justify="right")
    for stage in report.stages:
        name = runtime.pipeline.get(stage).name if stage in runtime.pipeline else f"{stage} (?)"
        row = [str(report.counts.get((stage, o), 0)) for o in report.owners]
        table.add_row(name, str(report.stage_total(stage)), *row)
    table.add_section()
    totals = [str(report.owner_total(o)) for o in report.owners]
    table.add_row("all stages", str(report.total), *totals)
    table.caption = "owners: " + ", ".join(f"{report.owner_names[o]} <{o}>" for o in report.owners)
    stdout.print(table)
