"""The command line: ``salescycle`` and its sub-commands."""

from engine.cli import (  # noqa: F401  (each module registers its commands)
    contacts_commands,
    crm_commands,
    db_commands,
    demo_commands,
    dev_commands,
    enroll_commands,
    enrollments_commands,
    events_commands,
    inbound_commands,
    inbound_review_commands,
    pipeline_commands,
    report_commands,
    run_commands,
    segments_commands,
    sequences_commands,
    serve_commands,
    suppress_commands,
    templates_commands,
    workspace_commands,
)
from engine.cli.app import app


def main() -> None:
    """Entry point of the ``salescycle`` console script."""
    app()


__all__ = ["app", "main"]
