"""POST /webhooks/sendgrid/events over real HTTP: verify the signature, store raw, answer.

Batches are built and signed with ``engine.devtools`` (an ECDSA key pair made here) and
posted to the app served by uvicorn on loopback, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Iterator
from typing import Any

import httpx2
import orjson
import pytest
from _web import NOW, SECRET_KEY, Nudges, client_for, inbox_rows, webhook_app
from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy import Engine

from engine.devtools import AcceptedMail, EventSigner, events_for, post_events
from engine.devtools.sendgrid_events import KINDS, SIGNATURE_HEADER, TIMESTAMP_HEADER
from engine.errors import ConfigurationError
from engine.tracking import TokenSigner
from engine.tracking.inbox import InboxSource, InboxStatus
from engine.web import create_app

PATH = "/webhooks/sendgrid/events"
SIGNER = EventSigner()  # one key pair for the module: generating one is the slow part


def _mail(recipients: int = 2) -> AcceptedMail:
    body = {
        "personalizations": [
            {"to": [{"email": f"r{n}@kunde.example.dk"}], "custom_args": {"message_id": f"m{n}"}}
            for n in range(recipients)
        ],
        "content": [{"type": "text/html", "value": '<a href="https://example.com/demo">x</a>'}],
    }
    return AcceptedMail.from_body(body, "provider-id-0123456789", NOW)


def _events(recipients: int = 2, kinds: tuple[str, ...] = ("delivered", "open")) -> Any:
    return events_for(_mail(recipients), kinds, NOW, random.Random(7))


def _app(engine: Engine, nudges: Nudges, **options: Any) -> Any:
    return webhook_app(
        engine, nudges, **{"webhook_public_key": SIGNER.public_key_base64, **options}
    )


@pytest.fixture
def client(engine: Engine, nudges: Nudges) -> Iterator[httpx2.Client]:
    with client_for(_app(engine, nudges)) as http:
        yield http


def _signed_post(
    client: httpx2.Client,
    body: bytes,
    *,
    timestamp: str | None = None,
    signed_timestamp: str | None = None,
    signer: EventSigner = SIGNER,
    omit: tuple[str, ...] = (),
) -> httpx2.Response:
    """Post ``body`` signed over ``signed_timestamp`` but sent with ``timestamp``."""
    timestamp = timestamp or str(int(NOW.timestamp()))
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signer.sign(signed_timestamp or timestamp, body),
        TIMESTAMP_HEADER: timestamp,
    }
    return client.post(
        PATH, content=body, headers={k: v for k, v in headers.items() if k not in omit}
    )


def test_a_signed_batch_is_stored_byte_for_byte_then_acknowledged(
    client: httpx2.Client, engine: Engine, nudges: Nudges
) -> None:
    events = _events(kinds=KINDS)

    status = post_events(f"{client.base_url}{PATH}", events, SIGNER, now=NOW, client=client)

    assert status == 200
    [row] = inbox_rows(engine)
    assert row["source"] == InboxSource.SENDGRID_EVENTS
    assert row["status"] == InboxStatus.RECEIVED
    assert bytes(row["body"]) == orjson.dumps(events)  # what post_events sent, exactly
    assert row["received_at"] == NOW
    headers = row["headers"]
    assert headers[TIMESTAMP_HEADER.lower()] == str(int(NOW.timestamp()))
    # the stored row can be verified again later, as it arrived
    verifier = EventWebhook(SIGNER.public_key_base64)
    stored_signature, stored_timestamp = (
        headers[h.lower()] for h in (SIGNATURE_HEADER, TIMESTAMP_HEADER)
    )
    assert verifier.verify_signature(
        bytes(row["body"]).decode(), stored_signature, stored_timestamp
    )
    assert headers["content-type"] == "application/json"
    assert nudges.calls == [(InboxSource.SENDGRID_EVENTS, row["id"])]


def test_the_same_batch_three_times_is_stored_three_times(
    client: httpx2.Client, engine: Engine, nudges: Nudges
) -> None:
    events = _events()
    url = f"{client.base_url}{PATH}"

    statuses = [post_events(url, events, SIGNER, now=NOW, client=client) for _ in range(3)]

    # Deduplication by sg_event_id is the processor's job; the inbox keeps every delivery.
    assert statuses == [200, 200, 200]
    rows = inbox_rows(engine)
    assert [bytes(r["body"]) for r in rows] == [orjson.dumps(events)] * 3
    assert [call[1] for call in nudges.calls] == [r["id"] for r in rows]


def test_a_batch_of_thousands_of_events_is_accepted(client: httpx2.Client, engine: Engine) -> None:
    events = _events(recipients=1500, kinds=("delivered", "open"))
    body = orjson.dumps(events)
    assert len(events) == 3000 and len(body) > 1_000_000

    response = _signed_post(client, body)

    assert response.status_code == 200, response.text
    assert [bytes(r["body"]) for r in inbox_rows(engine)] == [body]


def test_an_empty_batch_is_stored(client: httpx2.Client, engine: Engine) -> None:
    assert _signed_post(client, b"[]").status_code == 200
    assert [bytes(r["body"]) for r in inbox_rows(engine)] == [b"[]"]


BODY = orjson.dumps(_events())
NOW_TS = str(int(NOW.timestamp()))


@pytest.mark.parametrize(
    ("case", "post", "status"),
    [
        ("forged", lambda c: _signed_post(c, BODY, signer=EventSigner()), 403),
        ("altered body", lambda c: post_events(f"{c.base_url}{PATH}", _events(), SIGNER,
                                               now=NOW, client=c, tamper=True), 403),
        ("altered timestamp", lambda c: _signed_post(c, BODY, timestamp=str(int(NOW_TS) + 1),
                                                     signed_timestamp=NOW_TS), 403),
        ("stale", lambda c: _signed_post(c, BODY, timestamp=str(int(NOW_TS) - 601)), 403),
        ("from the future", lambda c: _signed_post(c, BODY, timestamp=str(int(NOW_TS) + 601)), 403),
        ("no signature", lambda c: _signed_post(c, BODY, omit=(SIGNATURE_HEADER,)), 403),
        ("no timestamp", lambda c: _signed_post(c, BODY, omit=(TIMESTAMP_HEADER,)), 403),
        ("no headers", lambda c: c.post(PATH, content=BODY), 403),
        ("timestamp not a number", lambda c: _signed_post(c, BODY, timestamp="1e9"), 403),
        ("signature not base64", lambda c: c.post(PATH, content=BODY, headers={
            SIGNATURE_HEADER: "%%%not base64%%%", TIMESTAMP_HEADER: NOW_TS}), 403),
        ("signature of garbage", lambda c: c.post(PATH, content=BODY, headers={
            SIGNATURE_HEADER: "AAAA", TIMESTAMP_HEADER: NOW_TS}), 403),
        ("not UTF-8", lambda c: _signed_post(c, b'["\xff\xfe"]'), 403),
        ("malformed JSON", lambda c: _signed_post(c, b'[{"event": "open",'), 400),
        ("an object, not an array", lambda c: _signed_post(c, b'{"event": "open"}'), 400),
        ("a string", lambda c: _signed_post(c, b'"[]"'), 400),
        ("empty body", lambda c: _signed_post(c, b""), 400),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)  # fmt: skip
def test_a_refused_request_leaves_the_inbox_unchanged(
    client: httpx2.Client, engine: Engine, nudges: Nudges, case: str, post: Any, status: int
) -> None:
    response = post(client)

    assert (response if isinstance(response, int) else response.status_code) == status, case
    assert inbox_rows(engine) == []
    assert nudges.calls == []


def test_a_body_over_the_limit_is_413_by_content_length_and_while_streaming(
    engine: Engine, nudges: Nudges
) -> None:
    body = orjson.dumps(_events(recipients=400))
    assert len(body) > 100_000
    with client_for(_app(engine, nudges, events_max_bytes=64 * 1024)) as client:
        declared = _signed_post(client, body)
        signature = SIGNER.sign(NOW_TS, body)
        chunks = (body[i : i + 8192] for i in range(0, len(body), 8192))  # chunked: no length
        streamed = client.post(PATH, content=chunks, headers={
            SIGNATURE_HEADER: signature, TIMESTAMP_HEADER: NOW_TS})  # fmt: skip
        within = _signed_post(client, BODY)

    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert "65536" in declared.json()["detail"]
    assert within.status_code == 200  # the connection and the app are fine afterwards
    assert [bytes(r["body"]) for r in inbox_rows(engine)] == [BODY]
    assert len(nudges.calls) == 1


def test_without_a_public_key_everything_is_refused_and_start_up_warns(
    engine: Engine, nudges: Nudges, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="salescycle.web"):
        app = _app(engine, nudges, webhook_public_key=None)
    assert any("SALESCYCLE_SENDGRID_WEBHOOK_PUBLIC_KEY" in r.getMessage() for r in caplog.records)

    with client_for(app) as client:
        response = _signed_post(client, BODY)

    assert response.status_code == 503
    assert "SALESCYCLE_SENDGRID_WEBHOOK_PUBLIC_KEY" in response.json()["detail"]
    assert inbox_rows(engine) == []


@pytest.mark.parametrize("key", ["not base64 at all!", "c2hvcnQ=", "MIIBIjANBgkqhkiG9w0BAQ=="])
def test_a_public_key_that_is_not_one_is_a_configuration_error(engine: Engine, key: str) -> None:
    with pytest.raises(ConfigurationError, match="SALESCYCLE_SENDGRID_WEBHOOK_PUBLIC_KEY"):
        create_app(engine, TokenSigner(SECRET_KEY), webhook_public_key=key, inbound_secret=None)


def test_a_failing_nudge_still_acknowledges_the_stored_batch(engine: Engine) -> None:
    def broken(source: InboxSource, inbox_id: int) -> None:
        raise ConnectionError("the broker is down")

    with client_for(_app(engine, Nudges(), on_stored=broken)) as client:
        response = _signed_post(client, BODY)

    assert response.status_code == 200  # the row is durable: workers or replay find it
    assert [bytes(r["body"]) for r in inbox_rows(engine)] == [BODY]


def test_with_the_database_down_the_answer_is_503_so_sendgrid_retries(
    tmp_path: Any, nudges: Nudges
) -> None:
    from engine.storage import create_database_engine

    missing = create_database_engine(f"sqlite:///{tmp_path}/no/such/folder/salescycle.db")
    with client_for(_app(missing, nudges)) as client:
        response = _signed_post(client, BODY)
        health = client.get("/healthz")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert health.status_code == 503
    assert nudges.calls == []


def test_the_openapi_schema_documents_the_answers(client: httpx2.Client) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"][PATH]["post"]

    assert {"200", "400", "403", "413", "503"} <= set(operation["responses"])
    assert "application/json" in operation["requestBody"]["content"]
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert headers == {SIGNATURE_HEADER, TIMESTAMP_HEADER}


def test_clock_skew_within_the_tolerance_is_accepted(engine: Engine, nudges: Nudges) -> None:
    app = _app(engine, nudges, signature_tolerance=dt.timedelta(minutes=2))
    with client_for(app) as client:
        recent = _signed_post(client, BODY, timestamp=str(int(NOW_TS) - 119))
        older = _signed_post(client, BODY, timestamp=str(int(NOW_TS) - 121))

    assert (recent.status_code, older.status_code) == (200, 403)
    assert len(inbox_rows(engine)) == 1
