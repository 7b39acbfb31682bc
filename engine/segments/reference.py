"""The segment language evaluated in plain Python, one contact at a time, without SQL.

This is the semantics of :mod:`engine.segments.model` written as directly as possible:
the tests hold the SQL compiler to it, and the benchmark uses it as the path a user
without a compiler would take (load every row, then test each contact).
"""

from __future__ import annotations

import string
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Select, select

from engine.segments.fields import FieldSpec
from engine.segments.loading import SegmentSet
from engine.segments.model import (
    AllOf,
    AnyOf,
    Condition,
    EnrollmentCondition,
    EventCondition,
    FieldCondition,
    FieldType,
    Moment,
    Not,
    Op,
    SegmentRef,
)
from engine.storage import schema

Row = dict[str, Any]

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_OPEN = ("active", "paused")
_COMPLETED = ("completed",)


@dataclass(frozen=True)
class ContactRecord:
    """One contact row with its account and owner rows (``None`` when it has none).

    ``events`` and ``enrollments`` are the contact's own rows (the same lists as the
    dataset's maps), so a record alone is enough to evaluate any condition.
    """

    contact: Row
    account: Row | None = None
    owner: Row | None = None
    events: list[Row] = field(default_factory=list)
    enrollments: list[Row] = field(default_factory=list)


@dataclass
class Dataset:
    """Every contact, and every event and enrollment by contact id."""

    contacts: list[ContactRecord]
    events_by_contact: dict[int, list[Row]] = field(default_factory=dict)
    enrollments_by_contact: dict[int, list[Row]] = field(default_factory=dict)


def load_dataset(connection: Connection) -> Dataset:
    """Read every contact, account, owner, event and enrollment row into memory.

    Events carry their message's ``sequence`` and ``step_id`` (``None`` without one).
    """
    accounts = {row["id"]: row for row in _rows(connection, select(schema.accounts))}
    owners = {row["id"]: row for row in _rows(connection, select(schema.owners))}
    events, messages = schema.events, schema.messages
    joined = select(events, messages.c.sequence, messages.c.step_id).outerjoin(
        messages, events.c.message_id == messages.c.id
    )
    events_by_contact = _grouped(_rows(connection, joined.where(events.c.contact_id.is_not(None))))
    enrollments_by_contact = _grouped(_rows(connection, select(schema.enrollments)))
    records = [
        ContactRecord(
            row,
            accounts.get(row["account_id"]),
            owners.get(row["owner_id"]),
            events_by_contact[row["id"]],
            enrollments_by_contact[row["id"]],
        )
        for row in _rows(connection, select(schema.contacts).order_by(schema.contacts.c.id))
    ]
    return Dataset(records, dict(events_by_contact), dict(enrollments_by_contact))


def _rows(connection: Connection, query: Select[Any]) -> list[Row]:
    return [dict(row) for row in connection.execute(query).mappings()]


def _grouped(rows: list[Row]) -> defaultdict[int, list[Row]]:
    grouped: defaultdict[int, list[Row]] = defaultdict(list)
    for row in rows:
        grouped[row["contact_id"]].append(row)
    return grouped


