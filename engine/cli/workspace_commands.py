"""``salescycle init`` and ``salescycle check``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.check import check_workspace
from engine.cli.app import JsonOption, WorkspaceOption, app, print_json, stdout
from engine.workspace import Workspace, init_workspace


@app.command(epilog="Example: salescycle init ~/acme-sales")
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create (must be new or empty).")],
) -> None:
    """Create a new workspace from the starter one."""
    created = init_workspace(directory)
    stdout.print(f"Created workspace {directory}:")
    for path in created:
        stdout.print(f"  {path.relative_to(directory)}")
    stdout.print(
        f"Next: cd {directory} && salescycle check && salescycle db upgrade "
        "&& salescycle contacts import examples/crm-contacts.csv"
    )


@app.command(epilog="Example: salescycle check --workspace ~/acme-sales")
def check(workspace: WorkspaceOption = Path(), as_json: JsonOption = False) -> None:
    """Validate every workspace file and print each problem as path:line: message."""
    result = check_workspace(Workspace(workspace.resolve()))
    if as_json:
        print_json(
            {
                "ok": result.ok,
                "checked": result.checked,
                "problems": [
                    {"path": p.path, "line": p.line, "message": p.message} for p in result.problems
                ],
            }
        )
    else:
        for problem in result.problems:
            typer.echo(str(problem))
        files = len({p.path for p in result.problems})
        if result.ok:
            typer.echo(f"ok: {len(result.checked)} files checked, no problems")
        else:
            typer.echo(f"{len(result.problems)} problem(s) in {files} file(s)", err=True)
    if not result.ok:
        raise typer.Exit(1)
