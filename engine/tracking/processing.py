"""Recording normalised events and their effects, set-based, a batch at a time.

``record_events`` resolves the batch's messages in one query, flags machines, inserts
the events with ``ON CONFLICT (provider, provider_event_id) DO NOTHING RETURNING`` and
applies effects only for the rows that were new, so a repeated or reordered batch does
nothing twice. The effects:

- suppress the address on an unsubscribe, a complaint, a hard bounce, and a drop for an
  invalid, bounced, unsubscribed or complaining address (idempotent);
- settle a message left ``handing_off`` or ``ambiguous`` as ``sent`` on any event that
  shows the provider had it, and resume the enrollment paused for that message;
- move contacts along their stages by the pipeline's rules (people's events only).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import orjson
from sqlalchemy import Connection, func, literal, select, update
from sqlalchemy.dialects import sqlite

from engine.contacts.suppressions import add_suppressions
from engine.sequences.records import MessageStatus
from engine.stages.pipeline import Pipeline
from engine.stages.transitions import StageTrigger, apply_transitions
from engine.storage.bulk import in_chunks
from engine.storage.schema import contacts, enrollments, events, messages
from engine.tracking.bots import BotRules, MessageFacts, StoredClick, flag_machines
from engine.tracking.events import RejectReason, TrackingEvent
from engine.tracking.outcomes import EXIT_KINDS, refresh_outcomes
from engine.vocabulary import EnrollmentStatus, EventKind

# Events that show the provider had the message (or its recipient saw it).
SETTLING_KINDS = frozenset(
    {
        EventKind.QUEUED,
        EventKind.DELIVERED,
        EventKind.DEFERRED,
        EventKind.OPENED,
        EventKind.CLICKED,
        EventKind.BOUNCED,
        EventKind.DROPPED,
        EventKind.COMPLAINED,
        EventKind.UNSUBSCRIBED,
    }
)
UNFINISHED = (MessageStatus.HANDING_OFF.value, MessageStatus.AMBIGUOUS.value)
_SUPPRESSION_REASONS = {
    RejectReason.HARD_BOUNCE: "bounced",
    RejectReason.INVALID: "invalid",
    RejectReason.UNSUBSCRIBED: "unsubscribed",
    RejectReason.COMPLAINED: "complained",
}


@dataclass
class Recorded:
    """What one or more ``record_events`` calls did."""

    received: int = 0
    new: int = 0
    duplicates: int = 0
    machine: int = 0
    unmatched: int = 0  # about no message of ours
    suppressed: int = 0
    settled: int = 0
    resumed: int = 0
    stage_changes: int = 0

    def add(self, other: Recorded) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class _Message:
    id: int
    public_id: str | None
    contact_id: int
    enrollment_id: int | None
    status: str
    to_email: str
    sent_at: dt.datetime | None
    sequence: str | None = None
    links: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _New:
    """An event that was not recorded before, with its row and what it is about."""

    event: TrackingEvent
    row_id: int
    message: _Message | None
    contact_id: int | None


def record_events(
    connection: Connection,
    batch: Sequence[TrackingEvent],
    now: dt.datetime,
    pipeline: Pipeline,
    bots: BotRules | None = None,
) -> Recorded:
    """Record ``batch`` (any order, any repeats) and apply the new events' effects."""
    first: dict[tuple[str, str], TrackingEvent] = {}
    for event in batch:
        first.setdefault((event.provider, event.provider_event_id), event)
    unique = list(first.values())
    found = _messages(connection, unique)
    resolved = [_resolve(event, found) for event in unique]
    flagged = flag_machines(resolved, _facts(connection, resolved, found), bots or BotRules())
    resolved = flagged.events
    contact_ids = _contact_ids(connection, resolved, found)
    new = _insert(connection, resolved, found, contact_ids, now)
    _flag_stored(connection, flagged.stored)
    touched = {n.message.id for n in new if n.message is not None}
    if flagged.stored:
        touched |= {m.id for e in resolved if (m := _message_of(e, found)) is not None}
    refresh_outcomes(connection, touched)
    report = Recorded(
        received=len(batch),
        new=len(new),
        duplicates=len(batch) - len(new),
        machine=sum(1 for n in new if n.event.machine),
        unmatched=sum(1 for n in new if n.message is None),
    )
    report.suppressed = _suppress(connection, new, now)
    report.settled, report.resumed = _settle(connection, new, now)
    triggers = [_trigger(n) for n in new if n.contact_id is not None and not n.event.machine]
    report.stage_changes = len(apply_transitions(connection, pipeline, triggers, now))
    return report


