"""Compiling segments to SQL: one WHERE clause over contacts joined to accounts and owners.

Every leaf compiles to a two-valued expression (a missing value is false, never
NULL), so ``not`` is the exact complement on SQLite and PostgreSQL alike. Event and
enrollment conditions are set-based ``IN`` subqueries, never one query per contact.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    FromClause,
    Select,
    and_,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Boolean, Integer

from engine.segments.fields import FieldSpec
from engine.segments.loading import SegmentSet
from engine.segments.model import (
    AllOf,
    AnyOf,
    Condition,
    Count,
    EnrollmentCondition,
    EventCondition,
    FieldCondition,
    FieldType,
    Moment,
    Not,
    Op,
    SegmentRef,
)
from engine.storage.bulk import stream_first_column
from engine.storage.schema import accounts, contacts, enrollments, events, messages, owners
from engine.vocabulary import EnrollmentStatus

_TABLES = {"contact": contacts, "account": accounts, "owner": owners}
_OPEN = (EnrollmentStatus.ACTIVE.value, EnrollmentStatus.PAUSED.value)


class text_search(ColumnElement[bool]):  # noqa: N801  (an SQL construct, named like one)
    """``value`` contains / starts with / ends with any of ``words``, ignoring the case of A-Z.

    Rendered per database for speed with the same meaning: SQLite's LIKE already folds
    A-Z and nothing else; PostgreSQL gets one regular expression in which every ASCII
    letter is a two-letter class (``[cC]``), since its ILIKE and lower() fold every letter.
    """

    type = Boolean()
    inherit_cache = False

    def __init__(self, value: ColumnElement[Any], words: tuple[str, ...], where: str) -> None:
        self.value = value
        self.words = words
        self.where = where  # "contains", "starts_with" or "ends_with"


@compiles(text_search)
def _text_search_like(element: text_search, compiler: SQLCompiler, **kw: Any) -> str:
    lead = "" if element.where == "starts_with" else "%"
    tail = "" if element.where == "ends_with" else "%"
    likes = [
        element.value.like(f"{lead}{_like_escape(word)}{tail}", escape="/")
        for word in element.words
    ]
    return f"({compiler.process(or_(*likes), **kw)})"  # a unit inside AND / NOT


@compiles(text_search, "postgresql")
def _text_search_regex(element: text_search, compiler: SQLCompiler, **kw: Any) -> str:
    lead = "^" if element.where == "starts_with" else ""
    tail = "$" if element.where == "ends_with" else ""
    words = "|".join(_regex_ascii_folded(word) for word in element.words)
    return f"({compiler.process(element.value.regexp_match(f'{lead}({words}){tail}'), **kw)})"


def _like_escape(word: str) -> str:
    return word.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _regex_ascii_folded(word: str) -> str:
    """A PostgreSQL regular expression matching ``word`` with A-Z folded, nothing else."""
    parts = []
    for char in word:
        if char.isascii() and char.isalpha():
            parts.append(f"[{char.lower()}{char.upper()}]")
        elif char.isalnum() or not char.isascii():
            parts.append(char)
        else:
            parts.append("\\" + char)
    return "".join(parts)


class grouping_key(FunctionElement[int]):  # noqa: N801
    """A GROUP BY column that SQLite must not pick an index for (``+column``).

    Grouping events by contact tempts SQLite into walking the whole (contact_id, ...)
    index in order instead of the (kind, occurred_at, ...) index that selects the few
    rows wanted; the unary plus is SQLite's documented way to rule an index out.
    """

    type = Integer()
    inherit_cache = True


@compiles(grouping_key)
def _grouping_key_default(element: grouping_key, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(grouping_key, "sqlite")
def _grouping_key_sqlite(element: grouping_key, compiler: SQLCompiler, **kw: Any) -> str:
    return f"+{compiler.process(element.clauses, **kw)}"


class SegmentCompiler:
    """Turns segments and conditions into SQLAlchemy expressions, at one instant ``now``."""

    def __init__(self, segments: SegmentSet, fields: dict[str, FieldSpec], now: datetime) -> None:
        self.segments = segments
        self.fields = fields
        self.now = now

    def from_clause(self, condition: Condition) -> FromClause:
        """Contacts, joined to their account and owner where ``condition`` reads them."""
        tables = self._tables(condition)
        joined: FromClause = contacts
        if "account" in tables:
            joined = joined.outerjoin(accounts, contacts.c.account_id == accounts.c.id)
        if "owner" in tables:
            joined = joined.outerjoin(owners, contacts.c.owner_id == owners.c.id)
        return joined

    def _tables(self, condition: Condition) -> set[str]:
        """The tables a condition's fields live in (following segment references)."""
        if isinstance(condition, FieldCondition):
            return {self.fields[condition.field].table}
        if isinstance(condition, AllOf | AnyOf):
            return set().union(*(self._tables(c) for c in condition.conditions))
        if isinstance(condition, Not):
            return self._tables(condition.condition)
        if isinstance(condition, SegmentRef):
            return self._tables(self.segments.get(condition.name).where)
        return set()

    def members(self, name: str) -> Select[int]:
        """``SELECT contacts.id`` of the segment's members, in id order."""
        return self.members_of(self.segments.get(name).where)

    def members_of(self, condition: Condition) -> Select[int]:
        """``SELECT contacts.id`` of the contacts matching ``condition``, in id order."""
        return (
            select(contacts.c.id)
            .select_from(self.from_clause(condition))
            .where(self.condition(condition))
            .order_by(contacts.c.id)
        )

    def condition(self, condition: Condition) -> ColumnElement[bool]:
        """The two-valued SQL expression for ``condition``."""
        if isinstance(condition, AllOf):
            return and_(true(), *(self.condition(c) for c in condition.conditions))
        if isinstance(condition, AnyOf):
            return or_(false(), *(self.condition(c) for c in condition.conditions))
        if isinstance(condition, Not):
            return not_(self.condition(condition.condition))
        if isinstance(condition, SegmentRef):
            return self.condition(self.segments.get(condition.name).where)
        if isinstance(condition, EventCondition):
            return self._event(condition)
        if isinstance(condition, EnrollmentCondition):
            return self._enrollment(condition)
        return self._field(condition)

    # fields -------------------------------------------------------------------

    def _field(self, condition: FieldCondition) -> ColumnElement[bool]:
        spec = self.fields[condition.field]
        value: ColumnElement[Any] = _value_expression(spec)
        if condition.op is Op.EXISTS:
            return value.is_not(None) if condition.value else value.is_(None)
        if spec.type is FieldType.DURATION:
            return _present(value, self._duration(value, condition.op, condition.value))
        if spec.type in (FieldType.DATE, FieldType.INSTANT):
            return _present(value, self._moment(spec, value, condition.op, condition.value))
        return _present(value, _compare(value, condition.op, condition.value))

    def _duration(self, entered: ColumnElement[Any], op: Op, value: Any) -> ColumnElement[bool]:
        """``time_in_stage`` compares now - entered; turned around onto the column."""
        if op is Op.BETWEEN:
            low, high = value
            return and_(entered >= self.now - high, entered <= self.now - low)
        since = self.now - value
        flipped: dict[Op, ColumnElement[bool]] = {Op.GT: entered < since, Op.GTE: entered <= since,
                   Op.LT: entered > since, Op.LTE: entered >= since}  # fmt: skip
        return flipped[op]

    def _moment(self, spec: FieldSpec, value: Any, op: Op, argument: Any) -> ColumnElement[bool]:
        def point(moment: Moment) -> Any:
            instant = moment.resolve(self.now)
            # a day is the UTC day, whatever offset the moment was written with
            return (
                instant.astimezone(UTC).date().isoformat()
                if spec.type is FieldType.DATE
                else instant
            )

        if op is Op.BETWEEN:
            return and_(value >= point(argument[0]), value <= point(argument[1]))
        operators = {Op.BEFORE: value.__lt__, Op.AFTER: value.__gt__,
                     Op.EQ: value.__eq__, Op.NE: value.__ne__}  # fmt: skip
        result: ColumnElement[bool] = operators[op](point(argument))
        return result

    # events and enrollments -----------------------------------------------------

    def _event(self, condition: EventCondition) -> ColumnElement[bool]:
        filters = [
            events.c.contact_id.is_not(None),
            events.c.kind == condition.kind,
            events.c.machine.is_(False),
        ]
        if condition.within is not None:
            filters.append(events.c.occurred_at >= self.now - condition.within)
        if condition.link is not None:
            filters.append(events.c.link_tag == condition.link)
        if condition.sequence is not None:
            of_sequence = [messages.c.sequence == condition.sequence]
            if condition.step is not None:
                of_sequence.append(messages.c.step_id == condition.step)
            filters.append(events.c.message_id.in_(select(messages.c.id).where(*of_sequence)))
        counted = (
            select(events.c.contact_id).where(*filters).group_by(grouping_key(events.c.contact_id))
        )
        tally = func.count()
        if condition.count.holds(0):
            # zero events qualify: a member is anyone not among those whose count fails
            return contacts.c.id.not_in(counted.having(not_(_count_holds(tally, condition.count))))
        return contacts.c.id.in_(counted.having(_count_holds(tally, condition.count)))

    def _enrollment(self, condition: EnrollmentCondition) -> ColumnElement[bool]:
        statuses = (EnrollmentStatus.COMPLETED.value,) if condition.completed else _OPEN
        enrolled = select(enrollments.c.contact_id).where(
            enrollments.c.sequence == condition.sequence, enrollments.c.status.in_(statuses)
        )
        return contacts.c.id.in_(enrolled)


