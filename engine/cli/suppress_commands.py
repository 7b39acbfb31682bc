"""``salescycle suppress add|remove|list|import``: addresses that must never be emailed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.table import Table
from sqlalchemy import Connection

from engine.cli.app import JsonOption, WorkspaceOption, app, print_json, stdout
from engine.clock import utc_now
from engine.contacts.suppressions import (
    MANUAL_REASONS,
    REASONS,
    add_suppression,
    import_suppressions,
    list_suppressions,
    remove_suppression,
)
from engine.wiring import Runtime

suppress_app = typer.Typer(help="Suppressions: addresses that must never be emailed.")
app.add_typer(suppress_app, name="suppress")

_T = TypeVar("_T")


def _in_transaction(workspace: Path, work: Callable[[Connection], _T]) -> _T:
    runtime = Runtime.open(workspace)
    try:
        with runtime.ready_database().begin() as connection:
            return work(connection)
    finally:
        runtime.close()


@suppress_app.command("add", epilog="Example: salescycle suppress add pat@example.org")
def add(
    email: Annotated[str, typer.Argument(help="The address to suppress.")],
    reason: Annotated[str, typer.Option(help=f"Why: {', '.join(MANUAL_REASONS)}.")] = "manual",
    detail: Annotated[str | None, typer.Option(help="A note kept with the entry.")] = None,
    workspace: WorkspaceOption = Path(),
) -> None:
    """Suppress an address: no sequence emails it again."""
    added = _in_transaction(
        workspace, lambda c: add_suppression(c, email, reason, utc_now(), detail=detail)
    )
    shown = email.strip().lower()
    stdout.print(f"suppressed {shown} ({reason})" if added else f"{shown} was already suppressed")


@suppress_app.command("remove", epilog="Example: salescycle suppress remove pat@example.org")
def remove(
    email: Annotated[str, typer.Argument(help="The address to email again.")],
    workspace: WorkspaceOption = Path(),
) -> None:
    """Lift an address's suppression (never one of an erased person)."""
    removed = _in_transaction(workspace, lambda c: remove_suppression(c, email))
    shown = email.strip().lower()
    if not removed:
        typer.echo(f"error: {shown} is not suppressed", err=True)
        raise typer.Exit(1)
    stdout.print(f"removed the suppression of {shown}")


@suppress_app.command("list", epilog="Example: salescycle suppress list --reason bounced --json")
def list_command(
    reason: Annotated[
        str | None, typer.Option(help=f"Only this reason: {', '.join(REASONS)}.")
    ] = None,
    workspace: WorkspaceOption = Path(),
    as_json: JsonOption = False,
) -> None:
    """List suppressed addresses, oldest first (erased people appear as a hash)."""
    rows = _in_transaction(workspace, lambda c: list_suppressions(c, reason))
    if as_json:
        print_json(rows)
        return
    table = Table("email", "reason", "source", "since (UTC)", "detail")
    for row in rows:
        since = str(row["created_at"])[:16].replace("T", " ")
        table.add_row(row["email"], row["reason"], row["source"], since, row["detail"] or "")
    stdout.print(table)
    stdout.print(f"{len(rows):,} suppressed")


@suppress_app.command(
    "import", epilog="Example: salescycle suppress import unsubscribes.csv --reason unsubscribed"
)
def import_command(
    file: Annotated[
        Path, typer.Argument(help="CSV: one address per row, or an email column (and reason).")
    ],
    reason: Annotated[str, typer.Option(help="The reason of rows without one.")] = "manual",
    rejects: Annotated[
        Path | None, typer.Option(help="Where rejected rows go [default: FILE.rejects.csv].")
    ] = None,
    workspace: WorkspaceOption = Path(),
    as_json: JsonOption = False,
) -> None:
    """Import suppressions; bad rows are reported as FILE:LINE and kept aside."""
    runtime = Runtime.open(workspace)
    try:
        summary = import_suppressions(runtime.ready_database(), file, utc_now(), rejects, reason)
    finally:
        runtime.close()
    if as_json:
        print_json(summary.as_dict())
    else:
        for problem in summary.problems:
            typer.echo(problem, err=True)
        stdout.print(f"{file}: {summary.rows:,} rows: {summary.added:,} added, "
                     f"{summary.already:,} already suppressed, "
                     f"{len(summary.problems):,} rejected")  # fmt: skip
        if summary.rejects_file:
            stdout.print(f"  rejected rows, with line and reason: {summary.rejects_file}")
    if summary.problems:
        raise typer.Exit(1)
