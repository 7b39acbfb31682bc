"""The compiled SQL selects exactly the contacts the reference evaluator does.

Random condition trees (every operator, on every kind of field, with event,
enrollment and segment conditions under all/any/not) over random datasets, on
SQLite and PostgreSQL. Values come from small pools so that equal values, shared
substrings and case variants happen often, and half the leaves take their operands
from the example's own data (a value, a case variant or slice of it, one step beside
it, an event's exact age as the window) so that every boundary is met.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from string import ascii_letters, ascii_lowercase, ascii_uppercase
from typing import Any

from _segment_data import (
    NOW,
    Rows,
    account_row,
    contact_row,
    delete_rows,
    enrollment_row,
    event_row,
    members,
    message_row,
    owner_row,
    workspace_fields,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine

from engine.segments import (
    AllOf,
    AnyOf,
    Condition,
    Count,
    EnrollmentCondition,
    EventCondition,
    FieldCondition,
    FieldSpec,
    FieldType,
    Moment,
    Not,
    Op,
    Segment,
    SegmentRef,
    SegmentSet,
)
from engine.segments.compiler import SegmentCompiler
from engine.segments.parsing import COUNT_OPS
from engine.segments.reference import ReferenceEvaluator, load_dataset
from engine.storage import create_database_engine, upgrade
from engine.workspace import starter_root

FIELDS, PIPELINE = workspace_fields(starter_root())
STAGES = PIPELINE.ids
SEQUENCES = ("seq-a", "seq-b")
STEPS = ("one", "two")
LINKS = ("booking", "pricing")
KINDS = ("opened", "clicked", "replied", "bounced")
STATUSES = ("active", "paused", "completed", "exited", "failed")
EXAMPLES = 100

# Text: whole words shared by the data and the segments (so that eq and in match), and
# strings of pieces: ASCII letters in both cases, letters that other foldings change
# (Ø/ø, İ/i, Ä/ä), LIKE's wildcards and its escape character, regex specials.
_PIECES = ("a", "A", "b", "B", "ø", "Ø", "i", "İ", "ä", "Ä", "_", "%", "/", " ", "AB",
           ".", "(", "\\", "[", "|", "$")  # and regular expressions' specials  # fmt: skip
_WORDS = ("a", "A", "ab", "AB", "aB", "Ab", "ø", "Ø", "a_b", "a%b", "axb", "a/b", "İ", "i",
          "a.b", "(a)", "a|b", "a+", "a*", "a\\b", "[a]", "a?", "^a", "a$", "{1}")  # fmt: skip
words = st.sampled_from(_WORDS)
texts = st.one_of(
    words, words, st.lists(st.sampled_from(_PIECES), min_size=1, max_size=4).map("".join)
)
ints = st.integers(-2, 6)
floats = st.sampled_from((-1.5, 0.0, 0.5, 1.0, 2.0, 2.5, 1e6))
# Times spread over 60 days either side of now, but crowd near it so that window edges,
# day boundaries and equal instants come up often.
near = st.integers(-2, 2)
days = st.one_of(st.integers(-60, 59), near)
hours = st.sampled_from((0, 0, 1, 12, 22, 23))
minutes = st.sampled_from((0, 0, 0, 1, 30))


def _instant(day: int, hour: int, minute: int) -> datetime:
    return NOW + timedelta(days=day, hours=hour, minutes=minute)


instants = st.builds(_instant, days, hours, minutes)
iso_days = st.one_of(days, near).map(lambda d: (NOW.date() + timedelta(days=d)).isoformat())
durations = st.builds(
    lambda number, unit: number * unit,
    st.one_of(st.integers(0, 60), st.integers(0, 3)),
    st.sampled_from((timedelta(minutes=1), timedelta(hours=1), timedelta(days=1),
                     timedelta(weeks=1))),
)  # fmt: skip


def _local(day: int, hour: int, offset: int) -> Moment:
    """``2026-03-15T00:00+02:00`` and the like as the parser reads them (in UTC): a local
    time that may fall on another day in UTC."""
    on = NOW.date() + timedelta(days=day)
    local = datetime(on.year, on.month, on.day, hour, tzinfo=timezone(timedelta(hours=offset)))
    return Moment(absolute=local.astimezone(UTC))


moments = st.one_of(
    st.builds(Moment, ago=durations),
    st.builds(lambda at: Moment(absolute=at), instants),
    st.builds(_local, near, st.sampled_from((0, 1, 12, 23)), st.sampled_from((2, -5, 13))),
)


def _maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), values)


# datasets ---------------------------------------------------------------------


@st.composite
def datasets(draw: st.DrawFn) -> Rows:
    rows = Rows()
    for i in range(1, draw(st.integers(0, 3)) + 1):
        rows.owners.append(owner_row(i, f"{draw(texts)}{i}@sales.test", draw(_maybe(texts)),
                                     draw(_maybe(texts))))  # fmt: skip
    for i in range(1, draw(st.integers(0, 8)) + 1):
        attributes = _attributes(draw, {"annual_revenue": floats, "tech_stack": texts})
        rows.accounts.append(account_row(
            i, draw(texts), crm_id=draw(_maybe(texts)) and f"{draw(texts)}{i}",
            domain=draw(_maybe(texts)), industry=draw(_maybe(texts)),
            country=draw(_maybe(st.sampled_from(("DK", "dk", "SE", "Øa")))),
            employees=draw(_maybe(ints)), attributes=attributes,
        ))  # fmt: skip
    contacts = draw(st.integers(1, 25))
    for i in range(1, contacts + 1):
        rows.contacts.append(_contact(draw, i, len(rows.accounts), len(rows.owners)))
    if contacts:
        _activity(draw, rows, contacts)
    return rows


def _attributes(draw: st.DrawFn, kinds: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    return {name: draw(values) for name, values in kinds.items() if draw(st.booleans())}


def _contact(draw: st.DrawFn, i: int, accounts: int, owners: int) -> dict[str, Any]:
    attributes = _attributes(draw, {"decision_maker": st.booleans(), "lead_score": ints,
                                    "last_meeting": iso_days, "linkedin_url": texts})  # fmt: skip
    return contact_row(
        i, draw(st.sampled_from(STAGES)), draw(instants), title=draw(_maybe(texts)),
        first_name=draw(_maybe(texts)), last_name=draw(_maybe(texts)),
        phone=draw(_maybe(texts)), timezone=draw(_maybe(texts)), locale=draw(_maybe(texts)),
        email=f"{draw(texts)}{i}@example.test",
        crm_id=draw(_maybe(texts)) and f"{draw(texts)}{i}",
        account_id=draw(_maybe(st.integers(1, accounts))) if accounts else None,
        owner_id=draw(_maybe(st.integers(1, owners))) if owners else None,
        created_at=draw(instants), attributes=attributes,
    )  # fmt: skip


def _activity(draw: st.DrawFn, rows: Rows, contacts: int) -> None:
    """Messages, events and enrollments of the contacts 1..``contacts``."""
    contact_ids = st.integers(1, contacts)
    for i in range(1, draw(st.integers(0, 60)) + 1):
        contact_id, message_id = draw(contact_ids), None
        if draw(st.booleans()):
            sequence = draw(_maybe(st.sampled_from(SEQUENCES)))
            step = draw(_maybe(st.sampled_from(STEPS))) if sequence else None
            rows.messages.append(message_row(i, contact_id, sequence, step))
            message_id = i
        rows.events.append(event_row(
            i, contact_id, draw(st.sampled_from(KINDS)), draw(instants), message_id=message_id,
            link_tag=draw(_maybe(st.sampled_from(LINKS))), machine=draw(st.integers(0, 4)) == 0,
        ))  # fmt: skip
    open_ones: set[tuple[int, str]] = set()  # at most one active or paused per sequence
    for i in range(1, draw(st.integers(0, 12)) + 1):
        key = (draw(contact_ids), draw(st.sampled_from(SEQUENCES)))
        status = draw(st.sampled_from(STATUSES))
        if status in ("active", "paused"):
            if key in open_ones:
                status = "exited"
            open_ones.add(key)
        rows.enrollments.append(enrollment_row(i, *key, status))


# conditions -------------------------------------------------------------------

_SCALARS: dict[FieldType, st.SearchStrategy[Any]] = {
    FieldType.STRING: texts,
    FieldType.INT: ints,
    FieldType.FLOAT: floats,
    FieldType.BOOL: st.booleans(),
    FieldType.DATE: moments,
    FieldType.INSTANT: moments,
    FieldType.DURATION: durations,
}
_LIST_OPS = (Op.IN, Op.NOT_IN, Op.CONTAINS_ANY)


def _scalars(spec: FieldSpec) -> st.SearchStrategy[Any]:
    if spec.name == "stage":
        return st.sampled_from(STAGES)
    if spec.name == "account.country":
        return st.sampled_from(("DK", "dk", "SE", "Øa", "d", "K"))
    return _SCALARS[spec.type]


def _ordered(pair: list[Any]) -> tuple[Any, Any]:
    """Between's bounds, low first (the parser refuses them the other way round)."""
    low, high = (
        sorted(pair, key=lambda m: m.resolve(NOW)) if isinstance(pair[0], Moment) else sorted(pair)
    )
    return low, high


