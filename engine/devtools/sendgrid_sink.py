"""A SendGrid v3 Mail Send look-alike on loopback, for tests, benchmarks and the demo.

The official ``sendgrid`` client talks to it unchanged
(``SendGridAPIClient(api_key, host=sink.url)``). Each request is checked as SendGrid
documents it: a bearer key, at most 30 MB, the Mail Send request schema from SendGrid's
own OpenAPI description, and the limits in ``mail_send_problems``. Accepted mail is kept
in memory (and optionally appended to a JSON-lines file), and a seeded share of requests
can be refused (429, 500, 503) or answered slowly, so retry, timeout and reconciliation
code meets a real HTTP server.

Order of checks: the key (401/403; these draw no fault), then the injected refusal
(429/500/503: the body is not read and nothing is recorded), then 413, malformed JSON
and the schema and limits (400, every reason), then 202 with ``X-Message-Id``. A slow
answer is decided and recorded first and only sent late, like a provider that took the
mail while its client timed out.

For other processes: ``GET /_sink/messages``, ``DELETE /_sink/messages`` (forget mail and
counts), ``GET /_sink/stats``, ``GET /_sink/faults``, ``POST /_sink/faults`` (replace them:
a JSON object of ``Faults`` fields, plus an optional ``seed``) and ``GET /_sink/health``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import random
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx2
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.clock import Clock, utc_now
from engine.delivery.sendgrid_schema import (
    MAIL_SEND_PATH,
    ApiError,
    mail_send_schema,
)
from engine.errors import ConfigurationError, SalescycleError

MAX_BODY_BYTES = 30 * 1024 * 1024  # SendGrid's limit on a whole message
_SLOW_TICK = 0.05  # how often a held-back answer checks whether the sink is stopping


# --- what the sink keeps and counts -------------------------------------------------------


@dataclass(frozen=True)
class AcceptedMail:
    """One accepted Mail Send request: the whole body and what tests usually look for."""

    provider_message_id: str
    received_at: dt.datetime
    body: dict[str, Any] = field(hash=False, repr=False)
    message_ids: tuple[str | None, ...]  # our custom_args["message_id"], per personalization
    recipients: tuple[str, ...]  # to, cc and bcc of every personalization, in order
    subject: str | None  # the first personalization's subject, else the message's

    @classmethod
    def from_body(
        cls, body: dict[str, Any], provider_message_id: str, received_at: dt.datetime
    ) -> AcceptedMail:
        personalizations: list[dict[str, Any]] = body["personalizations"]
        return cls(
            provider_message_id=provider_message_id,
            received_at=received_at,
            body=body,
            message_ids=tuple(
                (p.get("custom_args") or {}).get("message_id") for p in personalizations
            ),
            recipients=tuple(
                a["email"]
                for p in personalizations
                for k in ("to", "cc", "bcc")
                for a in p.get(k, [])
            ),
            subject=personalizations[0].get("subject", body.get("subject")),
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "received_at": self.received_at.isoformat()}


class Outcome(StrEnum):
    """How the sink answered a Mail Send request."""

    ACCEPTED = "accepted"  # 202
    INVALID = "invalid"  # 400
    UNAUTHORIZED = "unauthorized"  # 401
    FORBIDDEN = "forbidden"  # 403
    TOO_LARGE = "too_large"  # 413
    RATE_LIMITED = "rate_limited"  # 429, injected
    INTERNAL_ERROR = "internal_error"  # 500, injected
    UNAVAILABLE = "unavailable"  # 503, injected


# Status and message of every answer other than 202 (messages as in SendGrid's OpenAPI).
_REFUSALS: Mapping[Outcome, tuple[int, str]] = {
    Outcome.INVALID: (400, "invalid request"),
    Outcome.UNAUTHORIZED: (401, "authorization required"),
    Outcome.FORBIDDEN: (403, "access forbidden"),
    Outcome.TOO_LARGE: (413, "content too large"),
    Outcome.RATE_LIMITED: (429, "too many requests"),
    Outcome.INTERNAL_ERROR: (500, "internal server error"),
    Outcome.UNAVAILABLE: (503, "service unavailable"),
}


@dataclass(frozen=True)
class SinkStats:
    """Mail Send requests seen since the last reset, by outcome; ``delayed`` were slow."""

    accepted: int = 0
    invalid: int = 0
    unauthorized: int = 0
    forbidden: int = 0
    too_large: int = 0
    rate_limited: int = 0
    internal_error: int = 0
    unavailable: int = 0
    delayed: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, outcome.value) for outcome in Outcome)


@dataclass(frozen=True)
class Faults:
    """The share of requests refused (429, 500, 503) or answered after ``slow_seconds``.

    Each authorised request draws one number for a refusal and one for slowness from the
    sink's seeded generator, so the same seed and requests give the same answers.
    """

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 2.0
    retry_after: int = 1  # seconds, in Retry-After of every 429

    def __post_init__(self) -> None:
        rates = {k: getattr(self, k) for k in ("rate_429", "rate_500", "rate_503", "rate_slow")}
        problems = [
            f"{k} is {v}; a rate is from 0 to 1" for k, v in rates.items() if not 0 <= v <= 1
        ]
        if self.rate_429 + self.rate_500 + self.rate_503 > 1 + 1e-9:  # 0.3 + 0.3 + 0.4 is 1
            problems.append("rate_429 + rate_500 + rate_503 is over 1")
        if self.slow_seconds < 0 or self.retry_after < 0:
            problems.append("slow_seconds and retry_after cannot be negative")
        if problems:
            raise ConfigurationError("; ".join(problems))

    @classmethod
    def from_json(cls, data: object) -> Faults:
        """Faults from a JSON object with any of the field names (others are errors)."""
        names = [f.name for f in fields(cls)]
        if not isinstance(data, dict):
            raise ConfigurationError(f"faults must be a JSON object with keys {names}")
        if unknown := sorted(set(data) - set(names)):
            raise ConfigurationError(f"unknown fault {unknown}; valid: {names}")
        wrong = {
            k for k, v in data.items() if isinstance(v, bool) or not isinstance(v, int | float)
        }
        if not isinstance(data.get("retry_after", 0), int):
            wrong.add("retry_after")
        if wrong:
            raise ConfigurationError(f"{sorted(wrong)} must be numbers (retry_after whole seconds)")
        return cls(**data)

    def pick(self, refusal_roll: float, slow_roll: float) -> tuple[Outcome | None, float]:
        """The refusal (or None) and the delay for one request's two draws."""
        delay = self.slow_seconds if slow_roll < self.rate_slow else 0.0
        edge = 0.0
        for outcome, rate in (
            (Outcome.RATE_LIMITED, self.rate_429),
            (Outcome.INTERNAL_ERROR, self.rate_500),
            (Outcome.UNAVAILABLE, self.rate_503),
        ):
            edge += rate
            if refusal_roll < edge:
                return outcome, delay
        return None, delay


