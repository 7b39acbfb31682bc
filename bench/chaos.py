"""Fault suite: every due email reaches SendGrid once, in its window, while things break.

Run from the repository root::

    python bench/chaos.py            # ~2,600 due messages, 4 worker kills, 2+2 restarts
    python bench/chaos.py --quick    # ~800 due messages, 2 kills, one Redis and one PG restart

A throw-away PostgreSQL and Redis (``tests/_services.py``), two Dramatiq worker processes
(``python -m dramatiq workers.actors workers.inbox``), ``salescycle serve`` (its SendGrid
event webhook verifying a key pair made for the run) and ``engine.devtools.SendGridSink``
answering 429, 503 and slowly (past the transport's timeout) at a seeded rate. The
scheduler loop (``workers/loop.py``, with the inbox sweep) runs in this process. A
sequence ``chaos`` sends two emails to each enrolled contact in a window that is open now
for some timezones and closed for the others; a few open-window contacts are suppressed.

While it sends: kill -9 a worker at random moments (a new one starts a second later),
restart Redis, restart PostgreSQL (fast shutdown, same port), and post SendGrid's events
(``processed``, ``delivered``) about every mail the sink accepted, each batch twice and
in shuffled order; the events settle hand-offs that timed out after the sink took them.
Then it lets the system settle and prints the figures. Delivered must equal due and
every other figure be zero, else exit status 1. ``tests/test_chaos.py`` runs it small.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for _path in (BENCH, REPO / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import _common as common  # noqa: E402
import _services  # noqa: E402
from _chaos_parts import Crew, EventPoster  # noqa: E402
from dramatiq.brokers.redis import RedisBroker  # noqa: E402
from redis.exceptions import RedisError  # noqa: E402
from sqlalchemy import Engine, func, select  # noqa: E402
from sqlalchemy.exc import SQLAlchemyError  # noqa: E402

from engine.cli.contacts_commands import run_import  # noqa: E402
from engine.clock import utc_now  # noqa: E402
from engine.contacts.suppressions import add_suppressions  # noqa: E402
from engine.devtools import EventSigner, Faults, SendGridSink  # noqa: E402
from engine.devtools.sendgrid_sink import AcceptedMail  # noqa: E402
from engine.sequences import enroll  # noqa: E402
from engine.sequences.model import Sequence  # noqa: E402
from engine.sequences.scheduler import Scheduler  # noqa: E402
from engine.sequences.windows import contact_timezone, next_open  # noqa: E402
from engine.storage import upgrade  # noqa: E402
from engine.storage.schema import (  # noqa: E402
    accounts,
    contacts,
    enrollments,
    events,
    messages,
    webhook_inbox,
)
from engine.wiring import Runtime  # noqa: E402
from engine.workspace import init_workspace  # noqa: E402
from workers.actors import STEPS_QUEUE, run_enrollments  # noqa: E402
from workers.chores import standard_chores  # noqa: E402
from workers.inbox import INBOX_QUEUE, process_inbox  # noqa: E402
from workers.loop import LoopReport, SchedulerLoop  # noqa: E402

RESULTS_FILE = BENCH / "results" / "chaos.json"
SEQUENCE, STEPS = "chaos", ("first", "second")
SECRET = "chaos-suite-secret-key-0123456789abcdef"
TICK = 0.25  # seconds between scheduler ticks (claims, event posts, chaos)
BATCH, CLAIM_LEASE = 10, 15  # enrollments a broker message; seconds a claim lasts
ZONES = ("Europe/Copenhagen", "Europe/London", "Europe/Helsinki", "America/New_York",
         "America/Los_Angeles")  # fmt: skip
log = common.logger("bench/chaos")


# A hand-off no event confirmed is resent after this wait (production: 30 minutes). It
# must outlast the inbox sweep (30 s) that processes events whose nudge a Redis restart
# lost, or a message the sink did take would be resent; and stay under the stall limit.
UNCONFIRMED_AFTER_S = 45
UNFINISHED = ["handing_off", "ambiguous", "retry"]


@dataclasses.dataclass(frozen=True)
class Plan:
    """How big a run is and what breaks in it."""

    contacts: int  # enrolled, of the starter export's 2,000 (about 2 in 3 in the window)
    suppressed: int  # open-window contacts suppressed before the run
    worker_kills: int
    redis_restarts: int
    postgres_restarts: int
    faults: Faults
    max_per_second: int  # the send throttle: spreads sending so faults land mid-flight
    event_batch: int = 100  # events per webhook POST
    window_minutes: int = 45  # the window stays open this long for the due contacts
    stall_seconds: float = 60.0  # settling ends when nothing moved for this long
    seed: int = 7


FULL = Plan(2_000, 20, 4, 2, 2, Faults(rate_429=0.05, rate_503=0.05, rate_slow=0.03,
            slow_seconds=2.0), max_per_second=120)  # fmt: skip
QUICK = Plan(600, 8, 2, 1, 1, Faults(rate_429=0.05, rate_503=0.05, rate_slow=0.03,
             slow_seconds=2.0), max_per_second=80)  # fmt: skip


class Postgres(Protocol):
    """The part of ``tests/_services.PostgresServer`` the suite uses."""

    def restart(self) -> None: ...


class Redis(Protocol):
    """The part of ``tests/_services.RedisServer`` the suite uses."""

    url: str

    def restart(self) -> None: ...


@dataclasses.dataclass
class Figures:
    """What the suite prints; ``problems`` is empty when every invariant held."""

    due: int = 0
    delivered: int = 0
    duplicates: int = 0
    lost: int = 0
    outside_window: int = 0
    to_suppressed: int = 0
    events_posted: int = 0
    events_lost: int = 0
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def problems(self) -> list[str]:
        wrong = (
            [] if self.delivered == self.due else [f"delivered {self.delivered} != due {self.due}"]
        )
        for name in ("duplicates", "lost", "outside_window", "to_suppressed", "events_lost"):
            if getattr(self, name):
                wrong.append(f"{name} = {getattr(self, name)}")
        return wrong


@dataclasses.dataclass(frozen=True)
class _Contact:
    id: int
    email: str
    zone: ZoneInfo
    country: str | None


# --- the workspace and the people in it ------------------------------------------------


def window_hours(now: dt.datetime, minutes: int) -> tuple[str, str]:
    """Hours open from 5 minutes ago to ``minutes`` (at most 54) from now in the first zone
    of ZONES where that fits in one day: zones an hour east are closed until tomorrow,
    zones an hour west open in 55 minutes, after the run."""
    for name in ZONES:
        local = now.astimezone(ZoneInfo(name))
        start = (local - dt.timedelta(minutes=5)).replace(second=0, microsecond=0)
        end = (local + dt.timedelta(minutes=minutes + 1)).replace(second=0, microsecond=0)
        if start.date() == local.date() == end.date():
            return name, f"{start:%H:%M}-{end:%H:%M}"
    raise RuntimeError("no zone in ZONES has the window within one day")  # cannot happen


def prepare_workspace(root: Path, hours: str) -> None:
    """The starter workspace with one sequence, ``chaos``: two emails, no wait between."""
    init_workspace(root)
    for starter in (root / "config" / "sequences").glob("*.yaml"):
        starter.unlink()  # their triggers would enroll and send beside the suite's own
    (root / "config" / "sequences" / f"{SEQUENCE}.yaml").write_text(f"""\
