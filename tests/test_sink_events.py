"""Signed SendGrid event batches about mail the sink accepted, posted to a real receiver.

The mail goes through the official client to a started ``SendGridSink``; the events are
posted over TCP to a small ``http.server`` receiver that keeps the raw body and headers,
and are checked with the ``sendgrid`` package's own ``EventWebhook`` verifier.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest
import sendgrid
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from sendgrid.helpers.mail import Category, CustomArg, Mail, Personalization, To

from engine.devtools import AcceptedMail, EventSigner, SendGridSink, events_for, post_events
from engine.devtools.sendgrid_events import KINDS

API_KEY = "SG.event-tests.0123456789"
NOW = dt.datetime(2026, 3, 3, 9, 30, 15, tzinfo=dt.UTC)
SIGNATURE = EventWebhookHeader.SIGNATURE.lower()  # the receiver keeps header names lower-case
TIMESTAMP = EventWebhookHeader.TIMESTAMP.lower()
RECIPIENTS = (("bo@kunde.example.dk", "m7kq2xw4zr9tbn3d"), ("åse@firma.example.no", "p3x9"))


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]


@dataclass
class Receiver:
    """Posts seen by the loopback receiver; it answers 204 to a verified post, else 403."""

    public_key: str
    url: str = ""
    posts: list[Received] = field(default_factory=list)


def _verifies(body: bytes, headers: dict[str, str], public_key: str) -> bool:
    """The engine's check: the exact raw body (as text) and the timestamp header."""
    webhook = EventWebhook()
    key = webhook.convert_public_key_to_ecdsa(public_key)
    return bool(
        webhook.verify_signature(
            body.decode("utf-8"),
            headers[SIGNATURE],
            headers[TIMESTAMP],
            key,
        )
    )


@pytest.fixture(scope="module")
def signer() -> EventSigner:
    return EventSigner()


@pytest.fixture(scope="module")
def accepted() -> AcceptedMail:
    """One message with two personalizations, accepted by a real sink."""
    mail = Mail(
        from_email="sales@example.com",
        subject="Kort spørgsmål",
        plain_text_content="Hej, se demoen: https://example.com/demo?x=1",
        html_content='<p>Hej, se <a href="https://example.com/demo?x=1">demoen</a>.</p>',
    )
    # Personalizations built one by one: is_multiple=True adds them in reverse order.
    for index, (email, message_id) in enumerate(RECIPIENTS):
        personalization = Personalization()
        personalization.add_to(To(email))
        for key, value in {
            "message_id": message_id,
            "enrollment": f"enr-{index}",
            "sequence": "nordics-q1",
            "step": "2",
            "variant": "b",
        }.items():
            personalization.add_custom_arg(CustomArg(key, value))
        mail.add_personalization(personalization)
    mail.category = Category("outbound")
    with SendGridSink(API_KEY) as sink:
        response = sendgrid.SendGridAPIClient(API_KEY, host=sink.url).send(mail)
        assert response.status_code == 202
        [message] = sink.messages()
    assert message.provider_message_id == response.headers["X-Message-Id"]
    return message


@pytest.fixture(scope="module")
def receiver(signer: EventSigner) -> Iterator[Receiver]:
    state = Receiver(signer.public_key_base64)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.posts.append(Received(body, headers))
            self.send_response(204 if _verifies(body, headers, state.public_key) else 403)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/sendgrid/events"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def client() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=5.0) as http:
        yield http


def test_a_signed_batch_verifies_over_the_raw_body_and_timestamp(
    accepted: AcceptedMail, signer: EventSigner, receiver: Receiver, client: httpx2.Client
) -> None:
    events = events_for(accepted, ["processed", "delivered", "open"], NOW, random.Random(1))
    receiver.posts.clear()

    status = post_events(receiver.url, events, signer, now=NOW, client=client)

    assert status == 204
    [post] = receiver.posts
    assert post.headers[TIMESTAMP] == str(int(NOW.timestamp()))
    assert _verifies(post.body, post.headers, signer.public_key_base64)
    assert json.loads(post.body) == events
    # Re-serialised JSON is not what was signed: receivers must keep the raw bytes.
    reserialised = json.dumps(json.loads(post.body)).encode()
    assert not _verifies(reserialised, post.headers, signer.public_key_base64)


def test_a_tampered_body_does_not_verify(
    accepted: AcceptedMail, signer: EventSigner, receiver: Receiver, client: httpx2.Client
) -> None:
    events = events_for(accepted, ["delivered"], NOW, random.Random(2))
    receiver.posts.clear()

    status = post_events(receiver.url, events, signer, now=NOW, client=client, tamper=True)

    assert status == 403
    [post] = receiver.posts
    assert json.loads(post.body) != events
    assert not _verifies(post.body, post.headers, signer.public_key_base64)


def test_another_key_does_not_verify(
    accepted: AcceptedMail, receiver: Receiver, client: httpx2.Client
) -> None:
    other = EventSigner()
    events = events_for(accepted, ["click"], NOW, random.Random(3))
    receiver.posts.clear()

    assert post_events(receiver.url, events, other, now=NOW, client=client) == 403
    [post] = receiver.posts
    assert _verifies(post.body, post.headers, other.public_key_base64)
    assert not _verifies(post.body, post.headers, receiver.public_key)


def test_a_changed_timestamp_header_does_not_verify(signer: EventSigner) -> None:
    body = b'[{"event":"open"}]'
    headers = {
        SIGNATURE: signer.sign("1772530215", body),
        TIMESTAMP: "1772530216",
    }
    assert not _verifies(body, headers, signer.public_key_base64)
    headers[TIMESTAMP] = "1772530215"
    assert _verifies(body, headers, signer.public_key_base64)


def test_events_carry_custom_args_ids_and_kind_fields(accepted: AcceptedMail) -> None:
    events = events_for(accepted, KINDS, NOW, random.Random(4))

    assert len(events) == len(RECIPIENTS) * len(KINDS)
    for email, message_id in RECIPIENTS:
        mine = [e for e in events if e["email"] == email]
        assert [e["event"] for e in mine] == [
            "bounce" if kind == "blocked" else kind for kind in KINDS
        ]
        assert {e["message_id"] for e in mine} == {message_id}
        assert {(e["sequence"], e["step"], e["variant"]) for e in mine} == {
            ("nordics-q1", "2", "b")
        }
    assert len({e["sg_event_id"] for e in events}) == len(events)
    for event in events:
        assert event["sg_message_id"].startswith(accepted.provider_message_id + ".")
        assert event["timestamp"] == int(NOW.timestamp())
        assert event["category"] == "outbound"
        assert event["smtp-id"]
    by_event = {(e["email"], e["event"], e.get("type")): e for e in events}
    first = RECIPIENTS[0][0]
    assert by_event[first, "click", None]["url"] == "https://example.com/demo?x=1"
    assert by_event[first, "open", None]["useragent"]
    assert by_event[first, "bounce", "bounce"]["status"].startswith("5.")
    assert by_event[first, "bounce", "blocked"]["reason"]


def test_events_are_deterministic_given_the_generator(accepted: AcceptedMail) -> None:
    one = events_for(accepted, ["open", "click"], NOW, random.Random(5))
    assert one == events_for(accepted, ["open", "click"], NOW, random.Random(5))
    assert one != events_for(accepted, ["open", "click"], NOW, random.Random(6))


def test_an_unknown_kind_is_refused(accepted: AcceptedMail) -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        events_for(accepted, ["opened"], NOW, random.Random(0))
