"""The web app: SendGrid webhooks, our own tracking, health. ``salescycle serve`` runs it.

``create_app`` takes every dependency explicitly (tests build one per case);
``app_from_runtime`` reads them from a workspace and the environment.
"""

from __future__ import annotations

import datetime as dt

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from engine.clock import Clock, utc_now
from engine.settings.model import WebSettings
from engine.tracking.tokens import TokenSigner
from engine.web.api import API_TOKEN_ENV, ApiSetup, api_router
from engine.web.context import OnStored, WebContext, log, no_nudge, problem
from engine.web.dashboard import dashboard_router, dashboard_setup
from engine.web.dashboard_pages import DashboardSetup
from engine.web.limits import BodyTooLarge
from engine.web.metrics import add_metrics
from engine.web.sendgrid_webhooks import (
    INBOUND_SECRET_ENV,
    PUBLIC_KEY_ENV,
    EventSignatureVerifier,
    events_router,
    inbound_router,
)
from engine.web.tracking_routes import tracking_router
from engine.wiring import Runtime

_DEFAULTS = WebSettings()
_RETRY_AFTER = {"Retry-After": "30"}


def create_app(
    engine: Engine,
    signer: TokenSigner,
    *,
    webhook_public_key: str | None,
    inbound_secret: str | None,
    events_max_bytes: int = _DEFAULTS.events_max_bytes,
    inbound_max_bytes: int = _DEFAULTS.inbound_max_bytes,
    signature_tolerance: dt.timedelta = dt.timedelta(seconds=_DEFAULTS.signature_tolerance_seconds),
    clock: Clock = utc_now,
    on_stored: OnStored = no_nudge,
    api_token: str | None = None,
    api: ApiSetup | None = None,
    dashboard: DashboardSetup | None = None,
) -> FastAPI:
    """The ASGI app over ``engine``; a webhook without its key or secret refuses all (503),
    and so does the CRM API without ``api_token`` and ``api`` (and the dashboard at ``/``
    without ``api_token`` and ``dashboard``).

    ``on_stored(source, inbox_id)`` runs after each inbox row is committed (a failure
    there is logged, and the request still acknowledged: the row is durable).
    Raises ``ConfigurationError`` for a public key that is not one.
    """
    context = WebContext(engine, clock, on_stored)
    verifier = None
    if webhook_public_key:
        verifier = EventSignatureVerifier(webhook_public_key, signature_tolerance, clock)
    else:
        log.warning("!!! %s is not set: POST /webhooks/sendgrid/events refuses every "
                    "request (503) until it is", PUBLIC_KEY_ENV)  # fmt: skip
    if not inbound_secret:
        log.warning("!!! %s is not set: POST /webhooks/sendgrid/inbound refuses every "
                    "request (503) until it is", INBOUND_SECRET_ENV)  # fmt: skip
    app = FastAPI(
        title="salescycle",
        summary="Webhooks, tracking links and health of the salescycle engine.",
        version="1",
    )
    app.include_router(events_router(context, verifier, events_max_bytes))
    app.include_router(inbound_router(context, inbound_secret or None, inbound_max_bytes))
    app.include_router(tracking_router(context, signer))
    app.include_router(api_router(context, api_token, api))
    app.include_router(dashboard_router(context, api_token, dashboard))
    _add_health(app, engine)
    add_metrics(app, engine, api_token)
    app.add_exception_handler(BodyTooLarge, _too_large)
    app.add_exception_handler(SQLAlchemyError, _database_down)
    return app


def app_from_runtime(
    runtime: Runtime, *, on_stored: OnStored = no_nudge, clock: Clock = utc_now
) -> FastAPI:
    """The app for a workspace: its database, SALESCYCLE_SECRET_KEY and the webhook secrets
    (``clock``: the demo's simulated time)."""
    settings = runtime.settings
    if settings.secret_key is None:
        log.warning("!!! SALESCYCLE_SECRET_KEY is not set: tracking and unsubscribe links "
                    "in sent emails will not verify (404)")  # fmt: skip
    inbound = settings.inbound_secret
    token = settings.api_token.get_secret_value() if settings.api_token else None
    if token is None:
        log.warning("!!! %s is not set: the CRM API under /api refuses every request (503) "
                    "until it is", API_TOKEN_ENV)  # fmt: skip
    # Built only with a token: a workspace mistake then stops the API, never the webhooks.
    api, dashboard = None, None
    if token is not None:
        rules = runtime.enrollment_rules()
        api = ApiSetup(runtime.pipeline, runtime.sequences, rules, runtime.crm_mapping)
        dashboard = dashboard_setup(runtime)
    return create_app(
        runtime.ready_database(),
        TokenSigner(runtime.secret_key),
        webhook_public_key=settings.sendgrid_webhook_public_key,
        inbound_secret=inbound.get_secret_value() if inbound else None,
        events_max_bytes=settings.web.events_max_bytes,
        inbound_max_bytes=settings.web.inbound_max_bytes,
        signature_tolerance=dt.timedelta(seconds=settings.web.signature_tolerance_seconds),
        clock=clock,
        on_stored=on_stored,
        api_token=token,
        api=api,
        dashboard=dashboard,
    )


def _add_health(app: FastAPI, engine: Engine) -> None:
    @app.get(
        "/healthz",
        tags=["health"],
        summary="The database is reachable",
        responses={503: {"description": "The database is not reachable."}},
    )
    async def healthz() -> Response:
        try:
            await run_in_threadpool(_ping, engine)
        except SQLAlchemyError as exc:
            log.error("health check: the database is not reachable: %s", exc)
            return problem(503, "the database is not reachable")
        return Response(b'{"ok":true}', media_type="application/json")


def _ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


async def _too_large(request: Request, exc: Exception) -> Response:
    limit = exc.limit if isinstance(exc, BodyTooLarge) else 0
    log.warning("refused %s %s: body over %s bytes", request.method, request.url.path, limit)
    return problem(413, f"the request body is over the limit of {limit} bytes")


async def _database_down(request: Request, exc: Exception) -> Response:
    # Nothing was acknowledged: the provider retries, and nothing is lost.
    log.error("database error on %s %s: %s", request.method, request.url.path, exc)
    return problem(503, "the database is unavailable; retry later", _RETRY_AFTER)


__all__ = ["app_from_runtime", "create_app"]