class _Ledger:
    """Accepted mail and counts, shared by the server thread and the caller's threads."""

    def __init__(self, record_file: Path | None) -> None:
        self._lock = threading.Lock()
        self._mail: list[AcceptedMail] = []
        self._counts: Counter[str] = Counter()
        self._record_file = record_file

    def count(self, outcome: Outcome, delayed: bool) -> None:
        with self._lock:
            self._counts[outcome.value] += 1
            self._counts["delayed"] += delayed

    def accept(self, mail: AcceptedMail, delayed: bool) -> None:
        with self._lock:  # one lock, so the file's lines are in the list's order
            self._mail.append(mail)
            self._counts[Outcome.ACCEPTED.value] += 1
            self._counts["delayed"] += delayed
            if self._record_file is not None:
                with self._record_file.open("ab") as out:
                    out.write(orjson.dumps(mail.body) + b"\n")

    def messages(self) -> list[AcceptedMail]:
        with self._lock:
            return list(self._mail)

    def stats(self) -> SinkStats:
        with self._lock:
            return SinkStats(**self._counts)

    def reset(self) -> None:
        with self._lock:
            self._mail.clear()
            self._counts.clear()


# --- the sink ---------------------------------------------------------------------------------


class SendGridSink:
    """A SendGrid Mail Send server on loopback: ``start()``, point the client at ``url``.

    ``api_key`` None accepts any bearer key; otherwise another key gets 403. Accepted
    bodies are appended to ``record_file`` (one JSON line each) when given; the file is
    never truncated. ``app`` is the ASGI app, for serving it some other way.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        record_file: Path | None = None,
        faults: Faults | None = None,
        seed: int = 0,
        openapi: Path | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        clock: Clock = utc_now,
    ) -> None:
        self._api_key = api_key
        self._max_body_bytes = max_body_bytes
        self._schema = mail_send_schema(openapi)
        self._clock = clock
        self._host, self._port = host, port
        self._ledger = _Ledger(record_file)
        self._faults = faults or Faults()
        self._rng = random.Random(seed)
        self._faults_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None
        self.app = _build_app(self)

    # accessors ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._url is None:
            raise SalescycleError("the SendGrid sink is not started: call start() first")
        return self._url

    def messages(self) -> list[AcceptedMail]:
        """Every accepted request since the last reset, oldest first."""
        return self._ledger.messages()

    def stats(self) -> SinkStats:
        return self._ledger.stats()

    def reset(self) -> None:
        """Forget accepted mail and counts (faults and the generator stay as they are)."""
        self._ledger.reset()

    @property
    def faults(self) -> Faults:
        with self._faults_lock:
            return self._faults

    def set_faults(self, faults: Faults, seed: int | None = None) -> None:
        """Inject these faults from the next request on; a seed restarts the generator."""
        with self._faults_lock:
            self._faults = faults
            if seed is not None:
                self._rng.seed(seed)

    def _draw(self) -> tuple[Outcome | None, float]:
        """One authorised request's fate: a refusal (or None) and a delay in seconds."""
        with self._faults_lock:
            return self._faults.pick(self._rng.random(), self._rng.random())

    # running ------------------------------------------------------------------------------

    def start(self) -> SendGridSink:
        """Serve in a background thread; returns once ``/_sink/health`` answers."""
        if self._thread is not None:
            raise SalescycleError(f"the SendGrid sink is already running at {self._url}")
        listener = _listen(self._host, self._port)
        port = listener.getsockname()[1]
        config = uvicorn.Config(self.app, log_config=None, access_log=False, **_UVICORN)
        self._server = uvicorn.Server(config)
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._server.run, args=([listener],), name=f"sendgrid-sink-{port}", daemon=True
        )
        self._thread.start()
        self._url = f"http://{self._host}:{port}"
        self._wait_until_healthy()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving; answers held back by the slow fault are sent at once."""
        if self._server is None or self._thread is None:
            return
        self._stopping.set()
        self._server.should_exit = True
        self._thread.join(timeout)
        self._server, self._thread, self._url = None, None, None

    def __enter__(self) -> SendGridSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_healthy(self, within: float = 10.0) -> None:
        url, thread = self.url, self._thread
        deadline = time.monotonic() + within
        while thread is not None and thread.is_alive() and time.monotonic() < deadline:
            try:
                if httpx2.get(f"{url}/_sink/health", timeout=1.0).status_code == 200:
                    return
            except httpx2.TransportError:
                time.sleep(0.01)
        self.stop()
        raise SalescycleError(f"the SendGrid sink did not answer at {url}/_sink/health")

    async def _hold(self, seconds: float) -> None:
        """Wait ``seconds`` before answering, unless the sink is stopping."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, _SLOW_TICK))

    def _accept(self, body: dict[str, Any], delayed: bool) -> str:
        """Record an accepted body; its provider message id (22 characters, as SendGrid's)."""
        provider_id = secrets.token_urlsafe(16)
        self._ledger.accept(AcceptedMail.from_body(body, provider_id, self._clock()), delayed)
        return provider_id

    def _count(self, outcome: Outcome, delayed: bool = False) -> None:
        self._ledger.count(outcome, delayed)


