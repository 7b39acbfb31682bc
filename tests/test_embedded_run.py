"""``salescycle run``: scheduler and in-process Dramatiq workers send each email once, on time."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Callable
from email import message_from_bytes
from email import policy as email_policy
from email.message import Message
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import time_machine
from _services import free_port
from _support import explain, invoke
from sqlalchemy import func, select

from engine.storage.schema import contacts, enrollments, events, messages, suppressions
from engine.wiring import Runtime
from workers.embedded import run_embedded
from workers.loop import LoopReport

CPH = ZoneInfo("Europe/Copenhagen")
SUNDAY = dt.datetime(2026, 12, 6, 20, 0, tzinfo=CPH)
MONDAY = dt.datetime(2026, 12, 7, 11, 0, tzinfo=CPH)
THURSDAY = dt.datetime(2026, 12, 10, 12, 30, tzinfo=CPH)  # 3 business days after


def prepared(workspace: Path) -> Path:
    for args in (
        ("db", "upgrade"),
        ("contacts", "import", workspace / "examples" / "crm-contacts.csv"),
    ):
        result = invoke(*args, "--workspace", workspace)
        assert result.exit_code == 0, explain(result)
    return workspace


def outbox(workspace: Path) -> list[Path]:
    return sorted((workspace / "var" / "outbox").glob("*.eml"))


def test_run_until_idle_sends_each_due_email_once_inside_its_window(workspace: Path) -> None:
    prepared(workspace)
    with time_machine.travel(SUNDAY, tick=True):
        sunday = invoke("run", "--until-idle", "--no-web", "--workspace", workspace)
    assert sunday.exit_code == 0, explain(sunday)
    assert outbox(workspace) == []  # enrolled on Sunday evening; nothing leaves before Monday

    with time_machine.travel(MONDAY, tick=True):
        monday = invoke("run", "--until-idle", "--no-web", "--workspace", workspace)
        again = invoke("run", "--until-idle", "--no-web", "--workspace", workspace)
    assert monday.exit_code == 0 and again.exit_code == 0, explain(monday)

    runtime = Runtime.open(workspace)
    with runtime.database.connect() as connection:
        enrolled = connection.execute(select(func.count()).select_from(enrollments).where(
            enrollments.c.sequence == "connecting-outreach")).scalar_one()  # fmt: skip
        rows = connection.execute(
            select(messages.c.public_id, messages.c.status, messages.c.step_id)
        ).all()
    runtime.close()
    files = outbox(workspace)
    assert enrolled > 100
    assert len(files) == len(rows) == enrolled  # one intro each, the second run sent nothing
    assert {r.status for r in rows} == {"sent"} and {r.step_id for r in rows} == {"intro"}
    assert {f.stem for f in files} == {r.public_id for r in rows}
    for path in files[:20]:
        sent = message_from_bytes(path.read_bytes(), policy=email_policy.default)
        assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert sent["X-SMTPAPI"] is not None and "connecting-outreach" in str(sent["X-SMTPAPI"])

    with time_machine.travel(THURSDAY, tick=True):
        thursday = invoke("run", "--until-idle", "--no-web", "--workspace", workspace)
    assert thursday.exit_code == 0, explain(thursday)
    bumps = [f for f in outbox(workspace) if f not in files]
    assert len(bumps) == enrolled  # the ICP is Nordic: every contact's window is open
    for path in bumps:
        sent = message_from_bytes(path.read_bytes(), policy=email_policy.default)
        assert str(sent["Subject"]).startswith("Re: ")
        assert sent["In-Reply-To"] is not None


def test_the_scheduler_refuses_to_run_without_redis(workspace: Path) -> None:
    result = invoke("scheduler", "--workspace", workspace)

    assert result.exit_code == 2
    assert "set SALESCYCLE_BROKER_URL (redis://...) for the scheduler" in result.output


def test_run_serves_the_tracking_links_of_what_it_sent_and_acts_on_them(workspace: Path) -> None:
    """The web app inside ``salescycle run``: a person's click on the booking link moves
    the contact on, an unsubscribe holds at once; both through real HTTP."""
    prepared(workspace)
    runtime, port, stopping = Runtime.open(workspace), free_port(), threading.Event()
    report: list[LoopReport] = []
    with time_machine.travel(MONDAY, tick=True) as traveller:
        running = threading.Thread(target=lambda: report.append(run_embedded(
            runtime, stop=stopping.is_set, web=("127.0.0.1", port))))  # fmt: skip
        running.start()
        try:
            first = wait_for(
                lambda: outbox(workspace)[:2] if len(outbox(workspace)) > 1 else None,
                "the first emails",
            )
            clicked, unsubscribed = (message_from_bytes(p.read_bytes()) for p in first)
            traveller.shift(dt.timedelta(minutes=20))  # a person, not a scanner at delivery
            base = f"http://127.0.0.1:{port}"
            browser = {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1"}
            with httpx2.Client(base_url=base, timeout=30, headers=browser) as client:
                booking = client.get(path_of(clicked, "/t/c/"))
                page = client.get(path_of(unsubscribed, "/u/"))
                gone = client.post(path_of(unsubscribed, "/u/"))
            wait_for(lambda: click_recorded(runtime), "the click's event")
        finally:
            stopping.set()
            running.join(60)
    try:
        assert booking.status_code == 302
        assert booking.headers["location"] == "https://cal.salescycle-demo.example/book"
        assert page.status_code == 200 and gone.status_code == 200
        with runtime.database.connect() as connection:
            moved = connection.execute(select(contacts.c.stage).where(
                contacts.c.email == str(clicked["To"]).rpartition("<")[2].rstrip(">"))
            ).scalar_one()  # fmt: skip
            held = connection.execute(select(suppressions.c.reason)).scalars().all()
        assert moved == "qualification"
        assert held == ["unsubscribed"]
        assert report and report[0].claimed > 0
    finally:
        runtime.close()


def wait_for(found: Callable[[], Any], what: str, within: float = 60.0) -> Any:
    deadline = time.monotonic() + within
    while not (value := found()):
        assert time.monotonic() < deadline, f"{what} did not come within {within} s"
        time.sleep(0.05)
    return value


def path_of(sent: Message, prefix: str) -> str:
    """The path of the first tracking URL with ``prefix`` in a sent message."""
    text = "".join(
        bytes(part.get_payload(decode=True)).decode()
        for part in sent.walk()
        if part.get_content_maintype() == "text"
    )
    found = re.search(rf"https?://[^/\s]+({re.escape(prefix)}[0-9a-z.\-]+)", text)
    assert found is not None, f"no {prefix} link in the message"
    return found.group(1)


def click_recorded(runtime: Runtime) -> bool:
    with runtime.database.connect() as connection:
        query = select(events.c.id).where(events.c.kind == "clicked", events.c.machine.is_(False))
        return connection.execute(query).first() is not None
