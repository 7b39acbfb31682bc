"""``salescycle events process|replay`` and the inbox actor, over stored webhook bodies."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import dramatiq
import orjson
from _support import explain, invoke, json_output, outbound_message
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from engine.delivery import Address
from engine.delivery.sendgrid import to_mail_send
from engine.devtools import AcceptedMail, events_for
from engine.storage.schema import events, suppressions, webhook_inbox
from engine.tracking.inbox import InboxSource, store_raw
from engine.wiring import Runtime

RECEIVED = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


def with_inbox(workspace: Path) -> list[int]:
    """A migrated workspace database holding two SendGrid batches and a broken body."""
    result = invoke("db", "upgrade", "--workspace", workspace)
    assert result.exit_code == 0, explain(result)
    message = outbound_message("cli0000000000001", to=Address("Pat@Example.org"))
    mail = AcceptedMail.from_body(to_mail_send(message), "sg-cli", RECEIVED)
    batch = events_for(mail, ["delivered", "open", "unsubscribe"], RECEIVED, random.Random(2))
    runtime = Runtime.open(workspace)
    with runtime.database.begin() as connection:
        ids = [
            store_raw(connection, InboxSource.SENDGRID_EVENTS, {}, body, RECEIVED)
            for body in (orjson.dumps(batch), orjson.dumps(batch[:1]), b"[{")
        ]
    runtime.close()
    return ids


def inbox_statuses(workspace: Path) -> list[str]:
    runtime = Runtime.open(workspace)
    with runtime.database.connect() as connection:
        query = select(webhook_inbox.c.status).order_by(webhook_inbox.c.id)
        statuses = [str(s) for s in connection.execute(query).scalars()]
    runtime.close()
    return statuses


def test_process_drains_the_inbox_and_replay_records_nothing_twice(
    workspace: Path, workspace_database: str
) -> None:
    with_inbox(workspace)

    processed = invoke("events", "process", "--json", "--workspace", workspace)
    again = invoke("events", "process", "--workspace", workspace)
    replayed = invoke("events", "replay", "--since", "2026-03-02", "--json", "--workspace",
                      workspace)  # fmt: skip
    later = invoke("events", "replay", "--since", "2026-03-02T16:00:00+01:00", "--workspace",
                   workspace)  # fmt: skip

    assert processed.exit_code == 0, explain(processed)
    report = json_output(processed)
    assert {k: report[k] for k in ("rows", "processed", "failed", "malformed_events")} == {
        "rows": 3, "processed": 2, "failed": 1, "malformed_events": 0,
    }  # fmt: skip
    assert {k: report["events"][k] for k in ("received", "new", "duplicates", "suppressed")} == {
        "received": 4, "new": 3, "duplicates": 1, "suppressed": 1,
    }  # fmt: skip
    assert again.exit_code == 0, explain(again)
    assert "processed 0 inbox row(s)" in again.output
    assert replayed.exit_code == 0, explain(replayed)
    assert json_output(replayed)["rows"] == 3 and json_output(replayed)["events"]["new"] == 0
    assert later.exit_code == 0, explain(later)  # 15:00 UTC is before 16:00+01:00
    assert "replayed 3 inbox row(s): 2 processed, 1 failed" in later.output
    assert "events: 0 new, 4 already known" in later.output
    assert inbox_statuses(workspace) == ["processed", "processed", "failed"]
    runtime = Runtime.open(workspace)
    with runtime.database.connect() as connection:
        kinds = sorted(connection.execute(select(events.c.kind)).scalars())
        blocked = connection.execute(select(suppressions.c.email)).scalars().all()
    runtime.close()
    assert kinds == ["delivered", "opened", "unsubscribed"] and blocked == ["pat@example.org"]


def test_replay_after_the_rows_arrived_touches_nothing(
    workspace: Path, workspace_database: str
) -> None:
    with_inbox(workspace)

    result = invoke("events", "replay", "--since", "2026-03-03", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    assert "replayed 0 inbox row(s)" in result.output
    assert inbox_statuses(workspace) == ["received"] * 3


def test_a_since_that_is_no_date_is_refused(workspace: Path) -> None:
    wrong = invoke("events", "replay", "--since", "last tuesday", "--workspace", workspace)
    missing = invoke("events", "replay", "--workspace", workspace)

    assert wrong.exit_code == 1
    assert "--since 'last tuesday' is not a date; use YYYY-MM-DD" in wrong.output
    assert missing.exit_code == 2 and "--since" in missing.output


def test_an_unmigrated_database_is_refused(workspace: Path, workspace_database: str) -> None:
    result = invoke("events", "process", "--workspace", workspace)

    assert result.exit_code == 3, explain(result)
    assert "salescycle db upgrade" in result.output


def test_the_inbox_actor_processes_the_rows_it_is_given(
    workspace: Path, workspace_database: str
) -> None:
    from workers.broker import broker
    from workers.context import install, open_context
    from workers.inbox import INBOX_QUEUE, process_inbox

    assert isinstance(broker, StubBroker)  # no SALESCYCLE_BROKER_URL in tests
    ids = with_inbox(workspace)
    runtime = Runtime.open(workspace)
    install(open_context(runtime))
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        process_inbox.send(ids[:1])
        process_inbox.send(ids[:1])  # a nudge delivered twice
        broker.join(INBOX_QUEUE, fail_fast=True)
    finally:
        worker.stop()
        install(None)
        runtime.close()

    assert inbox_statuses(workspace) == ["processed", "received", "received"]
