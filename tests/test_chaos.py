"""The fault suite, small (``bench/chaos.py`` is the full one): with two real worker
processes, the web app and a SendGrid sink refusing or stalling one request in ten, a
worker killed with SIGKILL, Redis and PostgreSQL restarted, and every event batch posted
twice and out of order, each due email reaches the provider once and in its window,
nothing goes to a suppressed address, and every webhook event is recorded."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _services import PostgresServer, RedisServer

from engine.devtools import Faults

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import chaos

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

REDUCED = chaos.Plan(
    contacts=220, suppressed=5, worker_kills=1, redis_restarts=1, postgres_restarts=1,
    faults=Faults(rate_429=0.04, rate_503=0.03, rate_slow=0.03, slow_seconds=2.0),
    max_per_second=40, event_batch=50, window_minutes=20, stall_seconds=45.0,
)  # fmt: skip


def test_faults_lose_nothing_and_send_nothing_twice_or_out_of_window(
    postgres_server: PostgresServer, postgres_url: str, redis_server: RedisServer,
    redis_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    figures = chaos.run(REDUCED, tmp_path, postgres_url, postgres_server, redis_server)

    shown = chaos.report(figures)
    print(shown)
    assert figures.due >= 150, figures.due  # the window split the contacts, most are due
    happened = figures.details["chaos"]
    assert len(happened) == 3 and not any("never" in what for what in happened), happened
    sink = figures.details["sink"]
    assert sink["rate_limited"] + sink["unavailable"] > 0 and sink["delayed"] > 0, sink
    assert figures.details["workers_killed"] == 1
    assert figures.events_posted == 2 * figures.delivered  # processed + delivered, each
    assert (figures.duplicates, figures.outside_window, figures.to_suppressed,
            figures.events_lost) == (0, 0, 0, 0), shown  # fmt: skip
    assert figures.lost == 0, (shown, figures.details["lost_to_stuck_hand_offs"])
    assert figures.delivered == figures.due and figures.problems() == [], shown
