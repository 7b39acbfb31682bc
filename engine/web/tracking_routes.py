"""Our own opens, clicks and unsubscribes (for SMTP and outbox sending).

Every URL carries a signed token (``engine.tracking.tokens``); a forged, altered or
misused token is a 404 that stores nothing. A hit is stored raw in the durable inbox
as one JSON object, for the workers to normalise.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import Connection, select

from engine.contacts.suppressions import add_suppressions
from engine.storage.schema import messages
from engine.tracking.inbox import InboxSource
from engine.tracking.tokens import TokenPurpose, TokenSigner, split_click_payload
from engine.web.context import WebContext, problem
from engine.web.limits import read_body

# The smallest transparent 1x1 GIF (43 bytes).
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
NO_CACHE = {
    "Cache-Control": "no-cache, no-store, must-revalidate, private, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
_UNSUBSCRIBE_FORM_MAX_BYTES = 16 * 1024  # "List-Unsubscribe=One-Click" needs 26
_NOT_FOUND = "no such link"
_HTTP_SCHEMES = ("http://", "https://")


def _documented(description: str, media_type: str = "application/json") -> dict[str, Any]:
    return {"description": description, "content": {media_type: {}}}


_UNKNOWN: dict[int | str, dict[str, Any]] = {
    404: _documented("Forged, altered or unknown token; nothing is stored.")
}


def tracking_router(context: WebContext, signer: TokenSigner) -> APIRouter:
    """The open pixel, the click redirect and the unsubscribe page and its one-click POST."""
    router = APIRouter(tags=["tracking"])
    tracker = _Tracker(context)

    @router.get(
        "/t/o/{token}",
        summary="Open pixel",
        response_class=Response,
        responses={200: _documented("A 1x1 transparent GIF.", "image/gif"), **_UNKNOWN},
    )
    async def open_pixel(token: str, request: Request) -> Response:
        message_id = signer.verify(TokenPurpose.OPEN, token)
        if message_id is None:
            return problem(404, _NOT_FOUND)
        await run_in_threadpool(tracker.opened, message_id, _client(request))
        return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)

    @router.get(
        "/t/c/{token}",
        summary="Click redirect",
        response_class=RedirectResponse,
        status_code=302,
        responses={302: {"description": "To the link that was in the email."}, **_UNKNOWN},
    )
    async def click(token: str, request: Request) -> Response:
        payload = signer.verify(TokenPurpose.CLICK, token)
        link = split_click_payload(payload) if payload is not None else None
        if link is None:
            return problem(404, _NOT_FOUND)
        url = await run_in_threadpool(tracker.clicked, *link, _client(request))
        if url is None:
            return problem(404, _NOT_FOUND)
        headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        return RedirectResponse(url, status_code=302, headers=headers)

    @router.get(
        "/u/{token}",
        summary="Unsubscribe confirmation page (changes nothing)",
        response_class=HTMLResponse,
        responses={
            200: _documented("A page with a form that POSTs here.", "text/html"),
            **_UNKNOWN,
        },
    )
    async def unsubscribe_page(token: str) -> Response:
        message_id = signer.verify(TokenPurpose.UNSUBSCRIBE, token)
        if message_id is None or not await run_in_threadpool(tracker.exists, message_id):
            return problem(404, _NOT_FOUND)
        return HTMLResponse(_page(_CONFIRM), headers=NO_CACHE)

    @router.post(
        "/u/{token}",
        summary="Unsubscribe at once (the page's form, and RFC 8058 one-click)",
        response_class=HTMLResponse,
        responses={
            200: _documented("Unsubscribed (also when already unsubscribed).", "text/html"),
            413: _documented("The form body is too large."),
            **_UNKNOWN,
        },
        openapi_extra={"requestBody": {"content": {"application/x-www-form-urlencoded": {
            "schema": {"type": "object", "properties": {
                "List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}}}}}}},
    )  # fmt: skip
    async def unsubscribe(token: str, request: Request) -> Response:
        message_id = signer.verify(TokenPurpose.UNSUBSCRIBE, token)
        if message_id is None:
            return problem(404, _NOT_FOUND)
        # The body says nothing we need ("List-Unsubscribe=One-Click" or the page's
        # button): any POST on a genuine link unsubscribes. It is read for the limit.
        await read_body(request, _UNSUBSCRIBE_FORM_MAX_BYTES)
        if not await run_in_threadpool(tracker.unsubscribed, message_id, _client(request)):
            return problem(404, _NOT_FOUND)
        return HTMLResponse(_page(_DONE), headers=NO_CACHE)

    return router


Client = tuple[str | None, str | None]  # user agent, ip address


def _client(request: Request) -> Client:
    ip = request.client.host if request.client is not None else None
    return request.headers.get("user-agent"), ip


class _Tracker:
    """Reads messages and stores hits; each method runs in a worker thread."""

    def __init__(self, context: WebContext) -> None:
        self._context = context

    def opened(self, message_id: str, client: Client) -> None:
        self._store(self._hit("opened", message_id, None, None, client))

    def clicked(self, message_id: str, index: int, client: Client) -> str | None:
        """The link's URL once the click is stored; None for an unknown message or index."""
        with self._context.engine.connect() as connection:
            row = _message(connection, message_id)
        url = _link_url(row["links"] if row is not None else None, index)
        if url is not None:
            self._store(self._hit("clicked", message_id, index, url, client))
        return url

    def exists(self, message_id: str) -> bool:
        with self._context.engine.connect() as connection:
            return _message(connection, message_id) is not None

    def unsubscribed(self, message_id: str, client: Client) -> bool:
        """Suppress the message's recipient and store the hit, together; False if unknown."""
        with self._context.engine.connect() as connection:
            row = _message(connection, message_id)
        if row is None:
            return False
        now = self._context.clock()
        hit = self._hit("unsubscribed", message_id, None, None, client, now)
        self._store(hit, lambda connection: _suppress(connection, row["to_email"], message_id, now))
        return True

    def _hit(
        self, kind: str, message_id: str, index: int | None, url: str | None, client: Client,
        now: dt.datetime | None = None,
    ) -> bytes:  # fmt: skip
        at = (now or self._context.clock()).astimezone(dt.UTC)
        user_agent, ip = client
        return orjson.dumps({
            "kind": kind, "message_id": message_id, "link_index": index, "url": url,
            "user_agent": user_agent, "ip": ip, "at": at.isoformat(),
        })  # fmt: skip

    def _store(self, body: bytes, also: Callable[[Connection], None] | None = None) -> None:
        self._context.store(InboxSource.TRACKING, {}, body, also)


