"""A transport that keeps what it is given: the in-package stub for tests and dry runs.

Like Dramatiq's ``StubBroker``: embedded use and tests need no server. It can be told
to fail the next hand-offs in a given way, to exercise retries and reconciliation.
"""

from __future__ import annotations

import threading
from collections import deque

from engine.delivery.message import OutboundMessage
from engine.delivery.transport import AmbiguousError, HandOff, HandOffError


class MemoryTransport:
    """Keeps every message handed off, in order; fails on demand."""

    name = "memory"

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []
        self._failures: deque[HandOffError] = deque()
        self._lock = threading.Lock()

    def fail_next(self, *errors: HandOffError) -> None:
        """Raise these errors on the next hand-offs, one each, before accepting again.

        An ``AmbiguousError`` keeps the message (the provider took it, the answer was
        lost), as a real timeout after the request went out may.
        """
        with self._lock:
            self._failures.extend(errors)

    def send(self, message: OutboundMessage) -> HandOff:
        """Keep ``message`` (or raise the next failure asked for)."""
        with self._lock:
            error = self._failures.popleft() if self._failures else None
            if error is None or isinstance(error, AmbiguousError):
                self.sent.append(message)
        if error is not None:
            raise error
        return HandOff(self.name, f"memory-{len(self.sent)}")

    def reconcile(self, message_id: str) -> bool | None:
        """Whether a message with this id was kept."""
        with self._lock:
            return any(m.message_id == message_id for m in self.sent)

    def close(self) -> None:
        """Nothing to release."""
