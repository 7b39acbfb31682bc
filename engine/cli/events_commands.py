"""``salescycle events process|replay``: turn stored webhook bodies into events now."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from engine.cli.app import JsonOption, WorkspaceOption, app, print_json, stderr, stdout
from engine.clock import utc_now
from engine.delivery.factory import make_transport
from engine.errors import ConfigurationError, InputFileError
from engine.replies.forward import Forwarder
from engine.replies.handler import handler_for
from engine.tracking.replay import InboxProcessor, InboxReport
from engine.wiring import Runtime

events_app = typer.Typer(help="Webhook events: process the inbox now, or replay stored bodies.")
app.add_typer(events_app, name="events")


@events_app.command("process", epilog="Example: salescycle events process --json")
def process(workspace: WorkspaceOption = Path(), as_json: JsonOption = False) -> None:
    """Process every webhook body still waiting in the inbox (what the workers do)."""
    runtime = Runtime.open(workspace)
    try:
        with _processor(runtime) as processor:
            report = processor.process_received(utc_now())
    finally:
        runtime.close()
    _print(report, as_json, "processed")


@events_app.command("replay", epilog="Example: salescycle events replay --since 2026-03-01")
def replay(
    since: Annotated[
        str,
        typer.Option(
            "--since", help="Replay bodies received from then: a date (UTC) or an ISO instant."
        ),
    ],
    workspace: WorkspaceOption = Path(),
    as_json: JsonOption = False,
) -> None:
    """Process stored webhook bodies again (idempotent: known events are skipped)."""
    start = parse_since(since)
    runtime = Runtime.open(workspace)
    try:
        with _processor(runtime) as processor:
            report = processor.replay(start, utc_now())
    finally:
        runtime.close()
    _print(report, as_json, "replayed")


@contextmanager
def _processor(runtime: Runtime) -> Iterator[InboxProcessor]:
    """What the workers do: inbound replies forwarded through the configured transport.
    Without a usable transport, inbound replies wait in the inbox for the workers."""
    try:
        transport = make_transport(runtime.settings, runtime.workspace.root)
    except ConfigurationError as exc:
        stderr.print(f"inbound replies left for the workers (no transport: {exc})")
        yield InboxProcessor(runtime.ready_database(), runtime.pipeline)
        return
    try:
        inbound = handler_for(runtime, Forwarder(runtime.message_builder(), transport))
        yield InboxProcessor(runtime.ready_database(), runtime.pipeline, inbound=inbound)
    finally:
        transport.close()


def parse_since(value: str) -> dt.datetime:
    """``2026-03-01`` (midnight UTC) or an ISO-8601 instant (UTC when it names no offset)."""
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise InputFileError(
            f"--since '{value}' is not a date; use YYYY-MM-DD or an ISO instant "
            "like 2026-03-01T08:00:00+01:00"
        ) from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _print(report: InboxReport, as_json: bool, verb: str) -> None:
    if as_json:
        print_json(report.as_dict())
        return
    events = report.events
    stdout.print(
        f"{verb} {report.rows:,} inbox row(s): {report.processed:,} processed, "
        f"{report.failed:,} failed, {report.malformed_events:,} malformed event(s) left out"
        + (f", {report.unmatched:,} unmatched inbound" if report.unmatched else "")
        + (f", {report.waiting:,} waiting for a forward retry" if report.waiting else "")
    )
    stdout.print(
        f"events: {events.new:,} new, {events.duplicates:,} already known, "
        f"{events.machine:,} by machines, {events.unmatched:,} about no message of ours"
    )
    stdout.print(
        f"effects: {events.suppressed:,} address(es) suppressed, {events.settled:,} message(s) "
        f"settled, {events.resumed:,} enrollment(s) resumed, {events.stage_changes:,} stage "
        "change(s)"
    )
