"""Notify steps: a short email to the contact's owner, or a signed outbound webhook.

A webhook (for example one that creates a task in the CRM) receives a JSON body signed
with the workspace's secret key as ``engine.signing`` describes, so the receiver can tell
the request came from us and is fresh. Each notification goes out once per enrollment and
step (kept in the messages table like an email).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import httpx2
import orjson
from sqlalchemy import Connection, insert, select

from engine.delivery.transport import RetryableError, Transport
from engine.sequences.model import NotifyStep, Sequence
from engine.signing import signed_headers, verify_signature
from engine.storage.schema import messages
from engine.templating import MessageBuilder


class Notifier:
    """Sends the notifications of notify steps."""

    def __init__(
        self, builder: MessageBuilder, transport: Transport, secret: bytes, timeout: float = 10.0
    ) -> None:
        self.builder = builder
        self.transport = transport
        self._secret = secret
        self._timeout = timeout

    def notify(
        self, connection: Connection, enrollment_id: int, contact: Mapping[str, Any],
        owner: Mapping[str, Any] | None, sequence: Sequence, step: NotifyStep, now: dt.datetime,
    ) -> None:  # fmt: skip
        """Send this step's notification unless it went out already."""
        key = f"{enrollment_id}:{step.id}:notify"
        if connection.execute(
            select(messages.c.id).where(messages.c.idempotency_key == key)
        ).first():
            return
        text = step.message or f"A step of {sequence.name} asks you to act."
        if step.webhook is not None:
            target = step.webhook
            self._post(target, {"event": "sequence.notify", "sequence": sequence.name,
                                "step": step.id, "message": text, "enrollment": enrollment_id,
                                "contact": {"email": contact["email"], "stage": contact["stage"],
                                            "crm_id": contact.get("crm_id")}}, now)  # fmt: skip
            public_id, sender, subject, rfc_id = None, "", text, f"<webhook-{key}>"
        else:
            target = str((owner or {}).get("email") or self.builder.fallback_sender.email)
            body = (f"{text}\n\nContact: {contact['email']} (stage {contact['stage']})\n"
                    f"Sequence: {sequence.name}, step {step.id}\n")  # fmt: skip
            note = self.builder.note(target, f"[{sequence.name}] {contact['email']}", body, now)
            self.transport.send(note)
            public_id, sender, subject, rfc_id = (
                note.message_id, note.sender.email, note.subject, note.rfc_message_id)  # fmt: skip
        connection.execute(insert(messages).values(
            idempotency_key=key, public_id=public_id, enrollment_id=enrollment_id,
            contact_id=contact["id"], sequence=sequence.name, step_id=step.id,
            template="(webhook)" if step.webhook else "(notify)", to_email=target[:320],
            from_email=sender, subject=subject[:998], rfc_message_id=rfc_id, status="sent",
            transport="webhook" if step.webhook else self.transport.name, sent_at=now,
            created_at=now, updated_at=now))  # fmt: skip

    def _post(self, url: str, payload: dict[str, Any], now: dt.datetime) -> None:
        body = orjson.dumps(payload)
        headers = signed_headers(self._secret, body, now)
        try:
            answer = httpx2.post(url, content=body, headers=headers, timeout=self._timeout)
        except httpx2.HTTPError as exc:
            raise RetryableError(f"webhook {url}: {exc}") from exc
        if answer.status_code >= 300:
            raise RetryableError(
                f"webhook {url} answered {answer.status_code}: {answer.text[:200]}"
            )


__all__ = ["Notifier", "verify_signature"]  # verify_signature: kept importable from here
