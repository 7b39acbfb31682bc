"""``salescycle enroll``: put contacts into a sequence by hand, or run its trigger now."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import func, select

from engine.cli.app import JsonOption, WorkspaceOption, app, print_json, stdout
from engine.clock import utc_now
from engine.contacts import find_contact
from engine.errors import InputFileError
from engine.segments.compiler import SegmentCompiler
from engine.sequences import enroll, named_contacts, trigger_candidates
from engine.wiring import Runtime


@app.command(
    "enroll",
    epilog="Example: salescycle enroll connecting-outreach --segment decision-makers",
)
def enroll_command(
    sequence_name: Annotated[str, typer.Argument(metavar="SEQUENCE", help="The sequence.")],
    segment: Annotated[str | None, typer.Option(help="Enroll this segment's members.")] = None,
    contact: Annotated[
        list[str] | None, typer.Option(help="Enroll this contact (repeatable).")
    ] = None,
    workspace: WorkspaceOption = Path(),
    as_json: JsonOption = False,
) -> None:
    """Enroll contacts (without --segment or --contact: whoever the sequence's trigger
    would take now). Contacts already in it, past its re-enrollment policy, at the
    outreach limit or suppressed are left out."""
    runtime = Runtime.open(workspace)
    try:
        sequence = runtime.sequences.get(sequence_name)
    except KeyError as exc:
        raise InputFileError(str(exc.args[0])) from None
    now = utc_now()
    try:
        with runtime.ready_database().begin() as connection:
            compiler = SegmentCompiler(runtime.segments, runtime.fields, now)
            if segment is not None:
                try:
                    candidates = compiler.members(segment)
                except KeyError as exc:
                    raise InputFileError(str(exc.args[0])) from None
            elif contact:
                ids = []
                for email in contact:
                    view = find_contact(connection, email)
                    if view is None:
                        raise InputFileError(f"no contact with email {email.strip().lower()}")
                    ids.append(int(view.contact["id"]))
                candidates = named_contacts(ids)
            else:
                found = trigger_candidates(sequence, compiler)
                if found is None:
                    raise InputFileError(f"{sequence.name} is enrolled manually: "
                                         "give --segment NAME or --contact EMAIL")  # fmt: skip
                candidates = found
            counted = select(func.count()).select_from(candidates.order_by(None).subquery())
            offered = int(connection.execute(counted).scalar_one())
            enrolled = enroll(connection, sequence, candidates, runtime.enrollment_rules(), now)
    finally:
        runtime.close()
    if as_json:
        print_json({"sequence": sequence.name, "candidates": offered, "enrolled": enrolled})
        return
    stdout.print(f"enrolled {enrolled:,} of {offered:,} candidates in {sequence.name} "
                 f"({offered - enrolled:,} already in it or kept out by the rules)")  # fmt: skip