name: {SEQUENCE}
description: Two emails in a window open now for some timezones (bench/chaos.py)
kind: nurture
format: html
enroll: manual
reenroll: never
window: {{days: mon-sun, hours: "{hours}", timezone: contact, holidays: true}}
exit_when: [unsubscribed, bounced, complained]
steps:
  - {{id: {STEPS[0]}, send: nurture/welcome}}
  - {{id: {STEPS[1]}, send: nurture/onboarding}}
""")


def enroll_sample(runtime: Runtime, plan: Plan, work: Path) -> list[_Contact]:
    """Import the starter export, enroll ``plan.contacts`` of them; the enrolled contacts."""
    upgrade(runtime.database)
    run_import(runtime, REPO / "examples" / "crm-contacts.csv", rejects_path=work / "rejects.csv")
    sequence = runtime.sequences.get(SEQUENCE)
    with runtime.database.begin() as connection:
        rows = connection.execute(
            select(contacts.c.id, contacts.c.email, contacts.c.timezone, accounts.c.country)
            .select_from(contacts.outerjoin(accounts, contacts.c.account_id == accounts.c.id))
            .order_by(contacts.c.id)
        ).all()
        chosen = random.Random(plan.seed).sample(rows, min(plan.contacts, len(rows)))
        ids = [int(row.id) for row in chosen]
        candidates = select(contacts.c.id).where(contacts.c.id.in_(ids))
        enroll(connection, sequence, candidates, runtime.enrollment_rules(), utc_now())
    zone = runtime.settings.default_timezone
    return [
        _Contact(int(r.id), str(r.email).lower(),
                 contact_timezone(sequence.timezone or r.timezone, r.country, None, zone),
                 r.country)
        for r in chosen
    ]  # fmt: skip


def is_open(sequence: Sequence, person: _Contact, at: dt.datetime) -> bool:
    return next_open(sequence.window, at, person.zone, person.country) <= at


def suppress_some(runtime: Runtime, people: list[_Contact], due: list[_Contact], count: int,
                  seed: int) -> set[str]:  # fmt: skip
    """Suppress ``count`` of the due contacts (as unsubscribes); their addresses."""
    chosen = random.Random(seed).sample(due, min(count, len(due)))
    now = utc_now()
    rows = [{"email": p.email, "reason": "unsubscribed", "source": "chaos",
             "detail": "bench/chaos.py", "created_at": now} for p in chosen]  # fmt: skip
    with runtime.database.begin() as connection:
        add_suppressions(connection, rows)
    return {p.email for p in chosen}


# --- the run ----------------------------------------------------------------------------


def chaos_schedule(plan: Plan, rng: random.Random) -> list[tuple[float, str]]:
    """(share of due mail accepted, action) pairs, in order: the random moments."""
    actions = (["kill"] * plan.worker_kills + ["redis"] * plan.redis_restarts
               + ["postgres"] * plan.postgres_restarts)  # fmt: skip
    return sorted((rng.uniform(0.05, 0.85), action) for action in actions)


def run(plan: Plan, work: Path, database_url: str, postgres: Postgres, redis: Redis) -> Figures:
    """One fault run against running servers; the figures."""
    began, rng = time.monotonic(), random.Random(plan.seed)
    now = utc_now()
    zone, hours = window_hours(now, plan.window_minutes)
    root = work / "workspace"
    prepare_workspace(root, hours)
    signer = EventSigner()
    env = _environment(plan, database_url, redis.url, root, signer.public_key_base64)
    with _environ(env):
        runtime = Runtime.open(root, database_url=database_url)
        try:
            people = enroll_sample(runtime, plan, work)
            sequence = runtime.sequences.get(SEQUENCE)
            until = now + dt.timedelta(minutes=plan.window_minutes)
            open_now = [
                p for p in people if is_open(sequence, p, now) and is_open(sequence, p, until)
            ]
            suppressed = suppress_some(runtime, people, open_now, plan.suppressed, plan.seed)
            due = [p for p in open_now if p.email not in suppressed]
            log(f"window {hours} ({zone} time): {len(due)} of {len(people)} contacts due, "
                f"{len(suppressed)} suppressed")  # fmt: skip
            figures = _drive(plan, runtime, env, work, root, redis, postgres, rng, signer,
                             len(due) * len(STEPS))  # fmt: skip
            _measure(figures, runtime.database, sequence, people, due, suppressed)
        finally:
            runtime.close()
    figures.details.update(
        window=f"{hours} {zone} time", seconds=round(time.monotonic() - began, 1)
    )
    return figures


def _drive(plan: Plan, runtime: Runtime, env: dict[str, str], work: Path, root: Path,
           redis: Redis, postgres: Postgres, rng: random.Random, signer: EventSigner,
           due: int) -> Figures:  # fmt: skip
    """Send with faults until the system settles; the sink's and the poster's counts."""
    sink = SendGridSink(faults=plan.faults, seed=plan.seed).start()
    env["SALESCYCLE_SENDING__SENDGRID_HOST"] = sink.url
    crew: Crew | None = None
    try:
        with common.salescycle_serve(env, root, work / "web.log") as url:
            crew = Crew(env, work / "workers.log")
            poster = EventPoster(url, plan.event_batch, rng, signer)
            try:
                done = _loop(plan, runtime, redis, postgres, sink, crew, poster, rng, due)
            finally:
                poster.close()
        figures = Figures(due=due, events_posted=len(poster.event_ids))
        figures.details.update(
            chaos=done, workers_killed=crew.killed, workers_started=crew.started,
            sink=dataclasses.asdict(sink.stats()), webhook_posts=poster.posts,
            webhook_posts_refused=poster.refused, accepted=sink.messages(),
            event_ids=poster.event_ids,
        )  # fmt: skip
    finally:
        if crew is not None:
            crew.stop()
        sink.stop()
    return figures


def _loop(plan: Plan, runtime: Runtime, redis: Redis, postgres: Postgres, sink: SendGridSink,
          crew: Crew, poster: EventPoster, rng: random.Random, due: int) -> list[str]:  # fmt: skip
    """Tick (claim, dispatch, post events, break things) until settled; what broke when."""
    broker = RedisBroker(url=redis.url)  # type: ignore[no-untyped-call]
    for queue in (STEPS_QUEUE, INBOX_QUEUE):
        broker.declare_queue(queue)

    def dispatch(ids: list[int]) -> None:
        broker.enqueue(run_enrollments.message(ids))

    def nudge_inbox(ids: list[int]) -> None:
        broker.enqueue(process_inbox.message(ids))

    loop = SchedulerLoop(runtime, dispatch=dispatch, clock=utc_now,
                         chores=standard_chores(runtime, nudge_inbox))  # fmt: skip
    # a claim must outlive a batch's hand-offs (10 x the 1 s timeout) or a second run
    # pauses messages the first is still handing off (see README: the grace is per message)
    loop.batch_size = BATCH
    loop.scheduler = Scheduler(runtime.database, claim_lease=dt.timedelta(seconds=CLAIM_LEASE))
    schedule, done, report = chaos_schedule(plan, rng), [], LoopReport()
    deadline = time.monotonic() + (plan.window_minutes - 3) * 60  # the window must hold
    state = _Progress(runtime.database, plan.stall_seconds, deadline)
    tick = 0
    try:
        while True:
            tick += 1
            with contextlib.suppress(SQLAlchemyError, RedisError):  # it is restarting
                loop.tick(report)
            accepted = sink.messages()
            poster.take(accepted, tick)
            poster.post_due(tick)
            share = len({i for m in accepted for i in m.message_ids}) / max(due, 1)
            crew.replenish()  # a killed worker's replacement starts one tick later
            while schedule and schedule[0][0] <= share:
                _, action = schedule.pop(0)
                done.append(f"{action} at {share:.0%}")
                log(f"{action} with {share:.0%} of due mail accepted")
                _break(action, crew, redis, postgres, rng)
            if not schedule and state.settled(len(accepted), poster.idle):
                return done
            if not schedule and state.stalled():
                done.extend(f"{action} never reached ({at:.0%})" for at, action in schedule)
                return done
            if schedule and state.stalled():  # progress stopped short of the next fault
                at, action = schedule.pop(0)
                done.append(f"{action} at {share:.0%} (stalled before {at:.0%})")
                _break(action, crew, redis, postgres, rng)
            time.sleep(TICK)
    finally:
        with contextlib.suppress(SQLAlchemyError):
            loop.scheduler.resign()
        broker.close()


def _break(action: str, crew: Crew, redis: Redis, postgres: Postgres, rng: random.Random) -> None:
    if action == "kill":
        crew.kill_one(rng)
    elif action == "redis":
        redis.restart()
    else:
        postgres.restart()


class _Progress:
    """Has anything moved lately (mail accepted, rows written, events recorded)?"""

    def __init__(self, database: Engine, stall_seconds: float, deadline: float) -> None:
        self.database, self.stall_seconds, self.deadline = database, stall_seconds, deadline
        self.last: tuple[int, ...] = ()
        self.moved = time.monotonic()
        self.quiet_since: float | None = None

    def _snapshot(self, accepted: int) -> tuple[int, ...] | None:
        soon = utc_now() + dt.timedelta(minutes=30)  # closed-window contacts wait longer
        conditions = ((messages, messages.c.status == "sent"),
                      (events, events.c.provider == "sendgrid"),
                      (webhook_inbox, webhook_inbox.c.status == "received"),
                      (enrollments, (enrollments.c.status == "active")
                       & (enrollments.c.next_run_at < soon)),
                      # hand-offs no event has settled yet: resent after a wait
                      (messages, messages.c.status.in_(UNFINISHED)))  # fmt: skip
        try:
            with self.database.connect() as connection:
                counts = [connection.execute(select(func.count()).select_from(table)
                                             .where(condition)).scalar_one()
                          for table, condition in conditions]  # fmt: skip
        except SQLAlchemyError:
            return None
        return (accepted, *(int(c) for c in counts))

    def settled(self, accepted: int, posted_all: bool) -> bool:
        """Nothing active, nothing in the inbox, every event posted, and it stayed so."""
        snapshot = self._snapshot(accepted)
        if snapshot is None:
            return False
        if snapshot != self.last:
            self.last, self.moved = snapshot, time.monotonic()
        calm = posted_all and snapshot[3] == 0 and snapshot[4] == 0 and snapshot[5] == 0
        if not calm:
            self.quiet_since = None
            return False
        self.quiet_since = self.quiet_since or time.monotonic()
        return time.monotonic() - self.quiet_since > 3.0  # a late duplicate would show

    def stalled(self) -> bool:
        now = time.monotonic()
        return now - self.moved > self.stall_seconds or now > self.deadline


def _measure(figures: Figures, database: Engine, sequence: Sequence, people: list[_Contact],
             due: list[_Contact], suppressed: set[str]) -> None:  # fmt: skip
    """Fill in the figures from the sink's mail, the messages rows and the events rows."""
    accepted: list[AcceptedMail] = figures.details.pop("accepted")
    posted: set[str] = figures.details.pop("event_ids")
    by_id = {p.id: p for p in people}
    with database.connect() as connection:
        rows = {r.public_id: r for r in connection.execute(select(
            messages.c.public_id, messages.c.contact_id, messages.c.step_id))}  # fmt: skip
        recorded = set(connection.execute(select(events.c.provider_event_id).where(
            events.c.provider == "sendgrid")).scalars())  # fmt: skip
        by_status = select(messages.c.status, func.count()).group_by(messages.c.status)
        statuses = {str(s): int(n) for s, n in connection.execute(by_status)}
        paused_errors = select(enrollments.c.error).where(enrollments.c.status == "paused")
        paused = Counter(
            re.sub(r"message \S+ ", "message ID ", str(e))[:70]
            for e in connection.execute(paused_errors).scalars()
        )
    times = Counter(i for mail in accepted for i in mail.message_ids)
    figures.delivered = len(times)
    figures.duplicates = sum(1 for n in times.values() if n > 1)
    got = {(rows[i].contact_id, rows[i].step_id) for i in times if i in rows}
    figures.lost = sum(1 for p in due for step in STEPS if (p.id, step) not in got)
    for mail in accepted:
        for message_id in mail.message_ids:
            row = rows.get(message_id)
            person = by_id.get(row.contact_id) if row is not None else None
            if person is None or not is_open(sequence, person, mail.received_at):
                figures.outside_window += 1
    figures.to_suppressed = sum(
        1 for m in accepted for r in m.recipients if r.lower() in suppressed
    )
    figures.events_lost = len(posted - recorded)
    figures.details["lost_to_stuck_hand_offs"] = _stuck(database, set(times), got, due)
    figures.details.update(message_statuses=dict(statuses), paused_enrollments=dict(paused),
                           unknown_ids=sum(1 for i in times if i not in rows))  # fmt: skip


