"""Rendering one message: the compiled template, the contact's data, the per-message links."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from engine.errors import SalescycleError
from engine.templating.catalog import TemplateCatalog
from engine.templating.compiler import (
    CompiledTemplate,
    MessageFormat,
    TemplateCompileError,
    compile_source,
    one_line,
)
from engine.templating.environment import (
    RenderMode,
    error_location,
    make_environment,
)
from engine.tracking import MessageLinks, TrackingLinks

_TRACKED_SCHEMES = ("https://", "http://")


class TemplateRenderError(SalescycleError):
    """A template failed for one message; names the file and line when known."""

    def __init__(self, shown: str | None, line: int | None, message: str) -> None:
        self.shown = shown
        self.line = line
        self.reason = message
        where = f"{shown}:{line}: " if shown and line else f"{shown}: " if shown else ""
        super().__init__(f"{where}{message}")


@dataclass(frozen=True)
class TrackedLink:
    """A link that was in a message; a click token points at it by position."""

    url: str
    tag: str | None


@dataclass(frozen=True)
class RenderedMessage:
    """What one template made for one contact: the parts, and the links in them."""

    template: str
    variant: str
    language: str
    format: MessageFormat
    subject: str
    preheader: str
    text: str
    html: str | None
    links: tuple[TrackedLink, ...]


class LinkRecorder:
    """The ``link(url, tag=...)`` helper of one message: checks, numbers and tracks links."""

    def __init__(self, links: MessageLinks) -> None:
        self._links = links
        self._index: dict[tuple[str, str | None], int] = {}

    def __call__(self, url: Any, tag: str | None = None) -> str:
        text = str(url).strip()
        if not text.lower().startswith(_TRACKED_SCHEMES):
            raise TemplateError(f"link() needs an http:// or https:// URL, got {text!r}")
        index = self._index.setdefault((text, tag), len(self._index))
        return self._links.click_url(index)

    def recorded(self) -> tuple[TrackedLink, ...]:
        return tuple(TrackedLink(url, tag) for url, tag in self._index)


class TemplateRenderer:
    """Renders workspace templates; compiled forms are cached per name, language and format."""

    def __init__(self, catalog: TemplateCatalog, default_locale: str, links: TrackingLinks) -> None:
        self.catalog = catalog
        self.default_locale = default_locale
        self._links = links
        self._envs: dict[tuple[RenderMode, str], SandboxedEnvironment] = {}
        self._compiled: dict[tuple[str, str, str | None, MessageFormat], CompiledTemplate] = {}

    def environment(self, mode: RenderMode, language: str) -> SandboxedEnvironment:
        """The (cached) environment for one output form and language."""
        key = (mode, language)
        if key not in self._envs:
            self._envs[key] = make_environment(self.catalog.root, mode, language)
        return self._envs[key]

    def compiled(
        self, name: str, variant: str, locale: str | None, message_format: MessageFormat
    ) -> CompiledTemplate:
        """The compiled template for a contact's locale; :class:`TemplateRenderError` if none."""
        key = (name, variant, locale, message_format)
        found = self._compiled.get(key)
        if found is None:
            try:
                source = self.catalog.pick(name, variant, locale)
            except KeyError as exc:
                raise TemplateRenderError(None, None, str(exc.args[0])) from None
            language = source.locale or self.default_locale
            try:
                found = compile_source(
                    source,
                    self.environment(RenderMode.TEXT, language),
                    self.environment(RenderMode.HTML, language),
                    language,
                    message_format,
                )
            except TemplateCompileError as exc:
                raise TemplateRenderError(exc.shown, exc.line, str(exc)) from None
            self._compiled[key] = found
        return found

    def render(
        self,
        compiled: CompiledTemplate,
        variables: Mapping[str, Any],
        links: MessageLinks,
        today: dt.date,
    ) -> RenderedMessage:
        """Render one message; any template failure is a :class:`TemplateRenderError`."""
        recorder = LinkRecorder(links)
        context = self._context(variables, recorder, links, today)
        source = compiled.source
        try:
            rendered = _render(compiled.parts, context, source.shown, None)
        except TemplateRenderError as exc:
            raise (self.diagnose(compiled, context) or [exc])[0] from None
        subject, preheader, text, *html = rendered.split(compiled.separator)
        return RenderedMessage(
            source.name,
            source.variant,
            compiled.language,
            compiled.format,
            one_line(subject),  # contact data must not add lines (headers) to a header
            one_line(preheader),
            text,
            html[0] if html else None,
            recorder.recorded(),
        )

    def problems(
        self, compiled: CompiledTemplate, variables: Mapping[str, Any], today: dt.date
    ) -> list[TemplateRenderError]:
        """Every part's failure for these variables: subject, preheader and body apart."""
        links = self._links.for_message("check")
        context = self._context(variables, LinkRecorder(links), links, today)
        found = self.diagnose(compiled, context)
        if found:
            return found
        try:
            self.render(compiled, variables, links, today)
        except TemplateRenderError as exc:
            found.append(exc)
        return found

    def diagnose(
        self, compiled: CompiledTemplate, context: Mapping[str, Any]
    ) -> list[TemplateRenderError]:
        """The failures of subject, preheader and the body as written, each on its line."""
        source = compiled.source
        found = []
        for part, line in (("subject", source.key_lines.get("subject")),
                           ("preheader", source.key_lines.get("preheader")),
                           ("body", None)):  # fmt: skip
            try:
                _render(getattr(compiled, part), context, source.shown, line)
            except TemplateRenderError as exc:
                found.append(exc)
        return found

    def _context(
        self,
        variables: Mapping[str, Any],
        recorder: LinkRecorder,
        links: MessageLinks,
        today: dt.date,
    ) -> dict[str, Any]:
        return {
            **variables,
            "link": recorder,
            "today": today,
            "unsubscribe_url": links.unsubscribe_url,
            "open_url": links.open_url,
        }


def _render(
    template: Template | str, context: Mapping[str, Any], shown: str, line: int | None
) -> str:
    if isinstance(template, str):
        return template  # a subject or preheader without Jinja
    try:
        return template.render(context)
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        where, at = error_location(exc)
        if where == shown and line is not None:
            at = line  # subject and preheader are compiled as one line of their own
        raise TemplateRenderError(where or shown, at, _describe(exc)) from None


def _describe(exc: BaseException) -> str:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, TemplateError):
        return message
    return f"{type(exc).__name__}: {message}"
