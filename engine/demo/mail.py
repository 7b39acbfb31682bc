"""What arrived in the simulated people's inboxes: new mail from the file outbox (``.eml``
files) or from the SendGrid sink (accepted Mail Send bodies), read the way a mail client
reads it, with the links a person can click."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import Path
from typing import Any

from engine.delivery.outbox import outbox_messages
from engine.devtools import AcceptedMail, SendGridSink

_URL = re.compile(r"https?://[^\s\"'<>)\]]+")


@dataclass(frozen=True)
class SentMail:
    """One email as its recipient got it."""

    to: str
    sender: str
    sender_name: str
    reply_to: str
    subject: str
    rfc_message_id: str
    sent_at: dt.datetime
    text: str
    sequence: str | None  # None for the engine's own notes and forwards to owners
    step: str | None
    clicks: tuple[str, ...]  # our tracked links, in the order they appear
    open_url: str | None  # the tracking pixel (html mail only)
    unsubscribe_url: str | None
    accepted: AcceptedMail  # the Mail Send view of it, for SendGrid-shaped events

    @property
    def key(self) -> tuple[str, str, str, str]:
        """A stable order: by recipient, sequence and step (not by random message ids)."""
        return (self.sent_at.isoformat(), self.to, self.sequence or "", self.step or "")


class OutboxReader:
    """New ``.eml`` files since the last look."""

    def __init__(self, folder: Path, tracking_url: str) -> None:
        self.folder, self.tracking_url = folder, tracking_url.rstrip("/")
        self._seen: set[str] = set()

    def new_mail(self) -> list[SentMail]:
        found = []
        for path in outbox_messages(self.folder):
            if path.name not in self._seen:
                self._seen.add(path.name)
                found.append(self._read(path))
        return sorted(found, key=lambda mail: mail.key)

    def _read(self, path: Path) -> SentMail:
        message = message_from_bytes(path.read_bytes(), policy=email_policy.default)
        assert isinstance(message, EmailMessage)
        args = _unique_args(str(message.get("X-SMTPAPI", "")))
        text, html = _body(message, "plain"), _body(message, "html")
        to, sender = parseaddr(str(message["To"]))[1], parseaddr(str(message["From"]))
        public_id = args.get("message_id") or path.stem
        body = {
            "personalizations": [{"to": [{"email": to}], "custom_args": args}],
            "headers": {"Message-ID": str(message["Message-ID"])},
            "content": [{"type": "text/html", "value": html}] if html else [],
        }
        sent_at = parsedate_to_datetime(str(message["Date"])).astimezone(dt.UTC)
        return _mail(
            body, to, sender, str(message["Reply-To"]), str(message["Subject"]),
            str(message["Message-ID"]), sent_at, text, html, self.tracking_url,
            str(message.get("List-Unsubscribe", "")),
            AcceptedMail.from_body(body, public_id, sent_at),
        )  # fmt: skip


class SinkReader:
    """New Mail Send requests the SendGrid sink accepted since the last look."""

    def __init__(self, sink: SendGridSink, tracking_url: str) -> None:
        self.sink, self.tracking_url = sink, tracking_url.rstrip("/")
        self._count = 0

    def new_mail(self) -> list[SentMail]:
        accepted = self.sink.messages()[self._count :]
        self._count += len(accepted)
        return sorted((self._read(mail) for mail in accepted), key=lambda mail: mail.key)

    def _read(self, mail: AcceptedMail) -> SentMail:
        body = mail.body
        personalization = body["personalizations"][0]
        content = {part["type"]: part["value"] for part in body.get("content") or []}
        headers = body.get("headers") or {}
        sender = body["from"]
        return _mail(
            body, personalization["to"][0]["email"], (sender.get("name", ""), sender["email"]),
            (body.get("reply_to") or {}).get("email", ""),
            personalization.get("subject", body.get("subject", "")),
            headers.get("Message-ID", ""), mail.received_at, content.get("text/plain", ""),
            content.get("text/html", ""), self.tracking_url,
            headers.get("List-Unsubscribe", ""), mail,
        )  # fmt: skip


def _mail(
    body: dict[str, Any], to: str, sender: tuple[str, str], reply_to: str, subject: str,
    rfc_message_id: str, sent_at: dt.datetime, text: str, html: str, tracking_url: str,
    list_unsubscribe: str, accepted: AcceptedMail,
) -> SentMail:  # fmt: skip
    shared = body.get("custom_args")
    args = {**(shared if isinstance(shared, dict) else {}),
            **(body["personalizations"][0].get("custom_args") or {})}  # fmt: skip
    urls = _URL.findall(html or text)
    unsubscribe = [u for u in _URL.findall(list_unsubscribe) if "/u/" in u]
    return SentMail(
        to=to.lower(),
        sender=sender[1],
        sender_name=sender[0],
        reply_to=reply_to,
        subject=subject,
        rfc_message_id=rfc_message_id,
        sent_at=sent_at,
        text=text,
        sequence=args.get("sequence"),
        step=args.get("step"),
        clicks=tuple(dict.fromkeys(u for u in urls if u.startswith(f"{tracking_url}/t/c/"))),
        open_url=next((u for u in urls if u.startswith(f"{tracking_url}/t/o/")), None),
        unsubscribe_url=unsubscribe[0] if unsubscribe else None,
        accepted=accepted,
    )


def _unique_args(header: str) -> dict[str, str]:
    try:
        args = json.loads(" ".join(header.split())).get("unique_args", {})
    except (ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in args.items()} if isinstance(args, dict) else {}


def _body(message: EmailMessage, kind: str) -> str:
    part = message.get_body((kind,))
    return str(part.get_content()) if part is not None else ""
