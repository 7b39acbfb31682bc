"""``salescycle run`` (all in one process) and ``salescycle scheduler`` (production)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli.app import WorkspaceOption, app, stderr, stdout
from engine.wiring import Runtime


@app.command("run", epilog="Example: salescycle run --until-idle")
def run(
    workspace: WorkspaceOption = Path(),
    until_idle: Annotated[
        bool, typer.Option(help="Stop once nothing more is due now (for scripts and demos).")
    ] = False,
    threads: Annotated[int, typer.Option(help="Worker threads.")] = 4,
    host: Annotated[str, typer.Option(help="Address the web app listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the web app.", min=1, max=65535)] = 8000,
    web: Annotated[
        bool, typer.Option(help="Serve the web app (webhooks, tracking links) meanwhile.")
    ] = True,
) -> None:
    """Run the scheduler, the workers and the web app in this process (the stub broker).

    Sends through the transport in config/settings.yaml (sending.transport: outbox by
    default, .eml files in var/outbox/). Ctrl+C stops it cleanly.
    """
    from workers.embedded import run_embedded  # Dramatiq loads only for this command

    runtime = Runtime.open(workspace)
    stopping = _stop_on_signals()
    try:
        report = run_embedded(runtime, until_idle=until_idle, threads=threads,
                              stop=stopping.is_set, web=(host, port) if web else None)  # fmt: skip
    finally:
        runtime.close()
    _print_report(report)


@app.command("scheduler", epilog="Example: SALESCYCLE_BROKER_URL=redis://... salescycle scheduler")
def scheduler(workspace: WorkspaceOption = Path()) -> None:
    """Enroll by trigger and hand due steps to Dramatiq workers over Redis.

    Start the workers with `dramatiq workers.actors workers.inbox` (same
    SALESCYCLE_WORKSPACE and SALESCYCLE_BROKER_URL). Several schedulers may run: a
    database lease elects one.
    """
    from dramatiq.brokers.stub import StubBroker

    from engine.clock import utc_now
    from engine.errors import ConfigurationError
    from workers.actors import run_enrollments
    from workers.broker import BROKER_URL_ENV, broker
    from workers.chores import standard_chores
    from workers.inbox import process_inbox
    from workers.loop import SchedulerLoop

    if isinstance(broker, StubBroker):
        raise ConfigurationError(f"set {BROKER_URL_ENV} (redis://...) for the scheduler; "
                                 "for one process without Redis, use `salescycle run`")  # fmt: skip
    runtime = Runtime.open(workspace)
    stopping = _stop_on_signals()
    stderr.print("scheduler started (Ctrl+C stops it)")
    try:
        chores = standard_chores(runtime, process_inbox.send)
        loop = SchedulerLoop(runtime, dispatch=lambda ids: run_enrollments.send(ids),
                             clock=utc_now, chores=chores)  # fmt: skip
        report = loop.run(stop=stopping.is_set)
    finally:
        runtime.close()
    _print_report(report)


def _stop_on_signals() -> threading.Event:
    stopping = threading.Event()

    def stop(*_: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return stopping


def _print_report(report: Any) -> None:
    enrolled = sum(report.enrolled.values())
    stdout.print(f"{report.ticks} ticks: enrolled {enrolled:,}, ran {report.claimed:,} due steps")
