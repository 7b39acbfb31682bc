"""The dashboard at ``/``: server-rendered pages behind a login by ``SALESCYCLE_API_TOKEN``.

The login form sets a signed, HttpOnly, SameSite=Strict session cookie; every other page
wants it (a GET without one is sent to the login, a POST refused), and every POST form
carries a CSRF token derived from the session. Pages load no script and no remote file.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, RedirectResponse

from engine.sequences.control import Control
from engine.web.api import API_TOKEN_ENV
from engine.web.context import WebContext, log
from engine.web.dashboard_pages import DashboardPages, DashboardSetup, NotFound
from engine.web.dashboard_render import PREVIEW_HEADERS, render_page, stylesheet
from engine.web.dashboard_session import SESSION_COOKIE, SESSION_LIFETIME, SessionSigner
from engine.web.limits import read_body
from engine.wiring import Runtime

FORM_MAX_BYTES = 16 * 1024
_Handler = Callable[[Request], Coroutine[Any, Any, Response]]
_Ready = Callable[[], DashboardPages]


def dashboard_setup(runtime: Runtime) -> DashboardSetup:
    """The dashboard's view of a workspace (raises with every problem in its files)."""
    return DashboardSetup(
        runtime.pipeline,
        runtime.sequences,
        runtime.segments,
        runtime.fields,
        runtime.templates,
        runtime.message_builder(),
        runtime.settings.default_locale,
        runtime.secret_key,
    )


class _Gate:
    """Who may see a page: a configured dashboard and a valid session (and CSRF on POST)."""

    def __init__(self, context: WebContext, signer: SessionSigner | None) -> None:
        self.context = context
        self.signer = signer

    def session(self, request: Request) -> str | None:
        value = request.cookies.get(SESSION_COOKIE)
        if self.signer is None or not self.signer.valid(value, self.context.clock()):
            return None
        return value

    def csrf(self, request: Request) -> str:
        assert self.signer is not None
        return self.signer.csrf(request.state.session)

    async def refusal(self, request: Request) -> Response | None:
        """The answer for a request that may not go on; ``None`` lets it through."""
        if self.signer is None:
            return _not_configured()
        session = self.session(request)
        if request.method == "GET":
            if session is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)
        else:
            request._body = await read_body(request, FORM_MAX_BYTES)
            form = await request.form()
            if session is None or not self.signer.csrf_matches(session, _field(form, "csrf")):
                log.warning("dashboard: refused %s %s without a valid session and CSRF token",
                            request.method, request.url.path)  # fmt: skip
                return _message(403, "Refused", "This form has expired or did not come from "
                                "this dashboard. Reload the page and try again.", "/")  # fmt: skip
        request.state.session = session
        return None


def _guarded(gate: _Gate) -> type[APIRoute]:
    class DashboardRoute(APIRoute):
        def get_route_handler(self) -> _Handler:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                refused = await gate.refusal(request)
                return refused if refused is not None else await handler(request)

            return guarded

    return DashboardRoute


def dashboard_router(
    context: WebContext, token: str | None, setup: DashboardSetup | None
) -> APIRouter:
    """The dashboard's routes; without ``token`` (or ``setup``) they say how to set it (503)."""
    signer = SessionSigner(setup.secret_key, token) if token and setup is not None else None
    gate = _Gate(context, signer)
    work = DashboardPages(context, setup) if setup is not None else None

    def ready() -> DashboardPages:
        assert work is not None  # the gate answers 503 first
        return work

    router = APIRouter(include_in_schema=False)
    _add_login(router, gate)
    guarded = APIRouter(include_in_schema=False, route_class=_guarded(gate))
    _add_pages(guarded, gate, ready)
    _add_contact_pages(guarded, gate, ready)
    _add_template_pages(guarded, gate, ready)
    router.include_router(guarded)
    return router


