"""The one normalised event: whatever a provider or our own tracking reported, said one way.

Nothing past the parsers (``sendgrid.py``, ``tracking_hits.py``) reads a provider's
field names; the provider's payload is kept beside the event, as it arrived.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from engine.vocabulary import EventKind, ReplyIntent


class RejectReason(StrEnum):
    """Why a message bounced or was dropped; hard and soft bounces apart."""

    HARD_BOUNCE = "hard_bounce"  # permanent: the address does not exist, or bounced before
    SOFT_BOUNCE = "soft_bounce"  # temporary or policy: blocked, mailbox full, try later
    INVALID = "invalid"  # the address is not a valid address
    UNSUBSCRIBED = "unsubscribed"  # the provider holds the address as unsubscribed
    COMPLAINED = "complained"  # the provider holds the address as a spam reporter
    SPAM_CONTENT = "spam_content"  # the content was judged spam
    OTHER = "other"


# Reasons that mean: never email this address again.
SUPPRESSING_REASONS = frozenset(
    {
        RejectReason.HARD_BOUNCE,
        RejectReason.INVALID,
        RejectReason.UNSUBSCRIBED,
        RejectReason.COMPLAINED,
    }
)


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    """Something that happened to one of our messages (or its recipient).

    ``provider_event_id`` is unique per ``provider``: a repeat is the same event.
    ``message_id`` is our public message id (the one in custom args and tokens);
    ``provider_message_id`` the provider's own, for messages whose custom args are lost.
    ``machine`` marks opens and clicks made by a scanner or a proxy, with ``machine_reason``.
    """

    kind: EventKind
    provider: str
    provider_event_id: str
    occurred_at: dt.datetime
    message_id: str | None = None
    provider_message_id: str | None = None
    recipient: str | None = None
    reject_reason: RejectReason | None = None
    description: str | None = None  # the provider's reason or SMTP response, as given
    url: str | None = None
    link_index: int | None = None
    link_tag: str | None = None
    intent: ReplyIntent | None = None
    machine: bool = False
    machine_reason: str | None = None
    user_agent: str | None = None
    ip: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None:
            raise ValueError(f"naive occurred_at {self.occurred_at!r}: events need a timezone")

    @property
    def suppresses(self) -> bool:
        """Whether this event means the address must never be emailed again."""
        if self.kind in (EventKind.UNSUBSCRIBED, EventKind.COMPLAINED):
            return True
        return (
            self.kind in (EventKind.BOUNCED, EventKind.DROPPED)
            and self.reject_reason in SUPPRESSING_REASONS
        )

    def as_machine(self, reason: str) -> TrackingEvent:
        """This event flagged as made by a machine (the first reason found is kept)."""
        if self.machine:
            return self
        return replace(self, machine=True, machine_reason=reason)


@dataclass(frozen=True)
class ParsedEvents:
    """What a parser made of one body: the good events, and a problem per bad item."""

    events: list[TrackingEvent]
    problems: list[str]


class MalformedBodyError(ValueError):
    """A stored body that cannot be read at all (not JSON, not the expected shape)."""
