"""The segment language after parsing: a small tree of conditions, and what each one means.

Semantics (the compiler and the reference evaluator both implement exactly this):

1. A field condition matches only contacts that have a value for the field; for
   ``account.*`` and ``owner.*`` the contact must have an account or owner with a value.
   ``exists: true`` matches present values, ``exists: false`` missing ones. Blank cells
   are stored as missing values, so "" never needs to be matched.
2. ``ne`` and ``not_in`` are field conditions too: they match contacts whose value is
   present and differs from (is not among) the given ones; a missing value matches
   neither. ``not`` is the exact complement of its condition (two-valued logic), so
   ``not: {title: CTO}`` matches every contact whose title is not CTO, including
   those with no title.
3. Strings: ``eq``, ``ne``, ``in`` and ``not_in`` compare exactly. ``contains``,
   ``contains_any``, ``starts_with`` and ``ends_with`` ignore the case of the ASCII
   letters A-Z only, so "head of" finds "Head of"; other letters compare exactly, the
   same on SQLite and PostgreSQL.
4. Numbers compare numerically; ``between: [a, b]`` includes both ends (dates too).
5. Dates (``date`` attributes) compare by day; ``before`` is strictly earlier,
   ``after`` strictly later. Instants (``created_at``) compare by instant. A relative
   value (``30d ago``) is taken from the engine's clock when the segment is evaluated.
6. ``time_in_stage`` is the time since the contact entered its current stage:
   ``time_in_stage: {gt: 14d}`` means it entered more than 14 days ago.
7. An event condition counts the contact's events of one kind within the window
   (``occurred_at`` at or after now minus ``within``; no window means ever), leaving
   out machine events (security scanners' opens and clicks), optionally only events of
   messages of one sequence (and step) or clicks on one link tag. The count must
   satisfy ``count`` (default ``{gte: 1}``); a contact with no such event counts 0.
8. ``in_sequence: S`` needs an active or paused enrollment in S; ``completed_sequence:
   S`` an enrollment in S that completed.
9. ``segment: NAME`` matches the members of NAME; a cycle of references is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeAlias


class Op(StrEnum):
    """Comparison operators of field conditions."""

    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not_in"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    BETWEEN = "between"
    CONTAINS = "contains"
    CONTAINS_ANY = "contains_any"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    EXISTS = "exists"
    BEFORE = "before"
    AFTER = "after"


class FieldType(StrEnum):
    """What kind of value a field holds, which decides the operators it accepts."""

    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATE = "date"  # a calendar day, stored as ISO text ("2026-01-31")
    INSTANT = "instant"  # a moment in UTC
    DURATION = "duration"  # time_in_stage


@dataclass(frozen=True)
class Moment:
    """A point in time as written: absolute, or ``ago`` before the clock's now."""

    absolute: datetime | None = None
    ago: timedelta | None = None

    def resolve(self, now: datetime) -> datetime:
        """The instant this moment stands for, given the clock's ``now``."""
        if self.absolute is not None:
            return self.absolute
        assert self.ago is not None
        return now - self.ago


@dataclass(frozen=True)
class FieldCondition:
    """``field: {op: value}``. ``value`` is already typed for the field:

    a scalar for eq/ne/gt/gte/lt/lte/contains/starts_with/ends_with, a tuple for
    in/not_in/contains_any, a pair for between, a bool for exists, a :class:`Moment`
    for before/after (and inside between/gt/... on date and instant fields), a
    ``timedelta`` for duration fields.
    """

    field: str
    op: Op
    value: Any


@dataclass(frozen=True)
class Count:
    """How many events an event condition needs: ``op`` is one of eq, ne, gt, gte, lt,
    lte (``value`` an int) or between (``value`` a pair of ints)."""

    op: Op = Op.GTE
    value: int | tuple[int, int] = 1

    def holds(self, count: int) -> bool:
        """Whether ``count`` events satisfy this requirement."""
        if self.op is Op.BETWEEN:
            assert isinstance(self.value, tuple)
            return self.value[0] <= count <= self.value[1]
        assert isinstance(self.value, int)
        return {
            Op.EQ: count == self.value,
            Op.NE: count != self.value,
            Op.GT: count > self.value,
            Op.GTE: count >= self.value,
            Op.LT: count < self.value,
            Op.LTE: count <= self.value,
        }[self.op]


@dataclass(frozen=True)
class EventCondition:
    """``{event: opened, within: 14d, count: {gte: 2}, sequence: S, step: X, link: T}``."""

    kind: str
    within: timedelta | None = None
    count: Count = Count()
    sequence: str | None = None
    step: str | None = None
    link: str | None = None


@dataclass(frozen=True)
class EnrollmentCondition:
    """``in_sequence: S`` (active or paused) or ``completed_sequence: S``."""

    sequence: str
    completed: bool = False


@dataclass(frozen=True)
class SegmentRef:
    """``segment: NAME`` (``line``: where it was written, for reporting cycles)."""

    name: str
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class AllOf:
    """``all: [...]``: every condition holds (an empty list always holds)."""

    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    """``any: [...]``: at least one condition holds (an empty list never holds)."""

    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    """``not: {...}``: the exact complement of the condition."""

    condition: Condition


Condition: TypeAlias = (
    FieldCondition | EventCondition | EnrollmentCondition | SegmentRef | AllOf | AnyOf | Not
)


@dataclass(frozen=True)
class Segment:
    """One segment file: its name, description and condition, and where it was written."""

    name: str
    description: str
    where: Condition
    path: str
    line: int
