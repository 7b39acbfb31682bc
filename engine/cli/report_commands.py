"""``salescycle report``: funnel, time in stage, sequences, A/B tests and deliverability."""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from engine.cli.app import WorkspaceOption, app, stderr, stdout
from engine.clock import utc_now
from engine.durations import DATE_HINT, parse_instant
from engine.reports import ReportFilter, ReportFilterError, build_report
from engine.reports.html import to_html
from engine.reports.render import print_tables, to_csv, to_json
from engine.wiring import Runtime

_BARE_DATE = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


@app.command(
    epilog="Example: salescycle report --since 2026-03-01 --owner ann@example.com "
    "--html report.html"
)
def report(
    since: Annotated[
        str | None, typer.Option(help="From this date (UTC), ISO instant, or '30d ago'.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Up to this date, inclusive (a bare date: its whole day).")
    ] = None,
    owner: Annotated[
        str | None, typer.Option(help="Only this owner's contacts (email or name).")
    ] = None,
    sequence: Annotated[str | None, typer.Option(help="Only this sequence.")] = None,
    output: Annotated[
        Format | None, typer.Option("--format", help="table (default), json or csv.")
    ] = None,
    html: Annotated[
        Path | None, typer.Option(help="Also write a self-contained HTML report to this file.")
    ] = None,
    running: Annotated[
        bool, typer.Option("--running-stays", help="Count stays still running (up to now).")
    ] = False,
    workspace: WorkspaceOption = Path(),
) -> None:
    """Report on the pipeline, the sequences and deliverability for a period."""
    now = utc_now()
    wanted = ReportFilter(
        _instant("--since", since, now, False),
        _instant("--until", until, now, True),
        owner,
        sequence,
    )
    runtime = Runtime.open(workspace)
    try:
        with runtime.ready_database().connect() as connection:
            built = build_report(
                connection, runtime.pipeline, wanted, now, open_intervals=running,
                known_sequences=[s.name for s in runtime.sequences],
            )  # fmt: skip
    finally:
        runtime.close()
    if html is not None:
        html.write_text(to_html(built), encoding="utf-8")
        stderr.print(f"wrote {html}")
        if output is None:
            return
    if output is Format.JSON:
        sys.stdout.write(to_json(built))
    elif output is Format.CSV:
        sys.stdout.write(to_csv(built))
    else:
        print_tables(built, stdout)


def _instant(option: str, text: str | None, now: datetime, end_of_day: bool) -> datetime | None:
    """The option's instant; ``--until 2026-03-31`` includes that whole day."""
    if text is None:
        return None
    try:
        instant = parse_instant(text, now)
    except ValueError:
        raise ReportFilterError(f"{option} '{text}' is not a date; {DATE_HINT}") from None
    return instant + timedelta(days=1) if end_of_day and _BARE_DATE.match(text) else instant
