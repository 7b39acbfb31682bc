"""``salescycle sequences``: the workspace's sequences, and one in detail."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from engine.cli.app import JsonOption, WorkspaceOption, app, print_json, stdout
from engine.durations import format_duration
from engine.errors import InputFileError
from engine.sequences import (
    BranchStep,
    ExitStep,
    NotifyStep,
    SendStep,
    Sequence,
    StageStep,
    Step,
    WaitStep,
)
from engine.wiring import Runtime

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
sequences_app = typer.Typer(help="Sequences: the steps contacts are enrolled in.")
app.add_typer(sequences_app, name="sequences")


@sequences_app.command("list", epilog="Example: salescycle sequences list --json")
def list_sequences(workspace: WorkspaceOption = Path(), as_json: JsonOption = False) -> None:
    """List sequences: how contacts enter, the format, and the emails they send."""
    sequences = list(Runtime.open(workspace).sequences)
    if as_json:
        print_json([summary(s) for s in sequences])
        return
    table = Table("sequence", "kind", "format", "enroll", "emails", "description")
    for s in sequences:
        row = summary(s)
        table.add_row(s.name, s.kind.value, s.format.value, row["enroll"],
                      str(len(row["sends"])), s.description)  # fmt: skip
    stdout.print(table)


@sequences_app.command("show", epilog="Example: salescycle sequences show connecting-outreach")
def show_sequence(
    name: Annotated[str, typer.Argument(help="The sequence's name.")],
    workspace: WorkspaceOption = Path(),
    as_json: JsonOption = False,
) -> None:
    """Show one sequence: trigger, window, rules and every step."""
    try:
        sequence = Runtime.open(workspace).sequences.get(name)
    except KeyError as exc:
        raise InputFileError(str(exc.args[0])) from None
    details = {**summary(sequence), "steps": [step_dict(step) for step in sequence.steps]}
    if as_json:
        print_json(details)
        return
    stdout.print(f"[bold]{sequence.name}[/bold] ({sequence.kind.value}, {sequence.format.value})"
                 f"  {sequence.description}")  # fmt: skip
    for key in ("enroll", "reenroll", "sender", "window", "exit_when", "account_stop", "on_reply"):
        stdout.print(f"{key}: {details[key]}", markup=False)
    for line in step_lines(sequence.steps):
        stdout.print(line, markup=False)


def summary(sequence: Sequence) -> dict[str, Any]:
    """A sequence's settings as plain values."""
    window = sequence.window
    days = ",".join(
        ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[d] for d in sorted(window.days)
    )
    trigger, on_reply = sequence.trigger, sequence.on_reply
    reenroll = sequence.reenroll_after
    return {
        "name": sequence.name,
        "description": sequence.description,
        "kind": sequence.kind.value,
        "format": sequence.format.value,
        "enroll": trigger.kind.value + (f" {trigger.target}" if trigger.target else ""),
        "reenroll": "never" if reenroll is None else f"after {format_duration(reenroll)}",
        "sender": "owner" if sequence.sender is None else sequence.sender.email,
        "window": f"{days} {window.start:%H:%M}-{window.end:%H:%M} "
                  f"{sequence.timezone or 'contact timezone'}"
                  f"{', skipping public holidays' if window.holidays else ''}",
        "exit_when": sorted(sequence.exit_when),
        "account_stop": sequence.account_stop,
        "on_reply": {"stage": on_reply.stage, "notify_owner": on_reply.notify_owner},
        "sends": [step.template for step in sequence.sends()],
        "file": sequence.path,
    }  # fmt: skip


def step_dict(step: Step) -> dict[str, Any]:
    """One step as plain values (branches with their steps)."""
    data: dict[str, Any] = {"id": step.id, "kind": type(step).__name__.removesuffix("Step").lower()}
    if isinstance(step, SendStep):
        data.update(template=step.template, variants=step.variants, thread=step.thread,
                    conditional=step.when is not None)  # fmt: skip
    elif isinstance(step, WaitStep):
        data.update(wait=_wait_text(step))
    elif isinstance(step, BranchStep):
        data.update(then=[step_dict(s) for s in step.then],
                    otherwise=[step_dict(s) for s in step.otherwise])  # fmt: skip
    elif isinstance(step, StageStep):
        data.update(stage=step.stage)
    elif isinstance(step, NotifyStep):
        data.update(notify="owner" if step.owner else step.webhook, message=step.message)
    elif isinstance(step, ExitStep):
        data.update(reason=step.reason)
    return data


def step_lines(steps: tuple[Step, ...], indent: str = "  ") -> list[str]:
    """The steps as indented lines for people."""
    lines = []
    for step in steps:
        data = step_dict(step)
        details = ", ".join(
            f"{k}={v}"
            for k, v in data.items()
            if k not in ("id", "kind", "then", "otherwise") and v not in (None, "")
        )
        lines.append(f"{indent}{data['kind']:<7} {step.id:<18} {details}")  # fmt: skip
        if isinstance(step, BranchStep):
            lines += [f"{indent}  then:", *step_lines(step.then, indent + "    ")]
            lines += [f"{indent}  else:", *step_lines(step.otherwise, indent + "    ")]
    return lines


def _wait_text(step: WaitStep) -> str:
    if step.business_days is not None:
        return f"{step.business_days} business days"
    if step.until is not None:
        return f"until {step.until.isoformat()}"
    return format_duration(step.duration or timedelta())