# resolving messages, links and contacts -----------------------------------------------


def _messages(connection: Connection, batch: Sequence[TrackingEvent]) -> dict[str, _Message]:
    """The batch's messages, by public id and by ``provider:<provider message id>``."""
    columns = (messages.c.id, messages.c.public_id, messages.c.contact_id,
               messages.c.enrollment_id, messages.c.status, messages.c.to_email,
               messages.c.sent_at, messages.c.links, messages.c.provider_message_id,
               messages.c.sequence)  # fmt: skip
    found: dict[str, _Message] = {}
    public = {e.message_id for e in batch if e.message_id}
    for row in _in_chunks(connection, select(*columns), messages.c.public_id, public):
        found[str(row.public_id)] = _message(row)
    orphans = {
        e.provider_message_id
        for e in batch
        if e.provider_message_id and (e.message_id is None or e.message_id not in found)
    }
    for row in _in_chunks(connection, select(*columns), messages.c.provider_message_id, orphans):
        found[f"provider:{row.provider_message_id}"] = _message(row)
    return found


def _message(row: Any) -> _Message:
    links = row.links if isinstance(row.links, list) else []
    return _Message(int(row.id), row.public_id, int(row.contact_id), row.enrollment_id,
                    str(row.status), str(row.to_email), row.sent_at, row.sequence,
                    [link for link in links if isinstance(link, dict)])  # fmt: skip


def _message_of(event: TrackingEvent, found: dict[str, _Message]) -> _Message | None:
    if event.message_id and event.message_id in found:
        return found[event.message_id]
    return found.get(f"provider:{event.provider_message_id}")


def _resolve(event: TrackingEvent, found: dict[str, _Message]) -> TrackingEvent:
    """Fill in what the message row knows: our id, the recipient, the link's url and tag."""
    message = _message_of(event, found)
    if message is None:
        return event
    changes: dict[str, Any] = {}
    if message.public_id and event.message_id != message.public_id:
        changes["message_id"] = message.public_id
    if event.recipient is None:
        changes["recipient"] = message.to_email.lower()
    if event.kind is EventKind.CLICKED and event.link_tag is None:
        changes.update(_link(event, message.links))
    return replace(event, **changes) if changes else event


def _link(event: TrackingEvent, links: list[dict[str, Any]]) -> dict[str, Any]:
    if event.link_index is not None:
        if event.link_index >= len(links):
            return {}
        link = links[event.link_index]
        return {"link_tag": _tag(link), "url": event.url or link.get("url")}
    for index, link in enumerate(links):
        if event.url is not None and link.get("url") == event.url:
            return {"link_tag": _tag(link), "link_index": index}
    return {}


def _tag(link: dict[str, Any]) -> str | None:
    tag = link.get("tag")
    return str(tag)[:128] if tag else None


def _contact_ids(
    connection: Connection, batch: Sequence[TrackingEvent], found: dict[str, _Message]
) -> dict[str, int]:
    """Contact ids by recipient address, for events about no message of ours."""
    wanted = {e.recipient for e in batch if e.recipient and _message_of(e, found) is None}
    query = select(contacts.c.id, contacts.c.email)
    return {
        str(row.email).lower(): int(row.id)
        for row in _in_chunks(connection, query, contacts.c.email, wanted)
    }


def _facts(
    connection: Connection, batch: Sequence[TrackingEvent], found: dict[str, _Message]
) -> dict[str, MessageFacts]:
    """What the bot rules need about the messages that were clicked in this batch."""
    clicked = {
        m.id: m
        for e in batch
        if e.kind is EventKind.CLICKED and (m := _message_of(e, found)) and m.public_id
    }
    if not clicked:
        return {}
    facts = {
        m.id: MessageFacts(
            sent_at=m.sent_at, link_count=len({str(li.get("url")) for li in m.links})
        )
        for m in clicked.values()
    }
    for e in batch:  # a delivery in the same batch counts too
        message = _message_of(e, found)
        if e.kind is EventKind.DELIVERED and message is not None and message.id in facts:
            facts[message.id].delivered_at = _earliest(
                facts[message.id].delivered_at, e.occurred_at
            )
    keys = {(e.provider, e.provider_event_id) for e in batch}
    query = select(events.c.id, events.c.message_id, events.c.kind, events.c.occurred_at,
                   events.c.url, events.c.provider, events.c.provider_event_id).where(
        events.c.kind.in_([EventKind.DELIVERED.value, EventKind.CLICKED.value]))  # fmt: skip
    for row in _in_chunks(connection, query, events.c.message_id, set(facts)):
        fact = facts[int(row.message_id)]
        if row.kind == EventKind.DELIVERED:
            fact.delivered_at = _earliest(fact.delivered_at, row.occurred_at)
        elif (row.provider, row.provider_event_id) not in keys:
            fact.clicks.append(StoredClick(int(row.id), row.occurred_at, row.url or "#?"))
    return {str(clicked[i].public_id): fact for i, fact in facts.items()}


