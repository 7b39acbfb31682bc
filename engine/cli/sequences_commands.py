"""``salescycle sequences``: the workspace's sequences, and one in detail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table
from sqlalchemy import Connection

from engine.cli.app import JsonOption, WorkspaceOption, app, print_json, stdout
from engine.clock import utc_now
from engine.durations import format_duration
from engine.errors import InputFileError
from engine.segments.compiler import SegmentCompiler
from engine.sequences import (
    BranchStep,
    ExitStep,
    NotifyStep,
    Plan,
    PlannedAction,
    PlannedSend,
    SendStep,
    Sequence,
    StageStep,
    Step,
    TriggerKind,
    WaitStep,
    plan_sequence,
    read_only,
    trigger_candidates,
)
from engine.templating import BASE_VARIANT
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


@sequences_app.command(
    "plan", epilog="Example: salescycle sequences plan connecting-outreach --days 14"
)
def plan_command(
    name: Annotated[str, typer.Argument(help="The sequence's name.")],
    days: Annotated[int, typer.Option(min=1, help="How many days ahead to plan.")] = 30,
    start: Annotated[
        str | None, typer.Option(help="Plan from this ISO 8601 instant (default: now).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Plan at most this many contacts.")] = 1000,
    segment: Annotated[
        str | None, typer.Option(help="Plan as if this segment's members were enrolled now.")
    ] = None,
    workspace: WorkspaceOption = Path(),
    as_json: JsonOption = False,
) -> None:
    """Dry run: who would enter the sequence and what would be sent when, day by day.

    Contacts already in it go on from their step; the trigger's candidates (or
    --segment's members) that the enrollment rules admit start now. Conditions are read
    against today's data. Nothing is sent and the database is not changed."""
    runtime = Runtime.open(workspace)
    try:
        sequence = _sequence(runtime, name)
        instant = _instant(start)
        with read_only(runtime.ready_database()) as connection:
            plan = _plan(runtime, connection, sequence, segment, instant, days, limit)
    finally:
        runtime.close()
    if as_json:
        print_json(plan_dict(plan))
        return
    print_plan(plan, manual=segment is None and sequence.trigger.kind is TriggerKind.MANUAL)


def _sequence(runtime: Runtime, name: str) -> Sequence:
    try:
        return runtime.sequences.get(name)
    except KeyError as exc:
        raise InputFileError(str(exc.args[0])) from None


def _instant(text: str | None) -> datetime:
    """``--start``: an ISO 8601 instant (an offset-less one is read as UTC)."""
    if text is None:
        return utc_now()
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputFileError(f"--start: '{text}' is not an ISO 8601 instant; "
                             "write e.g. 2026-11-30T06:00:00Z") from None  # fmt: skip
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


def _plan(
    runtime: Runtime,
    connection: Connection,
    sequence: Sequence,
    segment: str | None,
    start: datetime,
    days: int,
    limit: int,
) -> Plan:
    compiler = SegmentCompiler(runtime.segments, runtime.fields, start)
    try:
        candidates = (
            compiler.members(segment) if segment else trigger_candidates(sequence, compiler)
        )
    except KeyError as exc:
        raise InputFileError(str(exc.args[0])) from None
    return plan_sequence(connection, sequence, compiler, runtime.enrollment_rules(),
                         candidates=candidates, default_timezone=runtime.settings.default_timezone,
                         start=start, days=days, limit=limit)  # fmt: skip


def plan_dict(plan: Plan) -> dict[str, Any]:
    """A plan as plain values (instants in ISO 8601)."""
    return {
        "sequence": plan.sequence,
        "start": plan.start.isoformat(),
        "days": plan.days,
        "contacts": {"enrolled": plan.enrolled, "new": plan.new, "capped": plan.capped},
        "sends": [
            {"email": s.email, "contact_id": s.contact_id, "step_id": s.step_id,
             "template": s.template, "variant": s.variant, "at": s.at.isoformat(),
             "local_time": s.local_time.isoformat(), "timezone": s.timezone}
            for s in plan.sends
        ],
        "actions": [
            {"email": a.email, "step_id": a.step_id, "kind": a.kind, "at": a.at.isoformat()}
            for a in plan.actions
        ],
    }  # fmt: skip


def print_plan(plan: Plan, manual: bool = False) -> None:
    """The plan day by day (UTC days, a blank line between them), then a summary."""
    heading = (f"{plan.sequence}: the next {plan.days} days from "
               f"{plan.start:%Y-%m-%d %H:%M} UTC (a dry run: nothing is sent)")  # fmt: skip
    stdout.print(heading, markup=False)
    day = None
    for at, line in sorted([(s.at, _send_line(s)) for s in plan.sends]
                           + [(a.at, _action_line(a)) for a in plan.actions]):  # fmt: skip
        if at.date() != day:
            day = at.date()
            stdout.print()
        stdout.print(line, markup=False)
    stdout.print()
    for line in plan_summary(plan, manual):
        stdout.print(line, markup=False)


def _local(at: datetime, timezone: str) -> str:
    return f"{at.astimezone(ZoneInfo(timezone)):%Y-%m-%d  %H:%M} {timezone}"


def _send_line(send: PlannedSend) -> str:
    template = send.template if send.variant == BASE_VARIANT else f"{send.template}@{send.variant}"
    return (f"{_local(send.at, send.timezone)}  {send.email}  {send.step_id} "
            f"(variant {send.variant})  {template}")  # fmt: skip


def _action_line(action: PlannedAction) -> str:
    return (f"{_local(action.at, action.timezone)}  {action.email}  {action.step_id}  "
            f"{action.kind} {action.detail}").rstrip()  # fmt: skip


def plan_summary(plan: Plan, manual: bool = False) -> list[str]:
    """Counts for people: contacts, sends per step, the busiest days."""
    noun = "contact" if plan.contacts == 1 else "contacts"
    lines = [f"{plan.contacts:,} {noun} planned ({plan.enrolled:,} already enrolled, "
             f"{plan.new:,} new)"]  # fmt: skip
    if plan.capped:
        lines.append(f"capped at {plan.contacts:,} of {plan.available:,} contacts "
                     "(by contact id; raise --limit to plan more)")  # fmt: skip
    if manual:
        lines.append("enrolled manually: give --segment NAME to plan new contacts")
    if not plan.sends:
        return [*lines, f"nothing would be sent in these {plan.days} days"]
    per_step = ", ".join(f"{step} {count:,}" for step, count in plan.sends_per_step().items())
    busiest = ", ".join(f"{day} ({count:,})" for day, count in plan.busiest_days())
    return [*lines, f"{len(plan.sends):,} sends: {per_step}", f"busiest days (UTC): {busiest}"]
