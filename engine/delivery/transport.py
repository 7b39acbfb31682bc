"""The one small protocol every transport (file outbox, SMTP, SendGrid) implements.

A hand-off either succeeds (the provider took the message: ``HandOff``), or fails in
one of three ways the caller must tell apart to send each message exactly once:

- ``RetryableError``: the provider refused before taking it (429, 5xx, connection
  refused); nothing went out, so trying again later is safe;
- ``AmbiguousError``: the request went out and no answer came back (a timeout); the
  provider may have taken it, so it is reconciled, never blindly resent;
- ``PermanentError``: the provider refused this message for good (a 400 with a field
  error, a rejected recipient); ``invalid_address`` says whether to suppress it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from engine.delivery.message import OutboundMessage
from engine.errors import SalescycleError


@dataclass(frozen=True)
class HandOff:
    """A message the transport's provider took, with the provider's own id when it gives one."""

    transport: str
    provider_message_id: str | None = None


class HandOffError(SalescycleError):
    """A message was not handed off; the subclass says whether and how to try again."""


class RetryableError(HandOffError):
    """Refused before anything was taken; safe to retry (after ``retry_after`` seconds)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AmbiguousError(HandOffError):
    """The request went out but no answer came: the message may or may not have been taken."""


class PermanentError(HandOffError):
    """Refused for good; ``invalid_address`` when the recipient itself was rejected."""

    def __init__(self, message: str, invalid_address: bool = False) -> None:
        super().__init__(message)
        self.invalid_address = invalid_address


class Transport(Protocol):
    """Hands messages to a provider (or a folder); one instance serves many messages."""

    name: str

    def send(self, message: OutboundMessage) -> HandOff:
        """Hand one message off; raises a :class:`HandOffError` subclass when it was not."""
        ...

    def reconcile(self, message_id: str) -> bool | None:
        """After an unfinished hand-off: did the provider take ``message_id``?

        ``True``: it did (record it as sent); ``False``: it certainly did not (send it);
        ``None``: this transport cannot tell (a person checks).
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...
