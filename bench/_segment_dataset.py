"""Synthetic CRM data for ``bench/segments.py``: contacts, accounts, owners, events, messages
and enrollments written straight into the database, deterministically (seeded).

Contacts and accounts come from ``examples/generate_crm.py`` (the same realistic rows the
import benchmark reads: names, titles, Nordic-heavy countries, 5-20,000 employees, typed custom
fields); everything else is drawn here from one ``random.Random(SEED)``. All instants are
relative to the fixed :data:`NOW`, so the segments' relative windows (``within: 14d``) select
the same contacts on every run.

SQLite: a fresh file, ``engine.storage.upgrade``, the secondary indexes dropped, every row
inserted with the raw ``sqlite3`` connection's ``executemany`` in one transaction (journal
off), the indexes re-created, then ``ANALYZE``. The file is cached in ``bench/data/`` under a
name keyed by the sizes. PostgreSQL is loaded from that SQLite file with ``COPY``, so both
databases hold exactly the same rows.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import random
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # the engine's clock for every segment
SEED = 20260601
GENERATION_VERSION = 1  # bump when the generated data changes: old cache files are ignored
DAY = 86_400
EVENT_HORIZON = 120 * DAY  # events occur within the last 120 days
STAGE_HORIZON = 90 * DAY  # contacts entered their stage within the last 90 days

# sequences (and their step ids) the messages and enrollments belong to
SEQUENCES: dict[str, tuple[str, ...]] = {
    "connecting-outreach": ("intro", "bump", "breakup"),
    "customer-onboarding": ("welcome", "check-in", "referral-ask"),
}
MESSAGED_SHARE = 0.12  # share of the contacts with events whose events belong to messages
EXTRA_ENROLLED_SHARE = 0.02  # contacts enrolled (step 0, nothing sent yet) without messages
SILENT_SHARE = 0.25  # contacts that never had an event

# the columns written, per table, in insertion order (parents first)
COLUMNS: dict[str, tuple[str, ...]] = {
    "owners": ("id", "email", "name", "title", "phone", "signature", "created_at", "updated_at"),
    "accounts": ("id", "crm_id", "name", "name_key", "domain", "industry", "country",
                 "employees", "attributes", "created_at", "updated_at"),
    "contacts": ("id", "crm_id", "email", "first_name", "last_name", "title", "phone",
                 "account_id", "owner_id", "stage", "stage_entered_at", "timezone", "locale",
                 "attributes", "created_at", "updated_at"),
    "enrollments": ("id", "contact_id", "sequence", "status", "step_index", "step_id",
                    "next_run_at", "exit_reason", "enrolled_at", "ended_at", "updated_at"),
    "messages": ("id", "idempotency_key", "enrollment_id", "contact_id", "sequence", "step_id",
                 "template", "to_email", "from_email", "subject", "rfc_message_id", "status",
                 "transport", "provider_message_id", "attempts", "sent_at", "created_at",
                 "updated_at"),
    "events": ("id", "provider", "provider_event_id", "kind", "message_id", "contact_id",
               "occurred_at", "url", "link_tag", "machine", "detail", "created_at"),
}  # fmt: skip
TABLES = tuple(COLUMNS)
_INSTANTS = {"created_at", "updated_at", "stage_entered_at", "next_run_at", "enrolled_at",
             "ended_at", "sent_at", "occurred_at"}  # fmt: skip
_BATCH = 100_000


@dataclass(frozen=True)
class Sizes:
    """How much data to generate."""

    contacts: int
    accounts: int
    owners: int
    events: int

    @property
    def label(self) -> str:
        return f"{_short(self.contacts)} contacts, {_short(self.accounts)} accounts, " + (
            f"{self.owners} owners, {_short(self.events)} events"
        )


FULL = Sizes(contacts=1_000_000, accounts=100_000, owners=5, events=5_000_000)
QUICK = Sizes(contacts=100_000, accounts=10_000, owners=5, events=500_000)


def _shown(path: Path) -> str:
    """A path relative to the repository when inside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _short(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


@dataclass(frozen=True)
class Generated:
    """A ready SQLite file: how long it took to make and how many rows each table holds."""

    path: Path
    seconds: float  # generation time (when reused: the time it took when it was made)
    reused: bool
    rows: dict[str, int]


Log = Callable[[str], None]


def cache_path(data_dir: Path, sizes: Sizes, stage_ids: Sequence[str]) -> Path:
    """``bench/data/segments-<sizes>-<hash>.db``: the hash covers what else shapes the data."""
    shape = json.dumps([GENERATION_VERSION, SEED, NOW.isoformat(), list(stage_ids), SEQUENCES])
    digest = hashlib.sha256(shape.encode()).hexdigest()[:8]
    name = f"segments-{sizes.contacts}c-{sizes.accounts}a-{sizes.owners}o-{sizes.events}e"
    return data_dir / f"{name}-{digest}.db"


def _migrate(path: Path) -> bool:
    """Bring the file to the head revision; whether anything changed (new indexes: re-analyze)."""
    from engine.storage import create_database_engine, current_revision, upgrade

    engine = create_database_engine(f"sqlite:///{path}")
    try:
        before = current_revision(engine)
        upgrade(engine)
        return current_revision(engine) != before
    finally:
        engine.dispose()


def _row_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return {t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}


def ensure_sqlite(data_dir: Path, sizes: Sizes, stage_ids: Sequence[str], log: Log) -> Generated:
    """The cached SQLite file for ``sizes``, generated first when missing."""
    path = cache_path(data_dir, sizes, stage_ids)
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        log(f"reusing {_shown(path)}")
        if _migrate(path):  # e.g. a new migration added indexes
            log("migrated the cached file to the head revision; analyzing")
            with sqlite3.connect(path) as db:
                db.execute("ANALYZE")
        info = json.loads(meta.read_text(encoding="utf-8"))
        return Generated(path, float(info["seconds"]), True, _row_counts(path))
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".db.partial")
    partial.unlink(missing_ok=True)
    log(f"generating {_shown(path)} ({sizes.label})")
    started = time.perf_counter()
    _migrate(partial)
    with _bulk_connection(partial) as db:
        indexes = _drop_indexes(db)
        _write(db, _generate(sizes, stage_ids), log)
        log("re-creating indexes")
        for sql in indexes:
            db.execute(sql)
        db.execute("COMMIT")
        log("analyzing")
        db.execute("ANALYZE")
        db.execute("PRAGMA journal_mode = DELETE")
    seconds = time.perf_counter() - started
    partial.replace(path)  # only a complete file gets the reusable name
    rows = _row_counts(path)
    meta.write_text(json.dumps({"seconds": seconds, "sizes": vars(sizes), "rows": rows}) + "\n")
    log(f"generated in {seconds:.1f} s: {rows}")
    return Generated(path, seconds, False, rows)


