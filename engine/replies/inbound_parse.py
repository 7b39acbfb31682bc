"""SendGrid Inbound Parse posts (as stored raw in the webhook inbox) back to MIME messages.

With "send raw" on, the post's ``email`` field is the whole message as received.
Without it, SendGrid posts the message in pieces (``headers``, ``text``, ``html``,
``charsets``, ``attachment-info`` and one file part per attachment); they are put back
together into an equivalent MIME message, so that everything after this module reads
one format. The ``envelope`` field names the SMTP recipients, where the reply token is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from email import errors, policy
from email.message import EmailMessage, MIMEPart
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from engine.errors import SalescycleError

# Headers the rebuilt body replaces: they described the original MIME structure.
_BODY_HEADERS = re.compile(rb"^(content-type|content-transfer-encoding|mime-version)\s*:", re.I)
_ATTACHMENT_FIELD = re.compile(r"attachment\d+")


class InboundPostError(SalescycleError):
    """A stored Inbound Parse post is not a multipart form holding a message."""


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)

    @property
    def name(self) -> str:
        return self._disposition().get(b"name", b"").decode("utf-8", "replace")

    @property
    def filename(self) -> str | None:
        found = self._disposition().get(b"filename")
        return found.decode("utf-8", "replace") if found is not None else None

    def _disposition(self) -> dict[bytes, bytes]:
        return parse_options_header(self.headers.get("content-disposition", ""))[1]


@dataclass(frozen=True)
class InboundPost:
    """One Inbound Parse post: the message as MIME, and its SMTP envelope."""

    mime: bytes
    envelope_to: tuple[str, ...]
    envelope_from: str | None
    sent_raw: bool  # SendGrid's "send raw" was on: ``mime`` is byte for byte what arrived


def raw_mime_of(body: bytes, content_type: str) -> bytes:
    """The whole MIME message of an Inbound Parse post (raises ``InboundPostError``)."""
    return read_post(body, content_type).mime


def read_post(body: bytes, content_type: str) -> InboundPost:
    """The message and envelope of an Inbound Parse post (raises ``InboundPostError``)."""
    fields, files = _form(body, content_type)
    envelope = _json(fields.get("envelope"))
    to = envelope.get("to", [])
    envelope_to = tuple(str(a).strip() for a in ([to] if isinstance(to, str) else to) if a)
    sender = envelope.get("from")
    envelope_from = str(sender) if sender else None
    if "email" in fields:
        return InboundPost(bytes(fields["email"]), envelope_to, envelope_from, True)
    if not any(name in fields for name in ("headers", "text", "html")):
        raise InboundPostError("the post has neither an 'email' field nor parsed message fields")
    return InboundPost(_rebuilt(fields, files), envelope_to, envelope_from, False)


def _form(body: bytes, content_type: str) -> tuple[dict[str, bytes], list[_Part]]:
    """Plain fields by name, and the file parts (attachments)."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InboundPostError(f"not a multipart/form-data post (Content-Type: {content_type!r})")
    parts = _parts(body, boundary)
    fields = {p.name: bytes(p.data) for p in parts if p.filename is None and p.name}
    return fields, [p for p in parts if p.filename is not None]


def _parts(body: bytes, boundary: bytes) -> list[_Part]:
    parts: list[_Part] = []
    header: list[bytes] = [b"", b""]

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def on_header_end() -> None:
        name, value = (h.decode("utf-8", "replace") for h in header)
        parts[-1].headers[name.strip().lower()] = value.strip()
        header[:] = [b"", b""]

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data += data[start:end]

    callbacks: Any = {
        "on_part_begin": lambda: parts.append(_Part()),
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except (MultipartParseError, ValueError) as exc:
        raise InboundPostError(f"the multipart form cannot be read: {exc}") from None
    return parts


def _rebuilt(fields: dict[str, bytes], files: list[_Part]) -> bytes:
    """A MIME message from SendGrid's parsed fields: the original headers, a new body."""
    charsets = _json(fields.get("charsets"))
    content = MIMEPart(policy=policy.SMTP)
    text, markup = _field(fields, charsets, "text"), _field(fields, charsets, "html")
    if text is not None or markup is None:
        content.set_content(text or "")
    if markup is not None:
        if text is None:
            content.set_content(markup, subtype="html")
        else:
            content.add_alternative(markup, subtype="html")
    info = _json(fields.get("attachment-info"))
    for part in sorted(files, key=lambda p: p.name):
        details = info.get(part.name) if _ATTACHMENT_FIELD.fullmatch(part.name) else None
        _attach(content, part, details)
    return _original_headers(fields, charsets) + b"MIME-Version: 1.0\r\n" + content.as_bytes()


def _attach(content: MIMEPart, part: _Part, info: Any) -> None:
    details = info if isinstance(info, dict) else {}
    kind = str(details.get("type") or part.headers.get("content-type") or "")
    maintype, _, subtype = kind.partition("/")
    if not maintype or not subtype:
        maintype, subtype = "application", "octet-stream"
    filename = str(details.get("filename") or part.filename or part.name)
    content.add_attachment(bytes(part.data), maintype=maintype, subtype=subtype, filename=filename)


def _original_headers(fields: dict[str, bytes], charsets: dict[str, Any]) -> bytes:
    """The ``headers`` field without its MIME structure headers, in CRLF lines.

    Without that field, From, To and Subject come from their own fields.
    """
    block = fields.get("headers")
    if block is None:
        lines = []
        for name in ("from", "to", "cc", "subject"):
            value = _field(fields, charsets, name)
            if value:
                lines.append(_header_line(name.capitalize(), " ".join(value.split())))
        return b"".join(lines)
    kept: list[bytes] = []
    dropping = False
    for line in block.replace(b"\r\n", b"\n").split(b"\n"):
        if not line.strip():
            continue
        if line[:1] in (b" ", b"\t"):  # a folded continuation of the line before
            if not dropping:
                kept.append(line)
            continue
        dropping = bool(_BODY_HEADERS.match(line))
        if not dropping:
            kept.append(line)
    return b"".join(line + b"\r\n" for line in kept)


def _header_line(name: str, value: str) -> bytes:
    """One header as the email package writes it; as raw text when it cannot parse the
    value (the stdlib's address parser fails on some malformed ones, e.g. a lone ``<``),
    so the message is kept and the classifier reads what there is."""
    made = EmailMessage(policy=policy.SMTP)
    try:
        made[name] = value
        return made.as_bytes().split(b"\r\n\r\n", 1)[0] + b"\r\n"
    except (errors.HeaderParseError, IndexError, ValueError, TypeError):
        printable = value.encode("ascii", "replace").replace(b"\r", b" ").replace(b"\n", b" ")
        return f"{name}: ".encode() + printable + b"\r\n"


def _field(fields: dict[str, bytes], charsets: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    charset = str(charsets.get(name) or "utf-8")
    try:
        return value.decode(charset, errors="replace")
    except LookupError:
        return value.decode("utf-8", errors="replace")


def _json(value: bytes | None) -> dict[str, Any]:
    if value is None:
        return {}
    try:
        parsed = json.loads(value.decode("utf-8", errors="replace"))
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
