"""Markdown bodies with Jinja inside them, turned into Jinja templates for HTML and text.

Markdown is converted once per template, before any contact data exists: each Jinja
construct is swapped for an inert placeholder, the Markdown is converted, and the
Jinja comes back. So contact data is never read as Markdown or as Jinja, and the
per-message work is one Jinja render. markdown-it-py has no plain-text renderer, so
``to_text`` walks its tokens (links become ``text (url)``, lists keep their markers).
"""

from __future__ import annotations

import functools
import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
PLACEHOLDER = re.compile(r"sjx(\d+)xjs")
_STATEMENT_PARAGRAPH = re.compile(r"<p>((?:sjx\d+xjs\s*)+)</p>\n?")
_MARKDOWN = MarkdownIt("commonmark", {"html": True, "typographer": False})


@functools.lru_cache(maxsize=1024)  # pure; check and every worker convert the same bodies
def to_html(source: str) -> str:
    """The HTML fragment of a Markdown body, its Jinja kept as Jinja."""
    protected, chunks = protect_jinja(source)
    html = _MARKDOWN.render(protected)
    html = _STATEMENT_PARAGRAPH.sub(lambda m: _unwrap_statements(m, chunks), html)
    return restore_jinja(html, chunks)


@functools.lru_cache(maxsize=1024)
def to_text(source: str) -> str:
    """The plain-text form of a Markdown body, its Jinja kept as Jinja."""
    protected, chunks = protect_jinja(source)
    text = _TextWriter().write(_MARKDOWN.parse(protected))
    return restore_jinja(text, chunks)


def protect_jinja(source: str) -> tuple[str, list[str]]:
    """``source`` with each Jinja construct replaced by an inert placeholder, and the constructs."""
    chunks: list[str] = []

    def swap(match: re.Match[str]) -> str:
        chunks.append(match.group(0))
        return f"sjx{len(chunks) - 1}xjs"

    return JINJA.sub(swap, source), chunks


def restore_jinja(text: str, chunks: list[str]) -> str:
    """Put the Jinja constructs back where :func:`protect_jinja` left placeholders."""
    return PLACEHOLDER.sub(lambda m: chunks[int(m.group(1))], text)


def _unwrap_statements(match: re.Match[str], chunks: list[str]) -> str:
    """A paragraph holding only ``{% ... %}`` tags is the tags, not a paragraph."""
    indices = [int(i) for i in PLACEHOLDER.findall(match.group(1))]
    if all(not chunks[i].startswith("{{") for i in indices):
        return match.group(1).strip() + "\n"
    return match.group(0)


class _TextWriter:
    """Plain text from markdown-it block tokens."""

    def __init__(self) -> None:
        self._lists: list[list[int]] = []  # per open list: [next number] or [] for bullets
        self._quote_depth = 0
        self._prefix = ""
        self._tight = False

    def write(self, tokens: list[Token]) -> str:
        out: list[str] = []
        previous_tight = False
        for token in tokens:
            text = self._visit(token)
            if token.type in ("bullet_list_close", "ordered_list_close"):
                previous_tight = False  # the next block starts after a blank line
            if text is None:
                continue
            if out:
                out.append("\n" if self._tight and previous_tight else "\n\n")
            out.append(self._quoted(text))
            previous_tight = self._tight
        return "".join(out) + "\n"

    def _visit(self, token: Token) -> str | None:
        """The text of a block token; ``None`` for tokens that only change state."""
        kind = token.type
        if kind == "paragraph_open":
            self._tight = token.hidden  # paragraphs of a tight list item are hidden
        elif kind in ("bullet_list_open", "ordered_list_open"):
            self._lists.append([int(token.attrGet("start") or 1)] if kind[0] == "o" else [])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            self._lists.pop()
        elif kind in ("blockquote_open", "blockquote_close"):
            self._quote_depth += 1 if kind.endswith("open") else -1
        elif kind == "list_item_open":
            self._prefix = self._item_marker()
        elif kind in ("inline", "code_block", "fence", "html_block", "hr"):
            body = {"inline": _inline_text(token), "hr": "---"}.get(kind, token.content)
            text, self._prefix = self._prefix + body.rstrip("\n"), ""
            if kind != "inline":
                self._tight = False
            return text
        return None

    def _item_marker(self) -> str:
        indent = "  " * (len(self._lists) - 1)
        numbers = self._lists[-1]
        if not numbers:
            return f"{indent}- "
        numbers[0] += 1
        return f"{indent}{numbers[0] - 1}. "

    def _quoted(self, text: str) -> str:
        if not self._quote_depth:
            return text
        marker = "> " * self._quote_depth
        return "\n".join(marker + line for line in text.split("\n"))


def _inline_text(token: Token) -> str:
    parts: list[str] = []
    hrefs: list[tuple[str, int]] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline", "html_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            parts.append(child.content)
        elif child.type == "link_open":
            hrefs.append((str(child.attrGet("href") or ""), len(parts)))
        elif child.type == "link_close" and hrefs:
            href, start = hrefs.pop()
            label = "".join(parts[start:])
            parts.append("" if label == href else f" ({href})")
    return "".join(parts)
