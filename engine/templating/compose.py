"""From a rendered message to the message a transport sends: addressing and headers.

The engine, not the author, adds what a careful sender must: a Reply-To carrying a
signed token, a Message-ID the engine records, threading headers and a ``Re:``
subject for follow-ups in the same thread, ``List-Unsubscribe`` with one-click
(RFC 8058), and our ids as custom arguments that come back on provider events.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from engine.delivery.message import Address, OutboundMessage
from engine.templating.render import RenderedMessage
from engine.tracking import MessageLinks


@dataclass(frozen=True)
class MessageIdentity:
    """Which enrollment, sequence and step a message belongs to (ids come back on events)."""

    message_id: str
    enrollment_id: int | None = None
    sequence: str | None = None
    step: str | None = None


@dataclass(frozen=True)
class ThreadParent:
    """The earlier message a threaded step replies to."""

    rfc_message_id: str
    subject: str
    references: tuple[str, ...] = ()


def compose_message(
    rendered: RenderedMessage,
    identity: MessageIdentity,
    sender: Address,
    to: Address,
    links: MessageLinks,
    sending_domain: str,
    now: dt.datetime,
    thread: ThreadParent | None = None,
) -> OutboundMessage:
    """The complete message for one rendered template."""
    message_id = identity.message_id
    headers: list[tuple[str, str]] = []
    subject = rendered.subject
    if thread is not None:
        subject = reply_subject(thread.subject)
        references = " ".join((*thread.references, thread.rfc_message_id))
        headers += [("In-Reply-To", thread.rfc_message_id), ("References", references)]
    unsubscribe = f"<{links.unsubscribe_url}>, <{links.unsubscribe_mailto}>"
    headers += [
        ("List-Unsubscribe", unsubscribe),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ]
    custom_args = {
        "message_id": message_id,
        "enrollment": "" if identity.enrollment_id is None else str(identity.enrollment_id),
        "sequence": identity.sequence or "",
        "step": identity.step or "",
        "variant": rendered.variant,
        "template": rendered.template,
    }
    return OutboundMessage(
        message_id=message_id,
        rfc_message_id=f"<{message_id}@{sending_domain}>",
        date=now,
        sender=sender,
        to=to,
        reply_to=Address(links.reply_address, sender.name),
        subject=subject,
        text=rendered.text,
        html=rendered.html,
        headers=tuple(headers),
        custom_args={k: v for k, v in custom_args.items() if v},
        tracked_links=tuple((link.url, link.tag) for link in rendered.links),
    )


def reply_subject(subject: str) -> str:
    """``Re: subject``, without piling up ``Re: Re:``."""
    return subject if subject[:3].lower() == "re:" else f"Re: {subject}"
