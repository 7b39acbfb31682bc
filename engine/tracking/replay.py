"""From inbox rows to recorded events: claim, parse by source, record, mark; and replay.

Rows are claimed a chunk at a time (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so several
workers share the inbox; SQLite has one writer). Each row is parsed by its source's
parser and the chunk's events are recorded in one ``record_events`` call. A row whose
body cannot be read, or whose events fail to record, is marked ``failed`` with the
error and kept; the rest of the chunk goes on. A database error that is no row's fault
(a deadlock, a lost connection) rolls the chunk back, still ``received``, and raises.
Nothing is ever deleted: ``replay`` processes stored rows again, and event ids make
that idempotent.
Inbound Parse rows go one by one through the processor's ``inbound`` handler
(``engine.replies``: classify, match, apply, forward), each in a savepoint; they end
``processed``, ``unmatched`` (answering nothing of ours: kept and listed), ``failed``, or
stay ``received`` when the forward to the owner must be tried again. A processor without
a handler leaves them ``received``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, bindparam, select, update
from sqlalchemy.exc import OperationalError

from engine.stages.pipeline import Pipeline
from engine.storage.schema import webhook_inbox
from engine.tracking.bots import BotRules
from engine.tracking.events import MalformedBodyError, ParsedEvents, TrackingEvent
from engine.tracking.inbox import InboxSource, InboxStatus
from engine.tracking.processing import Recorded, record_events
from engine.tracking.sendgrid import SendGridEvents
from engine.tracking.tracking_hits import parse_hit

if TYPE_CHECKING:
    from engine.replies.handler import InboundHandler

Parser = Callable[[bytes, int], ParsedEvents]  # (body, inbox row id)
PARSERS: Mapping[str, Parser] = {
    InboxSource.SENDGRID_EVENTS: lambda body, _row_id: SendGridEvents().parse(body),
    InboxSource.TRACKING: parse_hit,
}
INBOUND = InboxSource.SENDGRID_INBOUND.value  # handled by ``engine.replies``, not a parser
MAX_ERROR = 2000  # characters of problems kept on a row
log = logging.getLogger("salescycle.inbox")


@dataclass
class InboxReport:
    """What processing some inbox rows did."""

    rows: int = 0
    processed: int = 0
    failed: int = 0
    malformed_events: int = 0
    events: Recorded = field(default_factory=Recorded)
    unmatched: int = 0  # inbound messages answering nothing of ours
    waiting: int = 0  # left ``received``: their forward is tried again

    def add(self, other: InboxReport) -> None:
        self.rows += other.rows
        self.processed += other.processed
        self.failed += other.failed
        self.malformed_events += other.malformed_events
        self.events.add(other.events)
        self.unmatched += other.unmatched
        self.waiting += other.waiting

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Row:
    id: int
    source: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Outcome:
    """One row's fate: its events, and the error to keep on it (``None`` when clean)."""

    row: _Row
    events: list[TrackingEvent]
    error: str | None
    failed: bool
    malformed: int = 0
    status: InboxStatus | None = None  # other than processed or failed (inbound rows)


