"""SendGrid's webhooks: the Signed Event Webhook and Inbound Parse.

Each request is verified, stored raw in the durable inbox, committed, and only then
acknowledged; parsing is the workers' job. Refusals never touch the database: a bad
signature or secret is a 4xx (and logged), a database failure a 503 so SendGrid retries.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import logging
import re
from collections.abc import Mapping
from typing import Annotated, Any

import orjson
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader
from starlette.responses import JSONResponse

from engine.clock import Clock
from engine.errors import ConfigurationError
from engine.tracking.inbox import InboxSource
from engine.web.context import WebContext, problem
from engine.web.limits import read_body

log = logging.getLogger("salescycle.web")

EVENTS_PATH = "/webhooks/sendgrid/events"
INBOUND_PATH = "/webhooks/sendgrid/inbound"
SIGNATURE_HEADER = EventWebhookHeader.SIGNATURE
TIMESTAMP_HEADER = EventWebhookHeader.TIMESTAMP
PUBLIC_KEY_ENV = "SALESCYCLE_SENDGRID_WEBHOOK_PUBLIC_KEY"
INBOUND_SECRET_ENV = "SALESCYCLE_INBOUND_SECRET"

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
# Request headers kept beside an event batch (enough to verify it again later).
_EVENT_HEADERS = ("content-type", "user-agent", SIGNATURE_HEADER.lower(), TIMESTAMP_HEADER.lower())
_OK: dict[str, Any] = {"ok": True}


def _documented(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {}}}


class EventSignatureVerifier:
    """Checks a Signed Event Webhook request with the ``sendgrid`` package's verifier."""

    def __init__(self, public_key: str, tolerance: dt.timedelta, clock: Clock) -> None:
        self._webhook = EventWebhook()
        self._key = _public_key(self._webhook, public_key)
        self._tolerance = tolerance
        self._clock = clock

    def refusal(self, signature: str | None, timestamp: str | None, body: bytes) -> str | None:
        """Why the request is not SendGrid's own, recent, unaltered post; None when it is."""
        if not signature or not timestamp:
            return f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}"
        if not _TIMESTAMP.fullmatch(timestamp):
            return f"{TIMESTAMP_HEADER} is not a Unix timestamp"
        try:
            payload = body.decode("utf-8")
            genuine = self._webhook.verify_signature(payload, signature, timestamp, self._key)
        except (UnicodeDecodeError, binascii.Error, ValueError):
            genuine = False
        if not genuine:
            return "the signature does not match the body and timestamp"
        skew = abs(self._clock().timestamp() - int(timestamp))
        if skew > self._tolerance.total_seconds():
            return f"the timestamp is {int(skew)} s away from now (stale or replayed)"
        return None


def _public_key(webhook: EventWebhook, public_key: str) -> ec.EllipticCurvePublicKey:
    try:
        base64.b64decode(public_key.strip(), validate=True)
        key = webhook.convert_public_key_to_ecdsa(public_key.strip())
    except (ValueError, binascii.Error, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigurationError(
            f"{PUBLIC_KEY_ENV} is not an ECDSA public key; paste the verification key "
            "exactly as SendGrid's Mail Settings > Signed Event Webhook shows it"
        )
    return key


def events_router(
    context: WebContext, verifier: EventSignatureVerifier | None, max_bytes: int
) -> APIRouter:
    """``POST /webhooks/sendgrid/events``: verify, store the raw batch, acknowledge."""
    router = APIRouter(tags=["webhooks"])

    @router.post(
        EVENTS_PATH,
        summary="SendGrid Event Webhook (signed)",
        responses={
            200: _documented("Stored durably; workers process it."),
            400: _documented("The body is not a JSON array."),
            403: _documented("Missing, forged or stale signature."),
            413: _documented(f"The body is over {max_bytes} bytes."),
            503: _documented(f"Not configured ({PUBLIC_KEY_ENV}), or the database is down."),
        },
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "array", "items": {"type": "object"}}}}}},
    )  # fmt: skip
    async def sendgrid_events(
        request: Request,
        signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
        timestamp: Annotated[str | None, Header(alias=TIMESTAMP_HEADER)] = None,
    ) -> Response:
        # The two headers are parameters for the OpenAPI schema; the check reads them
        # from the stored header map, so what is verified is what is kept.
        if verifier is None:
            return problem(503, f"event webhook verification is not configured ({PUBLIC_KEY_ENV})")
        body = await read_body(request, max_bytes)
        headers = {k: v for k in _EVENT_HEADERS if (v := request.headers.get(k)) is not None}
        return await run_in_threadpool(_accept_events, context, verifier, headers, body)

    return router


