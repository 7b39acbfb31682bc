"""The CRM mapping of ``config/crm.yaml``: export columns onto contact, owner and account fields."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from engine.errors import Problem, WorkspaceError
from engine.stages import Pipeline
from engine.workspace import Workspace, line_of, load_yaml, suggest, validation_problems

CRM_FILE = "config/crm.yaml"
ATTRIBUTE_NAME = r"^[a-z][a-z0-9_]*$"
AttributeType = Literal["string", "int", "float", "bool", "date"]


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Columns = Annotated[list[str], BeforeValidator(_as_list)]


class ContactColumns(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Columns = Field(min_length=1)
    crm_id: Columns = []
    first_name: Columns = []
    last_name: Columns = []
    title: Columns = []
    phone: Columns = []
    stage: Columns = []
    timezone: Columns = []
    locale: Columns = []


class OwnerColumns(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Columns = []
    name: Columns = []


class AccountColumns(BaseModel):
    model_config = ConfigDict(extra="forbid")

    crm_id: Columns = []
    name: Columns = []
    domain: Columns = []
    industry: Columns = []
    country: Columns = []
    employees: Columns = []


class AttributeSpec(BaseModel):
    """A typed custom field and the columns it may come from."""

    model_config = ConfigDict(extra="forbid")

    type: AttributeType = "string"
    columns: Columns = Field(min_length=1)


AttributeMap = dict[Annotated[str, Field(pattern=ATTRIBUTE_NAME)], AttributeSpec]


class CrmFile(BaseModel):
    """The whole of ``config/crm.yaml``."""

    model_config = ConfigDict(extra="forbid")

    contact: ContactColumns
    owner: OwnerColumns = OwnerColumns()
    account: AccountColumns = AccountColumns()
    attributes: AttributeMap = {}
    account_attributes: AttributeMap = {}
    stages: dict[str, str] = {}


def header_key(name: str) -> str:
    """How headers are compared: without case, surrounding space or repeated spaces."""
    return re.sub(r"\s+", " ", name.replace("\ufeff", "")).strip().casefold()


@dataclass(frozen=True)
class CrmMapping:
    """A validated mapping, ready to bind to one file's header."""

    spec: CrmFile
    stage_names: dict[str, str]  # header_key(CRM stage name or stage id) -> stage id

    def stage_for(self, value: str) -> str | None:
        """The workspace stage a CRM stage name stands for, or ``None`` when unknown."""
        return self.stage_names.get(header_key(value))

    def field_columns(self) -> dict[str, list[str]]:
        """``"contact.email" -> [aliases]`` for every mapped field, custom ones included."""
        fields: dict[str, list[str]] = {}
        for group in ("contact", "owner", "account"):
            model: BaseModel | None = getattr(self.spec, group, None)  # None in a partial file
            if model is None:
                continue
            for name, aliases in model.model_dump().items():
                if aliases:
                    fields[f"{group}.{name}"] = aliases
        for name, attribute in self.spec.attributes.items():
            fields[f"attributes.{name}"] = attribute.columns
        for name, attribute in self.spec.account_attributes.items():
            fields[f"account.attributes.{name}"] = attribute.columns
        return fields


def load_mapping(path: Path, workspace: Workspace, pipeline: Pipeline) -> CrmMapping:
    """The mapping in ``path``; raises with every problem in it."""
    mapping, problems = read_mapping(path, workspace, pipeline)
    if problems or mapping is None:
        raise WorkspaceError(problems)
    return mapping


def read_mapping(
    path: Path, workspace: Workspace, pipeline: Pipeline | None
) -> tuple[CrmMapping | None, list[Problem]]:
    """The mapping plus every problem found in it (stage names checked when a pipeline is given).

    When the file has mistakes, the mapping holds the sections that are right on their
    own (so segments can still be checked against its custom fields); ``None`` only
    when the file cannot be read at all.
    """
    shown = workspace.shown(path)
    data, problems = load_yaml(path, shown)
    if problems:
        return None, problems
    try:
        spec = CrmFile.model_validate(data)
    except ValidationError as exc:
        # Report what is wrong in the shape, and still check the parts that are right.
        problems = validation_problems(shown, data, exc, CrmFile)
        partial = _valid_parts(data)
        stage_names, stage_problems = _stage_names(partial, data, shown, pipeline)
        problems += _duplicate_columns(partial, data, shown) + stage_problems
        return CrmMapping(partial, stage_names), problems
    stage_names, stage_problems = _stage_names(spec, data, shown, pipeline)
    problems = _duplicate_columns(spec, data, shown) + stage_problems
    return CrmMapping(spec, stage_names), problems


def _valid_parts(data: Any) -> CrmFile:
    """A mapping made of the sections of ``data`` that validate on their own."""
    sections = data if isinstance(data, dict) else {}
    parts: dict[str, Any] = {}
    for name in ("attributes", "account_attributes"):  # one bad entry keeps the others
        entries = sections.get(name)
        parts[name] = {
            key: spec
            for key, entry in (entries.items() if isinstance(entries, dict) else ())
            if (spec := _attribute_or_none(key, entry)) is not None
        }
    for name, field in CrmFile.model_fields.items():
        if name in parts:
            continue
        adapter: TypeAdapter[Any] = TypeAdapter(field.annotation or Any)
        try:
            parts[name] = adapter.validate_python(sections.get(name, field.default))
        except ValidationError:
            continue
    return CrmFile.model_construct(**parts)


def _attribute_or_none(name: Any, entry: Any) -> AttributeSpec | None:
    if not isinstance(name, str) or not re.match(ATTRIBUTE_NAME, name):
        return None
    try:
        return AttributeSpec.model_validate(entry)
    except ValidationError:
        return None


def _stage_names(
    spec: CrmFile, data: Any, shown: str, pipeline: Pipeline | None
) -> tuple[dict[str, str], list[Problem]]:
    """CRM stage names (and stage ids) onto stage ids, and the names pointing nowhere."""
    if pipeline is None:
        return {}, []
    names = {header_key(stage_id): stage_id for stage_id in pipeline.ids}
    problems = []
    for name, stage_id in spec.stages.items():
        if stage_id not in pipeline:
            message = f"unknown stage '{stage_id}' for CRM stage '{name}'; "
            message += suggest(stage_id, pipeline.ids)
            problems.append(Problem(shown, line_of(data, ["stages", name]), message))
        else:
            names[header_key(name)] = stage_id
    return names, problems


def _duplicate_columns(spec: CrmFile, data: Any, shown: str) -> list[Problem]:
    owner_of: dict[str, str] = {}
    problems = []
    for field_name, aliases in CrmMapping(spec, {}).field_columns().items():
        for alias in aliases:
            earlier = owner_of.setdefault(header_key(alias), field_name)
            if earlier != field_name:
                message = f"column '{alias}' is mapped to both {earlier} and {field_name}"
                problems.append(Problem(shown, line_of(data, _yaml_loc(field_name)), message))
    return problems


def _yaml_loc(field_name: str) -> list[int | str]:
    """Where a field sits in the file: ``account.attributes.x`` is ``account_attributes: x``."""
    group, _, name = field_name.partition(".")
    if group == "account" and name.startswith("attributes."):
        return ["account_attributes", name.removeprefix("attributes."), "columns"]
    if group == "attributes":
        return ["attributes", name, "columns"]
    return [group, name]
