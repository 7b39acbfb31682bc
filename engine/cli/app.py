"""The ``salescycle`` command: a typer app whose root maps engine errors to exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from engine.errors import SalescycleError, WorkspaceError


class SalescycleGroup(TyperGroup):
    """Turns an engine error into one readable line on stderr and its exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except WorkspaceError as exc:
            for problem in exc.problems:
                typer.echo(str(problem), err=True)
            ctx.exit(exc.exit_code)
        except SalescycleError as exc:
            typer.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


app = typer.Typer(
    cls=SalescycleGroup,
    name="salescycle",
    help="Email campaign and follow-up automation for B2B sales teams.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

WorkspaceOption = Annotated[
    Path,
    typer.Option(
        "--workspace",
        "-w",
        envvar="SALESCYCLE_WORKSPACE",
        help="The workspace folder (segments/, templates/, config/).",
        file_okay=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """Machine output: JSON on stdout, UTF-8 as is."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
