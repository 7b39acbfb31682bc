"""The one broker of this process: Redis when ``SALESCYCLE_BROKER_URL`` is set, else the stub.

Imported before any actor is declared (``dramatiq.actor`` binds to the broker set at
that moment).
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

BROKER_URL_ENV = "SALESCYCLE_BROKER_URL"
# "1": the workers export Prometheus metrics with Dramatiq's own middleware (an exposition
# server on dramatiq_prom_host:dramatiq_prom_port, 0.0.0.0:9191 by default).
WORKER_METRICS_ENV = "SALESCYCLE_WORKER_METRICS"


def make_broker(url: str | None) -> dramatiq.Broker:
    """A Redis broker for ``url``, or the in-process stub broker when there is none."""
    if url:
        redis_broker = RedisBroker(url=url)  # type: ignore[no-untyped-call]
        if os.environ.get(WORKER_METRICS_ENV, "").strip() == "1":
            from dramatiq.middleware.prometheus import Prometheus

            redis_broker.add_middleware(Prometheus())
        return redis_broker
    broker = StubBroker()
    # Dramatiq's TimeLimit middleware only starts its timer thread on process_boot,
    # which an in-process worker never emits.
    broker.emit_after("process_boot")
    return broker


broker = make_broker(os.environ.get(BROKER_URL_ENV))
dramatiq.set_broker(broker)
