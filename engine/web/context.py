"""What every route needs: the database, the clock, and the nudge after a durable store."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, Engine
from starlette.responses import JSONResponse

from engine.clock import Clock
from engine.tracking.inbox import InboxSource, store_raw

log = logging.getLogger("salescycle.web")

OnStored = Callable[[InboxSource, int], None]
"""Called with an inbox row's source and id once the row is committed (e.g. an actor's send)."""


def no_nudge(source: InboxSource, inbox_id: int) -> None:
    """The default ``on_stored``: nothing (workers or ``events replay`` find the row)."""


@dataclass(frozen=True)
class WebContext:
    """The app's dependencies, shared by its routers."""

    engine: Engine
    clock: Clock
    on_stored: OnStored = no_nudge

    def store(
        self,
        source: InboxSource,
        headers: Mapping[str, str],
        body: bytes,
        also: Callable[[Connection], None] | None = None,
    ) -> int:
        """Commit one inbox row (and ``also``'s writes, in the same transaction); its id.

        Database errors propagate (the app answers 503, so the provider retries).
        """
        with self.engine.begin() as connection:
            if also is not None:
                also(connection)
            inbox_id = store_raw(connection, source, headers, body, self.clock())
        self._nudge(source, inbox_id)
        return inbox_id

    def _nudge(self, source: InboxSource, inbox_id: int) -> None:
        # The row is durable: a lost nudge delays processing, it loses nothing, so the
        # request is still acknowledged.
        try:
            self.on_stored(source, inbox_id)
        except Exception:
            log.exception("inbox row %s (%s) stored, but the nudge failed", inbox_id, source)


def problem(status: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A JSON error answer: ``{"detail": ...}``, as FastAPI's own errors look."""
    return JSONResponse({"detail": detail}, status_code=status, headers=dict(headers or {}))
