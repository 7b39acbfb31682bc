"""Compiling a template once into the Jinja templates every message renders.

All work that does not depend on the contact happens here, once per template,
language and format: partials are expanded, Markdown is converted, the layout is
wrapped around the body, every link is routed through ``link()`` and the CSS is
inlined (css-inline on the document with its Jinja swapped for placeholders,
since inlining moves Jinja blocks that sit between table rows).
"""

from __future__ import annotations

import functools
import html
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

import css_inline
from jinja2 import Template, TemplateNotFound, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from engine.templating.catalog import LAYOUTS_DIR, TemplateSource
from engine.templating.environment import PartialLoader, compile_template
from engine.templating.footer import html_footer, text_footer
from engine.templating.markdown import JINJA, PLACEHOLDER, protect_jinja, restore_jinja
from engine.templating.markdown import to_html as markdown_to_html
from engine.templating.markdown import to_text as markdown_to_text

_INCLUDE = re.compile(r"\{%-?\s*include\s+(['\"])(_partials/[^'\"]+)\1\s*-?%\}")
_CONTENT_SLOT = re.compile(r"\{\{-?\s*content\s*-?\}\}")
_PREHEADER_SLOT = re.compile(r"\{\{-?\s*preheader\s*-?\}\}")
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_HREF = re.compile(r"""(\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_UNTRACKED = re.compile(r"^(mailto:|tel:|#|\{\{-?\s*(unsubscribe_url|link\(|open_url))", re.I)
_MAX_INCLUDE_DEPTH = 5
# Between the parts of one render: not whitespace (a "{%-" would strip it), and random
# per process, so contact data cannot forge it (and compiled code is reused in a process).
_SEPARATOR = f"\x00{secrets.token_hex(8)}\x00"
_INLINER = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False)


class MessageFormat(StrEnum):
    """``text``: plain text only; ``html``: layout, inlined CSS, pixel, tracked links."""

    TEXT = "text"
    HTML = "html"


class TemplateCompileError(Exception):
    """A template cannot be compiled; carries the file and line to report."""

    def __init__(self, shown: str, line: int | None, message: str) -> None:
        super().__init__(message)
        self.shown = shown
        self.line = line


@dataclass(frozen=True)
class CompiledTemplate:
    """The Jinja templates of one template, language and format.

    ``parts`` renders subject, preheader, text and (for html) the HTML document in one
    call, joined by ``separator``; a render has a fixed cost, so one instead of four
    matters at 100,000 messages. ``subject``, ``preheader`` and ``body`` (the Markdown
    as written) exist apart so an error can be located on its file's line.
    """

    source: TemplateSource
    language: str
    format: MessageFormat
    parts: Template
    separator: str
    subject: Template | str  # a str when it has no Jinja
    preheader: Template | str
    body: Template


def compile_source(
    source: TemplateSource,
    env_text: SandboxedEnvironment,
    env_html: SandboxedEnvironment,
    language: str,
    message_format: MessageFormat,
) -> CompiledTemplate:
    """Compile ``source`` for ``message_format``; :class:`TemplateCompileError` if it cannot."""
    loader = env_text.loader
    assert isinstance(loader, PartialLoader)
    line = source.key_lines.get("subject")
    try:
        subject = _line_template(env_text, source.subject, source.shown)
        line = source.key_lines.get("preheader")
        preheader = _line_template(env_text, source.preheader, source.shown)
        line = None
        body = compile_template(env_text, source.body, source.shown)  # lines as in the file
        expanded = expand_partials(source.body, loader, source.shown)
        text = markdown_to_text(expanded).rstrip("\n") + text_footer(language)
        separator = _SEPARATOR
        lines = [one_line(source.subject), one_line(source.preheader), text]
        if message_format is MessageFormat.TEXT:
            parts = compile_template(env_text, separator.join(lines), source.shown)
        else:
            document = html_document(source, markdown_to_html(expanded), loader, language)
            head = "{% autoescape false %}" + separator.join(lines) + "{% endautoescape %}"
            parts = compile_template(env_html, head + separator + document, source.shown)
    except TemplateSyntaxError as exc:
        line = exc.lineno if exc.filename == source.shown and line is None else line
        raise TemplateCompileError(exc.filename or source.shown, line, exc.message or "") from exc
    return CompiledTemplate(
        source, language, message_format, parts, separator, subject, preheader, body
    )


def expand_partials(body: str, loader: PartialLoader, shown: str, depth: int = 0) -> str:
    """``{% include '_partials/x.md' %}`` replaced by the partial's text, for its language."""

    def expand(match: re.Match[str]) -> str:
        if depth >= _MAX_INCLUDE_DEPTH:
            raise TemplateCompileError(shown, None, "partials include each other too deeply")
        try:
            path = loader.find(match.group(2))
            text = path.read_text(encoding="utf-8-sig")
        except (TemplateNotFound, OSError, UnicodeDecodeError):
            line = body.count("\n", 0, match.start()) + 1
            raise TemplateCompileError(shown, line, f"unknown partial '{match.group(2)}'") from None
        return expand_partials(text.rstrip("\n"), loader, shown, depth + 1)

    return _INCLUDE.sub(expand, body)


def html_document(
    source: TemplateSource, body_html: str, loader: PartialLoader, language: str
) -> str:
    """The layout around the body, the footer and pixel added, links tracked, CSS inlined."""
    layout_name = f"{LAYOUTS_DIR}/{source.layout}.html"
    layout_line = source.key_lines.get("layout")
    try:
        layout_path = loader.find(layout_name)
        layout = layout_path.read_text(encoding="utf-8-sig")
    except (TemplateNotFound, OSError, UnicodeDecodeError):
        raise TemplateCompileError(
            source.shown,
            layout_line,
            f"unknown layout '{source.layout}'; {_layout_choices(loader)}",
        ) from None
    layout_shown = f"templates/{LAYOUTS_DIR}/{layout_path.name}"
    if not _CONTENT_SLOT.search(layout):
        raise TemplateCompileError(layout_shown, None, "the layout has no {{ content }}")
    document = _CONTENT_SLOT.sub(lambda _: body_html, layout, count=1)
    preheader = one_line(source.preheader)
    document = _PREHEADER_SLOT.sub(lambda _: preheader, document)
    footer = html_footer(language)
    if _BODY_END.search(document):
        document = _BODY_END.sub(lambda m: footer + m.group(0), document, count=1)
    else:
        document += footer
    return _inline_css(track_links(document), layout_shown)


def track_links(document: str) -> str:
    """Route every ``href`` through ``link()``, except unsubscribe, mailto and anchors."""

    def route(match: re.Match[str]) -> str:
        prefix, quote, value = match.groups()
        if _UNTRACKED.match(value.strip()) or "{%" in value:
            return match.group(0)
        return f"{prefix}{quote}{{{{ link({_jinja_concat(value.strip())}) }}}}{quote}"

    return _HREF.sub(route, document)


def _jinja_concat(value: str) -> str:
    """A Jinja expression for an href mixing literal text and ``{{ expressions }}``."""
    parts = []
    position = 0
    for match in JINJA.finditer(value):
        if match.start() > position:
            parts.append(_jinja_string(html.unescape(value[position : match.start()])))
        parts.append(f"({match.group(0)[2:-2].strip(' -')})")
        position = match.end()
    if position < len(value):
        parts.append(_jinja_string(html.unescape(value[position:])))
    return " ~ ".join(parts) or "''"


def _jinja_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@functools.lru_cache(maxsize=256)  # pure, and the costliest step of compiling
def _inline_css(document: str, layout_shown: str) -> str:
    protected, chunks = protect_jinja(document)
    inlined = _INLINER.inline(protected)
    before = PLACEHOLDER.findall(protected)
    if PLACEHOLDER.findall(inlined) != before:
        raise TemplateCompileError(
            layout_shown,
            None,
            "a Jinja tag sits where HTML does not allow text (e.g. between table rows), so "
            "inlining the CSS would move it; put it inside a cell",
        )
    return restore_jinja(inlined, chunks)


def _line_template(env: SandboxedEnvironment, text: str, shown: str) -> Template | str:
    line = one_line(text)
    return compile_template(env, line, shown) if "{" in line else line


def one_line(text: str) -> str:
    """``text`` with every run of whitespace, line breaks included, made one space."""
    return " ".join(text.split())


def _layout_choices(loader: PartialLoader) -> str:
    names = sorted(p.stem for p in (loader.root / LAYOUTS_DIR).glob("*.html"))
    return f"valid: {', '.join(names)}" if names else "no layouts in templates/_layouts/"
