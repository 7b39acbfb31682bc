"""The templates of a workspace: files under ``templates/``, their front matter, locales, variants.

``templates/connecting/intro.md`` is the template ``connecting/intro`` in the
workspace's default language and variant ``a``; ``intro.da.md`` is its Danish
version; ``intro@b.md`` and ``intro@b.da.md`` are variant ``b``. Layouts live in
``templates/_layouts/NAME.html``, partials in ``templates/_partials/NAME.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError

from engine.errors import Problem
from engine.workspace import Workspace, suggest

TEMPLATES_DIR = "templates"
LAYOUTS_DIR = "_layouts"
PARTIALS_DIR = "_partials"
BASE_VARIANT = "a"
DEFAULT_LAYOUT = "default"
FRONT_MATTER_KEYS = ("subject", "preheader", "layout")

_FILE_NAME = re.compile(
    r"^(?P<stem>[a-z0-9][a-z0-9_-]*)"
    r"(?:@(?P<variant>[a-z0-9][a-z0-9-]*))?"
    r"(?:\.(?P<locale>[a-z]{2,3}(?:_[A-Z]{2})?))?\.md$"
)


@dataclass(frozen=True)
class TemplateSource:
    """One template file: its front matter and its body, line numbers kept."""

    name: str
    variant: str
    locale: str | None  # None: the workspace's default language
    shown: str
    subject: str
    preheader: str
    layout: str
    # The body padded with blank lines where the front matter was, so a Jinja
    # error's line number is the file's line number.
    body: str
    key_lines: dict[str, int] = field(default_factory=dict)


@dataclass
class TemplateCatalog:
    """Every readable template of a workspace, by name, variant and locale."""

    root: Path
    sources: dict[tuple[str, str, str | None], TemplateSource]
    problems: list[Problem]

    def names(self) -> list[str]:
        return sorted({name for name, _, _ in self.sources})

    def variants(self, name: str) -> list[str]:
        return sorted({v for n, v, _ in self.sources if n == name})

    def locales(self, name: str, variant: str = BASE_VARIANT) -> list[str | None]:
        found = {loc for n, v, loc in self.sources if n == name and v == variant}
        return sorted(found, key=lambda loc: loc or "")

    def pick(self, name: str, variant: str, locale: str | None) -> TemplateSource:
        """The source for ``locale`` (``da_DK`` falls back to ``da``, then the default)."""
        if not any(n == name for n, _, _ in self.sources):
            raise KeyError(f"unknown template '{name}'; {suggest(name, self.names())}")
        if (name, variant, None) not in self.sources:
            raise KeyError(
                f"template '{name}' has no variant '{variant}'; "
                f"valid: {', '.join(self.variants(name))}"
            )
        for candidate in locale_chain(locale):
            if (name, variant, candidate) in self.sources:
                return self.sources[(name, variant, candidate)]
        return self.sources[(name, variant, None)]


def locale_chain(locale: str | None) -> list[str | None]:
    """``da_DK`` -> ``[da_DK, da, None]``: the locales to try, most specific first."""
    if not locale:
        return [None]
    normal = locale.replace("-", "_")
    language = normal.split("_")[0].lower()
    return list(dict.fromkeys([normal, language, None]))


def read_catalog(workspace: Workspace) -> TemplateCatalog:
    """Read every template of the workspace; unreadable ones become problems."""
    root = workspace.root / TEMPLATES_DIR
    sources: dict[tuple[str, str, str | None], TemplateSource] = {}
    problems: list[Problem] = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or relative.parts[0] in (LAYOUTS_DIR, PARTIALS_DIR):
            continue
        if path.name.startswith("."):
            continue
        shown = workspace.shown(path)
        match = _FILE_NAME.match(path.name)
        if match is None:
            problems.append(Problem(shown, None, _bad_file_name(path.name)))
            continue
        name = (relative.parent / match["stem"]).as_posix()
        variant = match["variant"] or BASE_VARIANT
        source, file_problems = read_source(path, shown, name, variant, match["locale"])
        problems += file_problems
        if source is not None:
            sources[(name, variant, source.locale)] = source
    problems += _variants_without_base(sources, root, workspace)
    return TemplateCatalog(root, sources, problems)


def read_source(
    path: Path, shown: str, name: str, variant: str, locale: str | None
) -> tuple[TemplateSource | None, list[Problem]]:
    """Split one template file into front matter and body; problems name their line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(shown, None, f"cannot read file: {exc}")]
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None, [Problem(shown, 1, "missing front matter: start the file with '---'")]
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        return None, [Problem(shown, 1, "front matter is not closed: add a '---' line")]
    data, problems = _front_matter(shown, "".join(lines[1:end]))
    if data is None:
        return None, problems
    key_lines = {str(k): data.lc.key(k)[0] + 2 for k in data}
    body = "\n" * (end + 1) + "".join(lines[end + 1 :])
    strings = {k: data.get(k) for k in FRONT_MATTER_KEYS}
    for key, value in strings.items():
        if value is not None and not isinstance(value, str):
            problems.append(Problem(shown, key_lines[key], f"'{key}' must be text"))
    subject = strings["subject"] if isinstance(strings["subject"], str) else ""
    if not subject.strip():
        problems.append(Problem(shown, key_lines.get("subject", 1), "missing 'subject'"))
    if not body.strip():
        problems.append(Problem(shown, end + 2, "the template has no text"))
    layout = strings["layout"] if isinstance(strings["layout"], str) else DEFAULT_LAYOUT
    preheader = strings["preheader"] if isinstance(strings["preheader"], str) else ""
    source = TemplateSource(
        name, variant, locale, shown, subject, preheader, layout, body, key_lines
    )
    return source, problems


def _front_matter(shown: str, text: str) -> tuple[CommentedMap | None, list[Problem]]:
    try:
        data: Any = YAML(typ="rt", pure=True).load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 2 if mark is not None else 1
        return None, [Problem(shown, line, f"front matter YAML error: {exc.problem}")]
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        return None, [Problem(shown, 2, "front matter must be keys such as 'subject: ...'")]
    problems = [
        Problem(
            shown,
            data.lc.key(key)[0] + 2,
            f"unknown key '{key}'; " + suggest(str(key), FRONT_MATTER_KEYS),
        )
        for key in data
        if key not in FRONT_MATTER_KEYS
    ]
    return data, problems


def _bad_file_name(name: str) -> str:
    return (
        f"'{name}' is not a template file name; use NAME.md, NAME.LOCALE.md (e.g. "
        "intro.da.md) or NAME@VARIANT.md (e.g. intro@b.md), in lower case"
    )


def _variants_without_base(
    sources: dict[tuple[str, str, str | None], TemplateSource], root: Path, workspace: Workspace
) -> list[Problem]:
    """A locale or variant file needs the default-language file of its variant."""
    problems = []
    for (name, variant, locale), source in sources.items():
        if locale is not None and (name, variant, None) not in sources:
            stem = f"{name}.md" if variant == BASE_VARIANT else f"{name}@{variant}.md"
            expected = workspace.shown(root / stem)
            problems.append(
                Problem(source.shown, None, f"no default-language file {expected} beside it")
            )
    return problems


def template_files(catalog: TemplateCatalog) -> Iterable[TemplateSource]:
    """Every template source, in a stable order."""
    return (catalog.sources[key] for key in sorted(catalog.sources, key=_sort_key))


def _sort_key(key: tuple[str, str, str | None]) -> tuple[str, str, str]:
    return key[0], key[1], key[2] or ""
