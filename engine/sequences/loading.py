"""Reading ``config/sequences/*.yaml``: every mistake as ``path:line: message`` with choices."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from engine.durations import DURATION_HINT, parse_duration, parse_instant
from engine.errors import Problem
from engine.segments.model import Condition
from engine.segments.parsing import NAME_PATTERN, SegmentParser
from engine.sequences.model import (
    STAGE_CHANGED,
    BranchStep,
    ExitStep,
    NotifyStep,
    OnReply,
    SendStep,
    Sequence,
    SequenceKind,
    StageStep,
    Step,
    Trigger,
    TriggerKind,
    WaitStep,
    walk,
)
from engine.sequences.names import SEQUENCES_DIR
from engine.sequences.windows import SendWindow, parse_days, parse_hours
from engine.settings import SenderSettings
from engine.templating import BASE_VARIANT, MessageFormat, TemplateCatalog
from engine.vocabulary import EventKind
from engine.workspace import Workspace, load_yaml, suggest

TOP_KEYS = ("name", "description", "kind", "format", "enroll", "reenroll", "sender", "window",
            "exit_when", "account_stop", "steps", "on_reply")  # fmt: skip
STEP_KINDS = ("send", "wait", "branch", "stage", "notify", "exit")
STEP_KEYS = {
    "send": ("id", "send", "variants", "thread", "when"),
    "wait": ("id", "wait"),
    "branch": ("id", "branch", "then", "else"),
    "stage": ("id", "stage"),
    "notify": ("id", "notify", "message"),
    "exit": ("id", "exit"),
}
WINDOW_KEYS = ("days", "hours", "timezone", "holidays", "jitter")
EXIT_EVENTS = (*(k.value for k in EventKind if k not in (EventKind.QUEUED, EventKind.UNKNOWN)),
               STAGE_CHANGED)  # fmt: skip
DEFAULT_EXIT = frozenset({"replied", "unsubscribed", "bounced", "complained"})
_BUSINESS_DAYS = re.compile(r"^\s*(\d+)\s+business\s+days?\s*$")
_WEBHOOK_URL = re.compile(r"^(https://[^\s/]+|http://(localhost|127\.0\.0\.1)(:\d+)?)(/\S*)?$")
_STEP_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class SequenceSet:
    """The workspace's valid sequences by name (one with a mistake is left out)."""

    sequences: dict[str, Sequence] = field(default_factory=dict)

    def get(self, name: str) -> Sequence:
        """The sequence called ``name``; a ``KeyError`` names the valid ones."""
        try:
            return self.sequences[name]
        except KeyError:
            raise KeyError(f"unknown sequence '{name}'; {suggest(name, self.sequences)}") from None

    def __iter__(self) -> Any:
        return iter(self.sequences.values())


@dataclass(frozen=True)
class References:
    """What sequences may name; ``None`` where that file is unreadable (then unchecked)."""

    templates: TemplateCatalog | None
    segments: Collection[str] | None
    stages: Collection[str] | None


def read_sequences(
    workspace: Workspace, references: References, conditions: SegmentParser
) -> tuple[SequenceSet, list[Problem]]:
    """Parse every sequence file; the valid sequences and every problem found."""
    problems: list[Problem] = []
    found: dict[str, Sequence] = {}
    for path in sorted((workspace.root / SEQUENCES_DIR).glob("*.yaml")):
        shown = workspace.shown(path)
        data, file_problems = load_yaml(path, shown)
        if file_problems:
            problems += file_problems
            continue
        parser = _SequenceParser(shown, references, conditions)
        sequence = parser.parse(data, path.stem)
        problems += parser.problems
        if sequence is None:
            continue
        if sequence.name in found:
            problems.append(Problem(shown, sequence.line, f"sequence '{sequence.name}' is also "
                                    f"defined in {found[sequence.name].path}"))  # fmt: skip
            continue
        found[sequence.name] = sequence
    return SequenceSet(found), problems


