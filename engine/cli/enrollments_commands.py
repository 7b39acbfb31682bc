"""``salescycle enrollments pause|resume|stop`` for a contact or a whole sequence."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli.app import JsonOption, WorkspaceOption, app, print_json, stdout
from engine.clock import utc_now
from engine.contacts import find_contact
from engine.errors import InputFileError
from engine.sequences.control import Control, control_enrollments
from engine.wiring import Runtime

enrollments_app = typer.Typer(help="Enrollments: pause, resume or stop them.")
app.add_typer(enrollments_app, name="enrollments")

SequenceOption = Annotated[str | None, typer.Option("--sequence", help="Only this sequence.")]
ContactOption = Annotated[str | None, typer.Option("--contact", help="Only this contact (email).")]


def _apply(action: Control, workspace: Path, sequence: str | None, contact: str | None,
           as_json: bool) -> None:  # fmt: skip
    if sequence is None and contact is None:
        raise InputFileError("give --sequence NAME, --contact EMAIL, or both")
    runtime = Runtime.open(workspace)
    try:
        if sequence is not None:
            try:
                runtime.sequences.get(sequence)
            except KeyError as exc:
                raise InputFileError(str(exc.args[0])) from None
        with runtime.ready_database().begin() as connection:
            contact_id = None
            if contact is not None:
                view = find_contact(connection, contact)
                if view is None:
                    raise InputFileError(f"no contact with email {contact.strip().lower()}")
                contact_id = int(view.contact["id"])
            changed = control_enrollments(connection, action, utc_now(), sequence, contact_id)
    finally:
        runtime.close()
    if as_json:
        print_json({"action": action.value, "changed": changed})
    else:
        verb = {"pause": "paused", "resume": "resumed", "stop": "stopped"}[action.value]
        stdout.print(f"{verb} {changed:,} enrollment(s)")


@enrollments_app.command("pause", epilog="Example: salescycle enrollments pause --contact a@b.dk")
def pause(workspace: WorkspaceOption = Path(), sequence: SequenceOption = None,
          contact: ContactOption = None, as_json: JsonOption = False) -> None:  # fmt: skip
    """Pause active enrollments (nothing is sent until they are resumed)."""
    _apply(Control.PAUSE, workspace, sequence, contact, as_json)


@enrollments_app.command("resume", epilog="Example: salescycle enrollments resume --sequence x")
def resume(workspace: WorkspaceOption = Path(), sequence: SequenceOption = None,
           contact: ContactOption = None, as_json: JsonOption = False) -> None:  # fmt: skip
    """Resume paused enrollments; they run their next step at once (within its window)."""
    _apply(Control.RESUME, workspace, sequence, contact, as_json)


@enrollments_app.command("stop", epilog="Example: salescycle enrollments stop --contact a@b.dk")
def stop(workspace: WorkspaceOption = Path(), sequence: SequenceOption = None,
         contact: ContactOption = None, as_json: JsonOption = False) -> None:  # fmt: skip
    """End active and paused enrollments for good."""
    _apply(Control.STOP, workspace, sequence, contact, as_json)
