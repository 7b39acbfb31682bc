"""Our own tracking hits: an open pixel, a click redirect or an unsubscribe, as the web app
stored them in the inbox (source ``tracking``, one JSON object per row).

The object: ``{"kind": "opened"|"clicked"|"unsubscribed", "message_id": PUBLIC_ID,
"link_index": int|null, "url": str|null, "user_agent": str|null, "ip": str|null,
"at": ISO-8601 with its offset}``. Its event id is ``tracking:<inbox row id>``, so
processing the same row again records nothing new. The link's tag is looked up from
the message's links when the event is recorded.
"""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from engine.tracking.events import MalformedBodyError, ParsedEvents, TrackingEvent
from engine.vocabulary import EventKind

PROVIDER = "tracking"


class TrackingHit(BaseModel):
    """One hit, as the web app writes it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["opened", "clicked", "unsubscribed"]
    message_id: str = Field(min_length=1, max_length=64)
    link_index: int | None = Field(default=None, ge=0)
    url: str | None = None
    user_agent: str | None = None
    ip: str | None = None
    at: AwareDatetime


def parse_hit(body: bytes, row_id: int) -> ParsedEvents:
    """The one event of an inbox row; raises ``MalformedBodyError`` naming what is wrong."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBodyError(f"not JSON: {exc}") from None
    try:
        hit = TrackingHit.model_validate(data)
    except ValidationError as exc:
        wrong = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors()
        )
        raise MalformedBodyError(f"not a tracking hit: {wrong}") from None
    if hit.kind == "clicked" and hit.link_index is None and hit.url is None:
        raise MalformedBodyError("a click needs its link_index or url")
    event = TrackingEvent(
        kind=EventKind(hit.kind),
        provider=PROVIDER,
        provider_event_id=f"{PROVIDER}:{row_id}",
        occurred_at=hit.at,
        message_id=hit.message_id,
        url=hit.url,
        link_index=hit.link_index,
        user_agent=hit.user_agent or None,
        ip=hit.ip or None,
        raw=data,
    )
    return ParsedEvents([event], [])
