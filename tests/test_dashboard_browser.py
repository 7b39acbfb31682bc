"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright.

One browser for the module. Skipped on a laptop without /usr/bin/chromium; in CI
(``CI`` set) that is a failure, as for PostgreSQL. No browser is ever downloaded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from _support import imported_runtime
from _web import SECRET_KEY, served
from conftest import _unavailable
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import select

from engine.clock import utc_now
from engine.delivery.memory import MemoryTransport
from engine.segments.compiler import SegmentCompiler
from engine.sequences import enroll, named_contacts
from engine.sequences.program import compile_program
from engine.sequences.runner import StepRunner
from engine.storage.schema import contacts, enrollments, messages
from engine.tracking.tokens import TokenSigner
from engine.web import create_app
from engine.web.dashboard import dashboard_setup
from engine.wiring import Runtime

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]  # fmt: skip
TOKEN = "browser-dashboard-token-0123456789"
SEQUENCE = "connecting-outreach"
# A Monday morning in Copenhagen, after the import (which happens at the real time).
MONDAY_MORNING = dt.datetime(2026, 12, 7, 9, 0, tzinfo=ZoneInfo("Europe/Copenhagen"))
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install --no-install-recommends chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def runtime(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("SALESCYCLE_DATABASE_URL", f"sqlite:///{tmp_path}/browser.db")
    monkeypatch.setenv("SALESCYCLE_SECRET_KEY", SECRET_KEY.decode())
    with imported_runtime(workspace) as opened:
        yield opened


@pytest.fixture
def base_url(runtime: Runtime) -> Iterator[str]:
    app = create_app(
        runtime.database,
        TokenSigner(SECRET_KEY),
        webhook_public_key=None,
        inbound_secret=None,
        clock=utc_now,
        api_token=TOKEN,
        dashboard=dashboard_setup(runtime),
    )
    with served(app) as url:
        yield url


@pytest.fixture
def problems() -> list[str]:
    """What the browser complained of (a test takes out what it expected)."""
    return []


@pytest.fixture
def page(browser: Browser, base_url: str, problems: list[str]) -> Iterator[Page]:
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda exc: problems.append(str(exc)))
    opened.on("requestfailed", lambda r: problems.append(f"{r.url}: {r.failure}"))
    try:
        yield opened
        assert not problems, "\n".join(
            problems
        )  # no CSP violation, no script error, nothing failed to load
    finally:
        context.close()


def send_first_steps(runtime: Runtime, how_many: int) -> list[str]:
    """Enroll the first Danish contacts in the outreach and send them its first email."""
    with runtime.database.begin() as connection:
        people = connection.execute(
            select(contacts.c.id, contacts.c.email)
            .where(contacts.c.timezone == "Europe/Copenhagen", contacts.c.first_name.is_not(None))
            .order_by(contacts.c.id).limit(how_many)
        ).all()  # fmt: skip
        enroll(connection, runtime.sequences.get(SEQUENCE),
               named_contacts([p.id for p in people]), runtime.enrollment_rules(),
               MONDAY_MORNING)  # fmt: skip
        ids = list(connection.execute(select(enrollments.c.id)).scalars())
    runner = StepRunner(
        {s.name: compile_program(s) for s in runtime.sequences}, runtime.message_builder(),
        MemoryTransport(), lambda now: SegmentCompiler(runtime.segments, runtime.fields, now),
        runtime.settings.default_timezone,
    )  # fmt: skip
    at = MONDAY_MORNING
    for _ in range(4):  # the stage step, then the send (in the window)
        runner.run_many(runtime.database, ids, at)
        at += dt.timedelta(minutes=30)
    with runtime.database.connect() as connection:
        sent = connection.execute(select(messages.c.to_email)).scalars().all()
    assert len(sent) == how_many, sent
    return [str(p.email) for p in people]


def shoot(page: Page, folder: Path, name: str, shots: list[Path]) -> None:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    shots.append(path)


def status_of(runtime: Runtime, email: str) -> str:
    with runtime.database.connect() as connection:
        query = (
            select(enrollments.c.status)
            .join(contacts, contacts.c.id == enrollments.c.contact_id)
            .where(contacts.c.email == email, enrollments.c.sequence == SEQUENCE)
        )
        return str(connection.execute(query).scalar_one())


