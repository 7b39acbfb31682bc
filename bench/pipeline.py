"""Pipeline benchmark: enrolling a segment, claiming due work, due steps to accepted mail.

Run from the repository root::

    python bench/pipeline.py            # 100k contacts, 1M enrollments, 20k messages
    python bench/pipeline.py --quick    # 20k contacts, 200k enrollments, 3k messages

A fresh starter workspace plus a segment ``everyone`` (``all: []``) and a manual nurture
sequence ``bench`` (one send of ``nurture/welcome``, open at every hour); N contacts from
``examples/generate_crm.py`` imported with ``run_import`` (timed, as context) into SQLite and
a throw-away PostgreSQL (``tests/_services.py``, or ``SALESCYCLE_BENCH_POSTGRES_URL``).

(a) ``enroll()`` of ``everyone`` into ``bench`` (one ``INSERT ... SELECT``), best of 3, on
both databases. Baseline: ``SELECT count(*)`` of the same segment query. Target: PostgreSQL
within 5 s. (b) ``Scheduler.claim(now, N/10)`` among N x 10 active enrollments (ten sequence
names), every 100th due, best of 3 (claims reset and vacuumed between runs). Baseline: the
same claim with only the due enrollments in the table. Target: within 200 ms. (c) E due
steps claimed in-process (2,000 a claim, 50 ids a broker message, as ``workers/loop.py``),
a real Redis, two ``dramatiq workers.actors`` processes (4 threads each), the SendGrid
transport and ``engine.devtools.SendGridSink`` on loopback: messages/s from the first
dispatch until the sink accepted the last (after an untimed warm-up of 200). Throttles are
raised (10,000/s, the setting's maximum; 100,000 a domain a minute) and the owner daily cap
is off (300 would stop five owners at 1,500). Baseline: ``bench/render.py``'s floor for
``nurture/welcome``. Target: >= 1,000 messages/s. Also the CPU each process group spent a
message (Linux ``/proc``), and exactly once: every due message id accepted once, none twice,
else MISMATCH and exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import importlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _common as common  # noqa: E402
from dramatiq.brokers.redis import RedisBroker  # noqa: E402
from render import baseline, recipients, requests  # noqa: E402
from sqlalchemy import Engine, Select, func, select, text, update  # noqa: E402

from engine.cli.contacts_commands import run_import  # noqa: E402
from engine.clock import utc_now  # noqa: E402
from engine.devtools import SendGridSink  # noqa: E402
from engine.segments.compiler import SegmentCompiler  # noqa: E402
from engine.sequences import enroll  # noqa: E402
from engine.sequences.scheduler import Scheduler, batches  # noqa: E402
from engine.storage import upgrade  # noqa: E402
from engine.storage.schema import contacts, enrollments, messages  # noqa: E402
from engine.templating import MessageFormat  # noqa: E402
from engine.wiring import Runtime  # noqa: E402
from engine.workspace import init_workspace  # noqa: E402
from workers.actors import STEPS_QUEUE, run_enrollments  # noqa: E402

RESULTS_FILE = BENCH / "results" / "pipeline.json"
DATA_DIR = BENCH / "data"
SEGMENT, SEQUENCE, TEMPLATE = "everyone", "bench", "nurture/welcome"
ENROLL_TARGET_S, CLAIM_TARGET_S, SEND_TARGET = 5.0, 0.2, 1_000.0
NAMES, DUE_EVERY = 10, 100  # (b): sequence names per contact; one enrollment in 100 is due
CLAIM_LIMIT, BATCH, WARM_UP, WORKERS, THREADS = 2_000, 50, 200, 2, 4
STALL_S = 60.0  # (c) gives up when the sink accepts nothing new for this long

FILES = {
    "segments/everyone.yaml": "name: everyone\ndescription: Every contact (bench/pipeline.py)\n"
    "where:\n  all: []\n",
    "config/sequences/bench.yaml": """\
name: bench
description: One welcome email to everyone (bench/pipeline.py)
kind: nurture
format: html
enroll: manual
reenroll: never
window: {days: mon-sun, hours: "0-24", holidays: false}
exit_when: [unsubscribed, bounced, complained]
steps:
  - {id: welcome, send: nurture/welcome}
