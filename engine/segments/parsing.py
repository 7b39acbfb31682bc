"""Reading one segment file into the condition tree, reporting every mistake with its line."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from engine.durations import DATE_HINT, is_relative, parse_duration, parse_instant
from engine.errors import Problem
from engine.segments.fields import FieldSpec
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
    Segment,
    SegmentRef,
)
from engine.vocabulary import EventKind
from engine.workspace import suggest

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
TOP_KEYS = ("name", "description", "where")
EVENT_KEYS = ("event", "within", "count", "sequence", "step", "link")
EVENT_KINDS = [kind.value for kind in EventKind if kind is not EventKind.UNKNOWN]
COUNT_OPS = (Op.EQ, Op.NE, Op.GT, Op.GTE, Op.LT, Op.LTE, Op.BETWEEN)
_KEYWORDS = ("all", "any", "not", "segment", "event", "in_sequence", "completed_sequence")
_LIST_OPS = (Op.IN, Op.NOT_IN, Op.CONTAINS_ANY)
_NEVER = object()
_CUSTOM_PREFIXES = ("attributes.", "account.attributes.")
_UNUSED_NOW = datetime(1970, 1, 1, tzinfo=UTC)  # absolute dates do not depend on now


class _Invalid(Exception):
    """A value that cannot be used; the message says why (caught where the line is known)."""


@dataclass
class SegmentParser:
    """Parses segment files against the fields, stages and sequences of one workspace."""

    fields: dict[str, FieldSpec]
    stages: Collection[str] | None  # None: stages are not checked (stages.yaml unreadable)
    sequences: Collection[str] | None  # None: sequences are not checked
    custom_fields_known: bool = True  # False: crm.yaml is unreadable, custom fields unchecked
    problems: list[Problem] = field(default_factory=list)
    _shown: str = ""

    def parse(self, data: Any, shown: str) -> Segment | None:
        """The segment in one file's YAML, or ``None`` (problems are in ``self.problems``)."""
        self._shown = shown
        before = len(self.problems)
        if not isinstance(data, CommentedMap):
            self._problem(data, None, "expected a segment: name, description and where")
            return None
        for key in data:
            if key not in TOP_KEYS:
                self._problem(data, key, f"unknown key '{key}'; {suggest(str(key), TOP_KEYS)}")
        name = data.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            message = "name: a segment needs a name of lower-case letters, digits, - and _"
            self._problem(data, "name" if "name" in data else None, message)
        description = data.get("description", "")
        if not isinstance(description, str):
            self._problem(data, "description", "description: expected text")
        if "where" not in data:
            self._problem(data, None, "missing required key 'where'")
            return None
        where = self._condition(data["where"], data, "where")
        if where is None or len(self.problems) > before:
            return None
        return Segment(str(name), str(description), where, shown, _line(data, None) or 1)

    def parse_condition(self, node: Any, shown: str, parent: Any, key: Any) -> Condition | None:
        """One condition written in another file (a sequence's ``when`` or ``branch``)."""
        self._shown = shown
        return self._condition(node, parent, key)

    # conditions ---------------------------------------------------------------

    def _condition(self, node: Any, parent: Any, key: Any) -> Condition | None:
        if not isinstance(node, CommentedMap) or not node:
            self._problem(
                parent, key, "expected a condition: a mapping such as {stage: qualification}, "
                f"all, any, not, segment or event; valid keys: {', '.join(_KEYWORDS)}, or a field",
            )  # fmt: skip
            return None
        if "event" in node:
            return self._event(node)
        keyword = next((k for k in node if k in _KEYWORDS), None)
        if keyword is not None:
            if len(node) > 1:
                others = ", ".join(str(k) for k in node if k != keyword)
                self._problem(node, keyword, f"'{keyword}' stands alone; move {others} "
                                             "into its own list item")  # fmt: skip
                return None
            return self._keyword(str(keyword), node[keyword], node)
        conditions = [self._field(str(name), node[name], node) for name in node]
        valid = [c for c in conditions if c is not None]
        if len(valid) != len(conditions):
            return None
        return valid[0] if len(valid) == 1 else AllOf(tuple(valid))

    def _keyword(self, keyword: str, value: Any, node: CommentedMap) -> Condition | None:
        if keyword in ("all", "any"):
            if not isinstance(value, CommentedSeq):
                self._problem(node, keyword, f"{keyword}: expected a list of conditions")
                return None
            children = [self._condition(item, value, i) for i, item in enumerate(value)]
            if any(child is None for child in children):
                return None
            kept = tuple(c for c in children if c is not None)
            return AllOf(kept) if keyword == "all" else AnyOf(kept)
        if keyword == "not":
            inner = self._condition(value, node, keyword)
            return None if inner is None else Not(inner)
        if not isinstance(value, str) or not value:
            self._problem(node, keyword, f"{keyword}: expected a name")
            return None
        if keyword == "segment":
            return SegmentRef(value, _line(node, keyword) or 0)
        self._check_sequence(value, node, keyword)
        return EnrollmentCondition(value, completed=keyword == "completed_sequence")

    def _event(self, node: CommentedMap) -> EventCondition | None:
        before = len(self.problems)
        for key in node:
            if key not in EVENT_KEYS:
                message = f"unknown key '{key}' in an event condition; "
                self._problem(node, key, message + suggest(str(key), EVENT_KEYS))
        kind = node["event"]
        if kind not in EVENT_KINDS:
            message = f"unknown event '{kind}'; {suggest(str(kind), EVENT_KINDS)}"
            self._problem(node, "event", message)
        within = None
        if "within" in node:
            within = self._guard(node, "within", lambda: _duration("within", node["within"]))
        count = self._count(node) if "count" in node else Count()
        for key in ("sequence", "step", "link"):
            if key in node and not isinstance(node[key], str):
                self._problem(node, key, f"{key}: expected a name")
        if isinstance(node.get("sequence"), str):
            self._check_sequence(node["sequence"], node, "sequence")
        if "step" in node and "sequence" not in node:
            self._problem(node, "step", "step: name the sequence too (sequence: NAME)")
        if len(self.problems) > before or count is None:
            return None
        return EventCondition(
            str(kind), within, count, node.get("sequence"), node.get("step"), node.get("link")
        )

    def _count(self, node: CommentedMap) -> Count | None:
        value = node["count"]
        if _is_int(value):
            message = f"count: write {{gte: {value}}} for at least {value}, or {{eq: {value}}}"
            self._problem(node, "count", message + f" for exactly {value}")
            return None
        if not isinstance(value, CommentedMap) or len(value) != 1:
            message = "count: expected a number or one comparison such as {gte: 2}; "
            self._problem(node, "count", message + "valid: eq, ne, gt, gte, lt, lte, between")
            return None
        op_name, argument = next(iter(value.items()))
        if op_name not in COUNT_OPS:
            message = f"count: unknown operator '{op_name}'; {suggest(str(op_name), COUNT_OPS)}"
            self._problem(value, op_name, message)
            return None
        op = Op(op_name)
        if op is Op.BETWEEN:
            pair = list(argument) if isinstance(argument, CommentedSeq) else []
            if len(pair) != 2 or not all(_is_int(v) for v in pair) or pair[0] > pair[1]:
                self._problem(value, op_name, "count: between needs [low, high], whole numbers")
                return None
            return Count(op, (int(pair[0]), int(pair[1])))
        if not _is_int(argument) or int(argument) < 0:
            self._problem(value, op_name, f"count: {op_name} needs a whole number, 0 or more")
            return None
        return Count(op, int(argument))

    def _field(self, name: str, value: Any, node: CommentedMap) -> Condition | None:
        spec = self.fields.get(name)
        if spec is None:
            if self.custom_fields_known or not name.startswith(_CUSTOM_PREFIXES):
                self._problem(node, name, self._unknown_field(name))
            return None
        if isinstance(value, CommentedSeq):
            self._problem(node, name, f"{name}: a list needs an operator: {{in: [...]}}")
            return None
        written = isinstance(value, CommentedMap)
        if written and not value:
            self._problem(node, name, f"{name}: needs an operator; {suggest('', spec.operators)}")
            return None
        operations = value if written else {Op.EQ.value: value}  # a bare value means eq
        conditions = []
        for op_name, argument in operations.items():
            at: tuple[Any, Any] = (value, op_name) if written else (node, name)
            if op_name not in spec.operators:
                self._problem(*at, _operator_message(spec, str(op_name), written))
                continue
            op = Op(op_name)
            try:
                conditions.append(FieldCondition(name, op, self._operand(spec, op, argument)))
            except _Invalid as exc:
                self._problem(*at, str(exc))
        if not conditions or len(conditions) != len(operations):
            return None
        return conditions[0] if len(conditions) == 1 else AllOf(tuple(conditions))

    def _unknown_field(self, name: str) -> str:
        if name.startswith(_CUSTOM_PREFIXES):
            prefix = "account.attributes." if name.startswith("account.") else "attributes."
            custom = [f for f in self.fields if f.startswith(prefix)] or ["(none defined)"]
            return (f"unknown custom field '{name}' (custom fields are typed in "
                    f"config/crm.yaml); {suggest(name, custom)}")  # fmt: skip
        return f"unknown field '{name}'; {suggest(name, self.fields)}"

    # values -------------------------------------------------------------------

    def _operand(self, spec: FieldSpec, op: Op, argument: Any) -> Any:
        """The argument of ``op`` typed for ``spec``; raises :class:`_Invalid` naming why."""
        if op is Op.EXISTS:
            if not isinstance(argument, bool):
                raise _Invalid(f"{spec.name}: exists takes true or false")
            return argument
        if isinstance(argument, CommentedSeq) and op not in (*_LIST_OPS, Op.BETWEEN):
            hint = {Op.CONTAINS: " (for any of several, use contains_any)", Op.EQ: " (use in)",
                    Op.NE: " (use not_in)"}.get(op, "")  # fmt: skip
            raise _Invalid(f"{spec.name}: {op} takes one value, not a list{hint}")
        if op in _LIST_OPS:
            if not isinstance(argument, CommentedSeq) or not argument:
                raise _Invalid(f"{spec.name}: {op} takes a non-empty list, e.g. [a, b]")
            return tuple(self._scalar(spec, item) for item in argument)
        if op is Op.BETWEEN:
            if not isinstance(argument, CommentedSeq) or len(argument) != 2:
                raise _Invalid(f"{spec.name}: between takes [low, high]")
            low, high = (self._scalar(spec, item) for item in argument)
            if not _in_order(low, high):
                raise _Invalid(f"{spec.name}: between needs the lower bound first")
            return (low, high)
        return self._scalar(spec, argument)

    def _scalar(self, spec: FieldSpec, value: Any) -> Any:
        kind = spec.type
        if kind is FieldType.STRING:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise _Invalid(f"{spec.name}: '{value}' is not text")
            text = str(value)
            if spec.name == "stage" and self.stages is not None and text not in self.stages:
                raise _Invalid(f"stage: unknown stage '{text}'; {suggest(text, self.stages)}")
            # countries are stored as upper-case ISO codes (the import normalises them)
            return text.upper() if spec.name == "account.country" else text
        if kind is FieldType.INT:
            if not _is_int(value):
                raise _Invalid(f"{spec.name}: '{value}' is not a whole number")
            return int(value)
        if kind is FieldType.FLOAT:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _Invalid(f"{spec.name}: '{value}' is not a number")
            return float(value)
        if kind is FieldType.BOOL:
            if not isinstance(value, bool):
                raise _Invalid(f"{spec.name}: '{value}' is not true or false")
            return value
        if kind is FieldType.DURATION:
            try:
                return parse_duration(str(value))
            except ValueError as exc:
                raise _Invalid(f"{spec.name}: {exc}") from None
        return _moment(spec.name, value)

    # problems -----------------------------------------------------------------

    def _guard(self, node: Any, key: Any, make: Any) -> Any:
        try:
            return make()
        except (_Invalid, ValueError) as exc:
            self._problem(node, key, str(exc))
            return _NEVER

    def _check_sequence(self, name: str, node: Any, key: str) -> None:
        if self.sequences is not None and name not in self.sequences:
            if self.sequences:
                hint = suggest(name, sorted(self.sequences))
            else:
                hint = "no sequences are defined yet (config/sequences/ is empty)"
            self._problem(node, key, f"{key}: unknown sequence '{name}'; {hint}")

    def _problem(self, node: Any, key: Any, message: str) -> None:
        self.problems.append(Problem(self._shown, _line(node, key), message))