def test_the_dashboard_in_a_browser(
    page: Page, problems: list[str], runtime: Runtime, tmp_path: Path
) -> None:
    emails = send_first_steps(runtime, 3)
    folder, shots = tmp_path / "screenshots", list[Path]()
    folder.mkdir()

    # Given a wrong token, the form comes back with the error; then the right one.
    page.goto("/")
    assert "/login?next=" in page.url
    page.get_by_label("API token (SALESCYCLE_API_TOKEN)").fill("not-the-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("That is not the token")
    assert problems == ["Failed to load resource: the server responded with a status of 401 "
                        "(Unauthorized)"]  # fmt: skip
    problems.clear()
    shoot(page, folder, "login-refused", shots)
    page.get_by_label("API token (SALESCYCLE_API_TOKEN)").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()

    # The pipeline, then its link to the sequence.
    expect(page.get_by_role("heading", name="Pipeline")).to_be_visible()
    connecting = page.locator('tr[data-stage="connecting"] [data-count]')
    expect(connecting).to_have_text(str(count_in(runtime, "connecting")))
    shoot(page, folder, "pipeline", shots)
    page.get_by_role("link", name=SEQUENCE).first.click()
    expect(page.get_by_role("heading", name=SEQUENCE)).to_be_visible()
    expect(page.locator('tr[data-step="intro"] [data-sent]')).to_have_text("3")
    shoot(page, folder, "sequence", shots)

    # The sequence's latest enrollments link to the contact; pause, then resume.
    page.get_by_role("link", name=emails[0]).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(emails[0])
    row = page.locator(f'tr[data-sequence="{SEQUENCE}"]')
    expect(row.locator("[data-status]")).to_have_text("active")
    shoot(page, folder, "contact", shots)
    row.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("status")).to_have_text(f"Paused 1 enrollment in {SEQUENCE}.")
    expect(row.locator("[data-status]")).to_have_text("paused")
    assert status_of(runtime, emails[0]) == "paused"
    shoot(page, folder, "contact-paused", shots)
    row.get_by_role("button", name="Resume").click()
    expect(row.locator("[data-status]")).to_have_text("active")
    assert status_of(runtime, emails[0]) == "active"

    # A template previewed for this contact, its HTML inside the sandboxed frame.
    page.get_by_role("link", name="Preview a template for this contact").click()
    page.get_by_label("Template").select_option("nurture/welcome")
    page.get_by_role("button", name="Preview").click()
    first_name = first_name_of(runtime, emails[0])
    expect(page.locator("#subject")).not_to_be_empty()
    frame = page.frame_locator("iframe.preview")
    expect(frame.locator("body")).to_contain_text(first_name)
    # The open pixel stays unloaded: the preview's policy allows no request at all.
    blocked = [p for p in problems if "/t/o/" in p]
    assert blocked and all("csp" in p or "img-src data:" in p for p in blocked), problems
    problems[:] = [p for p in problems if p not in blocked]
    shoot(page, folder, "preview", shots)

    # Every other page, and the search box in the header.
    for path, heading in (("/sequences", "Sequences"), ("/segments", "Segments"),
                          ("/suppressions", "Suppressions"), ("/templates", "Templates"),
                          ("/contacts?stage=connecting", "Contacts")):  # fmt: skip
        page.goto(path)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        shoot(page, folder, heading.lower(), shots)
    page.get_by_role("searchbox", name="Contact email").fill(emails[1].upper())
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text(emails[1])

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("API token (SALESCYCLE_API_TOKEN)")).to_be_visible()
    page.goto("/segments")
    assert "/login?next=%2Fsegments" in page.url

    assert len(shots) == 11
    for shot in shots:
        data = shot.read_bytes()
        assert data.startswith(PNG) and len(data) > 2000, shot


def count_in(runtime: Runtime, stage: str) -> int:
    with runtime.database.connect() as connection:
        found = connection.execute(select(contacts.c.id).where(contacts.c.stage == stage))
        return len(found.all())


def first_name_of(runtime: Runtime, email: str) -> Any:
    with runtime.database.connect() as connection:
        query = select(contacts.c.first_name).where(contacts.c.email == email)
        return connection.execute(query).scalar_one()