# a kind of value first, then a field of that kind: each kind is tested as often
_FIELDS_BY_TYPE = {
    kind: sorted(n for n, s in FIELDS.items() if s.type is kind) for kind in FieldType
}


@st.composite
def field_conditions(draw: st.DrawFn) -> FieldCondition:
    spec = FIELDS[draw(st.sampled_from(_FIELDS_BY_TYPE[draw(st.sampled_from(list(FieldType)))]))]
    op = draw(st.sampled_from(spec.operators))
    return FieldCondition(spec.name, op, _operand(draw, op, _scalars(spec)))


def _operand(draw: st.DrawFn, op: Op, scalars: st.SearchStrategy[Any]) -> Any:
    if op is Op.EXISTS:
        return draw(st.booleans())
    if op in _LIST_OPS:
        return tuple(draw(st.lists(scalars, min_size=1, max_size=3)))
    if op is Op.BETWEEN:
        return _ordered(draw(st.lists(scalars, min_size=2, max_size=2)))
    return draw(scalars)


@st.composite
def pointed_field_conditions(draw: st.DrawFn, rows: Rows) -> FieldCondition:
    """A field condition whose operands are values the data holds, or a hair beside them."""
    present = {spec.name: values for spec in FIELDS.values() if (values := _values(rows, spec))}
    kinds = sorted({FIELDS[name].type for name in present})  # never empty: there are stages
    kind = draw(st.sampled_from(kinds))
    spec = FIELDS[draw(st.sampled_from([name for name in present if FIELDS[name].type is kind]))]
    values = present[spec.name]
    op = draw(st.sampled_from([op for op in spec.operators if op is not Op.EXISTS]))
    scalars = st.sampled_from(values).flatmap(lambda value: _beside(spec, value))
    return FieldCondition(spec.name, op, _operand(draw, op, scalars))


