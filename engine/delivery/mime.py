"""RFC 5322 bytes of a message, for SMTP and the file outbox.

Built with the ``email`` package's compat32 classes: about three times faster than
``EmailMessage`` with the default policy, and they fold and RFC 2047-encode headers
the same way. Bodies are quoted-printable (readable, 7-bit safe) through binascii's
C encoder; lines end in CRLF as SMTP wants.
"""

from __future__ import annotations

import binascii
import json
from email.charset import Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import Compat32
from email.utils import format_datetime, formataddr

from engine.delivery.message import Address, OutboundMessage


class _SmtpPolicy(Compat32):
    """compat32 with CRLF, folding ASCII headers at spaces itself.

    compat32 runs every header through ``email.header.Header`` to fold it, which was
    most of the cost of a message. An ASCII value (display names arrive already
    RFC 2047-encoded by ``formataddr``) folds correctly at its spaces (RFC 5322
    section 2.2.3); only non-ASCII text needs ``Header``.
    """

    def fold_binary(self, name: str, value: str) -> bytes:
        if isinstance(value, str) and value.isascii() and "\n" not in value and "\r" not in value:
            return _fold_at_spaces(name, value, self.max_line_length or 78, self.linesep)
        return super().fold_binary(name, value)


def _fold_at_spaces(name: str, value: str, limit: int, linesep: str) -> bytes:
    lines = [f"{name}:"]
    for word in value.split(" "):
        # fold only before a word, so no line is made of spaces alone
        # and not right after the colon: parsers then keep a leading space in the value
        if word and len(lines[-1]) + 1 + len(word) > limit and lines[-1] != f"{name}:":
            lines.append(f" {word}")
        else:
            lines[-1] += f" {word}"
    return (linesep.join(lines) + linesep).encode("ascii")


SMTP_POLICY = _SmtpPolicy(linesep="\r\n")
_UTF8 = Charset("utf-8")


def to_rfc5322(message: OutboundMessage) -> bytes:
    """The message as bytes an SMTP server accepts (CRLF line endings)."""
    text = _text_part("plain", message.text)
    if message.html is None:
        mime: MIMENonMultipart | MIMEMultipart = text
    else:
        # "=_" never occurs in quoted-printable text, so this boundary cannot clash
        # with the parts and the generator need not search them for a free one.
        mime = MIMEMultipart("alternative", boundary=f"=_part_{message.message_id}")
        mime.attach(text)
        mime.attach(_text_part("html", message.html))
    mime["From"] = _address(message.sender)
    mime["To"] = _address(message.to)
    mime["Reply-To"] = _address(message.reply_to)
    mime["Subject"] = _header("Subject", message.subject)  # type: ignore[assignment]
    mime["Date"] = format_datetime(message.date)
    mime["Message-ID"] = message.rfc_message_id
    for name, value in message.headers:
        mime[name] = _header(name, value)  # type: ignore[assignment]
    # SendGrid's SMTP relay hands these back on events, as custom_args over the API.
    mime["X-SMTPAPI"] = json.dumps({"unique_args": dict(message.custom_args)})
    return mime.as_bytes(policy=SMTP_POLICY)


def _text_part(subtype: str, body: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part["Content-Transfer-Encoding"] = "quoted-printable"
    encoded = binascii.b2a_qp(body.encode("utf-8"), istext=True)
    part.set_payload(encoded.decode("ascii"))
    return part


def _address(address: Address) -> str:
    """``Name <email>``; a non-ASCII name as RFC 2047 words of at most 75 characters each."""
    name = address.name or ""
    if name.isascii():
        return formataddr((name, address.email))
    return f"{' '.join(_encoded_words(name))} <{address.email}>"


def _encoded_words(text: str) -> list[str]:
    """``text`` as encoded words split between its words, each space kept inside a word
    (decoders drop the whitespace between adjacent encoded words, RFC 2047 section 6.2)."""
    words: list[str] = []
    chunk = ""
    for word in text.split(" "):
        candidate = f"{chunk} {word}" if chunk else word
        if chunk and len(_UTF8.header_encode(candidate)) > 75:
            words.append(_UTF8.header_encode(chunk + " "))
            chunk = word
        else:
            chunk = candidate
    return [*words, _UTF8.header_encode(chunk)]


def _header(name: str, value: str) -> str | Header:
    """ASCII values as they are (the policy folds them); others RFC 2047-encoded."""
    if value.isascii():
        return value
    return Header(value, "utf-8", header_name=name)
