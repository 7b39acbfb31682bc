"""What the engine reads in one inbound message: the shared model of ``engine.replies``.

``classify`` (in ``engine.replies.classify``) turns raw MIME into a ``Classification``,
a pure function of the message and the rules of ``config/replies.yaml``; the webhook
path, ``salescycle inbound classify`` and the tests all go through it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from engine.vocabulary import ReplyIntent


class InboundKind(StrEnum):
    """What an inbound message is, checked in this order: a bounce first (most bounces
    also carry ``Auto-Submitted``), then an auto-reply, then a person's words."""

    BOUNCE = "bounce"
    AUTO_REPLY = "auto_reply"
    UNSUBSCRIBE_REQUEST = "unsubscribe_request"
    REPLY = "reply"


@dataclass(frozen=True)
class BouncedAddress:
    """An address a delivery status notification reports as failed."""

    email: str
    hard: bool  # permanent (5.x.x) rather than temporary (4.x.x)


@dataclass(frozen=True)
class Classification:
    """One inbound message as the engine reads it, with the headers that match it to ours."""

    kind: InboundKind
    intent: ReplyIntent | None  # for kind reply (and unsubscribe_request)
    text: str  # the person's own words: quotes and signature stripped
    reason: str  # why it was read this way, for operators ("Auto-Submitted: auto-replied")
    sender: str | None  # From, lower-cased address
    recipients: tuple[str, ...]  # To and Cc (and the envelope's to), lower-cased
    subject: str
    message_id: str | None  # its own Message-ID, with angle brackets
    in_reply_to: str | None
    references: tuple[str, ...]
    sent_at: dt.datetime | None  # its Date header, timezone-aware
    language: str | None = None  # of the rule or phrase that matched (en, da, sv, de)
    bounced: tuple[BouncedAddress, ...] = ()
    returns_on: dt.date | None = None  # an out-of-office's return date, when it says one
    referrals: tuple[str, ...] = field(default=())  # addresses named in a referral reply