def _line(node: Any, key: Any) -> int | None:
    if isinstance(node, CommentedMap):
        if key is not None and key in node:
            return int(node.lc.key(key)[0]) + 1
        return int(node.lc.line) + 1
    if isinstance(node, CommentedSeq):
        if isinstance(key, int) and 0 <= key < len(node):
            return int(node.lc.item(key)[0]) + 1
        return int(node.lc.line) + 1
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _moment(name: str, value: Any) -> Moment:
    if isinstance(value, datetime | date):
        return Moment(absolute=parse_instant(value, _UNUSED_NOW))
    if not isinstance(value, str):
        raise _Invalid(f"{name}: '{value}' is not a date; {DATE_HINT}")
    if is_relative(value):
        return Moment(ago=parse_duration(value.rsplit(" ", 1)[0].strip()))
    try:
        return Moment(absolute=parse_instant(value, _UNUSED_NOW))
    except ValueError as exc:
        raise _Invalid(f"{name}: {exc}") from None


def _in_order(low: Any, high: Any) -> bool:
    """Whether between's bounds are written low first (moments: earlier first)."""
    if isinstance(low, Moment) and isinstance(high, Moment):
        if low.absolute is not None and high.absolute is not None:
            return low.absolute <= high.absolute
        if low.ago is not None and high.ago is not None:
            return low.ago >= high.ago
        return True  # one absolute, one relative: the order depends on the clock
    return bool(low <= high)


def _duration(key: str, value: Any) -> Any:
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise _Invalid(f"{key}: {exc}") from None


def _operator_message(spec: FieldSpec, op_name: str, written: bool) -> str:
    kind = f"{'an' if spec.type[0] in 'aeiou' else 'a'} {spec.type} field"
    if not written:  # a bare value stands for eq
        example = " e.g. {gt: 21d}" if spec.type is FieldType.DURATION else ""
        return (f"{spec.name}: a bare value means eq, which {kind} does not take; write an "
                f"operator{example}; valid: {', '.join(spec.operators)}")  # fmt: skip
    return (
        f"{spec.name}: unknown operator '{op_name}' for {kind}; {suggest(op_name, spec.operators)}"
    )