def _values(rows: Rows, spec: FieldSpec) -> list[Any]:
    table = {"contact": rows.contacts, "account": rows.accounts, "owner": rows.owners}[spec.table]
    values = (row[spec.column] if spec.column else row["attributes"].get(spec.attribute)
              for row in table)  # fmt: skip
    return sorted({value for value in values if value is not None}, key=repr)


_ASCII_SWAP = str.maketrans(ascii_letters, ascii_uppercase + ascii_lowercase)
_MINUTE, _DAY = timedelta(minutes=1), timedelta(days=1)


def _beside(spec: FieldSpec, value: Any) -> st.SearchStrategy[Any]:
    """Operands equal to ``value`` or just beside it, as ``spec`` reads it."""
    if spec.name == "stage":
        return st.just(value)
    if spec.type is FieldType.STRING:
        variants = (
            value,
            value.swapcase(),
            value.upper(),
            value.lower(),
            value.translate(_ASCII_SWAP),
        )
        return st.sampled_from(variants).flatmap(_slices)
    if spec.type in (FieldType.INT, FieldType.FLOAT):
        step = 1 if spec.type is FieldType.INT else 0.5
        return st.sampled_from((value - step, value, value + step))
    if spec.type is FieldType.BOOL:
        return st.sampled_from((value, not value))
    if spec.type is FieldType.DURATION:  # time_in_stage: the contact's own
        spent = NOW - value
        return st.sampled_from([max(spent + k * _MINUTE, timedelta(0)) for k in (-1, 0, 1)])
    if spec.type is FieldType.DATE:
        midnight = datetime.combine(date.fromisoformat(value), time(), UTC)
        # the day before, the day, the day after, and "that day at 00:00+02:00" (in UTC)
        at = [midnight + k * _DAY for k in (-1, 0, 1)] + [midnight - timedelta(hours=2)]
    else:
        at = [value + k * _MINUTE for k in (-1, 0, 1)]
    relative = [Moment(ago=NOW - instant) for instant in at if instant <= NOW]
    return st.sampled_from([Moment(absolute=instant) for instant in at] + relative)