class ReferenceEvaluator:
    """Decides segment membership contact by contact, exactly as the model's docstring says."""

    def __init__(self, segments: SegmentSet, fields: dict[str, FieldSpec], now: datetime) -> None:
        self.segments = segments
        self.fields = fields
        self.now = now

    def members(self, dataset: Dataset, name: str) -> list[int]:
        """The sorted ids of the contacts in segment ``name``."""
        return self.members_of(dataset, self.segments.get(name).where)

    def members_of(self, dataset: Dataset, condition: Condition) -> list[int]:
        """The sorted ids of the contacts ``condition`` matches."""
        return sorted(r.contact["id"] for r in dataset.contacts if self.matches(r, condition))

    def matches(self, record: ContactRecord, condition: Condition) -> bool:
        """Whether ``condition`` holds for one contact."""
        match condition:
            case AllOf(conditions):
                return all(self.matches(record, child) for child in conditions)
            case AnyOf(conditions):
                return any(self.matches(record, child) for child in conditions)
            case Not(inner):
                return not self.matches(record, inner)
            case SegmentRef(name):
                return self.matches(record, self.segments.get(name).where)
            case EventCondition():
                return condition.count.holds(self._event_count(record, condition))
            case EnrollmentCondition(sequence, completed):
                statuses = _COMPLETED if completed else _OPEN
                return any(
                    e["sequence"] == sequence and e["status"] in statuses
                    for e in record.enrollments
                )
            case FieldCondition():
                return self._field(record, condition)
        raise TypeError(f"not a condition: {condition!r}")

    # events -------------------------------------------------------------------

    def _event_count(self, record: ContactRecord, condition: EventCondition) -> int:
        since = None if condition.within is None else self.now - condition.within
        wanted = {"kind": condition.kind, "machine": False, "sequence": condition.sequence,
                  "step_id": condition.step, "link_tag": condition.link}  # fmt: skip
        filters = {key: value for key, value in wanted.items() if value is not None}
        return sum(
            1
            for event in record.events
            if all(event[key] == value for key, value in filters.items())
            and (since is None or event["occurred_at"] >= since)
        )

    # fields -------------------------------------------------------------------

    def _field(self, record: ContactRecord, condition: FieldCondition) -> bool:
        spec = self.fields[condition.field]
        value = _value(record, spec)
        if condition.op is Op.EXISTS:
            return (value is not None) is condition.value
        if value is None:  # rule 1: a missing value matches no other condition
            return False
        if spec.type is FieldType.DURATION:
            value = self.now - value  # time_in_stage: the time since stage_entered_at
        elif spec.type is FieldType.DATE:
            value = date.fromisoformat(value)
        operand = self._operand(spec.type, condition.value)
        return _COMPARE[condition.op](value, operand)

    def _operand(self, kind: FieldType, value: Any) -> Any:
        """Moments resolved against now: instants as they are, dates as their UTC day."""
        if isinstance(value, tuple):
            return tuple(self._operand(kind, item) for item in value)
        if not isinstance(value, Moment):
            return value
        instant = value.resolve(self.now)
        return instant.astimezone(UTC).date() if kind is FieldType.DATE else instant


def _value(record: ContactRecord, spec: FieldSpec) -> Any:
    """The field's value for one contact; ``None`` when it is missing."""
    row = {"contact": record.contact, "account": record.account, "owner": record.owner}[spec.table]
    if row is None:
        return None
    if spec.column:
        return row.get(spec.column)
    return (row.get("attributes") or {}).get(spec.attribute)


def _fold(text: str) -> str:
    """Lower-case the ASCII letters A-Z only (rule 3)."""
    return text.translate(_ASCII_LOWER)


_Compare = Callable[[Any, Any], bool]
_COMPARE: dict[Op, _Compare] = {
    Op.EQ: lambda value, operand: bool(value == operand),
    Op.NE: lambda value, operand: bool(value != operand),
    Op.IN: lambda value, operand: value in operand,
    Op.NOT_IN: lambda value, operand: value not in operand,
    Op.GT: lambda value, operand: bool(value > operand),
    Op.GTE: lambda value, operand: bool(value >= operand),
    Op.LT: lambda value, operand: bool(value < operand),
    Op.LTE: lambda value, operand: bool(value <= operand),
    Op.BEFORE: lambda value, operand: bool(value < operand),
    Op.AFTER: lambda value, operand: bool(value > operand),
    Op.BETWEEN: lambda value, operand: bool(operand[0] <= value <= operand[1]),
    Op.CONTAINS: lambda value, operand: _fold(operand) in _fold(value),
    Op.CONTAINS_ANY: lambda value, operand: any(_fold(o) in _fold(value) for o in operand),
    Op.STARTS_WITH: lambda value, operand: _fold(value).startswith(_fold(operand)),
    Op.ENDS_WITH: lambda value, operand: _fold(value).endswith(_fold(operand)),
}