def _accept_events(
    context: WebContext,
    verifier: EventSignatureVerifier,
    headers: Mapping[str, str],
    body: bytes,
) -> Response:
    """Verify, check the shape, store; runs in a worker thread (CPU and database)."""
    signature = headers.get(SIGNATURE_HEADER.lower())
    refusal = verifier.refusal(signature, headers.get(TIMESTAMP_HEADER.lower()), body)
    if refusal is not None:
        log.warning("refused a SendGrid event batch: %s", refusal)
        return problem(403, refusal)
    if not _is_json_array(body):
        log.warning("refused a signed SendGrid event batch: the body is not a JSON array")
        return problem(400, "the body must be a JSON array of events")
    context.store(InboxSource.SENDGRID_EVENTS, headers, body)
    return JSONResponse(_OK)


def _is_json_array(body: bytes) -> bool:
    try:
        return isinstance(orjson.loads(body), list)
    except orjson.JSONDecodeError:
        return False


_basic = HTTPBasic(auto_error=False, realm="salescycle inbound", description="Any user name; "
                   f"the password is {INBOUND_SECRET_ENV}.")  # fmt: skip
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="salescycle inbound"'}


def inbound_router(context: WebContext, secret: str | None, max_bytes: int) -> APIRouter:
    """``POST /webhooks/sendgrid/inbound``: check the secret, store the raw form, acknowledge."""
    router = APIRouter(tags=["webhooks"])

    @router.post(
        INBOUND_PATH,
        summary="SendGrid Inbound Parse (raw MIME or parsed fields)",
        responses={
            200: _documented("Stored durably; workers process it."),
            400: _documented("The body is not multipart/form-data."),
            401: _documented(f"Missing or wrong {INBOUND_SECRET_ENV}."),
            413: _documented(f"The body is over {max_bytes} bytes."),
            503: _documented(f"Not configured ({INBOUND_SECRET_ENV}), or the database is down."),
        },
        openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {
            "schema": {"type": "object", "properties": {
                name: {"type": "string"} for name in (
                    "email", "text", "html", "headers", "from", "to", "subject", "envelope",
                    "charsets", "attachments", "SPF", "dkim")}}}}}},
    )  # fmt: skip
    async def sendgrid_inbound(
        request: Request,
        credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
        query_secret: Annotated[
            str | None, Query(alias="secret", description="Instead of basic auth.")
        ] = None,
    ) -> Response:
        if secret is None:
            return problem(503, f"inbound parse is not configured ({INBOUND_SECRET_ENV})")
        given = [query_secret, credentials.password if credentials else None]
        if not any(_same_secret(value, secret) for value in given):
            log.warning("refused an inbound parse post: missing or wrong secret")
            return problem(401, "missing or wrong inbound secret", _CHALLENGE)
        body = await read_body(request, max_bytes)
        content_type = request.headers.get("content-type", "")
        return await run_in_threadpool(_accept_inbound, context, content_type, body)

    return router


def _same_secret(given: str | None, secret: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), secret.encode())


def _accept_inbound(context: WebContext, content_type: str, body: bytes) -> Response:
    if not is_multipart_form(content_type, body):
        log.warning("refused an inbound parse post: the body is not multipart/form-data")
        return problem(400, "the body must be multipart/form-data")
    context.store(InboxSource.SENDGRID_INBOUND, {"content-type": content_type}, body)
    return JSONResponse(_OK)


def is_multipart_form(content_type: str, body: bytes) -> bool:
    """Whether ``body`` is a complete multipart/form-data body of at least one part.

    python-multipart's streaming parser (FastAPI's own form parser) rather than
    ``request.form()``: that would keep a copy of every field and caps a part at 1 MB,
    while a raw MIME ``email`` field may hold 30 MB of attachments.
    """
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        return False
    seen = {"parts": 0, "ended": False}

    def on_part_begin() -> None:
        seen["parts"] += 1

    def on_end() -> None:
        seen["ended"] = True

    try:
        parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_end": on_end})
        parser.write(body)
        parser.finalize()
    except (MultipartParseError, ValueError):
        return False
    return bool(seen["ended"]) and int(seen["parts"]) > 0
