"""The outbound CRM webhook: stage changes and replies queued with the change, POSTed signed
to a real receiver on loopback, retried with backoff while it is down, never lost.

Delivery is at least once: a crash after the receiver's 2xx but before our commit sends
that row again (``test_a_crash_between_post_and_commit_sends_the_row_again``); receivers
dedupe on the body's ``id``.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from _support import explain, invoke, json_output
from _web import migrated_engine, served
from fastapi import FastAPI, Request, Response
from sqlalchemy import Connection, Engine, create_engine, delete, insert, select, text

from engine.contacts.crm_webhook import CrmWebhookSender, DeliveryReport, exponential_backoff
from engine.crm_outbox import enqueue_reply, outbox_summary
from engine.errors import ConfigurationError, WorkspaceError
from engine.settings import load_settings
from engine.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from engine.stages import StageChange, record_stage_changes
from engine.storage import upgrade
from engine.storage.schema import accounts, contacts, crm_outbox, owners
from engine.vocabulary import StageCause
from engine.workspace import Workspace

NOW = dt.datetime(2026, 3, 3, 9, 30, 15, tzinfo=dt.UTC)
SECRET = b"crm-webhook-test-secret-0123456789"
SECOND = dt.timedelta(seconds=1)


# --------------------------------------------------------------------------
# a receiver on loopback that checks every signature


@dataclass
class Receiver:
    """What a CRM does: verify, then keep (or answer ``status``, or refuse some ids)."""

    status: int = 200
    retry_after: str | None = None
    refuse_ids: set[int] = field(default_factory=set)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    timestamps: list[str] = field(default_factory=list)
    forged: int = 0
    pause: float = 0.0  # widens the window in which two senders overlap

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/crm")
        async def hook(request: Request) -> Response:
            body = await request.body()
            stamp = request.headers.get(TIMESTAMP_HEADER, "")
            if not verify_signature(SECRET, stamp, body, request.headers.get(SIGNATURE_HEADER, "")):
                self.forged += 1
                return Response(status_code=401)
            event = orjson.loads(body)
            self.attempts.append(event["id"])
            self.timestamps.append(stamp)
            if self.pause:
                time.sleep(self.pause)
            if event["id"] in self.refuse_ids:
                return Response(status_code=400, content=b"unknown contact")
            if self.status != 200:
                headers = {"Retry-After": self.retry_after} if self.retry_after else {}
                return Response(status_code=self.status, headers=headers)
            self.accepted.append(event)
            return Response(status_code=204)

        return app

    def ids(self) -> list[int]:
        return [event["id"] for event in self.accepted]


@pytest.fixture
def database(database_url: str) -> Iterator[Engine]:
    engine = migrated_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def add_contact(engine: Engine, email: str, stage: str = "research") -> int:
    with engine.begin() as connection:
        owner = connection.execute(
            insert(owners).values(email=f"rep-{email}", name="Rita Rep", created_at=NOW,
                                  updated_at=NOW).returning(owners.c.id)
        ).scalar_one()  # fmt: skip
        account = connection.execute(
            insert(accounts).values(crm_id=f"acc-{email}", name="Nordic ApS", name_key="nordic",
                                    attributes={}, created_at=NOW, updated_at=NOW)
            .returning(accounts.c.id)
        ).scalar_one()  # fmt: skip
        contact_id: int = connection.execute(
            insert(contacts).values(
                email=email, crm_id=f"crm-{email}", first_name="Pat", last_name="Prospect",
                stage=stage, stage_entered_at=NOW, attributes={}, owner_id=owner,
                account_id=account, created_at=NOW, updated_at=NOW,
            ).returning(contacts.c.id)
        ).scalar_one()  # fmt: skip
    return contact_id


def change(engine: Engine, moves: list[tuple[int, str, str]], at: dt.datetime = NOW,
           cause: StageCause = StageCause.EVENT) -> None:  # fmt: skip
    with engine.begin() as connection:
        changes = [StageChange(c, f, t, f"test {f}->{t}") for c, f, t in moves]
        record_stage_changes(connection, changes, cause, at)


def outbox(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [
            dict(r)
            for r in connection.execute(select(crm_outbox).order_by(crm_outbox.c.id)).mappings()
        ]


def sender_for(url: str, max_refusals: int = 3) -> CrmWebhookSender:
    backoff = exponential_backoff(30 * SECOND, dt.timedelta(hours=1))
    return CrmWebhookSender(f"{url}/crm", SECRET, timeout=5.0, backoff=backoff,
                            max_refusals=max_refusals)  # fmt: skip


def drain(sender: CrmWebhookSender, engine: Engine, start: dt.datetime) -> dt.datetime:
    """Deliver round after round, ten minutes apart, until nothing waits; the last "now"."""
    now = start
    for _ in range(30):
        sender.deliver_due(engine, now)
        with engine.connect() as connection:
            if outbox_summary(connection).pending == 0:
                return now
        now += dt.timedelta(minutes=10)
    raise AssertionError(f"still pending after 30 rounds: {outbox(engine)}")


def by_contact(events: list[dict[str, Any]]) -> dict[int, list[str]]:
    stages: dict[int, list[str]] = {}
    for event in events:
        stages.setdefault(event["contact"]["id"], []).append(event["to_stage"])
    return stages


# --------------------------------------------------------------------------
# queued with the change, delivered signed


def test_exponential_backoff_doubles_up_to_its_cap() -> None:
    backoff = exponential_backoff(30 * SECOND, dt.timedelta(hours=1))

    assert [backoff(n).total_seconds() for n in (1, 2, 3, 7, 8, 500)] == [
        30, 60, 120, 1920, 3600, 3600,
    ]  # fmt: skip


def test_stage_changes_arrive_signed_with_the_contact_and_the_change(database: Engine) -> None:
    pat = add_contact(database, "pat@example.org")
    kim = add_contact(database, "kim@example.org")
    change(database, [(pat, "research", "prospecting"), (kim, "research", "connecting"),
                      (pat, "prospecting", "connecting")])  # fmt: skip
    receiver = Receiver()

    with served(receiver.app()) as url, sender_for(url) as sender:
        report = sender.deliver_due(database, NOW + SECOND)
        again = sender.deliver_due(database, NOW + 2 * SECOND)

    assert report == DeliveryReport(delivered=3)
    assert again == DeliveryReport()
    assert receiver.forged == 0
    assert receiver.timestamps == [str(int((NOW + SECOND).timestamp()))] * 3
    rows = outbox(database)
    assert receiver.ids() == [row["id"] for row in rows]
    assert all(row["delivered_at"] == NOW + SECOND and row["attempts"] == 1 for row in rows)
    first = receiver.accepted[0]
    assert first == {
        "id": rows[0]["id"],
        "type": "stage_changed",
        "occurred_at": "2026-03-03T09:30:15+00:00",
        "contact": {
            "id": pat, "crm_id": "crm-pat@example.org", "email": "pat@example.org",
            "first_name": "Pat", "last_name": "Prospect", "stage": "research",
            "owner": {"email": "rep-pat@example.org", "name": "Rita Rep"},
            "account": {"crm_id": "acc-pat@example.org", "name": "Nordic ApS"},
        },
        "from_stage": "research",
        "to_stage": "prospecting",
        "cause": "event",
        "detail": "test research->prospecting",
    }  # fmt: skip
    assert by_contact(receiver.accepted) == {
        pat: ["prospecting", "connecting"],
        kim: ["connecting"],
    }


def test_a_forged_secret_is_refused_by_the_receiver_and_the_change_kept(database: Engine) -> None:
    pat = add_contact(database, "pat@example.org")
    change(database, [(pat, "research", "prospecting")])
    receiver = Receiver()

    with served(receiver.app()) as url:
        forger = CrmWebhookSender(f"{url}/crm", b"not-the-shared-secret-0000000000", max_refusals=5)
        with forger:
            report = forger.deliver_due(database, NOW)

    assert receiver.forged == 1 and receiver.accepted == []
    assert report == DeliveryReport(retrying=1)
    [row] = outbox(database)
    assert row["delivered_at"] is None and row["last_error"].startswith("HTTP 401")


def test_only_committed_changes_are_queued_and_crm_imports_are_not_echoed(
    database: Engine,
) -> None:
    pat = add_contact(database, "pat@example.org")

    with pytest.raises(RuntimeError), database.begin() as connection:
        record_stage_changes(connection, [StageChange(pat, "research", "lost")],
                             StageCause.EVENT, NOW)  # fmt: skip
        raise RuntimeError("the transaction of the change fails")
    change(database, [(pat, "research", "prospecting")], cause=StageCause.CRM)
    change(database, [(pat, "prospecting", "connecting")], cause=StageCause.SEQUENCE)

    assert [(r["kind"], r["payload"]["to_stage"]) for r in outbox(database)] == [
        ("stage_changed", "connecting")
    ]


def test_a_reply_and_an_erased_contact_s_change_are_delivered(database: Engine) -> None:
    pat = add_contact(database, "pat@example.org")
    gone = add_contact(database, "gone@example.org")
    change(database, [(gone, "research", "lost")])
    with database.begin() as connection:
        enqueue_reply(connection, pat, NOW, intent="interested", message_id=7,
                      sequence="connecting-outreach", subject="Re: Quick question")  # fmt: skip
        connection.execute(delete(contacts).where(contacts.c.id == gone))
    receiver = Receiver()

    with served(receiver.app()) as url, sender_for(url) as sender:
        report = sender.deliver_due(database, NOW)

    assert report.delivered == 2
    erased, reply = receiver.accepted
    assert erased["contact"] == {"id": gone} and erased["to_stage"] == "lost"
    assert reply["type"] == "replied" and reply["contact"]["email"] == "pat@example.org"
    assert {k: reply[k] for k in ("intent", "message_id", "sequence", "subject")} == {
        "intent": "interested", "message_id": 7, "sequence": "connecting-outreach",
        "subject": "Re: Quick question",
    }  # fmt: skip


# --------------------------------------------------------------------------
# the receiver down for a while: every change arrives once it is back


def test_the_receiver_stopped_for_a_while_then_every_change_arrives_once_in_order(
    database: Engine,
) -> None:
    pat, kim, lee = (add_contact(database, f"{n}@example.org") for n in ("pat", "kim", "lee"))
    change(database, [(pat, "research", "prospecting"), (kim, "research", "prospecting"),
                      (pat, "prospecting", "connecting"), (lee, "research", "lost")])  # fmt: skip
    receiver = Receiver()
    with served(receiver.app()) as url:
        port = urlsplit(url).port
    assert port is not None

    with sender_for(url) as sender:
        # Given the receiver is down: the first head is tried, backs off, the round stops
        first = sender.deliver_due(database, NOW)
        rows = outbox(database)
        assert first == DeliveryReport(retrying=1, receiver_down=True)
        assert rows[0]["attempts"] == 1 and rows[0]["next_attempt_at"] == NOW + 30 * SECOND
        assert "ConnectError" in rows[0]["last_error"]
        # a second round probes the next contact; pat's later change waits behind its head
        second = sender.deliver_due(database, NOW + SECOND)
        rows = outbox(database)
        assert second == DeliveryReport(retrying=1, receiver_down=True)
        assert [r["attempts"] for r in rows] == [1, 1, 0, 0]
        sender.deliver_due(database, NOW + 31 * SECOND)
        assert outbox(database)[0]["next_attempt_at"] == NOW + 91 * SECOND  # 60 s after try 2
        # and changes made meanwhile are queued behind the others
        change(database, [(pat, "connecting", "qualification")], NOW + 40 * SECOND)

        # When it is back on its address
        with served(receiver.app(), port):
            drain(sender, database, NOW + 50 * SECOND)

    # Then every change arrived exactly once, each contact's in the order made
    rows = outbox(database)
    assert sorted(receiver.ids()) == [row["id"] for row in rows]
    assert len(set(receiver.ids())) == len(rows) == 5
    assert by_contact(receiver.accepted) == {
        pat: ["prospecting", "connecting", "qualification"], kim: ["prospecting"], lee: ["lost"],
    }  # fmt: skip
    assert all(row["delivered_at"] is not None for row in rows)


@pytest.mark.parametrize(
    ("status", "retry_after", "wait"),
    [(503, None, 30), (429, "120", 120), (408, None, 30)],
    ids=["503", "429-retry-after", "408"],
)
def test_a_receiver_answering_unavailable_keeps_the_changes_until_it_takes_them(
    database: Engine, status: int, retry_after: str | None, wait: int
) -> None:
    pat, kim = add_contact(database, "pat@example.org"), add_contact(database, "kim@example.org")
    change(database, [(pat, "research", "prospecting"), (pat, "prospecting", "connecting"),
                      (kim, "research", "prospecting")])  # fmt: skip
    receiver = Receiver(status=status, retry_after=retry_after)

    with served(receiver.app()) as url, sender_for(url) as sender:
        down = [sender.deliver_due(database, NOW + n * SECOND) for n in range(2)]
        waiting = outbox(database)
        receiver.status = 200
        drain(sender, database, NOW + 10 * SECOND)

    assert all(report.receiver_down and report.delivered == 0 for report in down)
    assert waiting[0]["next_attempt_at"] == NOW + wait * SECOND
    assert waiting[0]["last_error"].startswith(f"HTTP {status}")
    assert all(row["delivered_at"] is None for row in waiting)
    assert len(receiver.accepted) == 3 and len(set(receiver.ids())) == 3
    assert by_contact(receiver.accepted) == {pat: ["prospecting", "connecting"],
                                             kim: ["prospecting"]}  # fmt: skip


def test_a_refused_change_fails_after_a_few_attempts_and_is_kept(database: Engine) -> None:
    pat, kim = add_contact(database, "pat@example.org"), add_contact(database, "kim@example.org")
    change(database, [(pat, "research", "prospecting"), (kim, "research", "prospecting"),
                      (pat, "prospecting", "connecting")])  # fmt: skip
    poison = outbox(database)[0]["id"]
    receiver = Receiver(refuse_ids={poison})

    with served(receiver.app()) as url, sender_for(url, max_refusals=2) as sender:
        first = sender.deliver_due(database, NOW)
        held = outbox(database)
        second = sender.deliver_due(database, NOW + 30 * SECOND)
        later = sender.deliver_due(database, NOW + dt.timedelta(days=2))

    # a 4xx is about this change, not the receiver: the round goes on with other contacts
    assert first == DeliveryReport(delivered=1, retrying=1)
    assert [r["delivered_at"] is not None for r in held] == [False, True, False]
    # given up after two refusals; pat's later change is no longer held back by it
    assert second == DeliveryReport(delivered=1, failed=1)
    assert later == DeliveryReport()
    assert receiver.attempts.count(poison) == 2
    failed = outbox(database)[0]
    assert failed["delivered_at"] is None and failed["next_attempt_at"] is None
    assert failed["attempts"] == 2 and failed["last_error"] == "HTTP 400: unknown contact"
    with database.connect() as connection:
        summary = outbox_summary(connection)
    assert (summary.pending, summary.failed, summary.delivered) == (0, 1, 2)
    assert [r["status"] for r in summary.rows] == ["failed"]


def test_a_crash_between_post_and_commit_sends_the_row_again(database: Engine) -> None:
    """At least once: the receiver took it, our commit never happened, so it goes again."""
    pat = add_contact(database, "pat@example.org")
    change(database, [(pat, "research", "prospecting")])
    receiver = Receiver()

    class CrashingSender(CrmWebhookSender):
        def _record(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("the process dies before the commit")

    with served(receiver.app()) as url:
        with pytest.raises(RuntimeError), CrashingSender(f"{url}/crm", SECRET) as crashing:
            crashing.deliver_due(database, NOW)
        assert outbox(database)[0]["delivered_at"] is None
        with sender_for(url) as sender:
            assert sender.deliver_due(database, NOW + SECOND).delivered == 1

    [row] = outbox(database)
    assert receiver.ids() == [row["id"], row["id"]]  # the same id twice: the receiver dedupes
    assert receiver.accepted[0] == receiver.accepted[1]
    assert row["delivered_at"] == NOW + SECOND


# --------------------------------------------------------------------------
# several senders at once (PostgreSQL: SQLite runs one)


def test_a_contact_whose_head_is_being_sent_is_skipped_whole(postgres_url: str) -> None:
    # a sender that waited for the lock instead of skipping fails after 5 s, not hangs
    database = create_engine(postgres_url, connect_args={"options": "-c lock_timeout=5000"})
    upgrade(database)
    pat, kim = add_contact(database, "pat@example.org"), add_contact(database, "kim@example.org")
    change(database, [(pat, "research", "prospecting"), (kim, "research", "prospecting"),
                      (pat, "prospecting", "connecting")])  # fmt: skip
    head = outbox(database)[0]["id"]
    receiver = Receiver()
    try:
        with served(receiver.app()) as url, sender_for(url) as sender:
            with database.connect() as other:  # another sender, mid-POST of pat's head
                _lock(other, head)
                skipped = sender.deliver_due(database, NOW)
                other.rollback()
            after = sender.deliver_due(database, NOW + SECOND)
    finally:
        database.dispose()

    assert skipped == DeliveryReport(delivered=1)  # kim's only: not pat's later change either
    assert after == DeliveryReport(delivered=2)
    assert by_contact(receiver.accepted) == {kim: ["prospecting"],
                                             pat: ["prospecting", "connecting"]}  # fmt: skip


def _lock(connection: Connection, row_id: int) -> None:
    connection.execute(text("SELECT id FROM crm_outbox WHERE id = :id FOR UPDATE"), {"id": row_id})


def test_two_senders_at_once_send_every_change_once_in_order(postgres_url: str) -> None:
    database = migrated_engine(postgres_url)
    people = [add_contact(database, f"p{n}@example.org") for n in range(4)]
    stages = ["prospecting", "connecting", "qualification", "pitching", "negotiation"]
    for before, after in zip(["research", *stages], stages, strict=False):
        change(database, [(p, before, after) for p in people])
    receiver = Receiver(pause=0.002)
    errors: list[BaseException] = []

    def run(sender: CrmWebhookSender) -> None:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                sender.deliver_due(database, NOW, limit=3)
                with database.connect() as connection:
                    if outbox_summary(connection).pending == 0:
                        return
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    try:
        with served(receiver.app()) as url, sender_for(url) as one, sender_for(url) as two:
            threads = [threading.Thread(target=run, args=(s,)) for s in (one, two)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(90)
    finally:
        database.dispose()

    assert errors == []
    assert sorted(receiver.ids()) == sorted(set(receiver.ids()))  # nothing twice
    assert len(receiver.ids()) == len(people) * len(stages)
    assert by_contact(receiver.accepted) == dict.fromkeys(people, stages)


# --------------------------------------------------------------------------
# settings


def _settings_file(workspace: Path, block: str) -> None:
    path = workspace / "config" / "settings.yaml"
    path.write_text(path.read_text() + "\n" + block)


@pytest.mark.parametrize(
    "url", ["https://crm.example.com/hook", "http://127.0.0.1:8123/crm", "http://localhost/x"]
)
def test_the_webhook_url_is_https_or_loopback(
    workspace: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings_file(workspace, f"crm_webhook: {{url: '{url}', timeout_seconds: 3}}\n")
    monkeypatch.setenv("SALESCYCLE_CRM_WEBHOOK_SECRET", "a-secret-of-at-least-16")

    settings = load_settings(Workspace(workspace))
    sender = CrmWebhookSender.from_settings(settings)

    assert settings.crm_webhook.url == url and settings.crm_webhook.timeout_seconds == 3
    assert sender is not None and sender.url == url
    sender.close()


@pytest.mark.parametrize("url", ["http://crm.example.com/hook", "ftp://x", "crm.example.com"])
def test_a_plain_http_or_malformed_url_is_refused(workspace: Path, url: str) -> None:
    _settings_file(workspace, f"crm_webhook:\n  url: '{url}'\n")

    with pytest.raises(WorkspaceError, match="is not an https URL"):
        load_settings(Workspace(workspace))


def test_the_secret_comes_from_the_environment_only(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings_file(workspace, "crm_webhook: {url: 'https://crm.example.com/hook'}\n")
    settings = load_settings(Workspace(workspace))
    with pytest.raises(ConfigurationError, match="SALESCYCLE_CRM_WEBHOOK_SECRET"):
        CrmWebhookSender.from_settings(settings)

    monkeypatch.setenv("SALESCYCLE_CRM_WEBHOOK_SECRET", "short")
    with pytest.raises(ConfigurationError, match=r"SALESCYCLE_CRM_WEBHOOK_SECRET.*16"):
        load_settings(Workspace(workspace))

    monkeypatch.delenv("SALESCYCLE_CRM_WEBHOOK_SECRET")
    _settings_file(workspace, "crm_webhook_secret: in-the-file-is-wrong\n")
    with pytest.raises(WorkspaceError, match="set SALESCYCLE_CRM_WEBHOOK_SECRET"):
        load_settings(Workspace(workspace))


def test_without_a_url_there_is_no_sender(workspace: Path) -> None:
    assert CrmWebhookSender.from_settings(load_settings(Workspace(workspace))) is None


# --------------------------------------------------------------------------
# the command line


def test_crm_outbox_and_deliver_on_the_command_line(
    workspace: Path, workspace_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert invoke("db", "upgrade", "--workspace", workspace).exit_code == 0
    engine = migrated_engine(workspace_database)
    pat = add_contact(engine, "pat@example.org")
    change(engine, [(pat, "research", "prospecting"), (pat, "prospecting", "connecting")])
    receiver = Receiver()

    unconfigured = invoke("crm", "deliver", "--workspace", workspace)
    waiting = invoke("crm", "outbox", "--json", "--workspace", workspace)
    with served(receiver.app()) as url:
        _settings_file(workspace, f"crm_webhook: {{url: '{url}/crm'}}\n")
        monkeypatch.setenv("SALESCYCLE_CRM_WEBHOOK_SECRET", SECRET.decode())
        delivered = invoke("crm", "deliver", "--json", "--workspace", workspace)
    change(engine, [(pat, "connecting", "qualification")], NOW + SECOND)
    down = invoke("crm", "deliver", "--workspace", workspace)
    table = invoke("crm", "outbox", "--workspace", workspace)
    left = invoke("crm", "outbox", "--json", "--workspace", workspace)
    engine.dispose()

    assert unconfigured.exit_code == 2, explain(unconfigured)
    assert "crm_webhook.url is not set" in unconfigured.output
    assert waiting.exit_code == 0, explain(waiting)
    listing = json_output(waiting)
    assert (listing["url"], listing["pending"], listing["failed"]) == (None, 2, 0)
    assert [(r["kind"], r["email"], r["attempts"], r["status"]) for r in listing["rows"]] == [
        ("stage_changed", "pat@example.org", 0, "pending")
    ] * 2
    assert delivered.exit_code == 0, explain(delivered)
    assert json_output(delivered) == {"delivered": 2, "retrying": 0, "failed": 0,
                                      "receiver_down": False}  # fmt: skip
    assert [e["to_stage"] for e in receiver.accepted] == ["prospecting", "connecting"]
    assert down.exit_code == 1, explain(down)
    assert "did not take a change; it stays queued" in down.output
    assert table.exit_code == 0, explain(table)
    assert "1 pending, 0 failed, 2 delivered" in table.output
    [row] = json_output(left)["rows"]
    assert row["attempts"] == 1 and row["status"] == "pending"
    assert row["last_error"].startswith("ConnectError")


def test_an_unusable_url_keeps_the_change_and_crashes_nothing(database: Engine) -> None:
    pat = add_contact(database, "pat@example.org")
    change(database, [(pat, "research", "prospecting")])

    with CrmWebhookSender("not a url at all", SECRET) as sender:
        report = sender.deliver_due(database, NOW)

    assert report == DeliveryReport(retrying=1, receiver_down=True)
    [row] = outbox(database)
    assert row["delivered_at"] is None and row["next_attempt_at"] == NOW + 30 * SECOND


def test_the_scheduler_loop_delivers_the_outbox_when_a_url_is_set(
    workspace: Path, workspace_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.wiring import Runtime
    from workers.chores import standard_chores
    from workers.loop import LoopReport, SchedulerLoop

    receiver = Receiver()
    with served(receiver.app()) as url:
        monkeypatch.setenv("SALESCYCLE_CRM_WEBHOOK__URL", f"{url}/crm")
        monkeypatch.setenv("SALESCYCLE_CRM_WEBHOOK_SECRET", SECRET.decode())
        runtime = Runtime.open(workspace)
        try:
            upgrade(runtime.database)
            contact = add_contact(runtime.database, "pat@example.com")
            change(runtime.database, [(contact, "research", "qualification")])
            loop = SchedulerLoop(runtime, dispatch=lambda ids: None, clock=lambda: NOW,
                                 chores=standard_chores(runtime, lambda ids: None))  # fmt: skip
            loop.tick(LoopReport())
            loop.scheduler.resign()
        finally:
            runtime.close()

    [event] = receiver.accepted
    assert (event["type"], event["contact"]["email"]) == ("stage_changed", "pat@example.com")
    monkeypatch.delenv("SALESCYCLE_CRM_WEBHOOK__URL")
    unset = Runtime.open(workspace)
    try:
        assert [c.name for c in standard_chores(unset, lambda ids: None)] == ["inbox sweep"]
    finally:
        unset.close()
