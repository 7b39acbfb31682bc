"""The demo's driver: the whole sales cycle on the embedded default, on a simulated clock.

Each step moves the clock (``engine.demo.clock``), lets the people act on what reached
them by then and the reps move their deals (all over HTTP to the web app), waits for the
workers to process what the web app stored, then runs one tick of the real scheduler
loop (enrollment by trigger, claims, sends by the Dramatiq workers, the inbox sweep).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from engine.contacts.importer import ContactImporter, ImportSummary
from engine.demo.clock import SimClock, next_instant
from engine.demo.endpoints import Endpoints
from engine.demo.mail import OutboxReader, SinkReader
from engine.demo.people import population
from engine.demo.reps import Reps
from engine.demo.services import settle, settle_inbox, web_app, workers
from engine.demo.setup import Secrets, crm_export, fresh_folder, overrides
from engine.demo.simulator import MailSource, ProspectSimulator
from engine.devtools import SendGridSink
from engine.sequences import SequenceKind
from engine.storage import upgrade
from engine.wiring import Runtime
from workers.actors import run_enrollments
from workers.chores import standard_chores
from workers.inbox import process_inbox
from workers.loop import LoopReport, SchedulerLoop

DEFAULT_START = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)  # a Monday; Easter falls inside 60 days


@dataclass(frozen=True)
class DemoOptions:
    """What ``salescycle demo`` was asked for."""

    workspace: Path
    days: int = 60
    contacts: int | None = None  # None: the whole starter export
    seed: int = 1
    transport: str = "outbox"  # or "sink": SendGrid's API, answered by the sink on loopback
    start: dt.datetime = DEFAULT_START


@dataclass
class DemoRun:
    """What a finished demo leaves: its runtime (still open, for the report) and counts."""

    runtime: Runtime
    folder: Path
    ended: dt.datetime
    imported: ImportSummary
    loop: LoopReport
    people: dict[str, int] = field(default_factory=dict)
    rep_moves: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def run_demo(
    options: DemoOptions, progress: Callable[[float], None] = lambda days: None
) -> DemoRun:
    """Run the demo; ``progress`` hears the simulated days done. The caller closes
    ``DemoRun.runtime`` after reading the database."""
    started = time.perf_counter()
    root = options.workspace.resolve()
    folder = fresh_folder(root)
    keys = Secrets.fresh()
    clock = SimClock(options.start)
    with ExitStack() as stack:
        sink = None
        if options.transport == "sink":
            sink = stack.enter_context(SendGridSink(keys.sendgrid_api_key, clock=clock))
        runtime = Runtime.open(
            root, **overrides(keys, options.transport, sink.url if sink else None)
        )
        with _closing_on_error(runtime):
            run = _run(runtime, stack, options, folder, keys, clock, sink, progress)
    run.seconds = time.perf_counter() - started
    return run


def _run(
    runtime: Runtime,
    stack: ExitStack,
    options: DemoOptions,
    folder: Path,
    keys: Secrets,
    clock: SimClock,
    sink: SendGridSink | None,
    progress: Callable[[float], None],
) -> DemoRun:
    upgrade(runtime.database)
    export = crm_export(runtime.workspace.root, folder, options.contacts)
    imported = _import(runtime, export, folder, clock)
    stack.enter_context(workers(runtime, clock))
    web_url = stack.enter_context(web_app(runtime, clock))
    tracking = runtime.settings.sending.tracking_url
    endpoints = stack.enter_context(closing(Endpoints(web_url, tracking, keys, settle_inbox)))
    source: MailSource = (
        SinkReader(sink, tracking) if sink is not None
        else OutboxReader(runtime.workspace.root / runtime.settings.sending.outbox_dir, tracking)
    )  # fmt: skip
    nurture = frozenset(s.name for s in runtime.sequences if s.kind is SequenceKind.NURTURE)
    people = ProspectSimulator(options.seed, population(export, options.seed), source,
                               endpoints, nurture, clock())  # fmt: skip
    reps = Reps(options.seed, runtime.ready_database(), endpoints)
    loop = SchedulerLoop(runtime, dispatch=lambda ids: run_enrollments.send(sorted(ids)),
                         clock=clock, settle=settle,
                         chores=standard_chores(runtime, process_inbox.send))  # fmt: skip
    try:
        report = _drive(loop, people, reps, clock, options, progress)
    finally:
        loop.scheduler.resign()
    return DemoRun(runtime, folder, clock(), imported, report, dict(people.did),
                   dict(reps.moved), dict(endpoints.requests))  # fmt: skip


def _drive(
    loop: SchedulerLoop,
    people: ProspectSimulator,
    reps: Reps,
    clock: SimClock,
    options: DemoOptions,
    progress: Callable[[float], None],
) -> LoopReport:
    report = LoopReport()
    end = clock() + dt.timedelta(days=options.days)
    while True:
        now = clock()
        people.step(now)
        reps.step(now)
        settle_inbox()  # what the web app stored is processed before the scheduler looks
        loop.tick(report)
        progress((now - options.start).total_seconds() / 86_400)
        if now >= end:
            return report
        # People's actions wait for the regular step; only due sends shorten it.
        clock.move_to(next_instant(now, loop.scheduler.next_due(), end))


def _import(runtime: Runtime, export: Path, folder: Path, clock: SimClock) -> ImportSummary:
    """The starter CRM export, imported at the simulated start (as ``contacts import``)."""
    settings = runtime.settings.imports
    importer = ContactImporter(runtime.ready_database(), runtime.pipeline, runtime.crm_mapping,
                               settings.batch_size, clock)  # fmt: skip
    return importer.run(export, folder / "crm-contacts.rejects.csv")


@contextmanager
def _closing_on_error(runtime: Runtime) -> Iterator[None]:
    try:
        yield
    except BaseException:
        runtime.close()
        raise
