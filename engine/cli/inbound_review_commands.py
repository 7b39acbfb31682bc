"""``salescycle inbound unmatched``: inbound messages kept because they answer nothing of ours."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from engine.cli.app import JsonOption, WorkspaceOption, print_json, stdout
from engine.cli.inbound_commands import inbound_app
from engine.replies.unmatched import count_unmatched, unmatched_messages
from engine.wiring import Runtime


@inbound_app.command("unmatched", epilog="Example: salescycle inbound unmatched --json")
def unmatched(
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many, newest first.")] = 100,
    workspace: WorkspaceOption = Path(),
    as_json: JsonOption = False,
) -> None:
    """List inbound messages that matched no message of ours (kept, never dropped)."""
    runtime = Runtime.open(workspace)
    try:
        with runtime.ready_database().connect() as connection:
            total = count_unmatched(connection)
            kept = unmatched_messages(connection, limit)
    finally:
        runtime.close()
    if as_json:
        print_json({"total": total, "messages": [message.as_dict() for message in kept]})
        return
    table = Table("inbox id", "received (UTC)", "from", "to", "subject", "why")
    for message in kept:
        received = message.received_at.isoformat()[:16].replace("T", " ")
        table.add_row(str(message.inbox_id), received, message.sender or "", message.to or "",
                      message.subject or "", message.note or "")  # fmt: skip
    stdout.print(table)
    stdout.print(f"{total:,} unmatched inbound message(s)" + (
        f", the newest {len(kept):,} shown" if total > len(kept) else ""))  # fmt: skip