def _slices(text: str) -> st.SearchStrategy[str]:
    """``text``, or a part of it: a prefix, a suffix or a middle."""
    ends = st.tuples(st.integers(0, len(text)), st.integers(0, len(text)))
    parts = ends.map(lambda ij: text[min(ij) : max(ij)] or text)
    return st.one_of(st.just(text), parts)


@st.composite
def counts(draw: st.DrawFn) -> Count:
    op = draw(st.sampled_from(COUNT_OPS))
    if op is Op.BETWEEN:
        low, high = sorted(draw(st.lists(st.integers(0, 3), min_size=2, max_size=2)))
        return Count(op, (low, high))
    return Count(op, draw(st.integers(0, 3)))


@st.composite
def event_conditions(draw: st.DrawFn) -> EventCondition:
    sequence = draw(_maybe(st.sampled_from(SEQUENCES)))
    return EventCondition(
        draw(st.sampled_from(KINDS)),
        within=draw(_maybe(durations)),
        count=draw(st.one_of(st.just(Count()), counts())),
        sequence=sequence,
        step=draw(_maybe(st.sampled_from(STEPS))) if sequence else None,
        link=draw(_maybe(st.sampled_from(LINKS))),
    )


@st.composite
def pointed_event_conditions(draw: st.DrawFn, rows: Rows) -> EventCondition:
    """An event condition aimed at one of the data's events: its kind, its message's sequence
    and step, its link, and a window ending on it or a minute either side."""
    if not rows.events:
        return draw(event_conditions())
    event = draw(st.sampled_from(rows.events))
    message = next((m for m in rows.messages if m["id"] == event["message_id"]), None)
    age = NOW - event["occurred_at"]
    windows = [age + k * _MINUTE for k in (-1, 0, 1) if age + k * _MINUTE >= timedelta(0)]
    sequence = message["sequence"] if message and draw(st.booleans()) else None
    return EventCondition(
        event["kind"],
        within=draw(st.sampled_from([None, *windows])),
        count=draw(st.one_of(st.just(Count()), counts())),
        sequence=sequence,
        step=message["step_id"] if message and sequence and draw(st.booleans()) else None,
        link=event["link_tag"] if draw(st.booleans()) else None,
    )


enrollment_conditions = st.builds(
    EnrollmentCondition, st.sampled_from(SEQUENCES), completed=st.booleans()
)


def leaves(rows: Rows) -> st.SearchStrategy[Condition]:
    """Field, event and enrollment conditions, half of them aimed at ``rows``."""
    return st.one_of(
        field_conditions(), pointed_field_conditions(rows), field_conditions(),
        pointed_field_conditions(rows), event_conditions(), pointed_event_conditions(rows),
        enrollment_conditions,
    )  # fmt: skip


@st.composite
def conditions(
    draw: st.DrawFn, leaves: st.SearchStrategy[Condition], depth: int, refs: bool
) -> Condition:
    """A tree at most ``depth`` levels deep; ``refs``: leaves may be ``segment: base``."""
    shapes = ("leaf", "leaf", "all", "any", "not") if depth else ("leaf",)
    shape = draw(st.sampled_from(shapes))
    if shape == "not":
        return Not(draw(conditions(leaves, depth - 1, refs)))
    if shape in ("all", "any"):
        children = tuple(draw(st.lists(conditions(leaves, depth - 1, refs), max_size=3)))
        return AllOf(children) if shape == "all" else AnyOf(children)
    if refs and draw(st.integers(0, 4)) == 0:
        return SegmentRef("base")
    return draw(leaves)