def _value_expression(spec: FieldSpec) -> ColumnElement[Any]:
    table = _TABLES[spec.table]
    if spec.column:
        return table.c[spec.column]
    element = table.c.attributes[spec.attribute]
    extracted: ColumnElement[Any] = {
        FieldType.INT: element.as_integer,
        FieldType.FLOAT: element.as_float,
        FieldType.BOOL: element.as_boolean,
    }.get(spec.type, element.as_string)()
    return extracted


def _present(value: Any, expression: ColumnElement[bool]) -> ColumnElement[bool]:
    """A missing value never matches, and the result is never NULL (so ``not`` complements).

    A column gets ``value IS NOT NULL AND ...``, which keeps its indexes usable; a value
    read out of JSON gets ``coalesce(..., false)``, which reads it once instead of twice.
    """
    if isinstance(value, Column):
        return and_(value.is_not(None), expression)
    return func.coalesce(expression, false())


def _compare(value: Any, op: Op, argument: Any) -> ColumnElement[bool]:
    if op in (Op.CONTAINS, Op.STARTS_WITH, Op.ENDS_WITH, Op.CONTAINS_ANY):
        words = argument if op is Op.CONTAINS_ANY else (argument,)
        where = op.value if op in (Op.STARTS_WITH, Op.ENDS_WITH) else "contains"
        return text_search(value, tuple(words), where)
    if op is Op.IN:
        return value.in_(argument)  # type: ignore[no-any-return]
    if op is Op.NOT_IN:
        return value.not_in(argument)  # type: ignore[no-any-return]
    if op is Op.BETWEEN:
        return and_(value >= argument[0], value <= argument[1])
    comparisons = {Op.EQ: "__eq__", Op.NE: "__ne__", Op.GT: "__gt__", Op.GTE: "__ge__",
                   Op.LT: "__lt__", Op.LTE: "__le__"}  # fmt: skip
    result: ColumnElement[bool] = getattr(value, comparisons[op])(argument)
    return result


def _count_holds(tally: Any, count: Count) -> ColumnElement[bool]:
    if count.op is Op.BETWEEN:
        assert isinstance(count.value, tuple)
        return and_(tally >= count.value[0], tally <= count.value[1])
    return _compare(tally, count.op, count.value)


def count_members(connection: Connection, compiler: SegmentCompiler, name: str) -> int:
    """How many contacts are in the segment now."""
    members = compiler.members(name).order_by(None).subquery()
    return int(connection.execute(select(func.count()).select_from(members)).scalar_one())


def iter_member_ids(
    connection: Connection, compiler: SegmentCompiler, name: str, batch_size: int = 10_000
) -> Iterator[list[int]]:
    """The segment's member ids in id order, streamed in batches from one query."""
    yield from stream_first_column(connection, compiler.members(name), batch_size)


def not_enrolled(compiler: SegmentCompiler, name: str, sequence: str) -> Select[int]:
    """Members with no enrollment at all in ``sequence``: the set to enroll (an anti-join)."""
    enrolled = select(enrollments.c.contact_id).where(enrollments.c.sequence == sequence)
    return compiler.members(name).where(contacts.c.id.not_in(enrolled))
