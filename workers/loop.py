"""The scheduler loop shared by ``salescycle scheduler`` and the embedded ``salescycle run``."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import InterfaceError, OperationalError

from engine.segments.compiler import SegmentCompiler
from engine.sequences.scheduler import MESSAGES_PER_BATCH, Scheduler, batches
from engine.wiring import Runtime

log = logging.getLogger("salescycle.scheduler")


@dataclass
class LoopReport:
    """What a scheduler loop did."""

    ticks: int = 0
    claimed: int = 0
    enrolled: Counter[str] = field(default_factory=Counter)


@dataclass
class Chore:
    """Work the elected scheduler does now and then, e.g. sweeping the webhook inbox."""

    name: str
    every: dt.timedelta
    run: Callable[[dt.datetime], object]
    last: dt.datetime | None = None

    def due(self, now: dt.datetime) -> bool:
        return self.last is None or now - self.last >= self.every


@dataclass
class SchedulerLoop:
    """Elect, enroll by trigger now and then, claim what is due, hand it to the workers."""

    runtime: Runtime
    dispatch: Callable[[list[int]], object]  # sends one broker message per batch of ids
    clock: Callable[[], dt.datetime]
    settle: Callable[[], None] = lambda: None  # waits for dispatched work (embedded mode)
    batch_size: int = MESSAGES_PER_BATCH
    claim_limit: int = 2_000
    enroll_every: dt.timedelta = dt.timedelta(minutes=1)
    tick_seconds: float = 1.0
    idle_horizon: dt.timedelta = dt.timedelta(minutes=2)
    chores: list[Chore] = field(default_factory=list)
    scheduler: Scheduler = field(init=False)
    _enrolled_at: dt.datetime | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.scheduler = Scheduler(self.runtime.ready_database())

    def tick(self, report: LoopReport) -> int:
        """One round; how many enrollments it claimed (0 when not the elected scheduler)."""
        now = self.clock()
        report.ticks += 1
        if not self.scheduler.elect(now):
            return 0
        if self._enrolled_at is None or now - self._enrolled_at >= self.enroll_every:
            runtime = self.runtime
            report.enrolled.update(self.scheduler.enroll_by_triggers(
                runtime.sequences, lambda at: SegmentCompiler(runtime.segments, runtime.fields, at),
                runtime.enrollment_rules(), now))  # fmt: skip
            self._enrolled_at = now
        ids = self.scheduler.claim(now, self.claim_limit)
        for batch in batches(ids, self.batch_size):
            self.dispatch(batch)
        report.claimed += len(ids)
        self._chores(now)
        self.settle()
        return len(ids)

    def _chores(self, now: dt.datetime) -> None:
        for chore in self.chores:
            if not chore.due(now):
                continue
            chore.last = now
            try:
                chore.run(now)
            except Exception:  # a chore's failure must not stop sending; it runs again later
                log.exception("scheduler chore %s failed", chore.name)

    def run(self, until_idle: bool = False, stop: Callable[[], bool] = lambda: False) -> LoopReport:
        """Tick until stopped; with ``until_idle``, until nothing is due within ``idle_horizon``
        (a throttled or retried send a few seconds away is still waited for)."""
        report = LoopReport()
        horizon = self.idle_horizon.total_seconds()
        try:
            while not stop():
                try:
                    claimed = self.tick(report)
                except (OperationalError, InterfaceError) as exc:
                    # the database restarted or is out of reach: the work stays in it,
                    # so wait and tick again rather than end the scheduler
                    log.warning("scheduler tick failed, retrying: %s", str(exc).splitlines()[0])
                    time.sleep(self.tick_seconds)
                    continue
                if claimed >= self.claim_limit:
                    continue  # more is due right now
                wait = self._seconds_until_next_due()
                if until_idle and claimed == 0 and (wait is None or wait > horizon):
                    break
                time.sleep(
                    max(0.01, min(self.tick_seconds, self.tick_seconds if wait is None else wait))
                )
        finally:
            self.scheduler.resign()
        return report

    def _seconds_until_next_due(self) -> float | None:
        due = self.scheduler.next_due()
        return None if due is None else max((due - self.clock()).total_seconds(), 0.0)
