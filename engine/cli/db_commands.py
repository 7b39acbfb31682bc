"""``salescycle db``: migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli.app import WorkspaceOption, app, stdout
from engine.storage import current_revision, downgrade, head_revision, upgrade
from engine.wiring import Runtime

db_app = typer.Typer(help="Database migrations (SQLite or SALESCYCLE_DATABASE_URL).")
app.add_typer(db_app, name="db")


@db_app.command(
    "upgrade", epilog="Example: SALESCYCLE_DATABASE_URL=postgresql://... salescycle db upgrade"
)
def db_upgrade(
    workspace: WorkspaceOption = Path(),
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to the newest revision."""
    runtime = Runtime.open(workspace)
    try:
        before = current_revision(runtime.database)
        upgrade(runtime.database, revision)
        after = current_revision(runtime.database)
    finally:
        runtime.close()
    where = runtime.database.url.render_as_string(hide_password=True)
    if before == after:
        stdout.print(f"{where} is already at revision {after}")
    else:
        stdout.print(f"{where}: {before or 'empty'} -> {after}")


@db_app.command("downgrade", epilog="Example: salescycle db downgrade base")
def db_downgrade(
    revision: Annotated[
        str, typer.Argument(help="Target revision, or 'base' to drop every table.")
    ],
    workspace: WorkspaceOption = Path(),
) -> None:
    """Revert migrations down to a revision."""
    runtime = Runtime.open(workspace)
    try:
        downgrade(runtime.database, revision)
        stdout.print(f"now at revision {current_revision(runtime.database) or 'base'}")
    finally:
        runtime.close()


@db_app.command("current", epilog="Example: salescycle db current")
def db_current(workspace: WorkspaceOption = Path()) -> None:
    """Show the database's revision and the newest one this salescycle knows."""
    runtime = Runtime.open(workspace)
    try:
        stdout.print(f"database: {current_revision(runtime.database) or 'not migrated'}")
        stdout.print(f"newest:   {head_revision()}")
    finally:
        runtime.close()
