"""Real Dramatiq worker processes on a real Redis: each due email reaches the provider once,
through killed workers, a Redis restart and a provider refusing one request in ten."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import _workers
import pytest
from _services import RedisServer
from _support import explain, invoke, replace_once
from _workers import error_lines, kill_9, stop_worker
from dramatiq.brokers.redis import RedisBroker
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import Engine, func, select

from engine.clock import utc_now
from engine.devtools import Faults, SendGridSink
from engine.sequences.scheduler import Scheduler, batches
from engine.storage import create_database_engine
from engine.storage.schema import enrollments, messages
from workers.actors import STEPS_QUEUE, run_enrollments

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]
SEQUENCE = "customer-nurture"


@pytest.fixture
def environment(
    workspace: Path, postgres_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """A workspace on PostgreSQL whose nurture may send at any hour, all 2,000 contacts in it."""
    replace_once(workspace / "config" / "sequences" / f"{SEQUENCE}.yaml",
                 'window: {days: mon-fri, hours: "09:00-16:00"}',
                 'window: {days: mon-sun, hours: "0-24", holidays: false}')  # fmt: skip
    (workspace / "segments" / "everyone.yaml").write_text("name: everyone\nwhere: {all: []}\n")
    settings = {
        "SALESCYCLE_DATABASE_URL": postgres_url,
        "SALESCYCLE_SENDING__MAX_PER_SECOND": "5000",
        "SALESCYCLE_SENDING__MAX_PER_DOMAIN_PER_MINUTE": "100000",
        "SALESCYCLE_SENDING__RETRY_BACKOFF_SECONDS": "[1, 1, 2]",
        "SALESCYCLE_SENDING__TIMEOUT_SECONDS": "2",  # a killed hand-off is settled after 6 s
        "SALESCYCLE_SEQUENCES__OWNER_DAILY_CAP": "0",  # 2,000 emails from 5 reps in one go
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    for args in (("db", "upgrade"),
                 ("contacts", "import", workspace / "examples" / "crm-contacts.csv"),
                 ("enroll", SEQUENCE, "--segment", "everyone")):  # fmt: skip
        result = invoke(*args, "--workspace", workspace)
        assert result.exit_code == 0, explain(result)
    return {**os.environ, **settings, "SALESCYCLE_BROKER_URL": redis_url,
            "SALESCYCLE_WORKSPACE": str(workspace)}  # fmt: skip


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return _workers.start_worker(env, log, queues=[STEPS_QUEUE])


@pytest.fixture
def workers(environment: dict[str, str], tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        stop_worker(process)


def drive(
    database: Engine, redis_url: str, due: int, chaos: Callable[[int], None], limit: float = 120
) -> None:
    """Be the scheduler (lease 3 s) until every enrollment has its message, or time runs out."""
    scheduler = Scheduler(database, claim_lease=dt.timedelta(seconds=3))
    broker = RedisBroker(url=redis_url)  # type: ignore[no-untyped-call]
    broker.declare_queue(STEPS_QUEUE)
    deadline = time.monotonic() + limit
    tick = 0
    while time.monotonic() < deadline and sent_count(database) < due:
        tick += 1
        chaos(tick)
        try:
            for batch in batches(scheduler.claim(utc_now(), 200), 25):
                broker.enqueue(run_enrollments.message(batch))
        except RedisConnectionError:
            pass  # Redis is restarting; what was claimed is claimed again after the lease
        time.sleep(0.5)
    broker.close()


def sent_count(database: Engine) -> int:
    with database.connect() as connection:
        query = select(func.count()).select_from(messages).where(messages.c.status == "sent")
        return int(connection.execute(query).scalar_one())


def enrolled_count(database: Engine) -> int:
    with database.connect() as connection:
        query = (
            select(func.count()).select_from(enrollments).where(enrollments.c.sequence == SEQUENCE)
        )
        return int(connection.execute(query).scalar_one())


def test_killed_workers_and_a_redis_restart_lose_nothing_and_send_nothing_twice(
    environment: dict[str, str], workers: list[subprocess.Popen[bytes]], workspace: Path,
    redis_server: RedisServer, redis_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    database = create_database_engine(environment["SALESCYCLE_DATABASE_URL"])
    due = enrolled_count(database)
    log = tmp_path / "workers.log"
    workers += [start_worker(environment, log), start_worker(environment, log)]

    def chaos(tick: int) -> None:
        if tick == 3:
            kill_9(workers[0])  # mid-batch, most likely
        if tick == 6:
            redis_server.restart()
        if tick == 8:
            workers.append(start_worker(environment, log))

    drive(database, redis_url, due, chaos)

    outbox = sorted((workspace / "var" / "outbox").glob("*.eml"))
    with database.connect() as connection:
        rows = connection.execute(select(messages.c.public_id, messages.c.status)).all()
        paused = connection.execute(select(func.count()).select_from(enrollments).where(
            enrollments.c.status == "paused")).scalar_one()  # fmt: skip
        by_status = select(enrollments.c.status, func.count()).group_by(enrollments.c.status)
        states = connection.execute(by_status).all()
    database.dispose()
    assert due == 2000, due
    statuses = Counter(r.status for r in rows)
    assert statuses == {"sent": due}, f"{statuses}, {paused} paused {states}\n" + error_lines(log)
    assert len(outbox) == due  # one file per message id: nothing was written twice
    assert {p.stem for p in outbox} == {r.public_id for r in rows}
    assert paused == 0


def test_a_provider_refusing_one_request_in_ten_gets_each_message_once(
    environment: dict[str, str], workers: list[subprocess.Popen[bytes]], redis_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    sink = SendGridSink(faults=Faults(rate_429=0.05, rate_503=0.05, retry_after=1), seed=7)
    sink.start()
    try:
        env = {
            **environment,
            "SALESCYCLE_SENDING__TRANSPORT": "sendgrid",
            "SALESCYCLE_SENDING__SENDGRID_HOST": sink.url,
            "SENDGRID_API_KEY": "SG.test",
        }
        database = create_database_engine(env["SALESCYCLE_DATABASE_URL"])
        due = enrolled_count(database)
        workers += [start_worker(env, tmp_path / "w.log"), start_worker(env, tmp_path / "w.log")]

        drive(database, redis_url, due, lambda tick: None)

        accepted = Counter(m for mail in sink.messages() for m in mail.message_ids)
        stats = sink.stats()
        database.dispose()
    finally:
        sink.stop()
    assert len(accepted) == due, (tmp_path / "w.log").read_text()[-3000:]
    assert set(accepted.values()) == {1}  # no message id reached SendGrid twice
    assert stats.rate_limited + stats.unavailable > 0  # the refusals did happen, and were retried
