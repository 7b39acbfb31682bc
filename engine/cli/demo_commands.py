"""``salescycle demo``: the main job on the embedded default."""

from __future__ import annotations

from pathlib import Path

from engine.cli.app import WorkspaceOption, app, stdout
from engine.cli.contacts_commands import print_summary, run_import
from engine.cli.pipeline_commands import print_pipeline
from engine.cli.segments_commands import print_segments, segment_counts
from engine.reports import pipeline_report
from engine.storage import upgrade
from engine.wiring import Runtime

STARTER_EXPORT = Path("examples/crm-contacts.csv")


@app.command(epilog="Example: salescycle demo --workspace ~/acme-sales")
def demo(workspace: WorkspaceOption = Path()) -> None:
    """Migrate the database, import the starter CRM export, print the pipeline and segments."""
    runtime = Runtime.open(workspace)
    try:
        stdout.print(f"[bold]1. database[/bold] {runtime.database_url}")
        upgrade(runtime.database)
        stdout.print("[bold]2. import[/bold]")
        print_summary(run_import(runtime, runtime.workspace.root / STARTER_EXPORT))
        stdout.print("[bold]3. pipeline[/bold]")
        with runtime.ready_database().connect() as connection:
            print_pipeline(pipeline_report(connection, runtime.pipeline), runtime)
        stdout.print("[bold]4. segments[/bold]")
        print_segments(*segment_counts(runtime))
    finally:
        runtime.close()
