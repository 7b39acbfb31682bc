"""SendGrid Event Webhook look-alikes: signed event batches about mail the sink accepted.

``events_for`` builds the JSON objects SendGrid posts (one per recipient and kind, with
the personalization's ``custom_args`` copied to the top level), ``EventSigner`` signs a
batch as the Signed Event Webhook does (ECDSA P-256, SHA-256 over the timestamp header
followed by the exact raw body), and ``post_events`` posts it with the two Twilio headers.
``sendgrid.helpers.eventwebhook.EventWebhook`` accepts what ``EventSigner`` signs.

Duplicates and reordering are the caller's: post a batch twice, or shuffle it first.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx2
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from engine.devtools.sendgrid_sink import AcceptedMail

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

_IPS = ("192.0.2.17", "198.51.100.42", "203.0.113.7")  # documentation ranges only
_USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/42.0.2311.135 Safari/537.36 Edge/12.10136 (via ggpht.com GoogleImageProxy)",
)
_HREF = re.compile(r"""href\s*=\s*["'](https?://[^"']+)["']""", re.IGNORECASE)

# Each kind: the event name SendGrid posts and its fixed kind-specific fields.
# "blocked" is a bounce of type blocked, as SendGrid reports it.
_KINDS: Mapping[str, tuple[str, Mapping[str, Any]]] = {
    "processed": ("processed", {}),
    "delivered": ("delivered", {"response": "250 2.0.0 OK", "tls": 1}),
    "deferred": (
        "deferred",
        {"response": "451 4.7.1 Please try again later", "attempt": "1", "tls": 1},
    ),
    "bounce": (
        "bounce",
        {
            "type": "bounce",
            "status": "5.1.1",
            "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
            "bounce_classification": "Invalid Address",
            "tls": 1,
        },
    ),
    "blocked": (
        "bounce",
        {
            "type": "blocked",
            "status": "5.7.1",
            "reason": "554 5.7.1 Service unavailable; client host blocked using a blocklist",
            "bounce_classification": "Reputation",
            "tls": 1,
        },
    ),
    "dropped": ("dropped", {"reason": "Bounced Address", "status": "5.0.0"}),
    "open": ("open", {"sg_machine_open": False}),
    "click": ("click", {"url_offset": {"index": 0, "type": "html"}}),
    "spamreport": ("spamreport", {}),
    "unsubscribe": ("unsubscribe", {}),
    "group_unsubscribe": ("group_unsubscribe", {}),
}
KINDS: tuple[str, ...] = tuple(_KINDS)
_ENGAGEMENT = frozenset({"open", "click", "group_unsubscribe"})  # these carry ip, useragent


class EventSigner:
    """An ECDSA P-256 key pair that signs event batches as SendGrid's Signed Event Webhook.

    ``public_key_base64`` is the verification key as SendGrid's settings page shows it
    (base64 of the DER SubjectPublicKeyInfo, no PEM armour).
    """

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self._key = private_key or ec.generate_private_key(ec.SECP256R1())

    @property
    def public_key_base64(self) -> str:
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode("ascii")

    def sign(self, timestamp: str, body: bytes) -> str:
        """The base64 DER signature of the timestamp header followed by the raw body."""
        signature = self._key.sign(timestamp.encode("utf-8") + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode("ascii")


def events_for(
    mail: AcceptedMail, kinds: Sequence[str], at: dt.datetime, rng: random.Random
) -> list[dict[str, Any]]:
    """SendGrid-shaped events about ``mail``: for each recipient (in order), one per kind.

    Kinds are SendGrid's event names (``KINDS``), plus ``blocked`` for a bounce of type
    blocked. Ids, ip addresses and user agents come from ``rng`` alone, so the same seed
    gives the same events.
    """
    if unknown := sorted(set(kinds) - set(_KINDS)):
        raise ValueError(f"unknown event kind {unknown}; valid: {list(_KINDS)}")
    body = mail.body
    shared = _custom_args(body.get("custom_args"))
    smtp_id = _header(body, "Message-ID") or f"<{mail.provider_message_id}@ismtpd0001p1>"
    categories: list[str] = body.get("categories") or []
    events: list[dict[str, Any]] = []
    for personalization in body["personalizations"]:
        custom_args = {**shared, **_custom_args(personalization.get("custom_args"))}
        for field in ("to", "cc", "bcc"):
            for address in personalization.get(field, []):
                for kind in kinds:
                    event = dict(custom_args)  # SendGrid's own fields win over custom args
                    event.update(_event(mail, kind, address["email"], at, rng))
                    event["smtp-id"] = smtp_id
                    if categories:
                        event["category"] = categories[0] if len(categories) == 1 else categories
                    events.append(event)
    return events


def post_events(
    url: str,
    events: list[dict[str, Any]],
    signer: EventSigner,
    *,
    now: dt.datetime,
    client: httpx2.Client | None = None,
    tamper: bool = False,
) -> int:
    """Post ``events`` as one signed JSON array to ``url``; the response status.

    ``tamper`` changes the body after signing (the first event's timestamp, or whitespace
    in an empty batch), so a receiver that verifies must refuse it.
    """
    timestamp = str(int(now.timestamp()))
    body = orjson.dumps(events)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "SendGrid Event API",
        SIGNATURE_HEADER: signer.sign(timestamp, body),
        TIMESTAMP_HEADER: timestamp,
    }
    if tamper:
        body = _tampered(events)
    if client is not None:
        return client.post(url, content=body, headers=headers).status_code
    with httpx2.Client(timeout=10.0) as own:
        return own.post(url, content=body, headers=headers).status_code


def _event(
    mail: AcceptedMail, kind: str, email: str, at: dt.datetime, rng: random.Random
) -> dict[str, Any]:
    name, fields = _KINDS[kind]
    event: dict[str, Any] = {
        "email": email,
        "timestamp": int(at.timestamp()),
        "event": name,
        "sg_event_id": _token(rng, 16),
        "sg_message_id": f"{mail.provider_message_id}.filterdrecv-{rng.getrandbits(40):010x}"
        f"-{rng.randrange(1, 100)}-{rng.getrandbits(32):08X}-{rng.randrange(100)}.0",
        **fields,
    }
    if kind in _ENGAGEMENT:
        event["ip"] = rng.choice(_IPS)
        event["useragent"] = rng.choice(_USER_AGENTS)
    if kind == "click":
        event["url"] = _first_link(mail.body)
    if kind == "group_unsubscribe":
        event["asm_group_id"] = (mail.body.get("asm") or {}).get("group_id", 1)
    return event


def _custom_args(value: object) -> dict[str, Any]:
    """Custom args as a dict (the message-level ones may arrive as a JSON string)."""
    if isinstance(value, str):
        value = orjson.loads(value) if value.strip() else {}
    return dict(value) if isinstance(value, dict) else {}


def _header(body: Mapping[str, Any], name: str) -> str | None:
    for key, value in (body.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def _first_link(body: Mapping[str, Any]) -> str:
    for content in body.get("content") or []:
        if content.get("type") == "text/html" and (found := _HREF.search(content["value"])):
            return found.group(1)
    return "https://example.com/"


def _token(rng: random.Random, size: int) -> str:
    return base64.urlsafe_b64encode(rng.randbytes(size)).decode("ascii").rstrip("=")


def _tampered(events: list[dict[str, Any]]) -> bytes:
    if not events:
        return b"[ ]"
    first = {**events[0], "timestamp": int(events[0].get("timestamp", 0)) + 1}
    return orjson.dumps([first, *events[1:]])
