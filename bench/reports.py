"""Reports benchmark: ``salescycle report`` over a million contacts and five million events.

Run from the repository root::

    python bench/reports.py            # 1,000,000 contacts, 5,000,000 events
    python bench/reports.py --quick    # 100,000 contacts, 500,000 events

Generated with set-based SQL (``generate_series`` on PostgreSQL, a recursive CTE on SQLite),
into a fresh migrated database on each, then the report columns the engine keeps as it
writes (stay ends, message outcomes, exit stages) derived by its own rebuild functions, as
migration 0005 does for an existing database: N contacts of 20 owners, each walking 1 to 5 stages
of the starter pipeline (one in ten then lost), one message per contact (4 sequences, 2 steps,
variants A and B), and 5N events on those messages (deliveries, opens with one in seven
flagged as a machine's, clicks, replies with an intent, bounces, unsubscribes, complaints).

Timed, best of 3 after an untimed warm-up: ``build_report`` with no filter (every section).
Baseline: ``SELECT count(*) FROM events`` (a full scan of the biggest table). Target:
PostgreSQL within 3 s at 1M contacts. The sections are timed apart too (informational).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import _common as common  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402

from engine.reports import Report, ReportFilter, build_report  # noqa: E402
from engine.reports.daily import daily_counts  # noqa: E402
from engine.reports.filters import resolve_filter  # noqa: E402
from engine.reports.funnel import funnel  # noqa: E402
from engine.reports.sequences import variant_stats  # noqa: E402
from engine.reports.stage_times import time_in_stage  # noqa: E402
from engine.stages import Pipeline, load_pipeline  # noqa: E402
from engine.stages.history import rebuild_stage_intervals  # noqa: E402
from engine.storage import create_database_engine, upgrade  # noqa: E402
from engine.tracking.outcomes import fill_exit_stages, refresh_outcomes  # noqa: E402
from engine.workspace import Workspace  # noqa: E402

RESULTS_FILE = BENCH / "results" / "reports.json"
TARGET_S, OWNERS, EVENTS_PER_CONTACT = 3.0, 20, 5
NOW = datetime(2026, 6, 1, tzinfo=UTC)
STAGES = ("research", "prospecting", "connecting", "qualification", "pitching")
log = common.logger("bench/reports")
DERIVED = (rebuild_stage_intervals, refresh_outcomes, fill_exit_stages)  # as migration 0005
_seconds = functools.partial(common.figure_record, unit="s", digits=4)


# --------------------------------------------------------------------------
# Generating the history: one statement per table, per dialect


def _series(dialect: str, limit: str) -> tuple[str, str]:
    """A ``WITH`` prefix and a ``FROM`` item giving ``s.n`` = 1 .. limit."""
    if dialect == "postgresql":
        return "", f"generate_series(1, {limit}) AS s(n)"
    prefix = f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {limit}) "
    return prefix, "s"


def _instant(dialect: str, seconds: str) -> str:
    """2026-01-01 UTC plus ``seconds``, as each database stores an instant."""
    if dialect == "postgresql":
        return f"(timestamptz '2026-01-01 00:00:00+00' + ({seconds}) * interval '1 second')"
    shifted = f"strftime('%Y-%m-%d %H:%M:%S', '2026-01-01', '+' || ({seconds}) || ' seconds')"
    return f"({shifted} || '.000000')"


def _stage(index: str) -> str:
    cases = " ".join(f"WHEN {i} THEN '{name}'" for i, name in enumerate(STAGES))
    return f"(CASE {index} {cases} END)"


def _statements(dialect: str, n: int) -> list[tuple[str, str]]:
    """(table, INSERT ... SELECT) in dependency order."""
    with_c, contacts_from = _series(dialect, ":n")
    with_e, events_from = _series(dialect, ":events")
    depth = "(s.n % 5)"  # the last open stage index reached
    last = f"CASE WHEN s.n % 10 = 0 THEN 'lost' ELSE {_stage(depth)} END"
    day = 86400

    def entered(i: str | int) -> str:
        return _instant(
            dialect, f"(s.n % 60) * {day} + {i} * ((s.n % 13) + 1) * {day} + s.n % 86400"
        )

    hist_entered = _instant(
        dialect, f"(c.id % 60) * {day} + k.i * ((c.id % 13) + 1) * {day} + c.id % 86400"
    )
    lost_at = _instant(
        dialect, f"(c.id % 60) * {day} + 5 * ((c.id % 13) + 1) * {day} + c.id % 86400"
    )
    sent = _instant(dialect, f"(s.n % 120) * {day} + s.n % 86400")
    occurred = _instant(dialect, f"(m.id % 120) * {day} + m.id % 86400 + (s.n % 97) * 3600")
    bucket = "(s.n % 100)"
    kind = (f"CASE WHEN s.n <= :n THEN 'delivered' WHEN {bucket} < 45 THEN 'opened' "
            f"WHEN {bucket} < 60 THEN 'clicked' WHEN {bucket} < 68 THEN 'replied' "
            f"WHEN {bucket} < 70 THEN 'bounced' WHEN {bucket} < 71 THEN 'unsubscribed' "
            f"WHEN {bucket} < 72 THEN 'complained' WHEN {bucket} < 75 THEN 'auto_replied' "
            "ELSE 'deferred' END")  # fmt: skip
    intents = ("CASE s.n % 4 WHEN 0 THEN 'interested' WHEN 1 THEN 'objection' "
               "WHEN 2 THEN 'referral' ELSE 'not_interested' END")  # fmt: skip
    intent_json = f"'{{\"intent\": \"' || {intents} || '\"}}'"
    detail = f"CASE WHEN {bucket} BETWEEN 60 AND 67 THEN {intent_json} ELSE '{{}}' END"
    if dialect == "postgresql":
        detail = f"({detail})::jsonb"
    start = _instant(dialect, "0")
    true, false = ("true", "false") if dialect == "postgresql" else ("1", "0")
    steps = "(SELECT 0 AS i " + "".join(f"UNION ALL SELECT {i} " for i in range(1, 5)) + ")"
    return [
        (
            "owners",
            f"{with_c.replace(':n', str(OWNERS))}INSERT INTO owners "
            "(id, email, name, created_at, updated_at) "
            f"SELECT s.n, 'owner' || s.n || '@bench.test', 'Owner ' || s.n, {start}, {start} "
            f"FROM {contacts_from.replace(':n', str(OWNERS))}",
        ),
        (
            "contacts",
            f"{with_c}INSERT INTO contacts (id, email, owner_id, stage, stage_entered_at, "
            f"attributes, created_at, updated_at) SELECT s.n, 'c' || s.n || '@bench.test', "
            f"1 + s.n % {OWNERS}, {last}, {entered(depth)}, '{{}}', {entered(0)}, {entered(0)} "
            f"FROM {contacts_from}",
        ),
        (
            "stage_history",
            "INSERT INTO stage_history (contact_id, from_stage, to_stage, cause, changed_at) "
            f"SELECT c.id, {_stage('k.i - 1')}, {_stage('k.i')}, 'crm', {hist_entered} "
            f"FROM contacts AS c JOIN {steps} AS k ON k.i <= c.id % 5",
        ),
        (
            "stage_history (lost)",
            "INSERT INTO stage_history (contact_id, from_stage, to_stage, cause, changed_at) "
            f"SELECT c.id, {_stage('c.id % 5')}, 'lost', 'crm', {lost_at} "
            "FROM contacts AS c WHERE c.id % 10 = 0",
        ),
        (
            "messages",
            f"{with_c}INSERT INTO messages (id, idempotency_key, contact_id, sequence, step_id, "
            "variant, template, to_email, from_email, subject, rfc_message_id, status, sent_at, "
            "created_at, updated_at) SELECT s.n, 'k' || s.n, s.n, 'seq-' || (s.n % 4), "
            "CASE WHEN (s.n / 4) % 2 = 0 THEN 'intro' ELSE 'bump' END, "
            "CASE WHEN (s.n / 8) % 2 = 0 THEN 'A' ELSE 'B' END, 'outreach/intro', "
            f"'c' || s.n || '@bench.test', 'owner' || (1 + s.n % {OWNERS}) || '@bench.test', 'hi', "
            f"'<' || s.n || '@bench.test>', 'sent', {sent}, {sent}, {sent} FROM {contacts_from}",
        ),
        (
            "events",
            f"{with_e}INSERT INTO events (provider, kind, message_id, contact_id, "
            "occurred_at, machine, reject_reason, detail, created_at) "
            f"SELECT 'bench', {kind}, m.id, m.contact_id, {occurred}, "
            f"CASE WHEN {bucket} < 45 AND s.n % 7 = 0 THEN {true} ELSE {false} END, "
            f"CASE WHEN {bucket} IN (68, 69) THEN CASE WHEN s.n % 2 = 0 THEN 'hard_bounce' "
            f"ELSE 'soft_bounce' END END, {detail}, {occurred} "
            f"FROM {events_from} JOIN messages AS m ON m.id = 1 + (s.n - 1) % :n",
        ),
    ]


def generate(database: Engine, n: int) -> dict[str, float]:
    """Fill the migrated database; seconds per statement."""
    dialect, took = database.dialect.name, {}
    for table, statement in _statements(dialect, n):
        started = time.perf_counter()
        with database.begin() as connection:
            connection.execute(text(statement), {"n": n, "events": n * EVENTS_PER_CONTACT})
        took[table] = time.perf_counter() - started
        log(f"{dialect}: {table} in {took[table]:.1f} s")
    for derive in DERIVED:
        started = time.perf_counter()
        with database.begin() as connection:
            derive(connection)
        took[derive.__name__] = time.perf_counter() - started
        log(f"{dialect}: {derive.__name__} in {took[derive.__name__]:.1f} s")
    started = time.perf_counter()
    with database.connect() as connection:
        # the rebuild rewrote every row once; a live database writes each row's report
        # columns once, shortly after inserting it, and does not carry a bulk rewrite's dead
        # rows, so compact the tables as it would have them
        if dialect == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.execute(text("VACUUM FULL ANALYZE"))
        else:  # outside the BEGIN IMMEDIATE every SQLAlchemy transaction here starts with
            sqlite = connection.connection.driver_connection
            assert sqlite is not None
            sqlite.execute("VACUUM")
            sqlite.execute("ANALYZE")
    took["compact"] = time.perf_counter() - started
    return took


# --------------------------------------------------------------------------
# Measuring


def best_of(runs: int, work: Callable[[], object]) -> float:
    """The fastest of ``runs`` timed calls, after one untimed warm-up."""
    work()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(label: str, database: Engine, pipeline: Pipeline, n: int) -> dict[str, Any]:
    generated = generate(database, n)
    with database.connect() as connection:

        def count() -> int:
            return int(connection.execute(text("SELECT count(*) FROM events")).scalar_one())

        def report() -> Report:
            return build_report(connection, pipeline, ReportFilter(), NOW)

        events_n = count()
        baseline = best_of(3, count)
        full = best_of(3, report)
        scope = resolve_filter(connection, ReportFilter())
        sections = {
            "funnel": best_of(1, lambda: funnel(connection, pipeline, scope)),
            "time in stage": best_of(1, lambda: time_in_stage(connection, pipeline, scope, NOW)),
            "sequences and variants": best_of(1, lambda: variant_stats(connection, scope)),
            "daily": best_of(1, lambda: daily_counts(connection, scope)),
        }
        built = report()
    log(f"{label}: count(*) {baseline:.3f} s, report {full:.3f} s; "
        + ", ".join(f"{k} {v:.2f} s" for k, v in sections.items()))  # fmt: skip
    return {"database": label, "contacts": n, "events": events_n, "generate_s": generated,
            "baseline_s": baseline, "report_s": full, "sections_s": sections,
            "funnel_now": {s.stage: s.now for s in built.funnel.stages}}  # fmt: skip


def figures(results: list[dict[str, Any]]) -> list[common.Figure]:
    rows = []
    for r in results:
        label, base, full = r["database"], r["baseline_s"], r["report_s"]
        size = f"{r['contacts']:,} contacts, {r['events']:,} events"
        rows.append(_seconds(f"baseline: count(*) of events, {label}", base, f"{base:.3f} s"))
        on_pg = label == "PostgreSQL"
        target = f"<= {TARGET_S:.0f} s" if on_pg else "-"
        status = ("PASS" if full <= TARGET_S else "SHORT") if on_pg else "-"
        rows.append(_seconds(f"full report, {label} ({size})", full, f"{full:.3f} s", target,
                             full / base, f"{full / base:.1f}x", status))  # fmt: skip
        for name, seconds in r["sections_s"].items():
            rows.append(_seconds(f"  {name}, {label}", seconds, f"{seconds:.3f} s"))
        derive = sum(r["generate_s"][f.__name__] for f in DERIVED)
        rows.append(_seconds(f"deriving the report columns of stored rows, {label} (context)",
                             derive, f"{derive:.1f} s"))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k contacts instead of 1M")
    parser.add_argument("--contacts", type=int, help="contacts to generate (overrides --quick)")
    args = parser.parse_args(argv)
    n = args.contacts or (100_000 if args.quick else 1_000_000)
    began = datetime.now(UTC)
    pipeline = load_pipeline(Workspace(REPO))
    results = []
    with tempfile.TemporaryDirectory(prefix="salescycle-bench-reports-") as tmp:
        work = Path(tmp)
        with common.postgres_database(work, "bench_reports_") as pg_url:
            database = create_database_engine(pg_url)
            try:
                upgrade(database)
                results.append(measure("PostgreSQL", database, pipeline, n))
            finally:
                database.dispose()
        database = create_database_engine(f"sqlite:///{work / 'bench.db'}")
        try:
            upgrade(database)
            results.append(measure("SQLite", database, pipeline, n))
        finally:
            database.dispose()
    table = figures(results)
    print(common.format_table(table))
    common.write_results(RESULTS_FILE, "reports", bool(args.quick), began,
                         figures=table, runs=results)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
