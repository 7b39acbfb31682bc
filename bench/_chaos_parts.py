"""The moving parts of the fault suite (``bench/chaos.py``): the web app in its own
process, the worker crew that is killed and replenished, and the webhook event poster."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path
from typing import Any

import _workers
import httpx2

from engine.clock import utc_now
from engine.devtools import EventSigner, events_for, post_events
from engine.devtools.sendgrid_sink import AcceptedMail

REPO = Path(__file__).resolve().parent.parent
EVENTS_PATH = "/webhooks/sendgrid/events"


# --- the processes ----------------------------------------------------------------------


class Crew:
    """The worker processes: kill -9 one, and bring the count back a little later."""

    def __init__(self, env: dict[str, str], log_file: Path, size: int = 2) -> None:
        self.env, self.log_file, self.size = env, log_file, size
        self.processes = [self._start() for _ in range(size)]
        self.started, self.killed = size, 0

    def _start(self) -> subprocess.Popen[bytes]:
        return _workers.start_worker(self.env, self.log_file,
                                     ("workers.actors", "workers.inbox"))  # fmt: skip

    def kill_one(self, rng: random.Random) -> None:
        alive = [p for p in self.processes if p.poll() is None]
        if alive:
            victim = rng.choice(alive)
            _workers.kill_9(victim)
            self.processes.remove(victim)
            self.killed += 1

    def replenish(self) -> None:
        while len(self.processes) < self.size:
            self.processes.append(self._start())
            self.started += 1

    def stop(self) -> None:
        for process in self.processes:
            _workers.stop_worker(process)


# --- webhook events ---------------------------------------------------------------------


class EventPoster:
    """Events about every accepted mail, each batch posted twice, in shuffled order, and
    posted again after a refusal (as SendGrid retries) until the web app says 200."""

    def __init__(self, url: str, batch: int, rng: random.Random, signer: EventSigner) -> None:
        self.url, self.batch, self.rng, self.signer = url + EVENTS_PATH, batch, rng, signer
        self.seen = 0  # accepted mails already turned into events
        self.queue: list[tuple[int, list[dict[str, Any]]]] = []  # (release tick, batch)
        self.event_ids: set[str] = set()
        self.posts = self.refused = 0
        self.client = httpx2.Client(timeout=10)

    def close(self) -> None:
        self.client.close()

    def take(self, accepted: list[AcceptedMail], tick: int) -> None:
        """Queue the events about mail accepted since the last call, twice each."""
        fresh, self.seen = accepted[self.seen :], len(accepted)
        stream = [e for mail in fresh for e in events_for(mail, ["processed", "delivered"],
                                                          mail.received_at, self.rng)]  # fmt: skip
        self.rng.shuffle(stream)  # a delivered event may come before its processed one
        self.event_ids.update(str(e["sg_event_id"]) for e in stream)
        size = self.batch
        for start in range(0, len(stream), size):
            batch = stream[start : start + size]
            self.queue.append((tick, batch))
            self.queue.append((tick + self.rng.randint(1, 8), list(batch)))  # the repeat

    def post_due(self, tick: int) -> None:
        due = [item for item in self.queue if item[0] <= tick]
        self.queue = [item for item in self.queue if item[0] > tick]
        self.rng.shuffle(due)
        for _release, batch in due:
            try:
                status = post_events(self.url, batch, self.signer, now=utc_now(),
                                     client=self.client)  # fmt: skip
            except httpx2.TransportError:
                status = 0
            self.posts += 1
            if status != 200:  # the database is restarting: try again next tick
                self.refused += 1
                self.queue.append((tick + 1, batch))

    @property
    def idle(self) -> bool:
        return not self.queue
