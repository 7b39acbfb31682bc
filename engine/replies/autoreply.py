"""Auto-replies: RFC 3834 headers, the marks Exchange and iCloud leave, out-of-office phrasing.

Phrasing alone is not enough, since people write "I'm on holiday next week" too: it
counts together with ``Precedence: auto_reply|bulk|junk`` or an auto-reply subject.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

# Built-in out-of-office phrasing; config/replies.yaml may add more under auto_reply.phrases.
OUT_OF_OFFICE: dict[str, list[str]] = {
    "en": ["out of office", "out of the office", "away from the office", "away from my desk",
           "on vacation", "on holiday", "on annual leave", "on leave", "currently away",
           "limited access to email", "limited access to my email", "no access to email",
           "will be back", "i am away", "i'm away", "autoreply", "automatic reply"],
    "da": ["ikke på kontoret", "fraværende", "fravær", "på ferie", "holder ferie", "ferie",
           "har fri", "tilbage på kontoret", "begrænset adgang til mail",
           "begrænset adgang til e-mail", "automatisk svar", "autosvar"],
    "sv": ["inte på kontoret", "frånvarande", "frånvaro", "på semester", "semester",
           "ledig", "begränsad tillgång till e-post", "åter på kontoret", "autosvar"],
    "de": ["nicht im büro", "abwesend", "abwesenheit", "abwesenheitsnotiz", "im urlaub",
           "urlaub", "außer haus", "ausser haus", "eingeschränkt erreichbar",
           "nicht erreichbar", "automatische antwort"],
}  # fmt: skip

_EXCHANGE_SUBJECT = re.compile(
    r"^\s*(automatic reply|automatisk svar|autosvar|automatische antwort|"
    r"réponse automatique|risposta automatica|respuesta automática)\s*:",
    re.IGNORECASE,
)
# A subject that says "out of office" lets the body's phrasing decide without headers.
_AUTO_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto[- ]?reply|autosvar|automatisk svar|"
    r"fraværende|frånvarande|abwesend|abwesenheitsnotiz|automatische antwort|vacation|ferie|"
    r"semester|urlaub)\b",
    re.IGNORECASE,
)
_BULK_PRECEDENCE = ("auto_reply", "bulk", "junk")
_AUTO_HEADERS = {"x-autoreply": "X-Autoreply", "x-autorespond": "X-Autorespond",
                 "x-autoresponder": "X-Autoresponder"}  # fmt: skip


class PhraseFinder(Protocol):
    """What out-of-office phrasing is looked up with (a compiled ``PhraseSet``)."""

    def search(self, text: str) -> tuple[str, str] | None: ...


@dataclass(frozen=True)
class AutoReply:
    """Why a message is an auto-reply, and the language of its phrasing when known."""

    reason: str
    language: str | None = None


Headers = Mapping[str, Sequence[str]]  # lower-cased names to their (unfolded) values


def detect_auto_reply(
    headers: Headers, subject: str, text: Callable[[], str], phrases: PhraseFinder
) -> AutoReply | None:
    """The auto-reply mark of a message, or ``None`` for a person's message.

    ``text`` gives the message's text on demand (most messages are decided by headers).
    """
    marked = _header_mark(headers, subject)
    if marked is not None:
        found = phrases.search(text())
        return AutoReply(marked, found[1] if found else None)
    precedence = _first(headers, "precedence").lower()
    weak = None
    if precedence in _BULK_PRECEDENCE:
        weak = f"Precedence: {precedence}"
    elif _AUTO_SUBJECT.match(subject):
        weak = f"subject '{subject.strip()[:60]}'"
    if weak is None:
        return None
    found = phrases.search(text())
    if found is None:
        return None
    phrase, language = found
    return AutoReply(f"{weak} with out-of-office phrase '{phrase}' ({language})", language)


def _header_mark(headers: Headers, subject: str) -> str | None:
    auto_submitted = _first(headers, "auto-submitted")
    if auto_submitted and auto_submitted.split(";")[0].strip().lower() != "no":
        return f"Auto-Submitted: {auto_submitted}"
    for name, shown in _AUTO_HEADERS.items():
        value = _first(headers, name)
        if value and value.lower() not in ("no", "false", "0"):
            return f"{shown}: {value}"
    if _first(headers, "x-apple-action").upper() == "VACATION":
        return "X-Apple-Action: VACATION"
    exchange = _EXCHANGE_SUBJECT.match(subject)
    if exchange and "x-ms-exchange-inbox-rules-loop" in headers:
        return f"subject '{exchange.group(1)}:' with X-MS-Exchange-Inbox-Rules-Loop"
    return None


def _first(headers: Headers, name: str) -> str:
    values = headers.get(name)
    return values[0].strip() if values else ""