class InboxProcessor:
    """Turns stored webhook bodies into recorded events for one workspace's pipeline."""

    def __init__(
        self,
        database: Engine,
        pipeline: Pipeline,
        bots: BotRules | None = None,
        chunk_rows: int = 20,
        inbound: InboundHandler | None = None,
    ) -> None:
        self.database = database
        self.pipeline = pipeline
        self.bots = bots or BotRules()
        self.chunk_rows = chunk_rows
        self.inbound = inbound
        self.sources = sorted({*PARSERS, *([INBOUND] if inbound is not None else [])})

    def process_received(self, now: dt.datetime) -> InboxReport:
        """Process every ``received`` row there is now (oldest first)."""
        return self._drain(now, lambda last: _received(last, self.sources))

    def process_ids(self, ids: Sequence[int], now: dt.datetime) -> InboxReport:
        """Process those of ``ids`` still ``received`` (already processed ones are skipped)."""
        wanted = sorted(set(ids))
        return self._drain(
            now, lambda last: _received(last, self.sources).where(webhook_inbox.c.id.in_(wanted))
        )

    def replay(self, since: dt.datetime, now: dt.datetime) -> InboxReport:
        """Process again every row received since ``since``, whatever its status."""
        return self._drain(
            now,
            lambda last: _parsable(last, self.sources).where(webhook_inbox.c.received_at >= since),
        )

    def _drain(self, now: dt.datetime, query: Callable[[int], Any]) -> InboxReport:
        report = InboxReport()
        last = 0
        while True:
            with self.database.begin() as connection:
                rows = self._claim(connection, query(last))
                if not rows:
                    return report
                report.add(self._chunk(connection, rows, now))
            last = rows[-1].id

    def _claim(self, connection: Connection, query: Any) -> list[_Row]:
        query = query.order_by(webhook_inbox.c.id).limit(self.chunk_rows)
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return [
            _Row(int(r.id), str(r.source), bytes(r.body), dict(r.headers or {}))
            for r in connection.execute(query)
        ]

    def _chunk(self, connection: Connection, rows: list[_Row], now: dt.datetime) -> InboxReport:
        """Inbound rows one by one; the other rows' events together, when that fails row
        by row."""
        report = InboxReport()
        for row in rows:
            if row.source == INBOUND:
                report.add(self._inbound(connection, row, now))
        parsed = [row for row in rows if row.source != INBOUND]
        if parsed:
            report.add(self._events(connection, parsed, now))
        return report

    def _inbound(self, connection: Connection, row: _Row, now: dt.datetime) -> InboxReport:
        assert self.inbound is not None  # only claimed with a handler
        try:
            with connection.begin_nested():
                result = self.inbound.process(connection, row.id, row.headers, row.body, now)
        except OperationalError:
            raise
        except MalformedBodyError as exc:
            return _mark(
                connection, [_Outcome(row, [], str(exc)[:MAX_ERROR], True)], Recorded(), now
            )
        except Exception as exc:
            log.exception("inbox row %s (inbound) failed", row.id)
            error = f"processing failed: {type(exc).__name__}: {exc}"[:MAX_ERROR]
            return _mark(connection, [_Outcome(row, [], error, True)], Recorded(), now)
        failed = result.status is InboxStatus.FAILED
        outcome = _Outcome(row, [], result.note, failed, status=result.status)
        return _mark(connection, [outcome], result.recorded, now)

    def _events(self, connection: Connection, rows: list[_Row], now: dt.datetime) -> InboxReport:
        outcomes = [_parse(row) for row in rows]
        try:
            with connection.begin_nested():
                recorded = self._record(connection, outcomes, now)
        except OperationalError:
            raise  # the database, not the rows (a deadlock, a lost connection): retry later
        except Exception:
            log.exception("inbox rows %s failed together; processing them one by one",
                          [row.id for row in rows])  # fmt: skip
            return self._one_by_one(connection, outcomes, now)
        return _mark(connection, outcomes, recorded, now)

    def _one_by_one(
        self, connection: Connection, outcomes: list[_Outcome], now: dt.datetime
    ) -> InboxReport:
        report = InboxReport()
        for outcome in outcomes:
            try:
                with connection.begin_nested():
                    recorded = self._record(connection, [outcome], now)
            except OperationalError:
                raise
            except Exception as exc:
                log.exception("inbox row %s failed", outcome.row.id)
                error = f"recording failed: {type(exc).__name__}: {exc}"
                outcome = _Outcome(outcome.row, [], error[:MAX_ERROR], True, outcome.malformed)
                recorded = Recorded()
            report.add(_mark(connection, [outcome], recorded, now))
        return report

    def _record(
        self, connection: Connection, outcomes: list[_Outcome], now: dt.datetime
    ) -> Recorded:
        batch = [event for outcome in outcomes for event in outcome.events]
        return record_events(connection, batch, now, self.pipeline, self.bots)


ALL_SOURCES = sorted({*PARSERS, INBOUND})


def _parsable(after: int, sources: Sequence[str]) -> Any:
    columns = (webhook_inbox.c.id, webhook_inbox.c.source, webhook_inbox.c.body,
               webhook_inbox.c.headers)  # fmt: skip
    return select(*columns).where(webhook_inbox.c.id > after, webhook_inbox.c.source.in_(sources))


def _received(after: int, sources: Sequence[str]) -> Any:
    return _parsable(after, sources).where(webhook_inbox.c.status == InboxStatus.RECEIVED.value)


def pending_ids(connection: Connection, limit: int = 1000) -> list[int]:
    """Ids of ``received`` rows of every source (Inbound Parse too), oldest first, to hand
    to the workers."""
    query = _received(0, ALL_SOURCES).with_only_columns(webhook_inbox.c.id)
    query = query.order_by(webhook_inbox.c.id)
    return [int(i) for i in connection.execute(query.limit(limit)).scalars()]


def _parse(row: _Row) -> _Outcome:
    try:
        parsed = PARSERS[row.source](row.body, row.id)
    except MalformedBodyError as exc:
        return _Outcome(row, [], str(exc)[:MAX_ERROR], failed=True)
    except Exception as exc:  # a parser's bug must not stop the other rows
        log.exception("inbox row %s could not be parsed", row.id)
        return _Outcome(row, [], f"parsing failed: {type(exc).__name__}: {exc}"[:MAX_ERROR], True)
    error = None
    if parsed.problems:
        count = len(parsed.problems)
        error = f"{count} malformed event(s) left out: " + "; ".join(parsed.problems)
    return _Outcome(row, parsed.events, error and error[:MAX_ERROR], False, len(parsed.problems))


def _mark(
    connection: Connection, outcomes: list[_Outcome], recorded: Recorded, now: dt.datetime
) -> InboxReport:
    statement = (
        update(webhook_inbox)
        .where(webhook_inbox.c.id == bindparam("row_id"))
        .values(
            status=bindparam("new_status"),
            error=bindparam("new_error"),
            processed_at=now,
            attempts=webhook_inbox.c.attempts + 1,
        )
    )
    statuses = [o.status or (InboxStatus.FAILED if o.failed else InboxStatus.PROCESSED)
                for o in outcomes]  # fmt: skip
    rows = [
        {"row_id": o.row.id, "new_status": status.value, "new_error": o.error}
        for o, status in zip(outcomes, statuses, strict=True)
    ]
    connection.execute(statement, rows)
    count = statuses.count
    malformed = sum(o.malformed for o in outcomes)
    return InboxReport(len(outcomes), count(InboxStatus.PROCESSED), count(InboxStatus.FAILED),
                       malformed, recorded, count(InboxStatus.UNMATCHED),
                       count(InboxStatus.RECEIVED))  # fmt: skip
