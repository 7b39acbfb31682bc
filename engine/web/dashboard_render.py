"""Rendering dashboard pages: the Jinja environment (autoescaped), filters, security headers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.responses import HTMLResponse, Response

TEMPLATES_DIR = Path(__file__).with_name("dashboard_templates")
STYLESHEET = TEMPLATES_DIR / "dashboard.css"

# Pages: our own stylesheet only, no script at all, framed by nobody.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# A rendered email inside the preview iframe: its inline styles, no script, no network
# (the open pixel and remote images stay unloaded), a sandbox even when opened directly.
PREVIEW_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
    ),
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _when(value: dt.datetime | str | None) -> str:
    """An instant as ``YYYY-MM-DD HH:MM UTC`` (stored instants are UTC)."""
    if value is None or value == "":
        return ""
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _span(value: dt.timedelta | None) -> str:
    """A duration as ``3 d 4 h`` (or hours and minutes when under a day)."""
    if value is None:
        return "\N{EN DASH}"
    minutes = max(0, int(value.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return f"{days} d {hours} h" if days else f"{hours} h {minutes} min"


def _pct(value: float | None) -> str:
    return "\N{EN DASH}" if value is None else f"{value:.1%}"


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # contact data is untrusted: every value is escaped
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(when=_when, span=_span, pct=_pct)
    return environment


_ENVIRONMENT = _environment()


def render_page(
    name: str,
    context: Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """The template ``name`` rendered with ``context`` (``csrf``, ``active`` default to none)."""
    values = {"csrf": None, "active": None, **context}
    body = _ENVIRONMENT.get_template(name).render(values)
    return HTMLResponse(body, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


def stylesheet() -> Response:
    """The dashboard's stylesheet (cacheable for an hour)."""
    headers = {"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"}
    return Response(STYLESHEET.read_bytes(), media_type="text/css", headers=headers)