def _stuck(
    database: Engine, accepted: set[str | None], got: set[tuple[int, str]], due: list[_Contact]
) -> dict[str, int]:
    """The lost messages explained by one gap: an enrollment paused on a hand-off that
    did not finish (a worker killed mid-batch, a timeout) which the sink never took, so no
    event will ever settle it, and nothing sends it again."""
    unfinished = messages.c.status.in_(["handing_off", "ambiguous"])
    query = select(messages.c.contact_id, messages.c.public_id).join(
        enrollments, (enrollments.c.id == messages.c.enrollment_id)
        & (enrollments.c.status == "paused")).where(unfinished)  # fmt: skip
    with database.connect() as connection:
        stuck = {
            int(r.contact_id) for r in connection.execute(query) if r.public_id not in accepted
        }
    lost = [(p.id, step) for p in due for step in STEPS if (p.id, step) not in got]
    explained = sum(1 for contact_id, _ in lost if contact_id in stuck)
    return {"paused_hand_offs": len(stuck), "messages": explained, "other": len(lost) - explained}


def _environment(
    plan: Plan, database_url: str, redis_url: str, root: Path, public_key: str
) -> dict[str, str]:
    return {
        "SALESCYCLE_SENDGRID_WEBHOOK_PUBLIC_KEY": public_key,
        "SALESCYCLE_SENDING__UNCONFIRMED_RESEND_AFTER_SECONDS": str(UNCONFIRMED_AFTER_S),
        "SALESCYCLE_DATABASE_URL": database_url, "SALESCYCLE_BROKER_URL": redis_url,
        "SALESCYCLE_WORKSPACE": str(root), "SALESCYCLE_SECRET_KEY": SECRET,
        "SALESCYCLE_SENDING__TRANSPORT": "sendgrid", "SENDGRID_API_KEY": "SG.chaos",
        "SALESCYCLE_SENDING__MAX_PER_SECOND": str(plan.max_per_second),
        "SALESCYCLE_SENDING__MAX_PER_DOMAIN_PER_MINUTE": "100000",
        "SALESCYCLE_SENDING__RETRY_BACKOFF_SECONDS": "[1, 1, 2]",
        "SALESCYCLE_SENDING__TIMEOUT_SECONDS": "1",  # a slow answer (2 s) is a timeout
        "SALESCYCLE_SEQUENCES__OWNER_DAILY_CAP": "0",
        "SALESCYCLE_SEQUENCES__CONTACT_GAP": "0m",  # the second email right after the first
    }  # fmt: skip


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[dict[str, str]]:
    """``os.environ`` plus ``values`` while inside; the child processes' environment."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        values.update({k: v for k, v in os.environ.items() if k not in values})
        yield values
    finally:
        os.environ.clear()
        os.environ.update(saved)


# --- the table ----------------------------------------------------------------------------


def figure_rows(figures: Figures) -> list[common.Figure]:
    """The printed table: each figure against what it must be."""
    due = figures.due

    def zero(name: str, value: int, unit: str = "messages") -> common.Figure:
        return common.figure_record(name, value, f"{value:,}", "= 0", status=_ok(value == 0),
                                    unit=unit, digits=0)  # fmt: skip

    return [
        common.figure_record("messages due", due, f"{due:,}", unit="messages", digits=0),
        common.figure_record("delivered (accepted by the sink, by message id)",
                             figures.delivered, f"{figures.delivered:,}", f"= {due:,} due",
                             ratio=figures.delivered / due if due else None,
                             ratio_shown=f"{figures.delivered / due:.3f}x due" if due else "-",
                             status=_ok(figures.delivered == due), unit="messages", digits=0),
        zero("duplicates (ids accepted more than once)", figures.duplicates),
        zero("lost (due, never accepted)", figures.lost),
        zero("sent outside their window", figures.outside_window),
        zero("sent to suppressed addresses", figures.to_suppressed),
        zero(f"webhook events lost (of {figures.events_posted:,} posted twice)",
             figures.events_lost, "events"),
    ]  # fmt: skip


def _ok(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(figures: Figures) -> str:
    """The table and one line of what happened."""
    d = figures.details
    happened = (f"faults: {', '.join(d.get('chaos', []))}; sink {d.get('sink')}; "
                f"messages {d.get('message_statuses')}; paused {d.get('paused_enrollments')}; "
                f"{d.get('webhook_posts')} webhook posts ({d.get('webhook_posts_refused')} "
                f"refused, posted again); {d.get('seconds')} s")  # fmt: skip
    return f"{common.format_table(figure_rows(figures))}\n{happened}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="600 contacts, fewer faults")
    args = parser.parse_args(argv)
    plan, began = (QUICK if args.quick else FULL), dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="salescycle-chaos-") as tmp:
        work = Path(tmp)
        postgres = _services.PostgresServer.start(work / "postgres")
        redis = _services.RedisServer.start(work / "redis")
        try:
            figures = run(plan, work, postgres.create_database("chaos"), postgres, redis)
        finally:
            redis.stop()
            postgres.stop()
    print(report(figures))
    common.write_results(RESULTS_FILE, "chaos", bool(args.quick), began,
                         figures=figure_rows(figures), details=figures.details,
                         plan=dataclasses.asdict(plan))  # fmt: skip
    return 1 if figures.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