# h11: the pure-Python protocol is always there; no websockets, no lifespan events.
_UVICORN: dict[str, Any] = {
    "http": "auto",  # httptools when installed (a dependency): a third of h11's cost
    "ws": "none",
    "lifespan": "off",
    "timeout_graceful_shutdown": 2,
}


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 gets a free port now, so no server has to report it.

    The protocol is named: asyncio sets TCP_NODELAY only on sockets whose ``proto`` is
    IPPROTO_TCP, and without it every answer with a body waits 40 ms for a delayed ACK.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(128)
    except OSError:
        listener.close()
        raise
    return listener


def serve(
    host: str,
    port: int,
    *,
    api_key: str | None = None,
    record_file: Path | None = None,
    rate_429: float = 0.0,
    rate_500: float = 0.0,
    rate_503: float = 0.0,
    rate_slow: float = 0.0,
    slow_seconds: float = 2.0,
    retry_after: int = 1,
    seed: int = 0,
    openapi: Path | None = None,
) -> None:
    """Run the sink in the foreground until interrupted (Ctrl+C)."""
    faults = Faults(
        rate_429=rate_429,
        rate_500=rate_500,
        rate_503=rate_503,
        rate_slow=rate_slow,
        slow_seconds=slow_seconds,
        retry_after=retry_after,
    )
    sink = SendGridSink(api_key, record_file=record_file, faults=faults, seed=seed, openapi=openapi)
    uvicorn.run(sink.app, host=host, port=port, **_UVICORN)