""",
}
# N contacts x NAMES sequence names; every DUE_EVERY-th row due in the last hour, the rest
# tomorrow; with :only_due, only the due rows (the baseline's table)
FILL = text("""
WITH pairs AS (
    SELECT c.id AS contact_id, s.n, row_number() OVER (ORDER BY c.id, s.n) AS rn
    FROM contacts AS c CROSS JOIN generate_series(1, :names) AS s(n))
INSERT INTO enrollments (contact_id, sequence, status, step_index, next_run_at, enrolled_at,
                         updated_at)
SELECT contact_id, 'bench-' || n, 'active', 0,
       CASE WHEN rn % :every = 0 THEN :now - (rn % 3600) * interval '1 second'
            ELSE :now + interval '1 day' + (rn % 3600) * interval '1 second' END,
       :now, :now
FROM pairs WHERE NOT :only_due OR rn % :every = 0
""")

log = common.logger("bench/pipeline")
_seconds = functools.partial(common.figure_record, unit="s", digits=4)
_rate = functools.partial(common.figure_record, unit="messages/s", digits=0)


class _Redis(Protocol):
    """The part of ``tests/_services.RedisServer`` used here."""

    url: str

    def stop(self) -> None: ...


@dataclasses.dataclass
class Enrolling:
    """(a) on one database."""

    database: str
    contacts: int
    import_s: float
    count_s: float
    enroll_s: float
    enrolled: int


def best_of(runs: int, work: Callable[[], object], reset: Callable[[], object]) -> float:
    """The fastest of ``runs`` timed calls of ``work``, each after an untimed ``reset``."""
    times = []
    for _ in range(runs):
        reset()
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def ensure_csv(rows: int) -> Path:
    """``bench/data/crm-N.csv`` (shared with bench/import.py), generated when missing."""
    path = DATA_DIR / f"crm-{rows}.csv"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".csv.partial")
        log(f"generating {path.relative_to(REPO)}")
        generator = [sys.executable, str(REPO / "examples" / "generate_crm.py")]
        subprocess.run([*generator, "--contacts", str(rows), "--out", str(partial)], check=True)
        partial.replace(path)
    return path


def prepare_workspace(root: Path) -> Path:
    init_workspace(root)
    for name, body in FILES.items():
        (root / name).write_text(body, encoding="utf-8")
    return root


def empty_enrollments(database: Engine) -> None:
    with database.begin() as connection:
        if database.dialect.name == "postgresql":
            connection.execute(text("TRUNCATE enrollments CASCADE"))
        else:
            connection.execute(enrollments.delete())


def vacuum(database: Engine) -> None:
    if database.dialect.name == "postgresql":
        with database.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.execute(text("VACUUM ANALYZE"))


def measure_enrolling(runtime: Runtime, label: str, csv: Path, work: Path) -> Enrolling:
    """Import ``csv`` (timed), then count and enroll segment ``everyone``, best of 3 each."""
    database = runtime.database
    upgrade(database)
    started = time.perf_counter()
    summary = run_import(runtime, csv, rejects_path=work / f"{label}.rejects.csv")
    import_s = time.perf_counter() - started
    log(f"{label}: imported {summary.created:,} contacts in {import_s:.1f} s")
    vacuum(database)  # as autovacuum would soon after an import
    sequence, rules = runtime.sequences.get(SEQUENCE), runtime.enrollment_rules()

    def members() -> Select[Any]:
        return SegmentCompiler(runtime.segments, runtime.fields, utc_now()).members(SEGMENT)

    def count() -> int:
        with database.connect() as connection:
            query = select(func.count()).select_from(members().order_by(None).subquery())
            return int(connection.execute(query).scalar_one())

    enrolled: list[int] = []

    def run_enroll() -> None:
        with database.begin() as connection:
            enrolled.append(enroll(connection, sequence, members(), rules, utc_now()))

    count_s = best_of(3, count, lambda: None)
    enroll_s = best_of(3, run_enroll, lambda: empty_enrollments(database))
    log(f"{label}: count(*) {count_s * 1000:.0f} ms, enroll {enrolled[-1]:,} in {enroll_s:.2f} s")
    return Enrolling(label, count(), import_s, count_s, enroll_s, min(enrolled))


def measure_claims(database: Engine, contacts_n: int, only_due: bool) -> tuple[float, int, int]:
    """Best of 3 claims of every due enrollment; seconds, rows in the table, ids claimed."""
    now, due = utc_now(), contacts_n * NAMES // DUE_EVERY
    empty_enrollments(database)
    with database.begin() as connection:
        values = {"names": NAMES, "every": DUE_EVERY, "now": now, "only_due": only_due}
        connection.execute(FILL, values)
        rows = int(connection.execute(select(func.count()).select_from(enrollments)).scalar_one())
    scheduler, claimed = Scheduler(database), []

    def reset() -> None:
        with database.begin() as connection:
            connection.execute(update(enrollments).where(enrollments.c.claimed_by.is_not(None))
                               .values(claimed_by=None, claimed_until=None))  # fmt: skip
        vacuum(database)

    seconds = best_of(3, lambda: claimed.append(len(scheduler.claim(now, due))), reset)
    log(f"claim {due:,} of {rows:,} enrollments: {seconds * 1000:.0f} ms (claimed {claimed})")
    return seconds, rows, min(claimed)


def render_floor(runtime: Runtime, count: int) -> float:
    """bench/render.py's baseline for ``nurture/welcome``: messages/s."""
    builder = runtime.message_builder()
    people = recipients(count, sorted(runtime.owner_profiles))
    work = baseline(builder, requests(people, (TEMPLATE,), MessageFormat.HTML))
    started = time.perf_counter()
    work()
    return count / (time.perf_counter() - started)


