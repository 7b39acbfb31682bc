"""``salescycle demo``: the whole cycle through the real engine on a simulated clock.

One short run (10 simulated days, 200 contacts) through the CLI, checked in the database
the engine wrote; a second run of the same seed on the same workspace starts fresh and
ends with the same numbers.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from _support import explain, invoke
from ruamel.yaml import YAML
from sqlalchemy import create_engine, select

from engine.demo import demo_figures
from engine.demo.people import person
from engine.demo.replies import CUSTOMER_REPLIES, REPLIES, OriginalMail, reply_mime, reply_text
from engine.replies.classify import classify
from engine.storage.schema import (
    contacts,
    enrollments,
    events,
    messages,
    stage_history,
    suppressions,
    webhook_inbox,
)
from engine.wiring import Runtime

ARGS = ("demo", "--days", "10", "--contacts", "200", "--seed", "3")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    from engine.workspace import init_workspace

    root = tmp_path_factory.mktemp("demo") / "ws"
    init_workspace(root)
    result = invoke(*ARGS, "--workspace", root)
    assert result.exit_code == 0, explain(result)
    return root, result.output


def _rows(root: Path, query: Any) -> list[Any]:
    engine = create_engine(f"sqlite:///{root / 'var/demo/salescycle.db'}")
    try:
        with engine.connect() as connection:
            return list(connection.execute(query).mappings())
    finally:
        engine.dispose()


def _windows(root: Path) -> dict[str, tuple[set[int], dt.time, dt.time]]:
    """Each sequence's days and hours, read from its YAML file."""
    yaml = YAML(typ="safe", pure=True)
    found = {}
    for path in (root / "config" / "sequences").glob("*.yaml"):
        data = yaml.load(path.read_text(encoding="utf-8"))
        first, _, last = data["window"]["days"].partition("-")
        days = set(range(_DAYS.index(first), _DAYS.index(last or first) + 1))
        opens, closes = (dt.time.fromisoformat(t) for t in data["window"]["hours"].split("-"))
        found[data["name"]] = (days, opens, closes)
    return found


def test_emails_go_out_only_inside_each_contacts_window(demo_run: tuple[Path, str]) -> None:
    root, _ = demo_run
    windows = _windows(root)
    sent = _rows(root, select(messages.c.sequence, messages.c.sent_at, contacts.c.timezone)
                 .join(contacts, contacts.c.id == messages.c.contact_id)
                 .where(messages.c.status == "sent", messages.c.sequence.is_not(None)))  # fmt: skip
    assert len(sent) > 40
    assert {row["sequence"] for row in sent} >= {"connecting-outreach", "customer-nurture"}
    for row in sent:
        days, opens, closes = windows[row["sequence"]]
        local = row["sent_at"].astimezone(ZoneInfo(row["timezone"]))
        assert local.weekday() in days, row
        assert opens <= local.time() < closes, row


def test_every_kind_of_webhook_arrived_over_http_and_was_processed(
    demo_run: tuple[Path, str],
) -> None:
    root, _ = demo_run
    inbox = _rows(root, select(webhook_inbox.c.source, webhook_inbox.c.status))
    assert {row["source"] for row in inbox} == {"sendgrid_events", "sendgrid_inbound", "tracking"}
    assert {row["status"] for row in inbox} <= {"processed", "unmatched"}
    kinds = {row["kind"] for row in _rows(root, select(events.c.kind))}
    assert kinds >= {"delivered", "opened", "clicked", "replied", "auto_replied", "bounced",
                     "unsubscribed"}  # fmt: skip
    machine = _rows(root, select(events.c.kind).where(events.c.machine.is_(True)))
    assert {row["kind"] for row in machine} == {"opened", "clicked"}


def test_replies_end_enrollments_and_move_stages(demo_run: tuple[Path, str]) -> None:
    root, _ = demo_run
    exited = _rows(root, select(enrollments.c.id).where(enrollments.c.exit_reason == "replied"))
    moved = _rows(root, select(stage_history.c.to_stage, stage_history.c.detail)
                  .where(stage_history.c.cause == "event"))  # fmt: skip
    by_reply = {row["to_stage"] for row in moved if ": replied " in row["detail"]}
    assert exited
    assert by_reply >= {"qualification", "lost"}


def test_closed_deals_become_customers_in_post_sale_nurture(demo_run: tuple[Path, str]) -> None:
    root, _ = demo_run
    won = _rows(root, select(stage_history.c.contact_id).where(
        stage_history.c.to_stage == "customer", stage_history.c.cause == "api"))  # fmt: skip
    nurtured = _rows(root, select(enrollments.c.contact_id)
                     .where(enrollments.c.sequence == "customer-nurture"))  # fmt: skip
    assert won
    assert {row["contact_id"] for row in won} == {row["contact_id"] for row in nurtured}


def test_suppressed_addresses_get_nothing_after_their_suppression(
    demo_run: tuple[Path, str],
) -> None:
    root, _ = demo_run
    suppressed = _rows(root, select(suppressions.c.email, suppressions.c.created_at))
    assert suppressed
    for row in suppressed:
        after = (messages.c.to_email == row["email"], messages.c.sent_at > row["created_at"])
        later = _rows(root, select(messages.c.id).where(*after))
        assert later == [], row


def test_the_report_is_printed_and_written(demo_run: tuple[Path, str]) -> None:
    root, output = demo_run
    html = root / "var" / "demo" / "report.html"
    assert html.is_file() and "<html" in html.read_text(encoding="utf-8").lower()
    assert "the demo in numbers" in output and "Deliverability" in output


def test_the_same_seed_on_the_same_workspace_starts_fresh_and_ends_the_same(
    demo_run: tuple[Path, str],
) -> None:
    root, _ = demo_run
    runtime = Runtime.open(root, database_url="sqlite:///var/demo/salescycle.db")
    with runtime.database.connect() as connection:
        first = demo_figures(connection)
    runtime.close()

    again = invoke(*ARGS, "--workspace", root)

    assert again.exit_code == 0, explain(again)
    runtime = Runtime.open(root, database_url="sqlite:///var/demo/salescycle.db")
    with runtime.database.connect() as connection:
        second = demo_figures(connection)
    runtime.close()
    assert second == first
    assert first["contacts"] == 200 and first["emails sent"] > 0


@pytest.mark.parametrize("language", ["en", "da"])
def test_every_simulated_reply_reads_as_its_intent(language: str) -> None:
    rules = Runtime.open(Path(__file__).resolve().parents[1]).reply_rules
    who = person(1, "anna.berg@firma.example", "Anna", "Berg", language)
    original = OriginalMail("Rep <rep@x.example>", "Rep", "reply+a.b@reply.example", "Hello",
                            "<a@mail.x.example>", "Hi Anna,\nwould a call help?")  # fmt: skip
    at = dt.datetime(2027, 3, 2, 10, tzinfo=dt.UTC)
    for customer, table in ((False, REPLIES), (True, CUSTOMER_REPLIES)):
        for intent, texts in table.items():
            for seed in range(len(texts[language]) * 3):
                text = reply_text(intent, who, random.Random(seed), customer=customer)
                got = classify(reply_mime(who, original, text, at, random.Random(seed)), rules)
                assert (got.intent or got.kind) == intent, (text, got)
