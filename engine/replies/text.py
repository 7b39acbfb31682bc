"""A message's text, and the person's own words in it: quotes and signature taken off.

Quote headers ("On ... wrote:", "Den ... skrev:", Outlook's "From:/Fra:" blocks) are
found by mail-parser-reply. Signatures are cut here instead: the library's Danish
closings ("Tak", "Hilsen") match at the start of any line, so "Tak for din mail. Vi
er interesserede" would lose everything after "Tak".
"""

from __future__ import annotations

import re
from email.message import EmailMessage, Message
from html.parser import HTMLParser

from mailparser_reply.parser import EmailMessage as ReplyMessage

MAX_TEXT = 100_000  # characters read from a body; a huge one is cut, not refused
QUOTE_LANGUAGES = ["en", "da", "sv", "de"]
_NEVER = re.compile(r"(?!)")  # turns off the library's own signature cutting

_SENT_FROM = (r"sent from my|sent from outlook|get outlook for|sendt fra min|sendt fra outlook|"
              r"hent outlook til|skickat från min|skickat från outlook|von meinem .{1,40} gesendet|"
              r"gesendet von meinem|gesendet mit")  # fmt: skip
_CLOSING = (r"best regards|kind regards|warm regards|regards|best wishes|best|cheers|thanks|"
            r"thank you|many thanks|all the best|med venlig hilsen|venlig hilsen|venlige hilsner|"
            r"de bedste hilsner|bedste hilsner|mange hilsner|hilsen|mvh|vh|kh|"
            r"med vänliga hälsningar|vänliga hälsningar|bästa hälsningar|hälsningar|"
            r"mit freundlichen grüßen|freundliche grüße|viele grüße|beste grüße|liebe grüße|"
            r"grüße|gruß|lg|vg|tak|på forhånd tak")  # fmt: skip
# A closing alone on its line ("Best regards," / "Mvh" / "Best, Pat") or a client's
# "Sent from my iPhone"; the signature runs from there to the end.
_SHORT_CLOSING = r"mvh|vh|kh|lg|vg|hilsen|cheers"  # often followed by the name: "Mvh Peter"
_SIGNATURE_START = re.compile(
    rf"^[ \t]*(?:(?P<mark>--[ \t]*|__+|/\w+|(?:{_SENT_FROM})\b.*)"
    rf"|(?:{_CLOSING})[ \t]*(?:[,.!:-][ \t]*(?:\S+[ \t]*){{0,3}})?"
    rf"|(?:{_SHORT_CLOSING})\.?[ \t]+\S+(?:[ \t]+\S+)?)[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_SIGNATURE_LINES = 8  # more lines after a closing: it was not a sign-off
_QUOTED = re.compile(r"^\s*>")


def message_text(message: EmailMessage | Message) -> str:
    """The body as text: the text/plain part, else the text of the html part ("" if none)."""
    try:
        body = message.get_body(("plain", "html")) if isinstance(message, EmailMessage) else None
    except (LookupError, ValueError, TypeError, AttributeError):
        body = None
    if body is None:
        return ""
    text = part_text(body)
    return html_to_text(text) if body.get_content_subtype() == "html" else text


def part_text(part: Message) -> str:
    """One part's content decoded with its charset; undecodable bytes are replaced."""
    try:
        payload = part.get_payload(decode=True)
    except (ValueError, TypeError, AssertionError):
        payload = None
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload[: MAX_TEXT * 4].decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        text = payload[: MAX_TEXT * 4].decode("utf-8", errors="replace")
    return text[:MAX_TEXT]


def own_words(text: str) -> str:
    """The newest reply in ``text``: before the first quote header, without its signature.

    An inline reply (answers between quoted lines under the header) keeps those answers.
    """
    text = text[:MAX_TEXT].replace("\r\n", "\n")
    parsed = ReplyMessage(text=text, languages=list(QUOTE_LANGUAGES), _signature_regex=_NEVER)
    replies = parsed.read().replies
    own = _without_quoted_lines(replies[0].body) if replies else ""
    if len(replies) > 1 and _is_inline(replies[1].body):
        answers = _without_quoted_lines(replies[1].body)
        own = f"{own}\n\n{answers}".strip()
    return _without_signature(own)


def _is_inline(quoted: str) -> bool:
    """Answers between quoted lines, not a quote at the end of the reply."""
    lines = [line for line in quoted.splitlines() if line.strip()]
    marks = [bool(_QUOTED.match(line)) for line in lines]
    first = marks.index(True) if True in marks else len(marks)
    return any(not mark for mark in marks[first:])


def _without_quoted_lines(text: str) -> str:
    kept = (line for line in text.splitlines() if not _QUOTED.match(line))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def _without_signature(text: str) -> str:
    """Cut at a signature mark ("-- ", "Sent from my iPhone"), or at a closing line that
    only a few lines follow (a name, a title, a phone number)."""
    for match in _SIGNATURE_START.finditer(text):
        if match.start() == 0:
            continue
        rest = [line for line in text[match.end() :].splitlines() if line.strip()]
        if match.group("mark") is not None or len(rest) <= _SIGNATURE_LINES:
            return text[: match.start()].rstrip()
    return text.strip()


class _TextExtractor(HTMLParser):
    """Text of an html body: blocks on their own lines, blockquotes as "> " lines."""

    _BLOCKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table", "hr"})
    _SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self.depth = 0
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag == "blockquote":
            self.depth += 1
            self._break()
        elif tag in self._BLOCKS:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag == "blockquote":
            self.depth = max(0, self.depth - 1)
            self._break()
        elif tag in self._BLOCKS:
            self._break()

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        words = " ".join(data.split())
        if not words:
            return
        if self.lines[-1]:
            self.lines[-1] += " " + words
        else:
            self.lines[-1] = "> " * self.depth + words

    def _break(self) -> None:
        self.lines.append("")


def html_to_text(markup: str) -> str:
    """Readable text of an html body (quoted blocks kept, as "> " lines)."""
    extractor = _TextExtractor()
    try:
        extractor.feed(markup[:MAX_TEXT])
        extractor.close()
    except (AssertionError, ValueError):  # malformed markup: what was read so far
        pass
    text = "\n".join(line.strip() for line in extractor.lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
