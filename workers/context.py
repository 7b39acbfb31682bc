"""What an actor needs, built once per worker process: the workspace, runner and database."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from engine.clock import Clock, utc_now
from engine.delivery.factory import make_transport
from engine.segments.compiler import SegmentCompiler
from engine.sequences.notify import Notifier
from engine.sequences.program import compile_program
from engine.sequences.runner import StepRunner
from engine.wiring import Runtime
from workers.broker import BROKER_URL_ENV
from workers.throttle import make_throttle

WORKSPACE_ENV = "SALESCYCLE_WORKSPACE"


@dataclass(frozen=True)
class WorkerContext:
    """One workspace opened for running steps."""

    runtime: Runtime
    runner: StepRunner
    database: Engine
    clock: Clock = utc_now  # what the actors take as "now" (the demo's simulated clock)


_lock = threading.Lock()
_context: WorkerContext | None = None


def open_context(runtime: Runtime, clock: Clock = utc_now) -> WorkerContext:
    """A runner over the runtime's sequences, templates and configured transport; the
    actors and the in-memory throttle read the time from ``clock``."""
    programs = {sequence.name: compile_program(sequence) for sequence in runtime.sequences}
    sending = runtime.settings.sending
    throttle = make_throttle(os.environ.get(BROKER_URL_ENV), sending.max_per_second,
                             sending.max_per_domain_per_minute,
                             None if clock is utc_now else clock)  # fmt: skip
    builder = runtime.message_builder()
    transport = make_transport(runtime.settings, runtime.workspace.root)
    notifier = Notifier(builder, transport, runtime.secret_key, sending.timeout_seconds)
    runner = StepRunner(
        programs,
        builder,
        transport,
        lambda now: SegmentCompiler(runtime.segments, runtime.fields, now),
        runtime.settings.default_timezone,
        runtime.send_limits(),
        throttle,
        runtime.retry_backoff(),
        runtime.handoff_grace(),
        notifier,
    )
    return WorkerContext(runtime, runner, runtime.ready_database(), clock)


def install(context: WorkerContext | None) -> None:
    """Use ``context`` in this process (``salescycle run``); ``None`` forgets it."""
    global _context
    with _lock:
        _context = context


def current() -> WorkerContext:
    """The installed context, else one opened from ``SALESCYCLE_WORKSPACE`` (or the cwd)."""
    global _context
    with _lock:
        if _context is None:
            _context = open_context(Runtime.open(Path(os.environ.get(WORKSPACE_ENV, "."))))
        return _context