class _SequenceParser:
    """Parses one sequence file; mistakes collect in ``problems``."""

    def __init__(self, shown: str, references: References, conditions: SegmentParser) -> None:
        self.shown = shown
        self.references = references
        self.conditions = conditions
        self.problems: list[Problem] = []
        self._ids: dict[str, Step] = {}
        self._counter = 0

    def parse(self, data: Any, stem: str) -> Sequence | None:
        if not isinstance(data, CommentedMap):
            self._problem(data, None, "expected a sequence: name, enroll, window and steps")
            return None
        for key in data:
            if key not in TOP_KEYS:
                self._problem(data, key, f"unknown key '{key}'; {suggest(str(key), TOP_KEYS)}")
        name = data.get("name", stem)
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            self._problem(data, "name", "name: use lower-case letters, digits, - and _")
        kind = self._choice(data, "kind", SequenceKind, SequenceKind.OUTREACH)
        message_format = self._choice(data, "format", MessageFormat, MessageFormat.TEXT)
        trigger = self._trigger(data)
        steps = self._steps(data.get("steps"), data, "steps") if "steps" in data else None
        if steps is None and "steps" not in data:
            self._problem(data, None, "missing required key 'steps'")
        if steps is not None:
            self._check_threads(steps)
        sequence = Sequence(
            name=str(name),
            description=self._text(data, "description"),
            kind=kind,
            format=message_format,
            trigger=trigger,
            reenroll_after=self._reenroll(data),
            sender=self._sender(data),
            window=self._window(data),
            timezone=self._timezone(data),
            exit_when=self._exit_when(data),
            account_stop=self._flag(data, "account_stop", kind is SequenceKind.OUTREACH),
            steps=steps or (),
            on_reply=self._on_reply(data),
            path=self.shown,
            line=_line(data, None) or 1,
        )
        return None if self.problems or steps is None else sequence

    # top-level keys -------------------------------------------------------------

    def _choice(self, data: CommentedMap, key: str, kind: Any, default: Any) -> Any:
        value = data.get(key, default.value)
        try:
            return kind(value)
        except ValueError:
            choices = [member.value for member in kind]
            self._problem(
                data, key, f"{key}: '{value}' is not valid; {suggest(str(value), choices)}"
            )
            return default

    def _text(self, data: CommentedMap, key: str) -> str:
        value = data.get(key, "")
        if not isinstance(value, str):
            self._problem(data, key, f"{key}: expected text")
            return ""
        return value

    def _flag(self, data: CommentedMap, key: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self._problem(data, key, f"{key}: expected true or false")
            return default
        return value

    def _trigger(self, data: CommentedMap) -> Trigger:
        value = data.get("enroll", "manual")
        if value == "manual":
            return Trigger(TriggerKind.MANUAL)
        valid = "enroll: write manual, {segment: NAME} or {stage_entered: STAGE}"
        if not isinstance(value, CommentedMap) or len(value) != 1:
            self._problem(data, "enroll", valid)
            return Trigger(TriggerKind.MANUAL)
        key, target = next(iter(value.items()))
        if key == "segment":
            self._known(value, key, target, self.references.segments, "segment")
            return Trigger(TriggerKind.SEGMENT, str(target))
        if key == "stage_entered":
            self._known(value, key, target, self.references.stages, "stage")
            return Trigger(TriggerKind.STAGE_ENTERED, str(target))
        self._problem(value, key, f"unknown trigger '{key}'; {valid}")
        return Trigger(TriggerKind.MANUAL)

    def _reenroll(self, data: CommentedMap) -> timedelta | None:
        value = data.get("reenroll", "never")
        if value == "never":
            return None
        try:
            return parse_duration(str(value))
        except ValueError:
            self._problem(data, "reenroll", f"reenroll: write never or a duration; {DURATION_HINT}")
            return None

    def _sender(self, data: CommentedMap) -> SenderSettings | None:
        value = data.get("sender", "owner")
        if value == "owner":
            return None
        if isinstance(value, CommentedMap) and set(value) == {"name", "email"}:
            return SenderSettings(name=str(value["name"]), email=str(value["email"]))
        self._problem(data, "sender", "sender: write owner, or {name: ..., email: ...}")
        return None

    def _window(self, data: CommentedMap) -> SendWindow:
        spec = data.get("window", CommentedMap())
        if not isinstance(spec, CommentedMap):
            self._problem(data, "window", "window: expected days, hours, timezone, holidays")
            return SendWindow(parse_days("mon-fri"), *parse_hours("08:00-17:00"))
        for key in spec:
            if key not in WINDOW_KEYS:
                self._problem(spec, key, f"unknown key '{key}'; {suggest(str(key), WINDOW_KEYS)}")
        days, hours = parse_days("mon-fri"), parse_hours("08:00-17:00")
        try:
            days = parse_days(str(spec.get("days", "mon-fri")))
        except ValueError as exc:
            self._problem(spec, "days", f"days: {exc}")
        try:
            hours = parse_hours(str(spec.get("hours", "08:00-17:00")))
        except ValueError as exc:
            self._problem(spec, "hours", f"hours: {exc}")
        if not days:
            self._problem(spec, "days", "days: the window has no open day")
        jitter = timedelta(minutes=7)
        if "jitter" in spec:
            try:
                jitter = parse_duration(str(spec["jitter"]))
            except ValueError as exc:
                self._problem(spec, "jitter", f"jitter: {exc}")
        holidays = self._flag(spec, "holidays", True)
        return SendWindow(days, *hours, holidays=holidays,
                          jitter_minutes=int(jitter.total_seconds() // 60))  # fmt: skip

    def _timezone(self, data: CommentedMap) -> str | None:
        spec = data.get("window")
        value = spec.get("timezone", "contact") if isinstance(spec, CommentedMap) else "contact"
        if value == "contact":
            return None
        try:
            ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError):
            self._problem(spec, "timezone", f"timezone: '{value}' is not an IANA timezone; "
                          "write contact or a name such as Europe/Copenhagen")  # fmt: skip
            return None
        return str(value)

    def _exit_when(self, data: CommentedMap) -> frozenset[str]:
        value = data.get("exit_when")
        if value is None:
            return DEFAULT_EXIT
        if not isinstance(value, CommentedSeq):
            self._problem(
                data, "exit_when", f"exit_when: expected a list; valid: {', '.join(EXIT_EVENTS)}"
            )
            return DEFAULT_EXIT
        for index, item in enumerate(value):
            if item not in EXIT_EVENTS:
                self._problem(
                    value, index, f"exit_when: unknown '{item}'; {suggest(str(item), EXIT_EVENTS)}"
                )
        return frozenset(str(item) for item in value if item in EXIT_EVENTS)

    def _on_reply(self, data: CommentedMap) -> OnReply:
        value = data.get("on_reply")
        if value is None:
            return OnReply()
        if not isinstance(value, CommentedMap):
            self._problem(data, "on_reply", "on_reply: expected {stage: STAGE, notify: owner}")
            return OnReply()
        for key in value:
            if key not in ("stage", "notify"):
                self._problem(value, key, f"unknown key '{key}'; valid: stage, notify")
        stage = value.get("stage")
        if stage is not None:
            self._known(value, "stage", stage, self.references.stages, "stage")
        notify = value.get("notify")
        if notify not in (None, "owner"):
            self._problem(value, "notify", "notify: write owner")
        return OnReply(None if stage is None else str(stage), notify == "owner")

    # steps ---------------------------------------------------------------------

    def _steps(self, node: Any, parent: Any, key: Any) -> tuple[Step, ...] | None:
        if not isinstance(node, CommentedSeq) or not node:
            self._problem(parent, key, f"{key}: expected a list of steps, each one of "
                          f"{', '.join(STEP_KINDS)}")  # fmt: skip
            return None
        steps = [self._step(item, node, index) for index, item in enumerate(node)]
        if any(step is None for step in steps):
            return None
        kept = tuple(step for step in steps if step is not None)
        self._check_reachable(kept, node)
        return kept

    def _step(self, node: Any, parent: CommentedSeq, index: int) -> Step | None:
        kinds = [k for k in STEP_KINDS if isinstance(node, CommentedMap) and k in node]
        if len(kinds) != 1:
            self._problem(parent, index, "a step is one of " + ", ".join(STEP_KINDS)
                          + (f"; this one has {' and '.join(kinds)}" if kinds else ""))  # fmt: skip
            return None
        kind = kinds[0]
        for key in node:
            if key not in STEP_KEYS[kind]:
                self._problem(node, key, f"unknown key '{key}' in a {kind} step; "
                              f"{suggest(str(key), STEP_KEYS[kind])}")  # fmt: skip
        step_id = self._step_id(node, kind)
        line = _line(node, kind) or 0
        make = getattr(self, f"_{kind}_step")
        step: Step | None = make(node, step_id, line)
        if step is not None:
            self._ids[step_id] = step
        return step

    def _step_id(self, node: CommentedMap, kind: str) -> str:
        self._counter += 1
        if "id" not in node:
            if kind == "send":
                self._problem(node, "send", "a send step needs an id (messages are keyed by it)")
            return f"{kind}-{self._counter}"
        value = node["id"]
        if not isinstance(value, str) or not _STEP_ID.match(value):
            self._problem(node, "id", "id: use lower-case letters, digits, - and _")
        elif value in self._ids:
            self._problem(node, "id", f"id: '{value}' is used by another step")
        return str(value)

    def _send_step(self, node: CommentedMap, step_id: str, line: int) -> SendStep | None:
        template = node["send"]
        if not isinstance(template, str) or not template:
            self._problem(node, "send", "send: expected a template name such as connecting/intro")
            return None
        catalog = self.references.templates
        variants: dict[str, int] = {BASE_VARIANT: 1}
        if catalog is not None and template not in catalog.names():
            self._problem(node, "send", f"unknown template '{template}'; "
                          f"{suggest(template, catalog.names())}")  # fmt: skip
        elif catalog is not None:
            variants = dict.fromkeys(catalog.variants(template), 1)
        if "variants" in node:
            variants = self._variants(node, variants)
        thread = node.get("thread")
        if thread is not None and not isinstance(thread, str):
            self._problem(node, "thread", "thread: expected the id of an earlier send step")
        when = self._condition(node, "when") if "when" in node else None
        return SendStep(step_id, template, variants, thread, when, line)

    def _variants(self, node: CommentedMap, available: dict[str, int]) -> dict[str, int]:
        value = node["variants"]
        if not isinstance(value, CommentedMap) or not value:
            self._problem(node, "variants", "variants: expected weights such as {a: 1, b: 1}")
            return available
        weights = {}
        for name, weight in value.items():
            if str(name) not in available:
                self._problem(value, name, f"template '{node['send']}' has no variant '{name}'; "
                              f"valid: {', '.join(available)}")  # fmt: skip
            elif not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
                self._problem(value, name, f"variant {name}: the weight must be a whole number")
            elif weight:
                weights[str(name)] = weight
        if not weights and len(self.problems) == 0:
            self._problem(node, "variants", "variants: at least one weight must be above 0")
        return weights or available

    def _wait_step(self, node: CommentedMap, step_id: str, line: int) -> WaitStep | None:
        value = node["wait"]
        if isinstance(value, CommentedMap) and set(value) == {"until"}:
            try:
                until = parse_instant(_date_text(value["until"]), datetime.now(UTC))
            except ValueError as exc:
                self._problem(value, "until", f"until: {exc}")
                return None
            return WaitStep(step_id, until=until, line=line)
        text = str(value)
        business = _BUSINESS_DAYS.match(text)
        if business:
            return WaitStep(step_id, business_days=int(business.group(1)), line=line)
        try:
            return WaitStep(step_id, duration=parse_duration(text), line=line)
        except ValueError:
            self._problem(node, "wait", f"wait: '{text}' is not a wait; write a duration "
                          "(4d, 36h, 2w), N business days, or {until: 2026-12-01}")  # fmt: skip
            return None

    def _branch_step(self, node: CommentedMap, step_id: str, line: int) -> BranchStep | None:
        condition = self._condition(node, "branch")
        then = self._steps(node.get("then"), node, "then") if "then" in node else ()
        otherwise = self._steps(node.get("else"), node, "else") if "else" in node else ()
        if "then" not in node and "else" not in node:
            self._problem(node, "branch", "a branch needs then: [steps] and/or else: [steps]")
            return None
        if condition is None or then is None or otherwise is None:
            return None
        return BranchStep(step_id, condition, then, otherwise, line)

    def _stage_step(self, node: CommentedMap, step_id: str, line: int) -> StageStep | None:
        stage = node["stage"]
        self._known(node, "stage", stage, self.references.stages, "stage")
        return StageStep(step_id, str(stage), line)

    def _notify_step(self, node: CommentedMap, step_id: str, line: int) -> NotifyStep | None:
        value = node["notify"]
        message = str(node.get("message", ""))
        if value == "owner":
            return NotifyStep(step_id, owner=True, message=message, line=line)
        if isinstance(value, CommentedMap) and set(value) == {"webhook"}:
            url = str(value["webhook"])
            if not _WEBHOOK_URL.match(url):
                self._problem(value, "webhook", "webhook: expected an https:// URL "
                              "(http:// only to localhost or 127.0.0.1)")  # fmt: skip
            return NotifyStep(step_id, owner=False, webhook=url, message=message, line=line)
        self._problem(node, "notify", "notify: write owner, or {webhook: https://...}")
        return None

    def _exit_step(self, node: CommentedMap, step_id: str, line: int) -> ExitStep:
        value = node["exit"]
        return ExitStep(step_id, value if isinstance(value, str) and value else "exit step", line)

    def _condition(self, node: CommentedMap, key: str) -> Condition | None:
        before = len(self.conditions.problems)
        condition = self.conditions.parse_condition(node[key], self.shown, node, key)
        self.problems += self.conditions.problems[before:]
        del self.conditions.problems[before:]
        return condition

    # checks across steps --------------------------------------------------------------

    def _check_reachable(self, steps: tuple[Step, ...], node: CommentedSeq) -> None:
        """A step after one that always ends the enrollment can never run."""
        for index, step in enumerate(steps[:-1]):
            if _always_exits(step):
                self._problem(node, index + 1, f"unreachable: the exit on line {step.line} "
                              "ends every enrollment before this step")  # fmt: skip
                return

    def _check_threads(self, steps: tuple[Step, ...]) -> None:
        """``thread:`` names a send step written before the one that threads it."""
        earlier: list[str] = []
        for step in walk(steps):
            if not isinstance(step, SendStep):
                continue
            target = self._ids.get(step.thread or "")
            if step.thread is not None and not isinstance(target, SendStep):
                choices = suggest(step.thread, earlier) if earlier else "no send step comes before"
                message = f"thread: unknown send step '{step.thread}'; {choices}"
                self.problems.append(Problem(self.shown, step.line, message))
            elif step.thread is not None and step.thread not in earlier:
                message = (f"thread: '{step.thread}' comes later; a step can only be sent "
                           "in the thread of a send step before it")  # fmt: skip
                self.problems.append(Problem(self.shown, step.line, message))
            earlier.append(step.id)

    # helpers ---------------------------------------------------------------------

    def _known(self, node: Any, key: Any, value: Any, known: Collection[str] | None,
               what: str) -> None:  # fmt: skip
        if not isinstance(value, str) or not value:
            self._problem(node, key, f"{key}: expected a {what} name")
        elif known is not None and value not in known:
            self._problem(node, key, f"unknown {what} '{value}'; {suggest(value, sorted(known))}")

    def _problem(self, node: Any, key: Any, message: str) -> None:
        self.problems.append(Problem(self.shown, _line(node, key), message))


def _always_exits(step: Step) -> bool:
    if isinstance(step, ExitStep):
        return True
    if isinstance(step, BranchStep):
        return _list_exits(step.then) and _list_exits(step.otherwise)
    return False


def _list_exits(steps: tuple[Step, ...]) -> bool:
    return any(_always_exits(step) for step in steps)


def _date_text(value: Any) -> str | date:
    return value if isinstance(value, date) else str(value)


def _line(node: Any, key: Any) -> int | None:
    if isinstance(node, CommentedMap) and key is not None and key in node:
        return int(node.lc.key(key)[0]) + 1
    if isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
        return int(node.lc.item(key)[0]) + 1
    if isinstance(node, CommentedMap | CommentedSeq):
        return int(node.lc.line) + 1
    return None
