"""Segment benchmark: compiled segment SQL against the pure-Python reference, SQLite and PostgreSQL.

Run from the repository root::

    python bench/segments.py            # 1M contacts, 100k accounts, 5M events (many minutes)
    python bench/segments.py --quick    # 100k contacts, 10k accounts, 500k events

The data (``bench/_segment_dataset.py``) is generated deterministically into a SQLite file cached
in ``bench/data/`` (reruns skip generation) and copied into a throw-away PostgreSQL server
(``tests/_services.py``, or ``SALESCYCLE_BENCH_POSTGRES_URL``) with ``COPY``. The segments are
those of the repository's ``segments/`` folder (the starter segments) plus one event-heavy
segment written here, all parsed from YAML in a temporary copy of the workspace.

For every segment and database: ``count_members`` and the full member-id listing
(``iter_member_ids``, every batch consumed), best of 3 runs. The baselines, measured in the
same run on the same database, are the same two operations on ``all: []`` (every contact).
Then the reference path on SQLite: ``load_dataset`` + ``ReferenceEvaluator.members`` timed
together, once per segment, in a fresh subprocess; its member ids must equal the compiled
ones (and PostgreSQL's must equal SQLite's): MATCH or MISMATCH.

Targets: every count within 1 s on both databases; the compiled listing at least 100x faster
than the reference path. The table goes to stdout and the same figures to
``bench/results/segments.json``. The exit status is 1 if a measurement crashed or members
MISMATCH; a SHORT figure is reported, not treated as a failure.
"""

from __future__ import annotations

import argparse
import functools
import gc
import hashlib
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(BENCH) not in sys.path:  # for ``_segment_dataset`` and ``_common`` as a script or imported
    sys.path.insert(0, str(BENCH))

import _segment_dataset as data  # noqa: E402
from _common import (  # noqa: E402
    Figure,
    WorkerError,
    emit,
    figure_record,
    format_table,
    launch,
    logger,
    peak_mib,
    postgres_database,
    write_results,
)
from sqlalchemy import Connection, Dialect, text  # noqa: E402
from sqlalchemy.dialects.postgresql.base import PGDialect  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

from engine.contacts import load_mapping  # noqa: E402
from engine.segments import FieldSpec, SegmentSet, field_specs, read_segments  # noqa: E402
from engine.segments.compiler import (  # noqa: E402
    SegmentCompiler,
    count_members,
    iter_member_ids,
)
from engine.segments.reference import ReferenceEvaluator, load_dataset  # noqa: E402
from engine.sequences import sequence_names  # noqa: E402
from engine.stages import load_pipeline  # noqa: E402
from engine.storage import create_database_engine, upgrade  # noqa: E402
from engine.storage.schema import contacts  # noqa: E402
from engine.workspace import Workspace, init_workspace  # noqa: E402

DATA_DIR = BENCH / "data"
RESULTS_FILE = BENCH / "results" / "segments.json"

COUNT_TARGET_S = 1.0  # every segment counted within this, on both databases
SPEEDUP_TARGET = 100.0  # reference seconds / compiled listing seconds
REPEATS = 3  # best of
SLOW_RUN_S = 20.0  # a run slower than this is not repeated
TIMEOUT_S = 300.0  # a run slower than this is abandoned
REFERENCE_SUBSET = 200_000  # contacts the reference path is measured on when memory is short
REFERENCE_MEMORY_MIB = 8192.0  # the reference path's budget

EVERYONE = "bench-everyone"  # the baseline: every contact
EVENT_HEAVY = "bench-event-heavy"
BENCH_SEGMENTS = {
    EVERYONE: """\
name: bench-everyone
description: Every contact (the baseline of bench/segments.py)
where:
  all: []
""",
    EVENT_HEAVY: """\
name: bench-event-heavy
description: Opened twice in 14 days without a reply in 30, or in negotiation
where:
  any:
    - all:
        - {event: opened, within: 14d, count: {gte: 2}}
        - not: {event: replied, within: 30d}
    - stage: negotiation
""",
}
# used only while the repository's segments/ folder has no segment files yet
FALLBACK_STARTER = {
    "icp-nordic-midmarket": """\
name: icp-nordic-midmarket
description: Nordic B2B companies with 100-500 employees (our ICP)
where:
  all:
    - account.country: {in: [DK, SE, NO, FI]}
    - account.employees: {between: [100, 500]}
    - stage: {in: [research, prospecting]}
    - any:
        - title: {contains_any: [CTO, "Head of", VP]}
        - attributes.decision_maker: true
    - not: {event: replied, within: 30d}
    - {event: opened, within: 14d, count: {gte: 2}}
""",
    "stalled-deals": """\
name: stalled-deals
description: In pitching, objection handling or negotiation for more than 21 days
where:
  all:
    - stage: {in: [pitching, objection_handling, negotiation]}
    - time_in_stage: {gt: 21d}
""",
}