def start_worker(env: dict[str, str], log_file: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "dramatiq", "workers.actors", "--processes", "1",
               "--threads", str(THREADS), "--queues", STEPS_QUEUE]  # fmt: skip
    with log_file.open("ab") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out,
                                start_new_session=True)  # fmt: skip


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the worker's process group; SIGKILL to what is left of it after 15 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_until(what: str, done: Callable[[], int], goal: int, log_file: Path) -> None:
    """Poll ``done()`` until it reaches ``goal``; raise when it stalls for STALL_S."""
    last, moved = -1, time.monotonic()
    while (now := done()) < goal:
        if now != last:
            last, moved = now, time.monotonic()
        elif time.monotonic() - moved > STALL_S:
            tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"{what}: stuck at {now:,} of {goal:,}; workers' log:\n{tail}")
        time.sleep(0.01)


def cpu_seconds(groups: set[int], database: str, redis_port: str) -> dict[str, float]:
    """CPU seconds so far (Linux /proc) of the worker process groups, the PostgreSQL backends
    of ``database``, the Redis server and this process (the sink and the scheduler)."""
    used = dict.fromkeys(("workers", "postgres", "redis", "bench (sink, scheduler)"), 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if int(fields[2]) in groups:
            used["workers"] += seconds
        elif command.startswith("postgres:") and f" {database} " in command:
            used["postgres"] += seconds
        elif "redis-server" in command and command.rstrip().endswith(f":{redis_port}"):
            used["redis"] += seconds
        elif stat.parent.name == str(os.getpid()):
            used["bench (sink, scheduler)"] += seconds
    return used


def end_to_end(runtime: Runtime, pg_url: str, work: Path, due: int) -> dict[str, Any]:
    """(c): messages/s through scheduler, Redis, two worker processes and the sink."""
    database = runtime.database
    empty_enrollments(database)
    with database.begin() as connection:
        chosen = select(contacts.c.id).order_by(contacts.c.id).limit(due + WARM_UP)
        total = enroll(connection, runtime.sequences.get(SEQUENCE), chosen,
                       runtime.enrollment_rules(), utc_now())  # fmt: skip
    vacuum(database)
    sys.path.insert(0, str(REPO / "tests"))
    redis = cast(_Redis, importlib.import_module("_services").RedisServer.start(work / "redis"))
    sink, workers, log_file = SendGridSink(), [], work / "workers.log"
    try:
        sink.start()
        env = {**os.environ, "SALESCYCLE_DATABASE_URL": pg_url, "SALESCYCLE_BROKER_URL": redis.url,
               "SALESCYCLE_WORKSPACE": str(runtime.workspace.root),
               "SALESCYCLE_SECRET_KEY": "bench-pipeline-secret-key-0123456789",
               "SALESCYCLE_SENDING__TRANSPORT": "sendgrid",
               "SALESCYCLE_SENDING__SENDGRID_HOST": sink.url, "SENDGRID_API_KEY": "SG.bench",
               "SALESCYCLE_SENDING__MAX_PER_SECOND": "10000",
               "SALESCYCLE_SENDING__MAX_PER_DOMAIN_PER_MINUTE": "100000",
               "SALESCYCLE_SEQUENCES__OWNER_DAILY_CAP": "0"}  # fmt: skip
        workers = [start_worker(env, log_file) for _ in range(WORKERS)]
        ready = "Worker process is ready for action."

        def booted() -> int:
            return log_file.read_text(errors="replace").count(ready) if log_file.exists() else 0

        def accepted() -> int:
            return sink.stats().accepted

        def dispatch(limit: int) -> int:
            ids = scheduler.claim(utc_now(), limit)
            for batch in batches(ids, BATCH):
                broker.enqueue(run_enrollments.message(batch))
            return len(ids)

        wait_until("worker start", booted, WORKERS, log_file)
        broker = RedisBroker(url=redis.url)  # type: ignore[no-untyped-call]
        broker.declare_queue(STEPS_QUEUE)
        scheduler = Scheduler(database)
        dispatch(WARM_UP)
        wait_until("warm-up", accepted, WARM_UP, log_file)
        groups, port = {w.pid for w in workers}, str(urlsplit(redis.url).port)
        usage = functools.partial(cpu_seconds, groups, str(database.url.database), port)
        cpu_before, started = usage(), time.perf_counter()
        while dispatch(CLAIM_LIMIT):
            pass
        dispatched_s = time.perf_counter() - started
        wait_until("sending", accepted, total, log_file)
        seconds, cpu_after = time.perf_counter() - started, usage()
        time.sleep(1.0)  # a duplicate would still be on its way
        ids = Counter(i for mail in sink.messages() for i in mail.message_ids)
        with database.connect() as connection:
            query = select(func.count()).select_from(messages).where(messages.c.status == "sent")
            sent = int(connection.execute(query).scalar_one())
        broker.close()
    finally:
        for process in workers:
            stop_worker(process)
        sink.stop()
        redis.stop()
    timed = total - WARM_UP
    cpu_ms = {k: round((cpu_after[k] - cpu_before[k]) * 1000 / timed, 2) for k in cpu_after}
    log(f"end to end: {timed:,} messages in {seconds:.2f} s ({timed / seconds:,.0f}/s), "
        f"claimed and dispatched in {dispatched_s:.2f} s; CPU ms a message: {cpu_ms}")  # fmt: skip
    return {"due": total, "timed": timed, "seconds": seconds, "rate": timed / seconds,
            "dispatch_seconds": dispatched_s, "distinct_ids": len(ids) - (None in ids),
            "twice": sum(1 for n in ids.values() if n > 1), "sent_rows": sent,
            "cpu_ms_per_message": cpu_ms, "cpus": os.cpu_count(),
            "sink_stats": dataclasses.asdict(sink.stats())}  # fmt: skip


def _status(ok: bool) -> str:
    return "PASS" if ok else "SHORT"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.{1 if seconds < 0.01 else 0}f} ms"


