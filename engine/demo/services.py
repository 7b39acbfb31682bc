"""The engine's moving parts as ``salescycle run`` has them, on the simulated clock:
Dramatiq worker threads on the stub broker, and the web app served over loopback HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import dramatiq
import uvicorn
from dramatiq.brokers.stub import StubBroker

from engine.clock import Clock
from engine.errors import ConfigurationError
from engine.web import app_from_runtime
from engine.wiring import Runtime
from workers.actors import STEPS_QUEUE
from workers.broker import broker
from workers.context import install, open_context
from workers.embedded import nudge_inbox
from workers.inbox import INBOX_QUEUE

# One worker thread: SQLite has one writer anyway, and work done in a fixed order is
# what makes a seed give the same numbers every time.
WORKER_THREADS = 1


@contextmanager
def workers(runtime: Runtime, clock: Clock) -> Iterator[None]:
    """In-process Dramatiq workers whose actors read ``clock``."""
    if not isinstance(broker, StubBroker):
        raise ConfigurationError(
            "salescycle demo runs on the embedded default; unset SALESCYCLE_BROKER_URL"
        )
    install(open_context(runtime, clock))
    worker = dramatiq.Worker(broker, worker_threads=WORKER_THREADS, worker_timeout=100)
    worker.start()
    try:
        yield
    finally:
        worker.stop()
        install(None)


def settle(queues: tuple[str, ...] = (STEPS_QUEUE, INBOX_QUEUE)) -> None:
    """Wait until the workers have done everything handed to them."""
    assert isinstance(broker, StubBroker)
    for queue in queues:
        broker.join(queue, fail_fast=True)


def settle_inbox() -> None:
    """Wait until every stored webhook request the web app nudged about is processed."""
    settle((INBOX_QUEUE,))


@contextmanager
def web_app(runtime: Runtime, clock: Clock) -> Iterator[str]:
    """The workspace's web app on a free loopback port; yields its base URL."""
    app = app_from_runtime(runtime, on_stored=nudge_inbox, clock=clock)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, args=([listener],), name="salescycle-demo-web", daemon=True
    )
    thread.start()
    try:
        _wait_started(server)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


def _wait_started(server: uvicorn.Server, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not server.started:
        if time.monotonic() > deadline:
            raise ConfigurationError("the demo's web app did not start within 10 s")
        time.sleep(0.01)