class TimedOut(RuntimeError):
    """A timed run went past :data:`TIMEOUT_S`."""


_log = logger("bench/segments")


# --------------------------------------------------------------------------
# The workspace: the repository's segments plus the bench's own, parsed from YAML


@dataclass
class Loaded:
    """The segments of a workspace and what compiling them needs."""

    root: Path
    segments: SegmentSet
    fields: dict[str, FieldSpec]
    problems: list[str]
    starter: list[str]  # the workspace's own segments, by name

    def compiler(self) -> SegmentCompiler:
        return SegmentCompiler(self.segments, self.fields, data.NOW)


def prepare_workspace(root: Path) -> list[str]:
    """A copy of the starter workspace with the bench segments added; notes about it."""
    init_workspace(root)
    folder = root / "segments"
    folder.mkdir(exist_ok=True)
    notes = []
    if not any(folder.glob("*.yaml")):
        notes.append(
            "segments/ has no segment files yet: the starter group is the bench's own "
            f"stand-ins ({', '.join(FALLBACK_STARTER)})"
        )
        for name, text in FALLBACK_STARTER.items():
            (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    for name, text in BENCH_SEGMENTS.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return notes


def load_workspace(root: Path) -> Loaded:
    """Parse the workspace's segments as the engine does (``engine.segments.read_segments``)."""
    workspace = Workspace(root)
    pipeline = load_pipeline(workspace)
    mapping = load_mapping(root / "config" / "crm.yaml", workspace, pipeline)
    fields = field_specs(mapping)
    segments, problems = read_segments(workspace, fields, pipeline.ids, sequence_names(workspace))
    shown = [f"{p.path}:{p.line}: {p.message}" for p in problems]
    starter = sorted(s.name for s in segments if s.name not in BENCH_SEGMENTS)
    return Loaded(root, segments, fields, shown, starter)


def stage_ids() -> list[str]:
    return list(load_pipeline(Workspace(REPO)).ids)


# --------------------------------------------------------------------------
# Timing the compiled path on one database


def ids_digest(ids: Sequence[int]) -> str:
    """A short fingerprint of a sorted id list, to compare member lists across processes."""
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]


@dataclass
class Timing:
    """Best of :data:`REPEATS` runs of one operation (``seconds`` None: it failed)."""

    seconds: float | None = None
    runs: list[float] = field(default_factory=list)
    error: str | None = None


@dataclass
class SegmentTimings:
    name: str
    count: Timing
    listing: Timing
    members: int | None = None
    listed: int | None = None
    digest: str | None = None

    def record(self) -> dict[str, Any]:
        return {
            "segment": self.name,
            "members": self.members,
            "listed": self.listed,
            "digest": self.digest,
            "count_seconds": self.count.seconds,
            "count_runs": [round(r, 6) for r in self.count.runs],
            "count_error": self.count.error,
            "list_seconds": self.listing.seconds,
            "list_runs": [round(r, 6) for r in self.listing.runs],
            "list_error": self.listing.error,
        }