def _earliest(known: dt.datetime | None, at: dt.datetime) -> dt.datetime:
    return at if known is None or at < known else known


# writing --------------------------------------------------------------------------------


def _insert(
    connection: Connection,
    batch: Sequence[TrackingEvent],
    found: dict[str, _Message],
    contact_ids: dict[str, int],
    now: dt.datetime,
) -> list[_New]:
    """Insert every event; the ones that were new (a repeat's row is not returned)."""
    if not batch:
        return []
    about = {}
    # in key order, so two workers inserting the same events lock them in the same order
    for event in sorted(batch, key=lambda e: (e.provider, e.provider_event_id)):
        message = _message_of(event, found)
        contact_id = message.contact_id if message else contact_ids.get(event.recipient or "")
        about[(event.provider, event.provider_event_id)] = _New(event, 0, message, contact_id)
    stages = _exit_stages(connection, about.values())
    rows = [
        _row(n.event, n.message, n.contact_id, stages.get(n.contact_id or 0), now)
        for n in about.values()
    ]
    if connection.dialect.name == "postgresql":
        inserted = _insert_as_json(connection, rows)
    else:
        statement = (
            sqlite.insert(events)
            .on_conflict_do_nothing(index_elements=["provider", "provider_event_id"])
            .returning(events.c.id, events.c.provider, events.c.provider_event_id)
        )
        inserted = [tuple(r) for r in connection.execute(statement, rows)]
    new = [
        replace(about[(provider, event_id)], row_id=int(i)) for i, provider, event_id in inserted
    ]
    new.sort(key=lambda n: n.row_id)
    return new


# PostgreSQL takes the whole batch as one JSON document: a multi-row VALUES list of
# thousands of placeholders costs the driver more to parse than the server to insert,
# and text arrays cost the driver an escaping pass over every payload.
_COLUMNS = {"provider": "varchar", "provider_event_id": "varchar", "kind": "varchar",
            "message_id": "int", "contact_id": "int", "occurred_at": "timestamptz",
            "url": "text", "link_tag": "varchar", "machine": "bool", "reject_reason": "varchar",
            "detail": "jsonb", "contact_stage": "varchar",
            "created_at": "timestamptz"}  # fmt: skip
_NAMES = ", ".join(_COLUMNS)
_JSON_INSERT = (
    f"INSERT INTO events ({_NAMES}) SELECT {_NAMES} FROM jsonb_to_recordset(%s::jsonb) AS "
    f"batch({', '.join(f'{name} {kind}' for name, kind in _COLUMNS.items())}) "
    "ON CONFLICT (provider, provider_event_id) DO NOTHING "
    "RETURNING id, provider, provider_event_id"
)


