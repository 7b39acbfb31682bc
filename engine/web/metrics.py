"""``GET /metrics``: the web app's own counters, and the engine's queues as gauges.

Prometheus text format (``prometheus_client``). Requests are counted by route and status
as they are answered; the backlog (inbox rows, messages, enrollments, the CRM outbox, by
status) is read from the database when scraped, so several web processes report the
same numbers. The Dramatiq workers export theirs through Dramatiq's own Prometheus
middleware (``SALESCYCLE_WORKER_METRICS=1``). With ``SALESCYCLE_API_TOKEN`` set, the
scraper sends it as a bearer token.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterator

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, Table, func, select

from engine.storage.schema import crm_outbox, enrollments, messages, webhook_inbox

_BACKLOG: tuple[tuple[str, Table, str], ...] = (
    ("salescycle_inbox_rows", webhook_inbox, "Webhook inbox rows by status."),
    ("salescycle_messages", messages, "Messages by status."),
    ("salescycle_enrollments", enrollments, "Enrollments by status."),
)


class _Backlog(Collector):
    """Counts by status, read from the database at each scrape."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._engine.connect() as connection:
            for name, table, help_text in _BACKLOG:
                family = GaugeMetricFamily(name, help_text, labels=["status"])
                query = select(table.c.status, func.count()).group_by(table.c.status)
                for status, count in connection.execute(query):
                    family.add_metric([str(status)], int(count))
                yield family
            waiting = select(func.count()).where(crm_outbox.c.delivered_at.is_(None))
            family = GaugeMetricFamily(
                "salescycle_crm_outbox_undelivered", "CRM webhook changes not yet delivered."
            )
            family.add_metric([], int(connection.execute(waiting).scalar_one()))
            yield family


def add_metrics(app: FastAPI, engine: Engine, api_token: str | None) -> None:
    """Count every answer by route and status, and serve ``GET /metrics``."""
    registry = CollectorRegistry()
    answers = Counter(
        "salescycle_http_responses", "Answers by route and status.", ["route", "status"],
        registry=registry,
    )  # fmt: skip
    registry.register(_Backlog(engine))

    @app.middleware("http")
    async def count(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        answers.labels(_route(request), str(response.status_code)).inc()
        return response

    router = APIRouter(tags=["health"])

    refused = {401: {"description": "SALESCYCLE_API_TOKEN is set and was not sent."}}

    @router.get("/metrics", summary="Prometheus metrics", responses=refused)  # type: ignore[arg-type]
    async def metrics(request: Request) -> Response:
        if api_token and not _bearer_is(request.headers.get("authorization"), api_token):
            return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)


def _route(request: Request) -> str:
    """The matched route's path template (``/t/c/{token}``), never the path itself: tokens
    and emails must not become label values."""
    route = request.scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")


def _bearer_is(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )
