"""The forward of an inbound message to the contact's owner, sent exactly once.

The rep reads the contact's words in their own mailbox under a short header block
(contact, account, sequence and step, stage now, intent), with the whole inbound message
quoted below, and answers the contact directly: the forward's Reply-To is the contact.
Like the notes of notify steps it is kept as a ``messages`` row (idempotency key
``inbound:<inbox row id>:forward``, written once the transport took it), so processing
the inbox row again sends nothing twice, and a refused hand-off is tried again on the
next processing. The row has no public id: provider events about the forward (the rep
opening it) must not count as the contact's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, insert, select

from engine.delivery.message import Address, OutboundMessage
from engine.delivery.transport import AmbiguousError, Transport
from engine.sequences.model import Sequence
from engine.sequences.records import MessageStatus
from engine.storage.schema import messages
from engine.templating import MessageBuilder

TEMPLATE = "(forward)"
_QUOTED_CHARS = 20_000  # of the original message, quoted below the reply


class Forwarded(StrEnum):
    """What ``Forwarder.forward`` did."""

    SENT = "sent"
    ALREADY = "already"  # an earlier processing sent it
    AMBIGUOUS = "ambiguous"  # the hand-off may or may not have happened: not sent again


@dataclass(frozen=True)
class ForwardRequest:
    """One inbound message to forward, with what the header block says about it."""

    inbox_row_id: int
    contact: Mapping[str, Any]
    account: Mapping[str, Any] | None
    owner: Mapping[str, Any] | None
    message: Mapping[str, Any]  # ours, that the contact answered
    sequence: Sequence | None
    stage: str
    intent: str | None
    text: str  # the contact's own words
    original: str | None = None  # the whole inbound message as plain text
    banner: str | None = None  # a first line saying what happened, e.g. an unsubscribe
    label: str = "Reply"


def forward_key(inbox_row_id: int) -> str:
    """The idempotency key of the forward of one inbox row."""
    return f"inbound:{inbox_row_id}:forward"


class Forwarder:
    """Sends forwards through the configured transport, from the fallback sender."""

    def __init__(self, builder: MessageBuilder, transport: Transport) -> None:
        self.builder = builder
        self.transport = transport

    def forward(
        self, connection: Connection, request: ForwardRequest, now: dt.datetime
    ) -> Forwarded:
        """Send the forward unless it went out already; a refused hand-off raises
        (``RetryableError``, ``PermanentError``) and leaves no row, so it is tried again."""
        key = forward_key(request.inbox_row_id)
        if connection.execute(
            select(messages.c.id).where(messages.c.idempotency_key == key)
        ).first():
            return Forwarded.ALREADY
        message = self.message(request, now)
        status, outcome, error = MessageStatus.SENT, Forwarded.SENT, None
        try:
            self.transport.send(message)
        except AmbiguousError as exc:
            status, outcome, error = MessageStatus.AMBIGUOUS, Forwarded.AMBIGUOUS, str(exc)
        connection.execute(
            insert(messages).values(
                idempotency_key=key,
                public_id=None,
                enrollment_id=None,
                contact_id=request.contact["id"],
                template=TEMPLATE,
                to_email=message.to.email[:320],
                from_email=message.sender.email,
                subject=message.subject[:998],
                rfc_message_id=message.rfc_message_id,
                status=status,
                transport=self.transport.name,
                attempts=1,
                last_error=error,
                sent_at=now if error is None else None,
                created_at=now,
                updated_at=now,
            )
        )
        return outcome

    def message(self, request: ForwardRequest, now: dt.datetime) -> OutboundMessage:
        """The forward as it is sent: to the owner, Reply-To the contact."""
        contact = request.contact
        name = contact_name(contact)
        subject = f"{request.label} from {name}: {request.message['subject']}"
        note = self.builder.note(self.target(request), subject, forward_text(request), now)
        return replace(
            note,
            reply_to=Address(str(contact["email"]), _full_name(contact)),
            custom_args={**note.custom_args, "kind": "forward"},
        )

    def target(self, request: ForwardRequest) -> str:
        """The owner's address, else the sequence's sender, else the fallback sender."""
        if request.owner and request.owner.get("email"):
            return str(request.owner["email"])
        if request.sequence is not None and request.sequence.sender is not None:
            return request.sequence.sender.email
        return self.builder.fallback_sender.email


def forward_text(request: ForwardRequest) -> str:
    """The header block, the contact's words and the whole original message quoted."""
    contact, message = request.contact, request.message
    name = contact_name(contact)
    step = f", step {message['step_id']}" if message.get("step_id") else ""
    lines = [request.banner, ""] if request.banner else []
    lines += [
        f"Contact:  {name} <{contact['email']}>"
        if _full_name(contact)
        else f"Contact:  {contact['email']}",
        f"Account:  {(request.account or {}).get('name') or '-'}",
        f"Sequence: {message.get('sequence') or '-'}{step}",
        f"Stage:    {request.stage}",
        f"Intent:   {request.intent or '-'}",
        "",
        f"Answer {name} by replying to this email (it goes to them directly).",
        "",
        f"---------- {name} wrote ----------",
        request.text.strip() or "(no text)",
    ]
    if request.original:
        quoted = request.original.strip()[:_QUOTED_CHARS]
        lines += ["", "---------- The whole message ----------"]
        lines += [f"> {line}" if line else ">" for line in quoted.splitlines()]
    return "\n".join(lines) + "\n"


def contact_name(contact: Mapping[str, Any]) -> str:
    """The contact's full name, else their address."""
    return _full_name(contact) or str(contact["email"])


def _full_name(contact: Mapping[str, Any]) -> str | None:
    parts = (contact.get("first_name"), contact.get("last_name"))
    return " ".join(str(p) for p in parts if p) or None
