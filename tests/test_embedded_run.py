"""``salescycle run``: scheduler and in-process Dramatiq workers send each email once, on time."""

from __future__ import annotations

import datetime as dt
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from zoneinfo import ZoneInfo

import time_machine
from _support import explain, invoke
from sqlalchemy import func, select

from engine.storage.schema import enrollments, messages
from engine.wiring import Runtime

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
        sunday = invoke("run", "--until-idle", "--workspace", workspace)
    assert sunday.exit_code == 0, explain(sunday)
    assert outbox(workspace) == []  # enrolled on Sunday evening; nothing leaves before Monday

    with time_machine.travel(MONDAY, tick=True):
        monday = invoke("run", "--until-idle", "--workspace", workspace)
        again = invoke("run", "--until-idle", "--workspace", workspace)
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
        thursday = invoke("run", "--until-idle", "--workspace", workspace)
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