MAINS = ("main-1", "main-2", "main-3")  # up to 3 trees per example (hypothesis repeats trees)


def _segments(mains: list[Condition], base: Condition) -> SegmentSet:
    def segment(name: str, where: Condition) -> Segment:
        return Segment(name, "", where, f"segments/{name}.yaml", 1)

    named = {"base": base, **dict(zip(MAINS, mains, strict=False))}
    return SegmentSet({name: segment(name, where) for name, where in named.items()})


def segment_sets(leaves: st.SearchStrategy[Condition]) -> st.SearchStrategy[SegmentSet]:
    """``base`` (depth 2) and one to three trees of depth 3 that may refer to it."""
    mains = st.lists(conditions(leaves, 3, refs=True), min_size=1, max_size=len(MAINS))
    return st.builds(_segments, mains, conditions(leaves, 2, refs=False))


# the property -------------------------------------------------------------------


def test_compiled_sql_selects_what_the_reference_selects(database_url: str) -> None:
    engine = create_database_engine(database_url)
    try:
        upgrade(engine)
        _check_examples(engine)
    finally:
        engine.dispose()


def _check_examples(engine: Engine) -> None:
    # @given sits on an inner function: the database is migrated once per test, and each
    # example empties it and inserts its own rows. No explain phase: it replays a failure
    # under a tracer, which takes minutes against a database.
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow],
              phases=[Phase.explicit, Phase.generate, Phase.shrink])  # fmt: skip
    @given(rows=datasets(), data=st.data())
    def check(rows: Rows, data: st.DataObject) -> None:
        segments = data.draw(segment_sets(leaves(rows)), label="segments")
        more = data.draw(st.lists(leaves(rows), min_size=5, max_size=15), label="more leaves")
        with engine.begin() as connection:
            delete_rows(connection)
            rows.insert(connection)
            _check_parts(connection, segments, more)
            for name in (segment.name for segment in segments if segment.name != "base"):
                found = members(connection, segments, FIELDS, name, batch_size=7)
                assert found.streamed == found.reference, _explain(name, found.reference)
                assert found.counted == len(found.reference), _explain(name, found.reference)

    check()


def _check_parts(connection: Connection, segments: SegmentSet, more: list[Condition]) -> None:
    """Every condition in the trees on its own, and ``more`` leaves, smallest first: a wrong
    leaf may not show in a whole tree, and the smallest wrong part is the clearest report."""
    compiler = SegmentCompiler(segments, FIELDS, NOW)
    reference = ReferenceEvaluator(segments, FIELDS, NOW)
    dataset = load_dataset(connection)
    parts = dict.fromkeys([*_parts(segments), *more])  # once each, in a repeatable order
    for part in sorted(parts, key=lambda part: _size(part, segments)):
        compiled = list(connection.scalars(compiler.members_of(part)))
        expected = reference.members_of(dataset, part)
        assert compiled == expected, _explain(part, expected)


def _parts(segments: SegmentSet) -> Iterator[Condition]:
    """Every condition inside every segment, the segments' own included."""
    pending = [segment.where for segment in segments]
    while pending:
        condition = pending.pop()
        yield condition
        if isinstance(condition, AllOf | AnyOf):
            pending.extend(condition.conditions)
        elif isinstance(condition, Not):
            pending.append(condition.condition)


def _size(condition: Condition, segments: SegmentSet) -> int:
    """How many conditions ``condition`` stands for, those of referenced segments included."""
    if isinstance(condition, SegmentRef):
        return 1 + _size(segments.get(condition.name).where, segments)
    if isinstance(condition, AllOf | AnyOf):
        return 1 + sum(_size(child, segments) for child in condition.conditions)
    if isinstance(condition, Not):
        return 1 + _size(condition.condition, segments)
    return 1


def _explain(part: Condition | str, expected: list[int]) -> str:
    return f"wrong members of {part!r}; the reference's: {expected}"