class _bulk_connection:  # noqa: N801  (used like a function: with _bulk_connection(path) as db)
    """A raw sqlite3 connection set up for one big write: no journal, no sync, big cache."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)

    def __enter__(self) -> sqlite3.Connection:
        for pragma in (
            "journal_mode = OFF",
            "synchronous = OFF",
            "cache_size = -524288",
            "temp_store = MEMORY",
            "locking_mode = EXCLUSIVE",
            "foreign_keys = OFF",
        ):
            self.db.execute(f"PRAGMA {pragma}")  # fmt: skip
        self.db.execute("BEGIN")
        return self.db

    def __exit__(self, *exc: object) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self.db.close()


def _drop_indexes(db: sqlite3.Connection) -> list[str]:
    """Drop the explicit indexes of the generated tables; their CREATE statements."""
    marks = ",".join("?" * len(TABLES))
    found = db.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        f"AND tbl_name IN ({marks})",
        TABLES,
    ).fetchall()
    for name, _sql in found:
        db.execute(f'DROP INDEX "{name}"')
    return [str(sql) for _name, sql in found]


def _write(
    db: sqlite3.Connection, rows: Iterator[tuple[str, list[tuple[Any, ...]]]], log: Log
) -> None:
    statements = {
        table: f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        for table, cols in COLUMNS.items()
    }
    written = dict.fromkeys(TABLES, 0)
    next_report = 1_000_000
    for table, batch in rows:
        db.executemany(statements[table], batch)
        written[table] += len(batch)
        if table == "events" and written[table] >= next_report:
            log(f"{written['contacts']:,} contacts, {written['events']:,} events written")
            next_report += 1_000_000


# --------------------------------------------------------------------------
# The rows


class _Clock:
    """Instants as SQLite stores them (naive UTC text, 'YYYY-MM-DD HH:MM:SS.ffffff'), fast."""

    def __init__(self) -> None:
        self.now = int(NOW.timestamp())
        self.first_day = self.now // DAY - 600
        epoch = date(1970, 1, 1)
        self.days = [(epoch + timedelta(days=self.first_day + i)).isoformat() + " "
                     for i in range(700)]  # fmt: skip
        self.times = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}." for s in range(DAY)]

    def ago(self, seconds: int, micro: int = 0) -> str:
        """The instant ``seconds`` before NOW (negative: after), with ``micro`` microseconds."""
        at = self.now - seconds
        return f"{self.days[at // DAY - self.first_day]}{self.times[at % DAY]}{micro:06d}"


def _crm_generator() -> Any:
    """``examples/generate_crm.py`` as a module (it has no side effects on import)."""
    sys.path.insert(0, str(REPO / "examples"))
    try:
        return importlib.import_module("generate_crm")
    finally:
        sys.path.pop(0)


def _event_counts(sizes: Sizes, rng: random.Random) -> list[int]:
    """Events per contact: a quarter have none, the rest a long-tailed share; sums to the total."""
    rnd = rng.random
    weights = [0.0 if rnd() < SILENT_SHARE else -math.log(1.0 - rnd()) for _ in
               range(sizes.contacts)]  # fmt: skip
    scale = sizes.events / (sum(weights) or 1.0)
    counts, running, before = [], 0.0, 0
    for weight in weights:
        running += weight * scale
        now = int(running + 0.5)
        counts.append(now - before)
        before = now
    if counts:
        counts[-1] += sizes.events - before
    return counts


def _generate(
    sizes: Sizes, stage_ids: Sequence[str]
) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """Yield ``(table, rows)`` batches; parents before the children that refer to them."""
    rng = random.Random(SEED)
    rnd = rng.random
    clock = _Clock()
    ago = clock.ago
    generator = _crm_generator()
    crm: Iterator[dict[str, str]] = generator.generate_rows(
        sizes.contacts, sizes.accounts, sizes.owners, 7, "hubspot"
    )
    counts = _event_counts(sizes, rng)
    created = ago(400 * DAY)

    owner_ids: dict[str, int] = {}
    owner_rows = []
    for j in range(sizes.owners):
        name, email = generator.owner(j)
        owner_ids[email] = j + 1
        signature = f"{name}\nAccount Executive, Salescycle Demo"
        owner_rows.append((j + 1, email, name, "Account Executive", f"+45 70 20 30 {j:02d}",
                           signature, created, created))  # fmt: skip
    yield "owners", owner_rows

    stage_ids = list(stage_ids)
    known_stages = set(stage_ids)
    customer_like = {s for s in stage_ids if s == "customer"}
    accounts: list[tuple[Any, ...]] = []
    contacts: list[tuple[Any, ...]] = []
    enrollments: list[tuple[Any, ...]] = []
    messages: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    account_id = enrollment_id = message_id = event_id = 0
    last_company = None
    dumps = json.dumps
    sequence_names = list(SEQUENCES)
    subjects = ("Quick question", "Following up", "Worth a chat?", "Welcome aboard",
                "How is it going?", "Could you introduce us?")  # fmt: skip
    booking_url = "https://cal.salescycle-demo.example/meet"
    other_url = "https://www.salescycle-demo.example/blog"

    for index, row in enumerate(crm):
        company = row["Company ID"]
        if company != last_company:
            last_company = company
            account_id += 1
            attributes: dict[str, Any] = {}
            if row["Annual Revenue"]:
                attributes["annual_revenue"] = float(row["Annual Revenue"])
            if row["Tech Stack"]:
                attributes["tech_stack"] = row["Tech Stack"]
            name = row["Company name"]
            employees = row["Number of Employees"]
            accounts.append((account_id, company, name, name.casefold(),
                             row["Company Domain Name"] or None, row["Industry"] or None,
                             row["Country/Region"] or None, int(employees) if employees else None,
                             dumps(attributes), created, created))  # fmt: skip
        contact_id = index + 1
        stage = row["Lifecycle Stage"]
        if stage not in known_stages:  # a renamed pipeline: spread over its ids
            stage = stage_ids[contact_id % len(stage_ids)]
        attributes = {}
        if row["Decision Maker"]:
            attributes["decision_maker"] = row["Decision Maker"] == "true"
        if row["Lead Score"]:
            attributes["lead_score"] = int(row["Lead Score"])
        if row["Last Meeting Date"]:
            attributes["last_meeting"] = row["Last Meeting Date"]
        if row["LinkedIn URL"]:
            attributes["linkedin_url"] = row["LinkedIn URL"]
        in_stage = int(rnd() * STAGE_HORIZON)
        since = in_stage + int(rnd() * 365 * DAY)
        email = row["Email"]
        owner_email = row["Contact owner email"]
        contacts.append((contact_id, row["Record ID"], email, row["First Name"] or None,
                         row["Last Name"] or None, row["Job Title"] or None,
                         row["Phone Number"] or None, account_id, owner_ids.get(owner_email),
                         stage, ago(in_stage, contact_id % 1_000_000), row["Time Zone"] or None,
                         row["Preferred language"] or None, dumps(attributes),
                         ago(since), ago(in_stage)))  # fmt: skip

        n = counts[index]
        sequence = sequence_names[1] if stage in customer_like else sequence_names[0]
        steps = SEQUENCES[sequence]
        if n == 0:
            if rnd() < EXTRA_ENROLLED_SHARE:
                enrollment_id += 1
                enrolled = int(rnd() * 3 * DAY)
                enrollments.append((enrollment_id, contact_id, sequence, "active", 0, steps[0],
                                    ago(-int(rnd() * DAY)), None, ago(enrolled), None,
                                    ago(enrolled)))  # fmt: skip
        else:
            latest = int(rnd() * (EVENT_HORIZON - 10 * DAY))  # the most recent touch
            span = min(int((3 + rnd() * 40) * DAY), EVENT_HORIZON - 1 - latest)
            messaged = rnd() < MESSAGED_SHARE
            if messaged:
                enrollment_id += 1
            made = touches = 0
            first_touch = 0  # seconds before now of the earliest touch
            while made < n:
                touch = latest + int(rnd() * span)
                first_touch = max(first_touch, touch)
                mid = None
                if messaged:
                    message_id += 1
                    mid = message_id
                    step = steps[touches % len(steps)]
                    sent = ago(touch)
                    messages.append((mid, f"bench:{enrollment_id}:{touches}", enrollment_id,
                                     contact_id, sequence, step, f"{sequence}/{step}", email,
                                     owner_email, subjects[touches % len(subjects)],
                                     f"<{mid}.bench@salescycle-demo.example>", "sent", "sendgrid",
                                     f"sgm-{mid}", 1, sent, ago(touch + 60), sent))  # fmt: skip
                touches += 1
                # (kind, seconds before now, machine, link tag, url)
                happened: list[tuple[str, int, int, str | None, str | None]] = []
                if rnd() < 0.03:
                    happened.append(("bounced", touch, 0, None, None))
                else:
                    happened.append(("delivered", touch, 0, None, None))
                    r = rnd()
                    opens = (
                        0 if r < 0.4 else 1 if r < 0.7 else 2 if r < 0.87 else 3 if r < 0.95 else 5
                    )
                    for _ in range(opens):
                        machine = 1 if rnd() < 0.12 else 0
                        at = touch - (int(rnd() * 30) if machine else int(rnd() * 3 * DAY))
                        happened.append(("opened", max(at, 1), machine, None, None))
                    if rnd() < 0.15:
                        booking = rnd() < 0.3
                        at = max(touch - int(rnd() * 3 * DAY), 1)
                        happened.append(("clicked", at, 1 if rnd() < 0.05 else 0,
                                         "booking" if booking else "other",
                                         booking_url if booking else other_url))  # fmt: skip
                    r = rnd()
                    if r < 0.06:
                        happened.append(
                            ("replied", max(touch - int(rnd() * 4 * DAY), 1), 0, None, None)
                        )
                    elif r < 0.10:
                        happened.append(("auto_replied", max(touch - 60, 1), 0, None, None))
                    if rnd() < 0.01:
                        happened.append(("unsubscribed", max(touch - int(rnd() * DAY), 1), 0,
                                         None, None))  # fmt: skip
                for kind, at, machine, tag, url in happened:
                    if made == n:
                        break
                    made += 1
                    event_id += 1
                    when = ago(at, event_id % 1_000_000)
                    events.append((event_id, "sendgrid", f"sg{event_id:010d}", kind, mid,
                                   contact_id, when, url, tag, machine, "{}", when))  # fmt: skip
            if messaged:
                r = rnd()
                status = (
                    "active"
                    if r < 0.5
                    else "completed"
                    if r < 0.75
                    else "exited"
                    if r < 0.95
                    else "paused"
                )
                done = status in ("completed", "exited")
                step_index = min(touches, len(steps) - 1)
                enrolled = first_touch + DAY
                ended = ago(int(rnd() * latest)) if done else None
                next_run = ago(-int(rnd() * 3 * DAY)) if status == "active" else None
                enrollments.append((enrollment_id, contact_id, sequence, status, step_index,
                                    steps[step_index], next_run,
                                    "replied" if status == "exited" else None, ago(enrolled),
                                    ended, ended or ago(latest)))  # fmt: skip

        if len(events) >= _BATCH or len(contacts) >= _BATCH:
            yield from _flush(accounts, contacts, enrollments, messages, events)
    yield from _flush(accounts, contacts, enrollments, messages, events)


def _flush(*batches: list[tuple[Any, ...]]) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    for table, batch in zip(("accounts", "contacts", "enrollments", "messages", "events"),
                            batches, strict=True):  # fmt: skip
        if batch:
            yield table, batch[:]
            batch.clear()


# --------------------------------------------------------------------------
# The first N contacts alone (the reference path's fallback at large sizes)


def ensure_subset(full: Path, contacts: int, log: Log) -> Path:
    """A copy of ``full`` holding contacts 1..``contacts`` and their rows, cached beside it."""
    path = full.with_name(f"{full.stem}-first{contacts}.db")
    if path.exists():
        log(f"reusing {_shown(path)}")
        if _migrate(path):
            with sqlite3.connect(path) as db:
                db.execute("ANALYZE")
        return path
    partial = path.with_suffix(".db.partial")
    partial.unlink(missing_ok=True)
    log(f"writing the first {contacts:,} contacts to {_shown(path)}")
    _migrate(partial)
    with _bulk_connection(partial) as db:
        indexes = _drop_indexes(db)
        db.execute("ATTACH DATABASE ? AS full", (str(full),))
        where = {
            "owners": "1 = 1",
            "accounts": f"id IN (SELECT account_id FROM full.contacts WHERE id <= {contacts})",
            "contacts": f"id <= {contacts}",
        }
        for table, cols in COLUMNS.items():
            names = ", ".join(cols)
            condition = where.get(table, f"contact_id <= {contacts}")
            select = f"SELECT {names} FROM full.{table} WHERE {condition} ORDER BY id"
            db.execute(f"INSERT INTO main.{table} ({names}) {select}")
        for sql in indexes:
            db.execute(sql)
        db.execute("COMMIT")
        db.execute("DETACH DATABASE full")
        db.execute("ANALYZE")
        db.execute("PRAGMA journal_mode = DELETE")
    partial.replace(path)
    return path


# --------------------------------------------------------------------------
# PostgreSQL: COPY from the SQLite file


def copy_to_postgres(sqlite_path: Path, url: str, log: Log) -> dict[str, Any]:
    """Load every row of the SQLite file into the (migrated, empty) PostgreSQL database ``url``.

    Foreign-key triggers are off during the load when the role may do that, the tables'
    secondary indexes are dropped and re-created around ``COPY``, then ``VACUUM ANALYZE``
    (a bulk-loaded table's visibility map is empty until vacuumed, which would hide the
    index-only scans a settled database gets). Returns the rows per table and the timings.
    """
    import psycopg
    from sqlalchemy.engine import make_url

    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    started = time.perf_counter()
    notes: list[str] = []
    rows: dict[str, int] = {}
    source = sqlite3.connect(sqlite_path)
    try:
        with psycopg.connect(conninfo) as pg:
            try:
                pg.execute("SET session_replication_role = replica")  # skip FK triggers
            except psycopg.Error as exc:
                pg.rollback()
                notes.append(f"foreign-key triggers stayed on during COPY: {exc}".strip())
            indexes = pg.execute(
                "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
                "WHERE t.relname = ANY(%s) AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
                (list(TABLES),),
            ).fetchall()
            for name, _definition in indexes:
                pg.execute(f'DROP INDEX "{name}"')
            for table, cols in COLUMNS.items():
                shown = [f"{c} || '+00'" if c in _INSTANTS else c for c in cols]
                query = f"SELECT {', '.join(shown)} FROM {table} ORDER BY id"
                copied = 0
                with pg.cursor().copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                    for record in source.execute(query):
                        copy.write_row(record)
                        copied += 1
                rows[table] = copied
                log(f"PostgreSQL: copied {copied:,} {table}")
            log("PostgreSQL: re-creating indexes")
            for _name, definition in indexes:
                pg.execute(definition)
            for table in TABLES:
                pg.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                )
            pg.commit()
            loaded = time.perf_counter() - started
            pg.autocommit = True
            log("PostgreSQL: vacuum analyze")
            pg.execute("VACUUM ANALYZE")
    finally:
        source.close()
    return {
        "rows": rows,
        "seconds": time.perf_counter() - started,
        "copy_seconds": loaded,
        "notes": notes,
    }
