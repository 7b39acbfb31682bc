"""The dashboard over plain HTTP: login, sessions, CSRF, escaping, 404s and its numbers."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from _support import imported_runtime
from _web import NOW, SECRET_KEY, client_for
from sqlalchemy import func, insert, select, update

from engine.clock import utc_now
from engine.contacts.suppressions import add_suppression
from engine.sequences import enroll, named_contacts
from engine.storage.schema import contacts, enrollments, events, messages, stage_history
from engine.tracking.outcomes import refresh_outcomes
from engine.tracking.tokens import TokenSigner
from engine.web import create_app
from engine.web.dashboard import dashboard_setup
from engine.web.dashboard_numbers import pipeline_numbers, sequence_numbers
from engine.web.dashboard_session import SESSION_COOKIE, SessionSigner
from engine.wiring import Runtime

TOKEN = "dashboard-token-0123456789"
THOMAS = "thomas.williams@redwateranalytics.com"
SCRIPT = "<script>alert(1)</script>"
THREE_DAYS = dt.timedelta(days=3)
PAGES = [
    "/",
    "/sequences",
    "/sequences/customer-nurture",
    "/segments",
    "/contacts",
    "/contacts?q=redwater",
    f"/contacts/{THOMAS}",
    "/templates",
    f"/templates/preview?template=nurture/welcome&contact={THOMAS}",
    f"/templates/preview.html?template=nurture/welcome&contact={THOMAS}",
    "/suppressions",
]


@pytest.fixture
def runtime(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("SALESCYCLE_DATABASE_URL", f"sqlite:///{tmp_path}/dashboard.db")
    monkeypatch.setenv("SALESCYCLE_SECRET_KEY", SECRET_KEY.decode())
    with imported_runtime(workspace) as opened:
        yield opened


def make_app(runtime: Runtime, token: str | None = TOKEN) -> Any:
    return create_app(
        runtime.database,
        TokenSigner(SECRET_KEY),
        webhook_public_key=None,
        inbound_secret=None,
        clock=utc_now,
        api_token=token,
        dashboard=dashboard_setup(runtime),
    )


@pytest.fixture
def client(runtime: Runtime) -> Iterator[httpx2.Client]:
    with client_for(make_app(runtime)) as http:
        yield http


def log_in(client: httpx2.Client) -> httpx2.Response:
    answer = client.post("/login", data={"token": TOKEN, "next": "/segments"})
    assert answer.status_code == 303, answer.text
    return answer


def csrf_of(page: httpx2.Response) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


def enroll_thomas(runtime: Runtime, sequence: str = "customer-nurture") -> None:
    with runtime.database.begin() as connection:
        thomas = connection.execute(select(contacts.c.id).where(contacts.c.email == THOMAS))
        enroll(connection, runtime.sequences.get(sequence), named_contacts([thomas.scalar_one()]),
               runtime.enrollment_rules(), NOW)  # fmt: skip


def statuses(runtime: Runtime) -> list[str]:
    with runtime.database.connect() as connection:
        return list(connection.execute(select(enrollments.c.status)).scalars())


def test_every_page_wants_a_session(client: httpx2.Client, runtime: Runtime) -> None:
    now = utc_now()
    genuine = SessionSigner(SECRET_KEY, TOKEN)
    other_token = SessionSigner(SECRET_KEY, "another-token").issue(now)
    expired = genuine.issue(now - dt.timedelta(hours=13))
    issued = genuine.issue(now)
    altered = issued[:-1] + ("1" if issued.endswith("0") else "0")
    enroll_thomas(runtime)
    client.cookies.set(SESSION_COOKIE, genuine.issue(now))
    assert client.get("/").status_code == 200  # (so the refusals below are about the cookie)
    for cookie in (None, "", "123.abc.def", other_token, expired, altered):
        client.cookies.clear()
        if cookie is not None:
            client.cookies.set(SESSION_COOKIE, cookie)
        for path in PAGES:
            answer = client.get(path)
            assert answer.status_code == 303, (path, cookie)
            assert answer.headers["location"].startswith("/login?next=%2F")
        for path in ("/enrollments/pause", "/logout"):
            refused = client.post(path, data={"email": THOMAS, "sequence": "customer-nurture"})
            assert refused.status_code == 403, (path, cookie)
    assert statuses(runtime) == ["active"]


def test_a_wrong_token_shows_the_form_again_and_the_right_one_opens_every_page(
    client: httpx2.Client,
) -> None:
    wrong = client.post("/login", data={"token": TOKEN + "x", "next": "/"})
    assert wrong.status_code == 401 and "That is not the token" in wrong.text
    assert "set-cookie" not in wrong.headers and not client.cookies

    answer = log_in(client)
    cookie = answer.headers["set-cookie"].lower()
    assert answer.headers["location"] == "/segments"
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    for path in PAGES:
        page = client.get(path)
        assert page.status_code == 200, (path, page.text[:300])
        assert "script-src" not in page.headers["content-security-policy"]
        assert "<script" not in page.text.lower()
    assert client.get("/login").status_code == 303  # already logged in

    page = client.get("/")
    out = client.post("/logout", data={"csrf": csrf_of(page)})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/").status_code == 303


def test_the_login_only_sends_on_to_this_site(client: httpx2.Client) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        client.cookies.clear()
        answer = client.post("/login", data={"token": TOKEN, "next": target})
        assert answer.status_code == 303 and answer.headers["location"] == "/"


def test_without_a_token_every_page_says_how_to_set_it(runtime: Runtime) -> None:
    with client_for(make_app(runtime, token=None)) as client:
        login = client.get("/login")
        home = client.get("/")
        posted = client.post("/login", data={"token": ""})
    for answer in (login, home, posted):
        assert answer.status_code == 503
        assert "SALESCYCLE_API_TOKEN" in answer.text


def test_pause_resume_and_stop_need_the_session_csrf_token(
    client: httpx2.Client, runtime: Runtime
) -> None:
    enroll_thomas(runtime)
    log_in(client)
    page = client.get(f"/contacts/{THOMAS}")
    form = {"email": THOMAS, "sequence": "customer-nurture"}
    other = SessionSigner(SECRET_KEY, TOKEN)

    missing = client.post("/enrollments/pause", data=form)
    wrong = client.post("/enrollments/pause", data={**form, "csrf": "0" * 64})
    foreign = client.post("/enrollments/pause", data={**form, "csrf": other.csrf("1.a.b")})
    assert [a.status_code for a in (missing, wrong, foreign)] == [403, 403, 403]
    assert statuses(runtime) == ["active"]

    paused = client.post("/enrollments/pause", data={**form, "csrf": csrf_of(page)})
    assert paused.status_code == 303
    shown = client.get(paused.headers["location"])
    assert "Paused 1 enrollment in customer-nurture." in shown.text
    assert statuses(runtime) == ["paused"]
    assert 'value="resume"' in shown.text and 'value="pause"' not in shown.text

    client.post("/enrollments/resume", data={**form, "csrf": csrf_of(shown)})
    assert statuses(runtime) == ["active"]
    client.post("/enrollments/stop", data={**form, "csrf": csrf_of(shown)})
    assert statuses(runtime) == ["exited"]


def test_contact_data_is_escaped_everywhere(client: httpx2.Client, runtime: Runtime) -> None:
    with runtime.database.begin() as connection:
        connection.execute(
            update(contacts)
            .where(contacts.c.email == THOMAS)
            .values(first_name=SCRIPT, title=f'"><img src=x onerror=alert(1)>{SCRIPT}')
        )
        add_suppression(connection, "x@example.org", "unsubscribed", NOW, detail=SCRIPT)
    enroll_thomas(runtime)
    log_in(client)
    for path in (f"/contacts/{THOMAS}", "/contacts?q=thomas", "/sequences/customer-nurture",
                 "/suppressions", f"/contacts/{SCRIPT}"):  # fmt: skip
        page = client.get(path)
        assert SCRIPT not in page.text and "<img src=x" not in page.text, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get(f"/contacts/{THOMAS}").text


def test_unknown_things_are_404(client: httpx2.Client) -> None:
    log_in(client)
    page = client.get("/")
    nobody = {"template": "nurture/welcome", "contact": "no@body.dk"}
    for path in ("/contacts/no@body.dk", "/sequences/nope"):
        assert client.get(path).status_code == 404, path
    for path in ("/templates/preview", "/templates/preview.html"):
        assert client.get(path, params=nobody).status_code == 404, path
    jump = client.post("/enrollments/jump", data={"csrf": csrf_of(page), "email": THOMAS})
    stranger = client.post("/enrollments/pause", data={"csrf": csrf_of(page), "email": "no@x.dk"})
    assert jump.status_code == 404 and stranger.status_code == 404


def test_a_search_by_exact_email_opens_the_contact(client: httpx2.Client) -> None:
    log_in(client)
    exact = client.get("/contacts", params={"q": f"  {THOMAS.upper()} "})
    partial = client.get("/contacts", params={"q": "redwater"})
    assert exact.status_code == 303 and exact.headers["location"] == f"/contacts/{THOMAS}"
    assert partial.status_code == 200 and THOMAS in partial.text


def test_the_preview_is_the_message_as_sent_in_a_sandbox(client: httpx2.Client) -> None:
    log_in(client)
    query = {"template": "nurture/welcome", "contact": THOMAS}
    page = client.get("/templates/preview", params=query)
    html = client.get("/templates/preview.html", params=query)
    broken = client.get("/templates/preview", params={**query, "template": "nurture/nope"})

    assert page.status_code == 200 and "Thomas" in page.text
    assert re.search(r"<iframe[^>]* sandbox[ >]", page.text)
    policy = html.headers["content-security-policy"]
    assert "sandbox" in policy and "default-src 'none'" in policy and "script" not in policy
    assert html.status_code == 200 and "Thomas" in html.text and "<html" in html.text.lower()
    assert broken.status_code == 422 and "unknown template" in broken.text


def test_the_sequence_page_shows_each_step_and_the_a_b_verdict(
    client: httpx2.Client, runtime: Runtime
) -> None:
    with runtime.database.begin() as connection:
        ids = list(connection.execute(select(contacts.c.id).limit(4)).scalars())
        for number, (contact_id, variant) in enumerate(zip(ids, "aabb", strict=True)):
            message_id = insert_message(connection, number, contact_id, variant)
            kinds = {0: ["delivered", "opened", "opened", "replied"], 1: ["opened"],
                     2: ["delivered"], 3: []}[number]  # fmt: skip
            for kind in kinds:
                insert_event(connection, message_id, contact_id, kind, machine=number == 1)
        numbers = sequence_numbers(connection, runtime.pipeline,
                                   runtime.sequences.get("connecting-outreach"), NOW)  # fmt: skip
    log_in(client)
    page = client.get("/sequences/connecting-outreach")

    steps = {s.step: s for s in numbers.steps}
    assert list(steps) == ["intro", "bump", "breakup"]
    intro = steps["intro"]
    assert (intro.sent, intro.delivered, intro.opened, intro.bot_opened, intro.replied) == (
        4, 2, 1, 1, 1)  # fmt: skip
    assert steps["bump"].sent == 0
    [test] = numbers.variants
    assert (test.step, test.leader, test.runner_up) == ("intro", "a", "b")
    row = re.search(r'<tr data-step="intro">(.*?)</tr>', page.text, re.S)
    assert row is not None and re.search(r"data-sent>4<", row.group(1))
    assert "50.0%" in row.group(1)  # two of four delivered
    assert test.verdict in page.text and "no winner yet" in test.verdict


def test_the_pipeline_shows_contacts_and_time_in_stage(
    client: httpx2.Client, runtime: Runtime
) -> None:
    with runtime.database.connect() as connection:
        imported = connection.execute(select(func.max(stage_history.c.changed_at))).scalar_one()
        grouped = select(contacts.c.stage, func.count()).group_by(contacts.c.stage)
        now_counts = {str(stage): int(n) for stage, n in connection.execute(grouped)}
        names = list(runtime.sequences.sequences)
        later = pipeline_numbers(connection, runtime.pipeline, names, imported + THREE_DAYS)
    log_in(client)
    page = client.get("/")

    stages = {row.id: row for row in later.stages}
    assert {s: r.contacts for s, r in stages.items() if r.contacts} == now_counts
    busy = max(now_counts, key=lambda s: now_counts[s])
    assert stages[busy].kind == "open"  # (only open stages are timed)
    median, p90 = stages[busy].median, stages[busy].p90
    assert median is not None and p90 is not None and THREE_DAYS <= median <= p90
    assert later.bottlenecks and later.bottlenecks[0].startswith("slowest stage: ")
    for stage, count in now_counts.items():
        row = re.search(rf'<tr data-stage="{stage}">.*?data-count>(\d+)<', page.text, re.S)
        assert row is not None and int(row.group(1)) == count, stage


def insert_message(connection: Any, number: int, contact_id: int, variant: str) -> int:
    inserted = insert(messages).values(
        idempotency_key=f"t:{number}", public_id=f"pub{number:013d}", contact_id=contact_id,
        sequence="connecting-outreach", step_id="intro", variant=variant,
        template="connecting/intro", to_email=f"c{number}@example.org",
        from_email="rep@example.com", subject="Hi", rfc_message_id=f"<m{number}@example.com>",
        status="sent", sent_at=NOW, created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    return int(connection.execute(inserted.returning(messages.c.id)).scalar_one())


def insert_event(
    connection: Any, message_id: int, contact_id: int, kind: str, machine: bool
) -> None:
    connection.execute(insert(events).values(
        provider="sendgrid", kind=kind, message_id=message_id, contact_id=contact_id,
        occurred_at=NOW, machine=machine and kind == "opened", detail={}, created_at=NOW,
    ))  # fmt: skip
    refresh_outcomes(connection, [message_id])  # as record_events does