class _Deadline:
    """Abandons a run after :data:`TIMEOUT_S`: SQLite through a progress handler, PostgreSQL
    through ``statement_timeout``, both between batches of a listing."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.until = float("inf")
        dbapi: Any = connection.connection.dbapi_connection
        if connection.dialect.name == "sqlite":
            dbapi.set_progress_handler(self._expired, 100_000)
        else:
            connection.exec_driver_sql(f"SET statement_timeout = {int(TIMEOUT_S * 1000)}")
            connection.commit()

    def _expired(self) -> int:
        return 1 if time.perf_counter() > self.until else 0

    def start(self) -> None:
        self.until = time.perf_counter() + TIMEOUT_S

    def check(self) -> None:
        if time.perf_counter() > self.until:
            raise TimedOut(f"abandoned after {TIMEOUT_S:.0f} s")


def _timed(deadline: _Deadline, run: Callable[[], Any]) -> tuple[Timing, Any]:
    """Best of REPEATS (fewer when a run is slow); the last run's result."""
    timing, result = Timing(), None
    for _ in range(REPEATS):
        deadline.start()
        started = time.perf_counter()
        try:
            result = run()
        except (TimedOut, OperationalError) as exc:
            deadline.connection.rollback()
            if time.perf_counter() - started >= TIMEOUT_S:
                timing.error = f"timed out (over {TIMEOUT_S:.0f} s)"
            else:
                timing.error = str(exc).strip().splitlines()[0]
            return timing, None
        finally:
            deadline.until = float("inf")
        seconds = time.perf_counter() - started
        timing.runs.append(seconds)
        deadline.connection.rollback()  # end the read transaction between runs
        if seconds > SLOW_RUN_S:
            break
    timing.seconds = min(timing.runs)
    return timing, result


def time_compiled(
    url: str, loaded: Loaded, names: Sequence[str], label: str
) -> list[SegmentTimings]:
    """Count and list every segment on the database at ``url``; the baseline first."""
    compiler = loaded.compiler()
    engine = create_database_engine(url)
    results: list[SegmentTimings] = []
    try:
        with engine.connect() as connection:
            deadline = _Deadline(connection)
            for name in [EVERYONE, *names]:

                def count(name: str = name) -> int:
                    return count_members(connection, compiler, name)

                def listing(name: str = name) -> list[int]:
                    ids: list[int] = []
                    for batch in iter_member_ids(connection, compiler, name):
                        ids.extend(batch)
                        deadline.check()
                    return ids

                counted, members = _timed(deadline, count)
                listed, ids = _timed(deadline, listing)
                timings = SegmentTimings(name, counted, listed, members)
                if ids is not None:
                    timings.listed, timings.digest = len(ids), ids_digest(ids)
                results.append(timings)
                _log(f"{label} {name}: {_timings_line(timings)}")
    finally:
        engine.dispose()
    return results


def _timings_line(t: SegmentTimings) -> str:
    def shown(timing: Timing) -> str:
        return timing.error or f"{_ms(timing.seconds)} (runs {', '.join(map(_ms, timing.runs))})"

    return f"{t.members} members; count {shown(t.count)}; list {shown(t.listing)}"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


# --------------------------------------------------------------------------
# Slow segments: the SQL and its plan, for the lead to add indexes


def explain(url: str, loaded: Loaded, name: str, page_from: int | None = None) -> dict[str, str]:
    """The members SQL of ``name`` with literal binds, and the database's plan for it.

    ``page_from``: the query of one ``iter_member_ids`` batch instead (the ids after this one),
    for a listing much slower than its count.
    """
    engine = create_database_engine(url)
    what = "members"
    if page_from is not None:
        what = f"one iter_member_ids page (contacts.id > {page_from:,}, limit 10000)"
    out: dict[str, str] = {"segment": name, "database": engine.dialect.name, "query": what}
    # shown without the driver's %-escaping (psycopg's pyformat doubles every %)
    shown: Dialect = engine.dialect
    if engine.dialect.name == "postgresql":
        shown = cast(Any, PGDialect)(paramstyle="named")
    try:
        statement = loaded.compiler().members(name)
        if page_from is not None:
            statement = statement.where(contacts.c.id > page_from).limit(10_000)
        try:
            sql = str(statement.compile(dialect=shown, compile_kwargs={"literal_binds": True}))
        except Exception as exc:  # e.g. a type without a literal renderer
            out["sql_error"] = f"{type(exc).__name__}: {exc}"
            out["sql"] = str(statement.compile(dialect=shown))
            return out
        out["sql"] = sql
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
                out["explain"] = _sqlite_plan([(int(r[0]), int(r[1]), str(r[3])) for r in rows])
            else:
                connection.exec_driver_sql(f"SET statement_timeout = {int(TIMEOUT_S * 1000)}")
                try:
                    rows = connection.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")).all()
                except Exception:
                    connection.rollback()
                    rows = connection.execute(text(f"EXPLAIN {sql}")).all()
                out["explain"] = "\n".join(str(r[0]) for r in rows)
    except Exception as exc:
        out["explain_error"] = f"{type(exc).__name__}: {exc}"
    finally:
        engine.dispose()
    return out