def _insert_as_json(
    connection: Connection, rows: Sequence[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    result = connection.exec_driver_sql(_JSON_INSERT, (_json(list(rows)),))
    return [tuple(r) for r in result]


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits in a payload: JSONB takes it as text
        return orjson.dumps(_plain(value)).decode()


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return str(value)
    return value


def _exit_stages(connection: Connection, items: Iterable[_New]) -> dict[int, str]:
    """The current stage of the contacts the exit events among ``items`` are about."""
    wanted = {n.contact_id for n in items if n.event.kind in EXIT_KINDS and n.contact_id}
    query = select(contacts.c.id, contacts.c.stage)
    return {int(r.id): str(r.stage) for r in _in_chunks(connection, query, contacts.c.id, wanted)}


def _row(
    event: TrackingEvent,
    message: _Message | None,
    contact_id: int | None,
    stage: str | None,
    now: dt.datetime,
) -> dict[str, Any]:
    detail = {
        "message": event.message_id,
        "provider_message_id": event.provider_message_id,
        "recipient": event.recipient,
        "description": event.description,
        "link_index": event.link_index,
        "intent": event.intent,
        "machine_reason": event.machine_reason,
        "user_agent": event.user_agent,
        "ip": event.ip,
    }
    return {
        "provider": event.provider,
        "provider_event_id": event.provider_event_id,
        "kind": event.kind.value,
        "message_id": message.id if message else None,
        "contact_id": contact_id,
        "occurred_at": event.occurred_at,
        "url": event.url,
        "link_tag": event.link_tag,
        "machine": event.machine,
        "reject_reason": event.reject_reason.value if event.reject_reason else None,
        "detail": {**{k: v for k, v in detail.items() if v is not None}, "raw": event.raw},
        "contact_stage": stage if event.kind in EXIT_KINDS else None,
        "created_at": now,
    }


def _flag_stored(connection: Connection, stored: dict[int, str]) -> None:
    """Clicks recorded earlier that a later burst shows were a machine's."""
    for row_id, reason in stored.items():
        connection.execute(update(events).where(events.c.id == row_id).values(machine=True))
        detail = connection.execute(select(events.c.detail).where(events.c.id == row_id)).scalar()
        if isinstance(detail, dict):
            detail = {**detail, "machine_reason": reason}
            connection.execute(update(events).where(events.c.id == row_id).values(detail=detail))


def _suppress(connection: Connection, new: Sequence[_New], now: dt.datetime) -> int:
    """Suppress the addresses the new events say must not be emailed; how many were new."""
    rows: dict[str, dict[str, Any]] = {}
    for item in new:
        event = item.event
        if not event.suppresses or not event.recipient:
            continue
        reason = _SUPPRESSION_REASONS.get(event.reject_reason or RejectReason.OTHER, event.kind)
        detail = f"{event.kind} event {event.provider_event_id}"
        if event.message_id:
            detail += f" (message {event.message_id})"
        rows.setdefault(event.recipient.lower(), {
            "email": event.recipient.lower(), "reason": str(reason), "source": event.provider,
            "detail": detail, "created_at": now})  # fmt: skip
    return add_suppressions(connection, [rows[email] for email in sorted(rows)])


def _settle(connection: Connection, new: Sequence[_New], now: dt.datetime) -> tuple[int, int]:
    """Unfinished hand-offs the provider's events prove done: sent, and their runs resumed."""
    first_seen: dict[int, dt.datetime] = {}
    for item in new:
        message = item.message
        if message and message.status in UNFINISHED and item.event.kind in SETTLING_KINDS:
            first_seen[message.id] = _earliest(first_seen.get(message.id), item.event.occurred_at)
    settled: list[tuple[str | None, int | None]] = []
    for message_id, at in sorted(first_seen.items()):
        statement = (
            update(messages)
            .where(messages.c.id == message_id, messages.c.status.in_(UNFINISHED))
            .values(status=MessageStatus.SENT.value, updated_at=now,
                    sent_at=func.coalesce(messages.c.sent_at, literal(at, messages.c.sent_at.type)))
            .returning(messages.c.public_id, messages.c.enrollment_id)
        )  # fmt: skip
        settled.extend((r.public_id, r.enrollment_id) for r in connection.execute(statement))
    return len(settled), _resume(connection, settled, now)


def _resume(
    connection: Connection, settled: Iterable[tuple[str | None, int | None]], now: dt.datetime
) -> int:
    """Resume the enrollments paused for one of the settled messages (their error names it)."""
    held = {e: p for p, e in settled if e is not None and p}
    if not held:
        return 0
    query = select(enrollments.c.id, enrollments.c.error).where(
        enrollments.c.status == EnrollmentStatus.PAUSED.value
    )
    waiting = [row.id for row in _in_chunks(connection, query, enrollments.c.id, set(held))
               if row.error and f"message {held[row.id]} " in f"{row.error} "]  # fmt: skip
    if not waiting:
        return 0
    statement = (
        update(enrollments)
        .where(enrollments.c.id.in_(waiting), enrollments.c.status == EnrollmentStatus.PAUSED.value)
        .values(status=EnrollmentStatus.ACTIVE.value, next_run_at=now, error=None,
                claimed_by=None, claimed_until=None, updated_at=now)
    )  # fmt: skip
    return int(connection.execute(statement).rowcount)


def _trigger(item: _New) -> StageTrigger:
    event = item.event
    assert item.contact_id is not None
    what = " ".join(str(p) for p in (event.kind, event.link_tag, event.intent) if p)
    detail = f"event {item.row_id}: {what} ({event.provider} {event.provider_event_id})"
    sequence = item.message.sequence if item.message else None
    return StageTrigger(item.contact_id, event.kind, event.occurred_at, detail[:1000],
                        event.link_tag, event.intent, sequence)  # fmt: skip


# helpers --------------------------------------------------------------------------------


def _in_chunks(connection: Connection, query: Any, column: Any, values: set[Any]) -> Iterator[Any]:
    """Rows of ``query`` where ``column`` is one of ``values``."""
    for condition in in_chunks(connection.dialect.name, column, values):
        yield from connection.execute(query.where(condition))
