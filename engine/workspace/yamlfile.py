"""Reading workspace YAML with line numbers, and turning validation errors into problems."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from engine.errors import Problem

Loc = Sequence[int | str]


def load_yaml(path: Path, shown_as: str) -> tuple[Any, list[Problem]]:
    """Parse one YAML file (YAML 1.2, duplicate keys are errors); ``None`` data on failure."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return None, [Problem(shown_as, None, "file is missing")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(shown_as, None, f"cannot read file: {exc}")]
    try:
        return YAML(typ="rt", pure=True).load(text), []
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        if "duplicate key" in what:
            what = what.replace("while constructing a mapping ", "")
        return None, [Problem(shown_as, line, f"YAML syntax error: {what}")]


def declared_names(folder: Path) -> set[str]:
    """The ``name`` of every ``folder/*.yaml`` (the file's stem when unnamed or unreadable).

    Lets one kind of file check its references to another kind before (or although)
    those files are fully read; their own mistakes are reported by ``check``. A
    top-level ``name:`` line is all it reads: parsing every file twice was the
    slowest part of ``check``.
    """
    names = set()
    for path in sorted(folder.glob("*.yaml")):
        try:
            match = _NAME_LINE.search(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError):
            match = None
        names.add(match.group(1) if match else path.stem)
    return names


_NAME_LINE = re.compile(r"""^name:[ \t]*["']?([^\s"'#]+)""", re.MULTILINE)


def line_of(data: Any, loc: Loc) -> int | None:
    """The 1-based line of the deepest node on ``loc`` that the YAML document knows."""
    line: int | None = _own_line(data)
    node = data
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


def _own_line(node: Any) -> int | None:
    if isinstance(node, CommentedMap | CommentedSeq):
        return int(node.lc.line) + 1
    return None


def suggest(word: str, choices: Iterable[str]) -> str:
    """``did you mean 'x'? valid: a, b, c`` for an unknown ``word``."""
    options = list(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{hint}valid: {', '.join(options)}"


def validation_problems(
    shown_as: str, data: Any, exc: ValidationError, model: type[BaseModel], base: Loc = ()
) -> list[Problem]:
    """Turn a pydantic error into ``path:line: message`` problems naming valid choices."""
    problems = []
    for error in exc.errors():
        loc = [*base, *(p for p in error["loc"] if not _is_internal_loc(p))]
        inner = list(loc[len(base) :])
        problems.append(Problem(shown_as, line_of(data, loc), _describe(error, inner, model)))
    return problems


def _is_internal_loc(part: int | str) -> bool:
    # pydantic adds tagged-union and validator names ("function-after[...]") to locations
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _describe(error: Any, loc: list[int | str], model: type[BaseModel]) -> str:
    kind = error["type"]
    where = ".".join(str(p) for p in loc)
    key = str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        fields = _fields_at(model, loc[:-1])
        return f"unknown key '{key}'; " + suggest(key, fields)
    if kind == "missing":
        return f"missing required key '{where}'"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        given = error.get("input")
        choices = expected.replace(" or ", ", ").replace("'", "")
        return f"{where}: '{given}' is not valid; valid: {choices}"
    return f"{where}: {message}" if where else message


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys a model accepts at ``loc`` (walking nested models, lists and dicts)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = current.model_fields.get(part)
            current = field.annotation if field is not None else None
            continue
        args = typing.get_args(current)
        current = args[-1] if args else None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [
            f.alias or name
            for name, f in current.model_fields.items()
            if not (isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("env_only"))
        ]
    return []


def _unwrap(annotation: Any) -> Any:
    """Strip ``X | None`` so the walk sees the model inside."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation
