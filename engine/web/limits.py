"""Request body limits: 413 for a body over the limit, told by Content-Length or counted.

The body is read here rather than in an ASGI middleware because each route has its own
limit (an event batch, a whole inbound email, a one-click form). An oversized body is
still read to a bounded end, and thrown away as it comes: answering while the client is
still sending makes the server close a socket with unread data, the kernel then resets
the connection, and the client may never see the 413.
"""

from __future__ import annotations

from starlette.requests import Request

# Past the limit, read (and discard) at most this much more before giving up on the client.
_DRAIN_BYTES = 4 * 1024 * 1024


class BodyTooLarge(Exception):
    """The request body is over the route's limit (answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over the limit of {limit} bytes")
        self.limit = limit


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes; raises ``BodyTooLarge`` beyond it."""
    too_large = _declared_length(request) > limit
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if too_large or size > limit:
            too_large = True
            chunks.clear()
            if size > limit + _DRAIN_BYTES:
                break
            continue
        chunks.append(chunk)
    if too_large:
        raise BodyTooLarge(limit)
    return b"".join(chunks)


def _declared_length(request: Request) -> int:
    """Content-Length as a number (0 when absent; h11 has already refused a malformed one)."""
    value = request.headers.get("content-length", "")
    return int(value) if value.isascii() and value.isdigit() else 0
