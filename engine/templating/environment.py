"""The Jinja environment templates render in: sandboxed, strict, locale-aware.

One environment per output form and language: ``text`` (no escaping: subjects, the
text part, and bodies as written, which locate errors on their file's line) and
``html`` (autoescaping). Partials are looked up for the language first
(``signature.da.md``), then as named.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from types import CodeType, TracebackType
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent
from jinja2 import BaseLoader, StrictUndefined, Template, TemplateNotFound
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from engine.templating.catalog import LAYOUTS_DIR, PARTIALS_DIR, locale_chain
from engine.workspace import suggest


class RenderMode(StrEnum):
    """Which form of a body an environment renders."""

    TEXT = "text"
    HTML = "html"


class FieldMap(dict[str, Any]):
    """The fields of ``contact``, ``account``, ...: knows its name for error messages."""

    def __init__(self, path: str, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.path = path


class UnknownField(StrictUndefined):
    """An undefined value whose error names the valid fields (``did you mean ...``)."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        owner, name = self._undefined_obj, self._undefined_name
        if self._undefined_hint is None and isinstance(owner, FieldMap) and isinstance(name, str):
            return f"{owner.path} has no field '{name}'; {suggest(name, sorted(owner))}"
        return str(super()._undefined_message)


class MissingValue(UnknownField):
    """A field this contact has no value for: false in ``if``, an error when printed.

    ``default(...)`` replaces it, as for any undefined value.
    """

    __slots__ = ()

    def __bool__(self) -> bool:  # type: ignore[override]  # StrictUndefined raises here
        return False


def missing(path: str) -> MissingValue:
    """The stand-in for an empty ``path`` (e.g. ``contact.first_name``)."""
    return MissingValue(
        hint=f"{path} is empty (some contacts have none); write {{{{ {path} | default('...') }}}}"
    )


def babel_locale(language: str) -> Locale:
    """The babel locale for a template language (``da`` -> Danish); English if unknown."""
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


class PartialLoader(BaseLoader):
    """Serves ``_partials/*.md`` (locale first) and ``_layouts/*.html`` from ``templates/``."""

    def __init__(self, root: Path, language: str | None) -> None:
        self.root = root.resolve()
        self._language = language

    def get_source(
        self, environment: Any, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        parts = template.split("/")
        if len(parts) < 2 or parts[0] not in (PARTIALS_DIR, LAYOUTS_DIR) or ".." in parts:
            raise TemplateNotFound(template)
        path = self.find(template)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateNotFound(template) from exc
        return text, f"templates/{path.relative_to(self.root).as_posix()}", lambda: True

    def find(self, template: str) -> Path:
        """The file serving ``template``, the language's own version first."""
        base = self.root / template
        stem, dot, suffix = base.name.rpartition(".")
        if dot:
            for locale in locale_chain(self._language)[:-1]:
                candidate = base.with_name(f"{stem}.{locale}.{suffix}")
                if candidate.is_file():
                    return candidate
        if base.is_file() and base.resolve().is_relative_to(self.root):
            return base
        raise TemplateNotFound(template)


class _BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox, also refusing ``*`` and ``**`` that would build huge values."""

    intercepted_binops = frozenset(("*", "**"))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > _MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is too large (at most {_MAX_EXPONENT})")
        if operator == "*" and _repeats(left, right) > _MAX_REPEAT:
            raise SecurityError(f"the result would be too long (at most {_MAX_REPEAT:,} items)")
        return super().call_binop(context, operator, left, right)


def _repeats(left: Any, right: Any) -> int:
    """The length a sequence repetition would have (0 for multiplying numbers)."""
    for sequence, times in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple) and isinstance(times, int):
            return len(sequence) * times
    return 0


_MAX_EXPONENT = 64
_MAX_REPEAT = 100_000
# Jinja's default globals that no email needs; fewer objects, less to reach through.
_UNUSED_GLOBALS = ("lipsum", "cycler", "joiner")


def make_environment(root: Path, mode: RenderMode, language: str) -> SandboxedEnvironment:
    """A sandboxed, strict environment for one output form and one language."""
    env = _BoundedSandbox(
        loader=PartialLoader(root, language),
        undefined=UnknownField,
        autoescape=mode is RenderMode.HTML,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    for name in _UNUSED_GLOBALS:
        env.globals.pop(name, None)
    locale = babel_locale(language)
    env.filters.update(
        date=lambda value, format="long": format_date(_as_date(value), format, locale=locale),
        datetime=lambda value, format="medium": format_datetime(value, format, locale=locale),
        number=lambda value, digits=None: _number(value, digits, locale),
        currency=lambda value, code: format_currency(value, code, locale=locale),
        percent=lambda value: format_percent(value, locale=locale),
    )
    return env


def compile_template(env: SandboxedEnvironment, source: str, filename: str) -> Template:
    """Compile ``source`` so its errors and tracebacks name ``filename``.

    The code objects are kept (as Jinja's bytecode cache would) since ``check`` and the
    workers compile the same templates again in every process and every run.
    """
    key = (bool(env.autoescape), source, filename)
    code = _CODE_CACHE.get(key)
    if code is None:
        code = env.compile(source, name=filename, filename=filename)
        if len(_CODE_CACHE) >= _CODE_CACHE_SIZE:
            _CODE_CACHE.pop(next(iter(_CODE_CACHE)))
        _CODE_CACHE[key] = code
    return env.template_class.from_code(env, code, env.make_globals(None), None)


_CODE_CACHE: dict[tuple[bool, str, str], CodeType] = {}
_CODE_CACHE_SIZE = 4096


def error_location(exc: BaseException) -> tuple[str | None, int | None]:
    """The innermost template file and line of a rendering error."""
    where: tuple[str | None, int | None] = (
        getattr(exc, "filename", None),
        getattr(exc, "lineno", None),
    )
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith("templates/"):
            where = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return where


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    raise TypeError(f"date expects a date, got {type(value).__name__}")


def _number(value: Any, digits: int | None, locale: Locale) -> str:
    if digits is None:
        return str(format_decimal(value, locale=locale))
    return str(format_decimal(Decimal(str(value)), f"#,##0.{'0' * digits}", locale=locale))
