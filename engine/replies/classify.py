"""``classify``: one raw inbound message to a ``Classification``, a pure function.

The order decides: a bounce first (most bounces also carry ``Auto-Submitted``), then an
auto-reply, then an unsubscribe request in words, then a person's reply by the intent
rules of ``config/replies.yaml``. The webhook path, ``salescycle inbound classify`` and
the tests all call this one function.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from email import policy
from email.errors import MessageError
from email.message import Message
from email.parser import BytesParser

from engine.replies.autoreply import detect_auto_reply
from engine.replies.bounces import detect_bounce, is_delivery_report
from engine.replies.dates import return_date
from engine.replies.headers import MessageHeaders, read_headers
from engine.replies.model import BouncedAddress, Classification, InboundKind
from engine.replies.rules import ReplyRules
from engine.replies.text import message_text, own_words
from engine.vocabulary import ReplyIntent

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# What the email package raises on messages its authors did not foresee.
_MIME_ERRORS = (MessageError, LookupError, UnicodeError, ValueError, TypeError, IndexError,
                AttributeError, AssertionError)  # fmt: skip
_PARSER = BytesParser(policy=policy.default)


def classify(raw: bytes, rules: ReplyRules, envelope_to: Sequence[str] = ()) -> Classification:
    """What ``raw`` (a whole RFC 5322 message) is: bounce, auto-reply, unsubscribe or reply.

    ``envelope_to`` (the SMTP recipients, where the reply token is) joins the recipients.
    Never raises on bad input: a message the email package cannot read is a reply of
    intent ``other`` whose reason says so, so that a person's words are never lost.
    """
    message = _PARSER.parsebytes(raw)
    headers = read_headers(message, envelope_to)
    try:
        return _classify(message, headers, rules)
    except _MIME_ERRORS as exc:
        reason = f"unreadable MIME ({type(exc).__name__}: {exc}); read as a reply"
        return _result(headers, InboundKind.REPLY, ReplyIntent.OTHER, "", reason)


def _classify(message: Message, headers: MessageHeaders, rules: ReplyRules) -> Classification:
    bounce = detect_bounce(message, headers.sender, headers.subject)
    if bounce is not None:
        text = own_words(message_text(message))
        return _result(headers, InboundKind.BOUNCE, None, text, bounce.reason,
                       bounced=bounce.addresses)  # fmt: skip
    full = _Lazy(message)
    automatic = _automatic(message, headers)
    auto = detect_auto_reply(headers.all, headers.subject, full.text, rules.out_of_office)
    if automatic is not None or auto is not None:
        reason = automatic or (auto.reason if auto else "")
        text = own_words(full.text())
        sent_on = headers.sent_at.date() if headers.sent_at else None
        returns_on = return_date(text, sent_on) if automatic is None else None
        return _result(headers, InboundKind.AUTO_REPLY, None, text, reason,
                       language=auto.language if auto else None, returns_on=returns_on)  # fmt: skip
    text = own_words(full.text())
    unsubscribe = rules.unsubscribe_request(text)
    if unsubscribe is not None:
        reason = f"phrase '{unsubscribe.phrase}' ({unsubscribe.language}) asks to unsubscribe"
        return _result(headers, InboundKind.UNSUBSCRIBE_REQUEST, ReplyIntent.UNSUBSCRIBE_REQUEST,
                       text, reason, language=unsubscribe.language)  # fmt: skip
    match = rules.intent_of(text)
    if match is None:
        return _result(headers, InboundKind.REPLY, ReplyIntent.OTHER, text, "no intent phrase")
    reason = f"phrase '{match.phrase}' ({match.language}) of rule {match.intent}"
    referrals = _referrals(text, headers) if match.intent is ReplyIntent.REFERRAL else ()
    return _result(headers, InboundKind.REPLY, match.intent, text, reason,
                   language=match.language, referrals=referrals)  # fmt: skip


def _automatic(message: Message, headers: MessageHeaders) -> str | None:
    """A machine's message that is neither a bounce nor an out-of-office."""
    if message.get_content_type() == "multipart/report":
        kind = str(message.get_param("report-type", "")).lower() or "unknown"
        if is_delivery_report(message):
            return "delivery status report without failed addresses"
        return f"automatic report (multipart/report; report-type={kind})"
    return None


class _Lazy:
    """The message's text, read once and only when a header did not decide."""

    def __init__(self, message: Message) -> None:
        self._message = message
        self._text: str | None = None

    def text(self) -> str:
        if self._text is None:
            self._text = message_text(self._message)
        return self._text


def _referrals(text: str, headers: MessageHeaders) -> tuple[str, ...]:
    """Addresses the person names in their own words, not theirs and not ours."""
    ours = {headers.sender, *headers.to}
    found = (address.lower().rstrip(".") for address in _EMAIL.findall(text))
    return tuple(dict.fromkeys(a for a in found if a not in ours))


def _result(
    headers: MessageHeaders,
    kind: InboundKind,
    intent: ReplyIntent | None,
    text: str,
    reason: str,
    *,
    language: str | None = None,
    bounced: tuple[BouncedAddress, ...] = (),
    returns_on: dt.date | None = None,
    referrals: tuple[str, ...] = (),
) -> Classification:
    return Classification(
        kind=kind,
        intent=intent,
        text=text,
        reason=reason,
        sender=headers.sender,
        recipients=headers.recipients,
        subject=headers.subject,
        message_id=headers.message_id,
        in_reply_to=headers.in_reply_to,
        references=headers.references,
        sent_at=headers.sent_at,
        language=language,
        bounced=bounced,
        returns_on=returns_on,
        referrals=referrals,
    )