def build_figures(
    enrolling: list[Enrolling], claims: dict[str, tuple[float, int, int]], floor: float,
    e2e: dict[str, Any] | None, e2e_error: str | None,
) -> list[common.Figure]:  # fmt: skip
    figures: list[common.Figure] = []
    base = ("-", 1.0, "1.00x (baseline)")
    for e in enrolling:
        pg, name, ratio = e.database == "PostgreSQL", e.database, e.enroll_s / e.count_s
        figures += [
            _seconds(f"{name} import {e.contacts:,} contacts (context)", e.import_s,
                     f"{e.import_s:.1f} s ({e.contacts / e.import_s:,.0f} rows/s)"),
            _seconds(f"baseline: {name} count(*) of segment everyone", e.count_s,
                     _ms(e.count_s), *base),
            _seconds(f"{name} enroll {e.enrolled:,} contacts from a segment", e.enroll_s,
                     f"{e.enroll_s:.2f} s", f"<= {ENROLL_TARGET_S:g} s" if pg else "-", ratio,
                     f"{ratio:.1f}x count(*)", _status(e.enroll_s <= ENROLL_TARGET_S) if pg
                     else "-", enrolled=e.enrolled),
        ]  # fmt: skip
    (base_s, base_rows, _), (claim_s, rows, claimed) = claims["baseline"], claims["full"]
    figures += [
        _seconds(f"baseline: claim {claimed:,} of {base_rows:,} enrollments (PostgreSQL)",
                 base_s, _ms(base_s), *base),
        _seconds(f"claim {claimed:,} due of {rows:,} active enrollments (PostgreSQL)", claim_s,
                 _ms(claim_s), f"<= {CLAIM_TARGET_S * 1000:g} ms",
                 claim_s / base_s, f"{claim_s / base_s:.2f}x {base_rows:,} rows",
                 _status(claim_s <= CLAIM_TARGET_S), claimed=claimed, rows=rows),
        _rate(f"baseline: render floor {TEMPLATE} (bare jinja2 + json.dumps)", floor,
              f"{floor:,.0f} messages/s", *base),
    ]  # fmt: skip
    if e2e is None:
        figures.append(_rate("end to end: due steps to the SendGrid sink", None,
                             e2e_error or "-", status="ERROR"))  # fmt: skip
        return figures
    rate, due = e2e["rate"], e2e["due"]
    once = e2e["distinct_ids"] == due == e2e["sent_rows"] and e2e["twice"] == 0
    figures += [
        _rate(f"end to end: {e2e['timed']:,} due steps to the SendGrid sink", rate,
              f"{rate:,.0f} messages/s", f">= {SEND_TARGET:,.0f} messages/s", rate / floor,
              f"{rate / floor:.3f}x render floor", _status(rate >= SEND_TARGET)),
        common.figure_record("exactly once: distinct message ids the sink accepted",
                      float(e2e["distinct_ids"]), f"{e2e['distinct_ids']:,} ids, "
                      f"{e2e['twice']} twice, {e2e['sent_rows']:,} rows sent",
                      f"= {due:,} due (incl. {WARM_UP} warm-up)",
                      status="MATCH" if once else "MISMATCH", unit="ids", digits=0),
    ]  # fmt: skip
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="20k contacts, 200k enrollments, 3k messages")  # fmt: skip
    args = parser.parse_args(argv)
    contacts_n, due = (20_000, 3_000) if args.quick else (100_000, 20_000)
    began = datetime.now(UTC)
    csv = ensure_csv(contacts_n)
    enrolling: list[Enrolling] = []
    claims: dict[str, tuple[float, int, int]] = {}
    e2e: dict[str, Any] | None = None
    e2e_error: str | None = None
    with tempfile.TemporaryDirectory(prefix="salescycle-bench-pipeline-") as tmp:
        work = Path(tmp)
        root = prepare_workspace(work / "workspace")
        sqlite = Runtime.open(root, database_url=f"sqlite:///{work / 'bench.db'}")
        try:
            enrolling.append(measure_enrolling(sqlite, "SQLite", csv, work))
        finally:
            sqlite.close()
        with common.postgres_database(work, "bench_pipeline_") as pg_url:
            runtime = Runtime.open(root, database_url=pg_url)
            try:
                enrolling.insert(0, measure_enrolling(runtime, "PostgreSQL", csv, work))
                claims["baseline"] = measure_claims(runtime.database, contacts_n, True)
                claims["full"] = measure_claims(runtime.database, contacts_n, False)
                floor = render_floor(runtime, due)
                log(f"render floor: {floor:,.0f} messages/s")
                try:
                    e2e = end_to_end(runtime, pg_url, work, due)
                except Exception as exc:  # report it in the table, and exit 1
                    e2e_error = f"ERROR: {str(exc).splitlines()[0]}"
                    log(str(exc))
            finally:
                runtime.close()
    figures = build_figures(enrolling, claims, floor, e2e, e2e_error)
    print(common.format_table(figures))
    if e2e is not None:
        print(f"sink stats: {e2e['sink_stats']}")
        spent = e2e["cpu_ms_per_message"]
        ceiling = (e2e["cpus"] or 1) * 1000 / sum(spent.values())
        print(f"CPU ms a message in the timed window: {spent}; all {e2e['cpus']} cpus for this "
              f"alone would allow about {ceiling:,.0f} messages/s")  # fmt: skip
    common.write_results(RESULTS_FILE, "pipeline", bool(args.quick), began,
                         contacts=contacts_n, due=due, figures=figures, end_to_end=e2e)  # fmt: skip
    return 1 if any(f["status"] in ("ERROR", "MISMATCH") for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