# --- the HTTP app ----------------------------------------------------------------------------


def _build_app(sink: SendGridSink) -> FastAPI:
    app = FastAPI(title="SendGrid sink", openapi_url=None, docs_url=None, redoc_url=None)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    @app.post(MAIL_SEND_PATH)
    async def mail_send(request: Request) -> Response:
        return await _mail_send(sink, request)

    @app.get("/_sink/health")
    async def health() -> Response:
        return _json(200, {"status": "ok"})

    @app.get("/_sink/messages")
    async def messages() -> Response:
        return _json(200, [mail.to_json() for mail in sink.messages()])

    @app.delete("/_sink/messages")
    async def reset() -> Response:
        sink.reset()
        return Response(status_code=204)

    @app.get("/_sink/stats")
    async def stats() -> Response:
        counts = sink.stats()
        return _json(200, {**asdict(counts), "total": counts.total})

    @app.get("/_sink/faults")
    async def faults() -> Response:
        return _json(200, asdict(sink.faults))

    @app.post("/_sink/faults")
    async def set_faults(request: Request) -> Response:
        return await _set_faults(sink, request)

    return app


async def _mail_send(sink: SendGridSink, request: Request) -> Response:
    unauthorised = _check_key(sink._api_key, request.headers.get("authorization"))
    if unauthorised is not None:
        sink._count(unauthorised)
        return _refusal(unauthorised)
    refusal, delay = sink._draw()
    if refusal is not None:
        sink._count(refusal, delay > 0)
        answer = _refusal(refusal, sink.faults.retry_after)
    else:
        answer = _judge(sink, await _read_body(request, sink._max_body_bytes), delay > 0)
    await sink._hold(delay)
    return answer


def _judge(sink: SendGridSink, raw: bytes | None, delayed: bool) -> Response:
    """The answer to an authorised request that no fault refused."""
    if raw is None:
        sink._count(Outcome.TOO_LARGE, delayed)
        return _refusal(Outcome.TOO_LARGE)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        sink._count(Outcome.INVALID, delayed)
        return _errors(400, [ApiError(f"the request body is not valid JSON: {exc}")])
    if errors := sink._schema.errors(body):
        sink._count(Outcome.INVALID, delayed)
        return _errors(400, errors)
    provider_id = sink._accept(body, delayed)
    return Response(status_code=202, headers={"X-Message-Id": provider_id})


def _check_key(api_key: str | None, authorization: str | None) -> Outcome | None:
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return Outcome.UNAUTHORIZED
    if api_key is not None and not hmac.compare_digest(key.strip().encode(), api_key.encode()):
        return Outcome.FORBIDDEN
    return None


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is over ``limit`` (read to the end all the same, so the
    client finishes sending and reads the 413 instead of a reset connection)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
    return b"".join(chunks) if size <= limit else None


async def _set_faults(sink: SendGridSink, request: Request) -> Response:
    try:
        data = orjson.loads(await request.body())
        seed = data.pop("seed", None) if isinstance(data, dict) else None
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigurationError("seed must be an integer")
        sink.set_faults(Faults.from_json(data), seed)
    except (orjson.JSONDecodeError, ConfigurationError) as exc:
        return _errors(400, [ApiError(str(exc))])
    return _json(200, asdict(sink.faults))


def _refusal(outcome: Outcome, retry_after: int = 0) -> Response:
    status, message = _REFUSALS[outcome]
    headers = None
    if outcome is Outcome.RATE_LIMITED:
        # SendGrid itself says when in X-RateLimit-Reset; Retry-After is the HTTP way.
        reset = int(time.time()) + retry_after
        headers = {"Retry-After": str(retry_after), "X-RateLimit-Reset": str(reset)}
    return _errors(status, [ApiError(message)], headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer in SendGrid's shape too ("not found", ...)."""
    assert isinstance(exc, StarletteHTTPException)
    return _errors(exc.status_code, [ApiError(str(exc.detail).lower())], exc.headers)


def _errors(
    status: int, errors: Iterable[ApiError], headers: Mapping[str, str] | None = None
) -> Response:
    return _json(status, {"errors": [error.to_json() for error in errors]}, headers)


def _json(status: int, payload: object, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status, headers, media_type="application/json")
