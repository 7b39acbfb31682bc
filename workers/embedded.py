"""``salescycle run``: scheduler, Dramatiq worker threads and the web app in one process,
on the stub broker."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dramatiq
from dramatiq.brokers.stub import StubBroker

from engine.clock import utc_now
from engine.errors import ConfigurationError
from engine.tracking.inbox import InboxSource
from engine.wiring import Runtime
from workers.actors import STEPS_QUEUE, run_enrollments
from workers.broker import broker
from workers.chores import standard_chores
from workers.context import install, open_context
from workers.inbox import INBOX_QUEUE, process_inbox
from workers.loop import LoopReport, SchedulerLoop


def run_embedded(
    runtime: Runtime,
    *,
    until_idle: bool = False,
    threads: int = 4,
    clock: Callable[[], dt.datetime] = utc_now,
    stop: Callable[[], bool] = lambda: False,
    web: tuple[str, int] | None = None,
) -> LoopReport:
    """Run the workspace's sequences in this process until stopped (or idle); with
    ``web=(host, port)``, serve the web app (webhooks, tracking links) meanwhile."""
    if not isinstance(broker, StubBroker):
        raise ConfigurationError(
            "salescycle run is the embedded mode; unset SALESCYCLE_BROKER_URL, or run "
            "`salescycle scheduler` and `dramatiq workers.actors workers.inbox` against Redis"
        )
    install(open_context(runtime))
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    try:
        with _serving(runtime, web):
            loop = SchedulerLoop(
                runtime,
                dispatch=lambda ids: run_enrollments.send(ids),
                clock=clock,
                settle=_settle,
                chores=standard_chores(runtime, process_inbox.send),
            )
            return loop.run(until_idle=until_idle, stop=stop)
    finally:
        worker.stop()
        install(None)


def nudge_inbox(source: InboxSource, inbox_id: int) -> None:
    """The web app's ``on_stored``: a worker processes the row now."""
    process_inbox.send([inbox_id])


def _settle() -> None:
    assert isinstance(broker, StubBroker)
    for queue in (STEPS_QUEUE, INBOX_QUEUE):
        broker.join(queue, fail_fast=True)


@contextmanager
def _serving(runtime: Runtime, web: tuple[str, int] | None) -> Iterator[None]:
    if web is None:
        yield
        return
    import uvicorn  # the web stack loads only when serving

    from engine.web import app_from_runtime

    host, port = web
    app = app_from_runtime(runtime, on_stored=nudge_inbox)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, lifespan="off",
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, name="salescycle-web", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)
