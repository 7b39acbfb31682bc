"""The pipeline of ``config/stages.yaml``: ordered stages and the rules that move contacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import Problem, WorkspaceError
from engine.vocabulary import EventKind, ReplyIntent, StageKind
from engine.workspace import Workspace, line_of, load_yaml, suggest, validation_problems

STAGES_FILE = "config/stages.yaml"
_Spec = TypeVar("_Spec", bound=BaseModel)
STAGE_ID_PATTERN = r"^[a-z][a-z0-9_]*$"
TRIGGER_EVENTS = [kind.value for kind in EventKind if kind is not EventKind.UNKNOWN]


class StageSpec(BaseModel):
    """One stage as written in the file."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=STAGE_ID_PATTERN)
    name: str | None = None
    description: str | None = None
    kind: StageKind = StageKind.OPEN


class TransitionSpec(BaseModel):
    """``{on: replied, from: [prospecting], to: qualification}`` and its optional filters."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    on: str
    to: str
    from_: list[str] | None = Field(default=None, alias="from")
    link: str | None = None
    intent: ReplyIntent | None = None
    sequence: str | None = None  # only events about this sequence's messages
    forward_only: bool = True


class StagesFile(BaseModel):
    """The whole of ``config/stages.yaml``."""

    model_config = ConfigDict(extra="forbid")

    stages: list[StageSpec] = Field(min_length=1)
    initial: str | None = None
    transitions: list[TransitionSpec] = []


@dataclass(frozen=True)
class Stage:
    """A stage of the pipeline, with its position."""

    id: str
    name: str
    position: int
    kind: StageKind
    description: str | None = None


@dataclass(frozen=True)
class Pipeline:
    """The ordered stages of one workspace and its transition rules."""

    stages: tuple[Stage, ...]
    initial: str
    transitions: tuple[TransitionSpec, ...] = ()
    _by_id: dict[str, Stage] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_id.update({stage.id: stage for stage in self.stages})

    @property
    def ids(self) -> list[str]:
        return [stage.id for stage in self.stages]

    def __contains__(self, stage_id: object) -> bool:
        return stage_id in self._by_id

    def get(self, stage_id: str) -> Stage:
        """The stage called ``stage_id`` (a ``KeyError`` names the valid ones)."""
        try:
            return self._by_id[stage_id]
        except KeyError:
            raise KeyError(f"unknown stage '{stage_id}'; {suggest(stage_id, self.ids)}") from None


def load_pipeline(workspace: Workspace) -> Pipeline:
    """The workspace's pipeline; raises with every problem in ``config/stages.yaml``."""
    pipeline, problems = read_pipeline(workspace)
    if problems or pipeline is None:
        raise WorkspaceError(problems)
    return pipeline


def read_pipeline(workspace: Workspace) -> tuple[Pipeline | None, list[Problem]]:
    """The pipeline plus every problem found in ``config/stages.yaml``."""
    data, problems = load_yaml(workspace.root / STAGES_FILE, STAGES_FILE)
    if problems:
        return None, problems
    try:
        spec = StagesFile.model_validate(data)
    except ValidationError as exc:
        # Report what is wrong in the shape, and still check the parts that are right.
        problems = validation_problems(STAGES_FILE, data, exc, StagesFile)
        return None, problems + _semantic_problems(_valid_parts(data), data)
    stages = tuple(
        Stage(s.id, s.name or s.id.replace("_", " ").capitalize(), i, s.kind, s.description)
        for i, s in enumerate(spec.stages)
    )
    initial = spec.initial or spec.stages[0].id
    parts = _Parts(list(spec.stages), spec.initial, list(spec.transitions))
    return Pipeline(stages, initial, tuple(spec.transitions)), _semantic_problems(parts, data)


@dataclass
class _Parts:
    """The pieces of the file that validate on their own (``None`` where one does not)."""

    stages: list[StageSpec | None]
    initial: str | None
    transitions: list[TransitionSpec | None]


def _valid_parts(data: Any) -> _Parts:
    if not isinstance(data, dict):
        return _Parts([], None, [])
    initial = data.get("initial")
    return _Parts(
        [_stage_or_none(item) for item in _as_list(data.get("stages"))],
        initial if isinstance(initial, str) else None,
        [_validate_or_none(TransitionSpec, item) for item in _as_list(data.get("transitions"))],
    )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _stage_or_none(item: Any) -> StageSpec | None:
    """A stage entry with other mistakes still defines its id, so references to it hold."""
    stage = _validate_or_none(StageSpec, item)
    if stage is None and isinstance(item, dict) and isinstance(item.get("id"), str):
        return StageSpec.model_construct(id=item["id"])
    return stage


def _validate_or_none(model: type[_Spec], item: Any) -> _Spec | None:
    try:
        return model.model_validate(item)
    except ValidationError:
        return None


def _semantic_problems(parts: _Parts, data: Any) -> list[Problem]:
    ids = [s.id for s in parts.stages if s is not None]
    problems = []
    seen: set[str] = set()
    for index, stage in enumerate(parts.stages):
        if stage is None:
            continue
        if stage.id in seen:
            line = line_of(data, ["stages", index, "id"])
            problems.append(Problem(STAGES_FILE, line, f"stage '{stage.id}' is defined twice"))
        seen.add(stage.id)

    def unknown(stage_id: str, loc: list[int | str], role: str) -> None:
        if seen and stage_id not in seen:
            message = f"unknown stage '{stage_id}' in {role}; {suggest(stage_id, ids)}"
            problems.append(Problem(STAGES_FILE, line_of(data, loc), message))

    if parts.initial is not None:
        unknown(parts.initial, ["initial"], "initial")
    for index, rule in enumerate(parts.transitions):
        if rule is None:
            continue
        base: list[int | str] = ["transitions", index]
        unknown(rule.to, [*base, "to"], "transition")
        for position, stage_id in enumerate(rule.from_ or []):
            unknown(stage_id, [*base, "from", position], "transition")
        problems.extend(_rule_problems(rule, data, base))
    return problems


def _rule_problems(rule: TransitionSpec, data: Any, base: list[int | str]) -> list[Problem]:
    problems = []
    if rule.on not in TRIGGER_EVENTS:
        message = f"unknown event '{rule.on}' in transition; {suggest(rule.on, TRIGGER_EVENTS)}"
        problems.append(Problem(STAGES_FILE, line_of(data, [*base, "on"]), message))
    if rule.link is not None and rule.on != EventKind.CLICKED:
        message = "'link' filters only 'clicked' transitions"
        problems.append(Problem(STAGES_FILE, line_of(data, [*base, "link"]), message))
    if rule.intent is not None and rule.on != EventKind.REPLIED:
        message = "'intent' filters only 'replied' transitions"
        problems.append(Problem(STAGES_FILE, line_of(data, [*base, "intent"]), message))
    return problems
