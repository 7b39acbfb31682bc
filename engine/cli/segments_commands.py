"""``salescycle segments``: who is in each segment, a preview of its members, its SQL and plan."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import Connection, Select, select

from engine.cli.app import JsonOption, WorkspaceOption, app, print_json, stdout
from engine.clock import utc_now
from engine.segments import SegmentSet
from engine.segments.compiler import SegmentCompiler, count_members
from engine.storage.schema import accounts, contacts, owners
from engine.wiring import Runtime
from engine.workspace import suggest

segments_app = typer.Typer(help="Segments: their members now, a preview, the SQL behind them.")
app.add_typer(segments_app, name="segments")

NameArgument = Annotated[str, typer.Argument(help="The segment's name (see: segments list).")]


@segments_app.command("list", epilog="Example: salescycle segments list --json")
def list_segments(workspace: WorkspaceOption = Path(), as_json: JsonOption = False) -> None:
    """List every segment with its description and how many contacts are in it now."""
    runtime = Runtime.open(workspace)
    try:
        now, rows = segment_counts(runtime)
    finally:
        runtime.close()
    if as_json:
        print_json({"evaluated_at": now.isoformat(), "segments": rows})
    else:
        print_segments(now, rows)


def segment_counts(runtime: Runtime) -> tuple[datetime, list[dict[str, Any]]]:
    """Every segment of the workspace with its member count now, and that now."""
    segments = runtime.segments
    now = utc_now()
    compiler = SegmentCompiler(segments, runtime.fields, now)
    with runtime.ready_database().connect() as connection:
        counts = {s.name: count_members(connection, compiler, s.name) for s in segments}
    rows = [
        {"name": s.name, "description": s.description, "members": counts[s.name], "path": s.path}
        for s in segments
    ]
    return now, rows


def print_segments(now: datetime, rows: list[dict[str, Any]]) -> None:
    """The segments and their member counts as a table."""
    table = Table(title=f"segments: {len(rows)}", title_justify="left")
    table.add_column("segment", no_wrap=True)
    table.add_column("members", justify="right")
    table.add_column("description")
    for row in rows:
        table.add_row(str(row["name"]), f"{row['members']:,}", str(row["description"]))
    table.caption = f"evaluated at {now:%Y-%m-%d %H:%M} UTC"
    stdout.print(table, markup=False)


@segments_app.command(
    "preview", epilog="Example: salescycle segments preview decision-makers --limit 20"
)
def preview(
    name: NameArgument,
    workspace: WorkspaceOption = Path(),
    limit: Annotated[int, typer.Option(min=1, help="How many members to show.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Show the segment's first members (by contact id): email, name, account, stage, owner."""
    runtime = Runtime.open(workspace)
    try:
        segments = runtime.segments
        _require(segments, name)
        compiler = SegmentCompiler(segments, runtime.fields, utc_now())
        with runtime.ready_database().connect() as connection:
            total = count_members(connection, compiler, name)
            rows = preview_members(connection, compiler.members(name).limit(limit))
    finally:
        runtime.close()
    if as_json:
        print_json({"segment": name, "members": total, "contacts": rows})
        return
    table = Table(title=f"{name}: {len(rows)} of {total:,} members", title_justify="left")
    for column in ("email", "name", "account", "stage", "owner"):
        table.add_column(column, no_wrap=column == "stage", overflow="fold")
    for row in rows:
        owner = row["owner_name"] or row["owner"]
        cells = (row["email"], row["name"], row["account"], row["stage"], owner)
        table.add_row(*(cell or "" for cell in cells))
    stdout.print(table, markup=False)


def preview_members(connection: Connection, members: Select[Any]) -> list[dict[str, Any]]:
    """The contacts whose ids ``members`` selects, with their account and owner, by id."""
    chosen = members.subquery()
    query = (
        select(
            contacts.c.email,
            contacts.c.first_name,
            contacts.c.last_name,
            accounts.c.name.label("account"),
            contacts.c.stage,
            owners.c.email.label("owner"),
            owners.c.name.label("owner_name"),
        )
        .select_from(
            chosen.join(contacts, contacts.c.id == chosen.c.id)
            .outerjoin(accounts, contacts.c.account_id == accounts.c.id)
            .outerjoin(owners, contacts.c.owner_id == owners.c.id)
        )
        .order_by(contacts.c.id)
    )
    return [
        {
            "email": row.email,
            "name": " ".join(p for p in (row.first_name, row.last_name) if p) or None,
            "account": row.account,
            "stage": row.stage,
            "owner": row.owner,
            "owner_name": row.owner_name,
        }
        for row in connection.execute(query)
    ]


@segments_app.command("explain", epilog="Example: salescycle segments explain ready-for-outreach")
def explain(
    name: NameArgument, workspace: WorkspaceOption = Path(), as_json: JsonOption = False
) -> None:
    """Print the SQL the segment compiles to, and the database's plan for it."""
    runtime = Runtime.open(workspace)
    try:
        segments = runtime.segments
        _require(segments, name)
        now = utc_now()
        compiler = SegmentCompiler(segments, runtime.fields, now)
        with runtime.ready_database().connect() as connection:
            explained = explain_query(connection, compiler.members(name))
    finally:
        runtime.close()
    if as_json:
        print_json(
            {
                "segment": name,
                "evaluated_at": now.isoformat(),
                "dialect": explained.dialect,
                "sql": explained.sql,
                "plan": explained.plan,
            }
        )
        return
    typer.echo(f"-- segment {name}, evaluated at {now:%Y-%m-%d %H:%M:%S} UTC ({explained.dialect})")
    typer.echo(explained.sql.strip() + ";")
    typer.echo(f"\n-- query plan ({explained.command})")
    for line in explained.plan:
        typer.echo(line)


@dataclass(frozen=True)
class Explained:
    """A query as the database runs it: its SQL with the values written in, and its plan."""

    dialect: str
    sql: str
    command: str
    plan: list[str]


def explain_query(connection: Connection, query: Select[Any]) -> Explained:
    """The SQL of ``query`` for the connection's database, values inlined, and its plan."""
    dialect = connection.dialect
    compiled = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    # Drivers with a "format" paramstyle (psycopg) get every literal % doubled; the SQL
    # shown is what a person would paste into psql, the one run is what the driver expects.
    doubled = dialect.paramstyle in ("format", "pyformat")
    shown = compiled.replace("%%", "%") if doubled else compiled
    if dialect.name == "sqlite":
        command = "EXPLAIN QUERY PLAN"
        rows = connection.exec_driver_sql(f"{command} {compiled}").all()
        plan = _sqlite_plan([(int(r[0]), int(r[1]), str(r[3])) for r in rows])
    else:
        command = "EXPLAIN"
        plan = [str(r[0]) for r in connection.exec_driver_sql(f"{command} {compiled}")]
    return Explained(dialect.name, shown, command, plan)


def _sqlite_plan(rows: list[tuple[int, int, str]]) -> list[str]:
    """SQLite's plan rows (id, parent, detail) as an indented tree, like the sqlite3 shell."""
    depth: dict[int, int] = {0: -1}
    lines = []
    for node, parent, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + detail)
    return lines


def _require(segments: SegmentSet, name: str) -> None:
    """Stop with one line naming the valid segments when ``name`` is not one of them."""
    if name not in segments:
        known = [segment.name for segment in segments]
        typer.echo(f"error: unknown segment '{name}'; {suggest(name, known)}", err=True)
        raise typer.Exit(1)