def _message(connection: Connection, message_id: str) -> dict[str, Any] | None:
    query = select(messages.c.to_email, messages.c.links).where(messages.c.public_id == message_id)
    row = connection.execute(query).mappings().first()
    return None if row is None else dict(row)


def _link_url(links: object, index: int) -> str | None:
    """``links[index]["url"]`` when it is there and an http(s) URL: never an open redirect."""
    if not isinstance(links, list) or not 0 <= index < len(links):
        return None
    link = links[index]
    url = link.get("url") if isinstance(link, dict) else None
    if not isinstance(url, str) or not url.lower().startswith(_HTTP_SCHEMES):
        return None
    return url


def _suppress(connection: Connection, email: str, message_id: str, now: dt.datetime) -> None:
    """Suppress ``email`` unless it already is (whatever the earlier reason)."""
    add_suppressions(connection, [{"email": email.strip().lower(), "reason": "unsubscribed",
                                   "source": "link", "detail": f"message {message_id}",
                                   "created_at": now}])  # fmt: skip


_CONFIRM = """<h1>Unsubscribe?</h1>
<p>You will get no more emails from us at this address.</p>
<form method="post"><button type="submit" name="confirm" value="yes">Unsubscribe</button></form>"""
_DONE = """<h1>You are unsubscribed</h1>
<p>You will get no more emails from us at this address.</p>"""


def _page(content: str) -> str:
    title = html.escape(content.split("</h1>", 1)[0].removeprefix("<h1>"))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{title}</title></head>"
        f'<body style="font-family: sans-serif; max-width: 32rem; margin: 3rem auto">{content}'
        "</body></html>"
    )