def _diagnose(
    url: str, loaded: Loaded, timings: Sequence[SegmentTimings], contacts: int
) -> list[dict[str, str]]:
    """SQL and plans for every segment counted over the target, and for a slow listing one
    page of it (from the middle of the id range)."""
    found = []
    for t in timings:
        if t.name == EVERYONE:
            continue
        if t.count.seconds is None or t.count.seconds > COUNT_TARGET_S:
            found.append(explain(url, loaded, t.name))
        count, listing = t.count.seconds, t.listing.seconds
        slow_listing = listing is None or listing > max(COUNT_TARGET_S, 2 * (count or 0.0))
        if slow_listing and t.listed and t.listed > 10_000:
            found.append(explain(url, loaded, t.name, page_from=contacts // 2))
    return found


def _sqlite_plan(rows: Sequence[tuple[int, int, str]]) -> str:
    """EXPLAIN QUERY PLAN rows (id, parent, detail) as an indented tree."""
    depth: dict[int, int] = {0: -1}
    lines = []
    for node, parent, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + detail)
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Workers: the reference path, each in a fresh interpreter (its memory is its own)


def _rss_mib() -> float:
    with Path("/proc/self/status").open(encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def worker_probe(db: Path) -> None:
    """Load the dataset once: its time and the memory it takes."""
    engine = create_database_engine(f"sqlite:///{db}")
    before = _rss_mib()
    with engine.connect() as connection:
        started = time.perf_counter()
        dataset = load_dataset(connection)
        seconds = time.perf_counter() - started
    contacts = len(dataset.contacts)
    events = sum(len(v) for v in dataset.events_by_contact.values())
    emit(
        {
            "seconds": seconds,
            "contacts": contacts,
            "events": events,
            "base_mib": before,
            "peak_mib": peak_mib(),
        }
    )


def worker_reference(db: Path, workspace: Path, names: Sequence[str]) -> None:
    """Per segment: load_dataset + members, timed together; then the compiled ids to compare."""
    loaded = load_workspace(workspace)
    evaluator = ReferenceEvaluator(loaded.segments, loaded.fields, data.NOW)
    compiler = loaded.compiler()
    engine = create_database_engine(f"sqlite:///{db}")
    results = []
    with engine.connect() as connection:
        for name in names:
            gc.collect()
            started = time.perf_counter()
            dataset = load_dataset(connection)
            reference = evaluator.members(dataset, name)
            seconds = time.perf_counter() - started
            del dataset
            connection.rollback()
            compiled = [i for batch in iter_member_ids(connection, compiler, name) for i in batch]
            connection.rollback()
            missing = sorted(set(reference) - set(compiled))  # only the reference has them
            extra = sorted(set(compiled) - set(reference))  # only the compiler has them
            result = {
                "segment": name,
                "seconds": seconds,
                "reference_members": len(reference),
                "compiled_members": len(compiled),
                "match": reference == compiled,
                "digest": ids_digest(reference),
                "only_reference": missing[:10],
                "only_compiled": extra[:10],
                "only_reference_count": len(missing),
                "only_compiled_count": len(extra),
            }
            results.append(result)
            verdict = "MATCH" if result["match"] else "MISMATCH"
            line = f"{name}: {seconds:.1f} s, {len(reference):,} members, {verdict}"
            print(f"[bench/segments worker] {line}", file=sys.stderr, flush=True)
    engine.dispose()
    emit({"segments": results, "peak_mib": peak_mib()})


def _worker_main(argv: Sequence[str]) -> int:
    kind, *args = argv
    if kind == "probe":
        worker_probe(Path(args[0]))
    elif kind == "reference":
        db, workspace, *names = args
        worker_reference(Path(db), Path(workspace), names)
    else:
        raise SystemExit(f"unknown worker {kind!r}")
    return 0


def _launch(worker_args: Sequence[str]) -> dict[str, Any]:
    """Run one worker in a fresh interpreter (its stderr streams through); its result line."""
    return launch(__file__, worker_args, stream_stderr=True)


def _memory_available_mib() -> float:
    with Path("/proc/meminfo").open(encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("inf")


@dataclass
class ReferencePlan:
    """Where the reference path runs and how its times scale to the full data."""

    db: Path
    contacts: int  # contacts in ``db``
    scale: float  # multiply the measured seconds by this for the full data
    note: str | None = None
    probe: dict[str, Any] | None = None


def plan_reference(full: Path, contacts: int) -> ReferencePlan:
    """The full data if its dataset fits the memory budget, else the first 200k contacts."""
    if contacts <= REFERENCE_SUBSET:
        return ReferencePlan(full, contacts, 1.0)
    subset = data.ensure_subset(full, REFERENCE_SUBSET, _log)
    _log(f"probing the reference path's memory on the first {REFERENCE_SUBSET:,} contacts")
    probe = _launch(["probe", str(subset)])
    scale = contacts / REFERENCE_SUBSET
    grown = max(float(probe["peak_mib"]) - float(probe["base_mib"]), 0.0)
    estimate = float(probe["base_mib"]) + grown * scale
    budget = min(REFERENCE_MEMORY_MIB, 0.8 * _memory_available_mib())
    _log(
        f"load_dataset on {REFERENCE_SUBSET:,} contacts: {probe['seconds']:.1f} s, peak "
        f"{probe['peak_mib']:,.0f} MiB; estimated at {contacts:,}: {estimate:,.0f} MiB "
        f"(budget {budget:,.0f} MiB)"
    )
    probe["estimated_full_mib"] = estimate
    probe["budget_mib"] = budget
    if estimate <= budget:
        return ReferencePlan(full, contacts, 1.0, probe=probe)
    note = (
        f"reference path measured on the first {REFERENCE_SUBSET:,} contacts and scaled "
        f"linearly x{scale:g}: load_dataset at {contacts:,} contacts would need about "
        f"{estimate / 1024:,.1f} GiB (budget {budget / 1024:,.1f} GiB); its MATCH check is on "
        "that subset"
    )
    return ReferencePlan(subset, REFERENCE_SUBSET, scale, note, probe)


# --------------------------------------------------------------------------
# Figures and the table


_figure = functools.partial(figure_record, unit="s", digits=6)


def build_figures(
    names: Sequence[str],
    sqlite: dict[str, SegmentTimings],
    postgres: dict[str, SegmentTimings] | None,
    postgres_skipped: str | None,
    reference: dict[str, dict[str, Any]],
    plan: ReferencePlan | None,
    reference_error: str | None,
) -> list[Figure]:
    """Baselines first, then per segment: counts and listings on both databases, the
    reference path and the member check."""
    figures: list[Figure] = []
    databases: list[tuple[str, dict[str, SegmentTimings] | None]] = [
        ("SQLite", sqlite),
        ("PostgreSQL", postgres),
    ]
    for label, timings in databases:
        base = timings.get(EVERYONE) if timings else None
        for kind in ("count", "list"):
            timing = None if base is None else base.count if kind == "count" else base.listing
            what = "count_members" if kind == "count" else "iter_member_ids"
            seconds = None if timing is None else timing.seconds
            if timings is None:
                status, shown = "SKIPPED", f"skipped ({postgres_skipped})"
            elif seconds is None:
                status, shown = "ERROR", (timing.error if timing else None) or "-"
            else:
                status, shown = "-", _ms(seconds)
            figures.append(
                _figure(
                    f"{label} {what}, every contact (all: [])",
                    seconds,
                    shown,
                    ratio=1.0 if seconds else None,
                    ratio_shown="1.00x (baseline)" if seconds else "-",
                    status=status,
                )
            )

    for name in names:
        for label, timings in databases:
            base = timings.get(EVERYONE) if timings else None
            own = timings.get(name) if timings else None
            for kind in ("count", "list"):
                timing = None if own is None else own.count if kind == "count" else own.listing
                floor = None if base is None else base.count if kind == "count" else base.listing
                seconds = None if timing is None else timing.seconds
                ratio = seconds / floor.seconds if seconds and floor and floor.seconds else None
                if timings is None:
                    status, shown = "SKIPPED", "skipped"
                elif seconds is None:
                    status, shown = "ERROR", (timing.error if timing else None) or "-"
                elif kind == "count":
                    status, shown = "PASS" if seconds <= COUNT_TARGET_S else "SHORT", _ms(seconds)
                else:
                    status, shown = "-", _ms(seconds)
                members = "" if own is None or own.members is None else f" ({own.members:,})"
                figures.append(
                    _figure(
                        f"{label} {kind} {name}{members if kind == 'count' else ''}",
                        seconds,
                        shown,
                        f"<= {COUNT_TARGET_S:g} s" if kind == "count" else "-",
                        ratio,
                        f"{ratio:.2f}x every contact" if ratio is not None else "-",
                        status,
                        segment=name,
                        database=label,
                        operation=kind,
                        members=None if own is None else own.members,
                    )
                )

        ref = reference.get(name)
        own = sqlite.get(name)
        listing = None if own is None else own.listing.seconds
        scale = plan.scale if plan else 1.0
        scaled = f", first {plan.contacts // 1000}k x{scale:g}" if plan and scale != 1.0 else ""
        if ref is None:
            shown = reference_error or "-"
            figures.append(
                _figure(f"reference {name} (SQLite{scaled})", None, shown, status="ERROR",
                        segment=name, operation="reference")
            )  # fmt: skip
        else:
            seconds = float(ref["seconds"]) * scale
            ratio = seconds / listing if listing else None
            status = "ERROR" if ratio is None else "PASS" if ratio >= SPEEDUP_TARGET else "SHORT"
            figures.append(
                _figure(
                    f"reference {name} (SQLite{scaled})",
                    seconds,
                    f"{seconds:,.1f} s",
                    f">= {SPEEDUP_TARGET:g}x SQLite list",
                    ratio,
                    f"{ratio:,.0f}x SQLite list" if ratio is not None else "-",
                    status,
                    segment=name,
                    operation="reference",
                    measured_seconds=ref["seconds"],
                )
            )
        figures.append(_member_check(name, ref, own, postgres, plan))
    return figures


def _member_check(
    name: str,
    ref: dict[str, Any] | None,
    own: SegmentTimings | None,
    postgres: dict[str, SegmentTimings] | None,
    plan: ReferencePlan | None,
) -> Figure:
    """MATCH when the reference, SQLite and PostgreSQL member ids are all equal."""
    problems = []
    if ref is not None and not ref["match"]:
        problems.append(
            f"reference {ref['reference_members']:,} vs compiled {ref['compiled_members']:,}: "
            f"only in reference {ref['only_reference_count']:,} {ref['only_reference']}, "
            f"only compiled {ref['only_compiled_count']:,} {ref['only_compiled']}"
        )
    pg = postgres.get(name) if postgres else None
    if own is not None and pg is not None and own.digest and pg.digest:
        same = own.digest == pg.digest and own.members == pg.members
        if not same:
            problems.append(f"SQLite {own.listed} ids vs PostgreSQL {pg.listed} ids differ")
    checked = [
        *(["reference"] if ref is not None else []),
        *(["SQLite"] if own is not None and own.digest else []),
        *(["PostgreSQL"] if pg is not None and pg.digest else []),
    ]
    members = own.listed if own is not None else None
    if problems:
        status = "MISMATCH"
    elif len(checked) < 2:
        status = "ERROR"
    else:
        status = "MATCH"
    where = " (reference on the subset)" if plan is not None and plan.scale != 1.0 else ""
    return _figure(
        f"members {name}",
        None if members is None else float(members),
        "-" if members is None else f"{members:,} ids",
        " = ".join(checked) + where if checked else "-",
        status=status,
        segment=name,
        operation="members",
        problems=problems,
    )


# --------------------------------------------------------------------------
# The run


def main(argv: Sequence[str] | None = None) -> list[Figure]:
    """Run the benchmark, print the table, write ``bench/results/segments.json``; the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="100k contacts and 500k events instead of 1M and 5M"
    )
    args = parser.parse_args(argv)
    sizes = data.QUICK if args.quick else data.FULL
    began = datetime.now(UTC)
    notes: list[str] = []
    generation: dict[str, Any] = {}

    generated = data.ensure_sqlite(DATA_DIR, sizes, stage_ids(), _log)
    generation["sqlite"] = {
        "path": str(generated.path.relative_to(REPO)),
        "seconds": round(generated.seconds, 1),
        "reused": generated.reused,
        "rows": generated.rows,
    }
    sqlite_url = f"sqlite:///{generated.path}"

    with tempfile.TemporaryDirectory(prefix="salescycle-bench-segments-") as tmp:
        work = Path(tmp)
        notes.extend(prepare_workspace(work / "workspace"))
        loaded = load_workspace(work / "workspace")
        notes.extend(f"segment left out: {problem}" for problem in loaded.problems)
        names = [*loaded.starter, EVENT_HEAVY]
        _log(f"segments: {', '.join(names)}")

        sqlite = {t.name: t for t in time_compiled(sqlite_url, loaded, names, "SQLite")}

        reference: dict[str, dict[str, Any]] = {}
        plan: ReferencePlan | None = None
        reference_error = None
        try:
            plan = plan_reference(generated.path, sizes.contacts)
            if plan.note:
                notes.append(plan.note)
            _log(f"reference path on {plan.db.name}, {len(names)} segments")
            result = _launch(["reference", str(plan.db), str(loaded.root), *names])
            reference = {r["segment"]: r for r in result["segments"]}
            generation["reference_peak_mib"] = round(float(result["peak_mib"]), 1)
            if plan.probe:
                generation["reference_probe"] = plan.probe
        except WorkerError as exc:
            reference_error = str(exc)
            notes.append(f"the reference path failed: {exc}")

        postgres: dict[str, SegmentTimings] | None = None
        postgres_skipped = None
        explained: list[dict[str, str]] = []
        try:
            with postgres_database(work, "bench_segments_") as pg_url:
                engine = create_database_engine(pg_url)
                upgrade(engine)
                engine.dispose()
                _log("loading PostgreSQL from the SQLite file")
                loaded_pg = data.copy_to_postgres(generated.path, pg_url, _log)
                notes.extend(loaded_pg.pop("notes"))
                generation["postgresql"] = {
                    "seconds": round(loaded_pg["seconds"], 1),
                    "copy_seconds": round(loaded_pg["copy_seconds"], 1),
                    "rows": loaded_pg["rows"],
                }
                timed = time_compiled(pg_url, loaded, names, "PostgreSQL")
                postgres = {t.name: t for t in timed}
                explained.extend(_diagnose(pg_url, loaded, timed, sizes.contacts))
        except Exception as exc:  # no server, no permission, ...: skip, never fail the bench
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if postgres is None:
                postgres_skipped = reason
                notes.append(f"PostgreSQL rows are skipped: {reason}")
            else:
                notes.append(f"PostgreSQL did not stop cleanly: {reason}")
            _log(notes[-1])
        explained[:0] = _diagnose(sqlite_url, loaded, list(sqlite.values()), sizes.contacts)

    figures = build_figures(
        names, sqlite, postgres, postgres_skipped, reference, plan, reference_error
    )
    _print_report(args.quick, sizes, generation, figures, notes, explained)

    write_results(
        RESULTS_FILE,
        "segments",
        bool(args.quick),
        began,
        sizes=vars(sizes),
        now=data.NOW.isoformat(),
        segments=names,
        generation=generation,
        figures=figures,
        compiled={
            "sqlite": [t.record() for t in sqlite.values()],
            "postgresql": [t.record() for t in postgres.values()] if postgres else None,
        },
        reference=list(reference.values()),
        slow_segments=explained,
        notes=notes,
    )
    return figures


def _print_report(
    quick: bool,
    sizes: data.Sizes,
    generation: dict[str, Any],
    figures: Sequence[Figure],
    notes: Sequence[str],
    explained: Sequence[dict[str, str]],
) -> None:
    print(f"segments benchmark{' (--quick)' if quick else ''}: {sizes.label}")
    sqlite = generation["sqlite"]
    how = "reused (generated earlier in" if sqlite["reused"] else "generated in"
    print(f"SQLite data: {how} {sqlite['seconds']:.1f} s{')' if sqlite['reused'] else ''}, "
          f"{sqlite['path']}")  # fmt: skip
    if "postgresql" in generation:
        pg = generation["postgresql"]
        print(f"PostgreSQL data: loaded in {pg['seconds']:.1f} s (COPY and indexes "
              f"{pg['copy_seconds']:.1f} s, then VACUUM ANALYZE)")  # fmt: skip
    if "reference_peak_mib" in generation:
        print(f"reference path peak memory: {generation['reference_peak_mib']:,.0f} MiB")
    print(format_table(figures))
    print()
    for note in notes:
        print(note)
    for item in explained:
        print(f"\n--- {item['segment']} on {item['database']}: {item['query']} SQL ---")
        print(item.get("sql", "") + ("\n" + item["sql_error"] if "sql_error" in item else ""))
        print(f"--- {item['segment']} on {item['database']}: plan ---")
        print(item.get("explain", item.get("explain_error", "-")))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        sys.exit(_worker_main(sys.argv[2:]))
    outcome = main(sys.argv[1:])
    failed = any(figure["status"] in ("ERROR", "MISMATCH") for figure in outcome)
    sys.exit(1 if failed else 0)
