"""``salescycle run``: scheduler and Dramatiq worker threads in one process, on the stub broker."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import dramatiq
from dramatiq.brokers.stub import StubBroker

from engine.clock import utc_now
from engine.errors import ConfigurationError
from engine.wiring import Runtime
from workers.actors import STEPS_QUEUE, run_enrollments
from workers.broker import broker
from workers.context import install, open_context
from workers.loop import LoopReport, SchedulerLoop


def run_embedded(
    runtime: Runtime,
    *,
    until_idle: bool = False,
    threads: int = 4,
    clock: Callable[[], dt.datetime] = utc_now,
    stop: Callable[[], bool] = lambda: False,
) -> LoopReport:
    """Run the workspace's sequences in this process until stopped (or idle)."""
    if not isinstance(broker, StubBroker):
        raise ConfigurationError(
            "salescycle run is the embedded mode; unset SALESCYCLE_BROKER_URL, or run "
            "`salescycle scheduler` and `dramatiq workers.actors` against Redis"
        )
    install(open_context(runtime))
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    try:
        loop = SchedulerLoop(
            runtime,
            dispatch=lambda ids: run_enrollments.send(ids),
            clock=clock,
            settle=lambda: broker.join(STEPS_QUEUE, fail_fast=True),
        )
        return loop.run(until_idle=until_idle, stop=stop)
    finally:
        worker.stop()
        install(None)
