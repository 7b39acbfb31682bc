"""``salescycle demo``: the whole sales cycle through the real engine, on a simulated clock."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.cli.app import WorkspaceOption, app, stderr, stdout
from engine.cli.contacts_commands import print_summary
from engine.cli.pipeline_commands import print_pipeline
from engine.demo import DEFAULT_START, DemoOptions, DemoRun, demo_figures, run_demo
from engine.reports import ReportFilter, build_report, pipeline_report
from engine.reports.html import to_html
from engine.reports.render import print_tables


class Transport(StrEnum):
    outbox = "outbox"
    sink = "sink"


_EPILOG = (
    "Example: salescycle demo --days 20 --contacts 500 --seed 7\n\n"
    "Everything the demo writes is in var/demo/ (its own SQLite database, the outbox, "
    "report.html), emptied at the start of every run: a second run starts fresh and the "
    "workspace's own database is never touched. Look around afterwards with e.g. "
    "SALESCYCLE_DATABASE_URL=sqlite:///var/demo/salescycle.db salescycle contacts show EMAIL."
)


@app.command(epilog=_EPILOG)
def demo(
    days: Annotated[int, typer.Option(min=1, max=366, help="Simulated days to run.")] = 60,
    contacts: Annotated[
        int | None,
        typer.Option(min=1, help="The first N contacts of the starter export (more: generated)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same people, same numbers.")] = 1,
    transport: Annotated[
        Transport, typer.Option(help="outbox: .eml files; sink: SendGrid's API on loopback.")
    ] = Transport.outbox,
    start: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="First simulated day (UTC), default 2027-03-01."),
    ] = None,
    workspace: WorkspaceOption = Path(),
) -> None:
    """Run the whole sales cycle on the embedded default with simulated people and reps:
    import the starter CRM export, then let the scheduler, the Dramatiq workers and the web
    app work through DAYS simulated days while prospects open, click, reply, bounce and
    unsubscribe over HTTP; print the report and write var/demo/report.html."""
    options = DemoOptions(
        workspace=workspace,
        days=days,
        contacts=contacts,
        seed=seed,
        transport=transport.value,
        start=start.replace(tzinfo=dt.UTC) if start else DEFAULT_START,
    )
    stdout.print(
        f"[bold]salescycle demo[/bold]: {days} simulated days from "
        f"{options.start:%a %d %b %Y}, seed {seed}, {transport.value} transport"
    )
    run = _run_with_progress(options)
    try:
        _print_results(run, options)
    finally:
        run.runtime.close()


def _run_with_progress(options: DemoOptions) -> DemoRun:
    columns = (TextColumn("simulated days"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task("days", total=options.days)
        return run_demo(options, lambda done: bar.update(task, completed=int(done)))


def _print_results(run: DemoRun, options: DemoOptions) -> None:
    runtime = run.runtime
    stdout.print("[bold]import[/bold]")
    print_summary(run.imported)
    wanted = ReportFilter(since=options.start, until=run.ended)
    with runtime.ready_database().connect() as connection:
        report = build_report(connection, runtime.pipeline, wanted, run.ended,
                              known_sequences=[s.name for s in runtime.sequences])  # fmt: skip
        print_pipeline(pipeline_report(connection, runtime.pipeline), runtime)
        figures = demo_figures(connection)
    print_tables(report, stdout)
    html = run.folder / "report.html"
    html.write_text(to_html(report), encoding="utf-8")
    table = Table(title="the demo in numbers", title_justify="left")
    table.add_column("figure")
    table.add_column("count", justify="right")
    for name, count in figures.items():
        table.add_row(name, f"{count:,}")
    stdout.print(table)
    stdout.print(f"{options.days} simulated days in {run.seconds:.1f} s; {run.loop.ticks:,} "
                 f"scheduler ticks; report: {html}")  # fmt: skip