def _add_login(router: APIRouter, gate: _Gate) -> None:
    @router.get("/dashboard.css")
    async def css() -> Response:
        return stylesheet()

    @router.get("/login")
    async def login_form(request: Request, next: str = "/") -> Response:
        if gate.signer is None:
            return _not_configured()
        if gate.session(request) is not None:
            return RedirectResponse(_safe_next(next), status_code=303)
        return render_page("login.html", {"configured": True, "error": None, "next": next})

    @router.post("/login")
    async def login(request: Request) -> Response:
        if gate.signer is None:
            return _not_configured()
        request._body = await read_body(request, FORM_MAX_BYTES)
        form = await request.form()
        target = _safe_next(_field(form, "next"))
        if not gate.signer.token_matches(_field(form, "token")):
            log.warning("dashboard: a login with a wrong token from %s", _client(request))
            error = "That is not the token. It is the value of SALESCYCLE_API_TOKEN."
            context = {"configured": True, "error": error, "next": target}
            return render_page("login.html", context, status=401)
        answer = RedirectResponse(target, status_code=303)
        answer.set_cookie(
            SESSION_COOKIE,
            gate.signer.issue(gate.context.clock()),
            max_age=int(SESSION_LIFETIME.total_seconds()),
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return answer


def _add_pages(router: APIRouter, gate: _Gate, ready: _Ready) -> None:
    @router.post("/logout")
    async def logout(request: Request) -> Response:
        answer = RedirectResponse("/login", status_code=303)
        answer.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return answer

    @router.get("/")
    async def pipeline(request: Request, period: str = "all") -> Response:
        values = await run_in_threadpool(ready().pipeline, period)
        return _page(gate, request, "pipeline.html", "pipeline", values)

    @router.get("/sequences")
    async def sequences(request: Request) -> Response:
        values = await run_in_threadpool(ready().sequences)
        return _page(gate, request, "sequences.html", "sequences", values)

    @router.get("/sequences/{name}")
    async def sequence(request: Request, name: str) -> Response:
        try:
            values = await run_in_threadpool(ready().sequence, name)
        except NotFound as exc:
            return _message(404, "No such sequence", str(exc), "/sequences", gate.csrf(request))
        return _page(gate, request, "sequence.html", "sequences", values)

    @router.get("/segments")
    async def segments(request: Request) -> Response:
        values = await run_in_threadpool(ready().segments)
        return _page(gate, request, "segments.html", "segments", values)

    @router.get("/suppressions")
    async def suppressions(request: Request) -> Response:
        total, rows = await run_in_threadpool(ready().suppressions)
        values = {"total": total, "rows": rows}
        return _page(gate, request, "suppressions.html", "suppressions", values)


def _add_contact_pages(router: APIRouter, gate: _Gate, ready: _Ready) -> None:
    @router.get("/contacts")
    async def contacts(request: Request, q: str = "", stage: str = "") -> Response:
        if q.strip() and not stage and await run_in_threadpool(ready().contact_exists, q):
            return RedirectResponse(_contact_path(q), status_code=303)
        values = await run_in_threadpool(ready().contacts, q, stage)
        return _page(gate, request, "contacts.html", "contacts", values)

    @router.get("/contacts/{email:path}")
    async def contact(request: Request, email: str, done: str = "") -> Response:
        try:
            values = await run_in_threadpool(ready().contact, email)
        except NotFound as exc:
            return _message(404, "No such contact", str(exc), "/contacts", gate.csrf(request))
        return _page(gate, request, "contact.html", "contacts", {**values, "flash": done})

    @router.post("/enrollments/{action}")
    async def control(request: Request, action: str) -> Response:
        form = await request.form()
        email, sequence = _field(form, "email"), _field(form, "sequence")
        try:
            done = await run_in_threadpool(ready().control, Control(action), email, sequence)
        except ValueError:
            return _message(404, "No such action", f"'{action}' is not pause, resume or stop",
                            "/", gate.csrf(request))  # fmt: skip
        except NotFound as exc:
            return _message(404, "No such contact", str(exc), "/contacts", gate.csrf(request))
        target = f"{_contact_path(email)}?{urlencode({'done': done})}"
        return RedirectResponse(target, status_code=303)


def _add_template_pages(router: APIRouter, gate: _Gate, ready: _Ready) -> None:
    @router.get("/templates")
    async def templates(request: Request, contact: str = "") -> Response:
        values = await run_in_threadpool(ready().templates, contact)
        return _page(gate, request, "templates.html", "templates", values)

    @router.get("/templates/preview")
    async def preview(
        request: Request, template: str, contact: str, variant: str = "a",
        format: str = "html", locale: str = "",
    ) -> Response:  # fmt: skip
        try:
            made = await run_in_threadpool(ready().preview, template, contact, variant, format,
                                           locale)  # fmt: skip
        except NotFound as exc:
            return _message(404, "No such contact", str(exc), "/templates", gate.csrf(request))
        values = {"template": template, "contact": contact, "message": made.message,
                  "error": made.error, "query": request.url.query}  # fmt: skip
        status = 422 if made.error else 200
        return _page(gate, request, "preview.html", "templates", values, status)

    @router.get("/templates/preview.html")
    async def preview_html(
        template: str, contact: str, variant: str = "a", format: str = "html", locale: str = ""
    ) -> Response:
        try:
            made = await run_in_threadpool(ready().preview, template, contact, variant, format,
                                           locale)  # fmt: skip
        except NotFound:
            made = None
        if made is None or made.message is None or made.message.html is None:
            return HTMLResponse("<p>No HTML part.</p>", status_code=404, headers=PREVIEW_HEADERS)
        return HTMLResponse(made.message.html, headers=PREVIEW_HEADERS)


# helpers ---------------------------------------------------------------------------------


def _page(
    gate: _Gate,
    request: Request,
    template: str,
    active: str,
    values: dict[str, Any],
    status: int = 200,
) -> Response:
    context = {**values, "csrf": gate.csrf(request), "active": active}
    return render_page(template, context, status)


def _message(
    status: int, heading: str, text: str, back: str | None = None, csrf: str | None = None
) -> Response:
    context = {"heading": heading, "text": text, "back": back, "csrf": csrf}
    return render_page("message.html", context, status)


def _not_configured() -> Response:
    headers = {"Retry-After": "3600"}
    values = {"configured": False, "error": None, "next": "/", "variable": API_TOKEN_ENV}
    return render_page("login.html", values, status=503, headers=headers)


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _safe_next(target: str) -> str:
    """Only a path on this site (never ``//host`` or ``/\\host``) may follow the login."""
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def _contact_path(email: str) -> str:
    return "/contacts/" + quote(email.strip().lower(), safe="@+")


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"
