"""One message, two forms: RFC 5322 bytes (SMTP, outbox) and a SendGrid Mail Send body.

Both forms are read back with independent parsers (``email`` with the default policy,
``json``) and checked against the message and against each other; the SendGrid body
is validated with SendGrid's own OpenAPI description of Mail Send.

Bodies are compared with line endings normalised: the RFC 5322 form has CRLF line
endings (as SMTP requires), so a ``\\n`` in the message's text comes back as ``\\r\\n``.
"""

from __future__ import annotations

import copy
import datetime as dt
import email.policy
import json
import re
from collections.abc import Callable
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from _support import outbound_message

from engine.delivery import (
    Address,
    OutboundMessage,
    mail_send_json,
    mail_send_problems,
    to_mail_send,
    to_rfc5322,
)
from engine.delivery.sendgrid_schema import mail_send_validator
from engine.templating.compiler import MessageFormat
from engine.templating.compose import MessageIdentity, ThreadParent, compose_message
from engine.templating.render import RenderedMessage, TrackedLink
from engine.tracking import TokenPurpose, TokenSigner, TrackingLinks

SIGNER = TokenSigner(b"exporter-tests-secret-key-0123456789")
LINKS = TrackingLinks(SIGNER, "https://track.example.com", "reply.example.com")
NOW = dt.datetime(2024, 5, 1, 9, 30, 15, tzinfo=dt.UTC)
SENDER = Address("sales@example.com", "Åsa Lindberg")
CONTACT = Address("bo@kunde.example.dk", "Bo Østergaard")
NORDIC_SUBJECT = "Hej Søren \u2013 æøå 🚀 Ærø"  # with an en dash
TEXT = "Hej Bo,\n\nEt kort spørgsmål om æøå 🚀 og Ærø.\n\n-- \nExample ApS\n"
HTML = "<html><body><p>Hej Bo,</p>\n<p>Et kort spørgsmål om æøå 🚀 og Ærø.</p></body></html>\n"
LONG_WORDS = " ".join(f"word{i:02d}" for i in range(50))[:300]
SEND_HEADERS = (
    "Message-ID",
    "In-Reply-To",
    "References",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)


# --- building messages -------------------------------------------------------------------


def _rendered(
    message_format: MessageFormat = MessageFormat.HTML,
    subject: str = NORDIC_SUBJECT,
    text: str = TEXT,
    html: str | None = HTML,
) -> RenderedMessage:
    return RenderedMessage(
        template="intro",
        variant="b",
        language="da",
        format=message_format,
        subject=subject,
        preheader="Et kort spørgsmål",
        text=text,
        html=html if message_format is MessageFormat.HTML else None,
        links=(TrackedLink("https://example.com/pricing", "pricing"),),
    )


def _composed(
    message_id: str = "k5x2qhzv7mwa3nre",
    message_format: MessageFormat = MessageFormat.HTML,
    subject: str = NORDIC_SUBJECT,
    thread: ThreadParent | None = None,
    sender: Address = SENDER,
    to: Address = CONTACT,
    now: dt.datetime = NOW,
) -> OutboundMessage:
    return compose_message(
        _rendered(message_format, subject),
        MessageIdentity(message_id, enrollment_id=42, sequence="outreach", step="intro"),
        sender,
        to,
        LINKS.for_message(message_id),
        "mail.example.com",
        now,
        thread,
    )


def _built(**changes: Any) -> OutboundMessage:
    """A message built directly, without compose."""
    fields: dict[str, Any] = {
        "date": dt.datetime(2024, 11, 30, 23, 59, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "sender": Address("hello@example.com", "Example Sales"),
        "to": Address("pat@example.org"),
        "reply_to": Address("reply+x@reply.example.com", "Example Sales"),
        "subject": "A plain ASCII subject",
        "text": "Hello Pat,\nline two\n",
        "html": "<p>Hello Pat,<br>line two</p>\n",
        "headers": (("X-Campaign", "Vår kampanje ☀"),),
        "custom_args": {"message_id": "q7rbm2k4ztx6wd3c", "note": "æøå 🚀"},
    }
    return outbound_message(**{**fields, **changes})


THREAD = ThreadParent(
    "<parent000000001@mail.example.com>",
    "Quick question",
    ("<root000000000001@mail.example.com>",),
)

MESSAGES: dict[str, Callable[[], OutboundMessage]] = {
    "composed-html": lambda: _composed(),
    "composed-text": lambda: _composed(message_format=MessageFormat.TEXT),
    "composed-threaded": lambda: _composed(thread=THREAD),
    "composed-ascii-long-subject": lambda: _composed(
        subject=LONG_WORDS, sender=Address("sales@example.com", "Sales"), to=Address("a@b.example")
    ),
    "built-html": lambda: _built(),
    "built-text": lambda: _built(html=None, custom_args={}),
    "built-no-names": lambda: _built(
        sender=Address("a@example.com"), reply_to=Address("r@example.com"), headers=()
    ),
    "built-quoted-names": lambda: _built(
        sender=Address("a@example.com", 'Pat "PJ" Jones, Sales'),
        to=Address("b@example.org", "O'Neil (Dublin)"),
    ),
}


# --- reading them back -------------------------------------------------------------------


def _parse(raw: bytes) -> EmailMessage:
    parsed = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    assert not parsed.defects, parsed.defects
    return parsed


def _header(parsed: EmailMessage, name: str) -> str | None:
    value = parsed[name]
    return None if value is None else str(value)


def _addresses(parsed: EmailMessage, name: str) -> list[tuple[str, str]]:
    header: Any = parsed[name]
    assert header is not None, f"no {name} header"
    return [(a.display_name, a.addr_spec) for a in header.addresses]


def _expected(address: Address) -> list[tuple[str, str]]:
    return [(address.name or "", address.email)]


def _leaf_parts(parsed: EmailMessage) -> list[EmailMessage]:
    parts = [p for p in parsed.walk() if not p.is_multipart()]
    assert all(isinstance(p, EmailMessage) for p in parts)
    return parts


def _content(part: EmailMessage) -> str:
    content = part.get_content()
    assert isinstance(content, str)
    return content


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n")


def _raw_header_lines(raw: bytes, name: str) -> list[bytes]:
    """The physical lines of one header in the raw bytes, folds included."""
    lines = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    prefix = name.lower().encode("ascii") + b":"
    starts = [i for i, line in enumerate(lines) if line.lower().startswith(prefix)]
    assert len(starts) == 1, f"{name} appears {len(starts)} times"
    found = [lines[starts[0]]]
    for line in lines[starts[0] + 1 :]:
        if line[:1] not in (b" ", b"\t"):
            break
        found.append(line)
    return found


def _unfolded(lines: list[bytes]) -> str:
    """RFC 5322 unfolding (drop each CRLF before WSP); the value after the colon."""
    joined = b"".join(lines).decode("ascii")
    return joined.split(":", 1)[1].lstrip(" \t")


def _assert_folded_where_possible(lines: list[bytes]) -> None:
    """No line over 78 octets, unless it is a continuation holding a single unbreakable word."""
    for number, line in enumerate(lines):
        if len(line) > 78:
            assert number > 0 and len(line.split()) == 1, (number, len(line), line)


def _mime_and_json(message: OutboundMessage) -> tuple[bytes, EmailMessage, dict[str, Any]]:
    raw = to_rfc5322(message)
    return raw, _parse(raw), json.loads(mail_send_json(message))


# --- SendGrid's schema ----------------------------------------------------------------------


def _schema_errors(body: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in mail_send_validator().iter_errors(body)
    ]


# --- RFC 5322 -----------------------------------------------------------------------------


def test_rfc5322_headers_read_back_as_composed() -> None:
    # Given a composed first message (no thread)
    message = _composed()
    links = LINKS.for_message(message.message_id)

    # When it is written as RFC 5322 bytes and parsed back
    parsed = _parse(to_rfc5322(message))

    # Then every header says what the message says
    assert _addresses(parsed, "From") == [("Åsa Lindberg", "sales@example.com")]
    assert _addresses(parsed, "To") == [("Bo Østergaard", "bo@kunde.example.dk")]
    assert _addresses(parsed, "Reply-To") == [("Åsa Lindberg", links.reply_address)]
    assert _header(parsed, "Subject") == NORDIC_SUBJECT
    assert _header(parsed, "Message-ID") == "<k5x2qhzv7mwa3nre@mail.example.com>"
    assert _header(parsed, "Message-ID") == message.rfc_message_id
    assert _header(parsed, "In-Reply-To") is None
    assert _header(parsed, "References") is None
    date: Any = parsed["Date"]
    assert date.datetime == NOW
    assert _header(parsed, "List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    unsubscribe = _header(parsed, "List-Unsubscribe")
    assert unsubscribe == f"<{links.unsubscribe_url}>, <{links.unsubscribe_mailto}>"


def test_list_unsubscribe_holds_an_https_and_a_mailto_link_with_genuine_tokens() -> None:
    message = _composed()
    value = _header(_parse(to_rfc5322(message)), "List-Unsubscribe")

    assert value is not None
    match = re.fullmatch(r"<(https://[^<>\s]+)>, <(mailto:[^<>\s]+)>", value)
    assert match, value
    https_token = match[1].removeprefix("https://track.example.com/u/")
    mailto_token = re.fullmatch(r"mailto:unsubscribe\+([^@]+)@reply\.example\.com.*", match[2])
    assert mailto_token, match[2]
    assert SIGNER.verify(TokenPurpose.UNSUBSCRIBE, https_token) == message.message_id
    assert SIGNER.verify(TokenPurpose.UNSUBSCRIBE, mailto_token[1]) == message.message_id


def test_the_reply_to_token_names_the_message() -> None:
    message = _composed()
    [(_, address)] = _addresses(_parse(to_rfc5322(message)), "Reply-To")

    local, domain = address.split("@")
    assert domain == "reply.example.com"
    assert SIGNER.verify(TokenPurpose.REPLY, local.removeprefix("reply+")) == message.message_id


@pytest.mark.parametrize(
    ("parent_subject", "expected"),
    [
        ("Quick question", "Re: Quick question"),
        ("Re: Quick question", "Re: Quick question"),
        ("RE: Quick question", "RE: Quick question"),
        ("re: Quick question", "re: Quick question"),
        (NORDIC_SUBJECT, f"Re: {NORDIC_SUBJECT}"),
    ],
)
def test_a_threaded_message_replies_to_its_parent(parent_subject: str, expected: str) -> None:
    # Given a follow-up threaded under an earlier message
    parent = ThreadParent(
        "<parent000000002@mail.example.com>",
        parent_subject,
        ("<root000000000001@mail.example.com>", "<mid0000000000001@mail.example.com>"),
    )
    message = _composed(subject="ignored for threaded steps", thread=parent)

    # When written and parsed back
    parsed = _parse(to_rfc5322(message))

    # Then it is a reply: "Re:" once, In-Reply-To the parent, References the whole chain
    subject = _header(parsed, "Subject")
    assert subject == expected
    assert not re.match(r"(?i)re:\s*re:", subject)
    assert _header(parsed, "In-Reply-To") == "<parent000000002@mail.example.com>"
    assert _header(parsed, "References") == (
        "<root000000000001@mail.example.com> <mid0000000000001@mail.example.com> "
        "<parent000000002@mail.example.com>"
    )
    assert _header(parsed, "Message-ID") == message.rfc_message_id


def test_a_reply_to_a_reply_does_not_pile_up_re() -> None:
    first = _composed(message_id="first00000000001")
    second = _composed(
        message_id="second0000000001",
        thread=ThreadParent(first.rfc_message_id, first.subject),
    )
    third = _composed(
        message_id="third00000000001",
        thread=ThreadParent(second.rfc_message_id, second.subject, (first.rfc_message_id,)),
    )

    subject = _header(_parse(to_rfc5322(third)), "Subject")

    assert subject == f"Re: {NORDIC_SUBJECT}"
    assert third.header("References") == f"{first.rfc_message_id} {second.rfc_message_id}"


def test_an_html_message_is_text_then_html_with_the_exact_bodies() -> None:
    message = _composed()

    parsed = _parse(to_rfc5322(message))

    assert parsed.get_content_type() == "multipart/alternative"
    parts = _leaf_parts(parsed)
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert _lf(_content(parts[0])) == TEXT
    assert message.html is not None
    assert _lf(_content(parts[1])) == message.html == HTML


def test_a_text_message_is_one_text_part_and_no_html_anywhere() -> None:
    message = _composed(message_format=MessageFormat.TEXT)
    assert message.html is None

    raw = to_rfc5322(message)
    parsed = _parse(raw)

    assert not parsed.is_multipart()
    assert parsed.get_content_type() == "text/plain"
    assert _lf(_content(parsed)) == TEXT
    assert b"text/html" not in raw.lower()
    assert b"multipart" not in raw.lower()


@pytest.mark.parametrize(
    "text",
    [
        "trailing spaces   \nand a tab\t\n",
        "=3D is not an escape here; = neither\n",
        "From the start of a line\n.\n..\n",
        "--=_part_k5x2qhzv7mwa3nre\nlooks like a boundary\n",
        "x" * 2000 + "\n" + "ø" * 500 + "\n",
        "no trailing newline",
    ],
)
def test_bodies_survive_exactly(text: str) -> None:
    message = _built(text=text, html=f"<pre>{text}</pre>")

    parts = _leaf_parts(_parse(to_rfc5322(message)))

    assert [_lf(_content(p)) for p in parts] == [text, f"<pre>{text}</pre>"]


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_lines_end_in_crlf_and_never_exceed_998_octets(name: str) -> None:
    raw = to_rfc5322(MESSAGES[name]())

    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert raw.isascii()  # 7-bit: RFC 2047 headers, quoted-printable bodies


def test_long_body_lines_are_wrapped_in_transfer() -> None:
    message = _built(text="y" * 5000 + "\n", html="<p>" + "ø" * 3000 + "</p>\n")

    raw = to_rfc5322(message)

    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    parts = _leaf_parts(_parse(raw))
    assert [_lf(_content(p)) for p in parts] == [message.text, message.html]


@pytest.mark.parametrize(
    "subject",
    [LONG_WORDS, (NORDIC_SUBJECT + " ") * 12 + "slut", "Re: " + "ø" * 296],
    ids=["ascii-300", "nordic-long", "nordic-300"],
)
def test_a_long_subject_is_folded_and_unfolds_to_itself(subject: str) -> None:
    message = _built(subject=subject)

    raw = to_rfc5322(message)

    lines = _raw_header_lines(raw, "Subject")
    assert len(lines) > 1
    _assert_folded_where_possible(lines)
    assert _header(_parse(raw), "Subject") == subject


def test_the_ascii_subject_unfolds_to_itself_by_rfc5322_alone() -> None:
    raw = to_rfc5322(_built(subject=LONG_WORDS))

    assert len(LONG_WORDS) == 300
    assert _unfolded(_raw_header_lines(raw, "Subject")) == LONG_WORDS


def test_the_long_list_unsubscribe_header_is_folded_and_unfolds_to_itself() -> None:
    message = _composed()
    value = message.header("List-Unsubscribe")
    assert value is not None
    assert len(value) > 150

    raw = to_rfc5322(message)

    lines = _raw_header_lines(raw, "List-Unsubscribe")
    assert len(lines) > 1
    # the first URL cannot be split and is not moved off the header's own line (folding
    # right after the colon makes parsers keep a leading space); the rest fold at spaces
    assert len(lines[0].split()) == 2 and all(len(line) <= 998 for line in lines)
    assert all(len(line) <= 78 or len(line.split()) == 1 for line in lines[1:])
    assert _unfolded(lines) == value
    assert _header(_parse(raw), "List-Unsubscribe") == value


def test_a_long_non_ascii_display_name_is_split_into_short_encoded_words() -> None:
    name = "Søren Østergaard - Nørrebro Bæredygtighed ApS og Ærø Æblemost"
    raw = to_rfc5322(_built(sender=Address("s@example.com", name)))

    lines = _raw_header_lines(raw, "From")
    # a line over 78 octets holds one unbreakable encoded word (after "From:" on the first)
    assert all(len(line) <= 78 or len(line.split()) <= 2 for line in lines)
    words = re.findall(rb"=\?utf-8\?[bq]\?[^?]*\?=", b" ".join(lines), re.IGNORECASE)
    assert len(words) > 1 and all(len(word) <= 75 for word in words)
    # RFC 2047 decoding drops the whitespace between encoded words; each keeps its space
    decoded = str(make_header(decode_header(_unfolded(lines).rsplit(" <", 1)[0])))
    assert decoded == name
    # (Python's address parser keeps that whitespace too, so it shows a doubled space)
    parsed_name, parsed_email = _addresses(_parse(raw), "From")[0]
    assert " ".join(parsed_name.split()) == name and parsed_email == "s@example.com"


def test_no_folded_line_is_made_of_spaces_alone() -> None:
    subject = "a  b " * 20
    raw = to_rfc5322(_built(subject=subject))

    lines = _raw_header_lines(raw, "Subject")
    assert all(line.strip() for line in lines)
    assert _unfolded(lines) == subject


def test_a_long_x_smtpapi_header_is_folded_and_unfolds_to_the_custom_args() -> None:
    custom_args = {f"key{i}": f"value number {i}" for i in range(30)}
    message = _built(custom_args=custom_args)

    raw = to_rfc5322(message)

    lines = _raw_header_lines(raw, "X-SMTPAPI")
    assert len(lines) > 5
    _assert_folded_where_possible(lines)
    assert json.loads(_unfolded(lines)) == {"unique_args": custom_args}


def test_long_references_unfold_to_the_whole_chain() -> None:
    chain = tuple(f"<ancestor{i:08d}@mail.example.com>" for i in range(12))
    message = _composed(thread=ThreadParent("<parent@mail.example.com>", "Hi", chain))

    raw = to_rfc5322(message)

    lines = _raw_header_lines(raw, "References")
    assert len(lines) > 3
    assert all(len(line) <= 998 for line in lines)
    expected = " ".join((*chain, "<parent@mail.example.com>"))
    assert _unfolded(lines) == expected
    assert _header(_parse(raw), "References") == expected


@pytest.mark.parametrize(
    "date",
    [
        dt.datetime(2024, 5, 1, 9, 30, 15, tzinfo=dt.UTC),
        dt.datetime(2024, 12, 31, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        dt.datetime(2025, 3, 30, 2, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    ],
)
def test_the_date_header_is_the_message_date(date: dt.datetime) -> None:
    parsed = _parse(to_rfc5322(_composed(now=date)))

    header: Any = parsed["Date"]
    assert header.datetime == date
    assert header.datetime.utcoffset() == date.utcoffset()


# --- non-ASCII ----------------------------------------------------------------------------


def test_nordic_text_and_emoji_survive_both_exporters() -> None:
    # Given a message with non-ASCII subject, display names and bodies
    message = _composed()
    assert message.subject == NORDIC_SUBJECT

    # When written both ways
    raw, parsed, body = _mime_and_json(message)

    # Then the raw headers are 7-bit (RFC 2047 encoded words) ...
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert b"=?utf-8?" in head.lower()
    for line in _raw_header_lines(raw, "Subject"):
        assert len(line) <= 78
    # ... and both forms read back to exactly the original text
    assert _header(parsed, "Subject") == NORDIC_SUBJECT
    assert _addresses(parsed, "From") == [("Åsa Lindberg", "sales@example.com")]
    assert _addresses(parsed, "To") == [("Bo Østergaard", "bo@kunde.example.dk")]
    text, html = (_lf(_content(p)) for p in _leaf_parts(parsed))
    assert (text, html) == (TEXT, HTML)
    assert body["subject"] == NORDIC_SUBJECT
    assert body["from"] == {"email": "sales@example.com", "name": "Åsa Lindberg"}
    assert body["personalizations"][0]["to"] == [
        {"email": "bo@kunde.example.dk", "name": "Bo Østergaard"}
    ]
    assert body["content"] == [
        {"type": "text/plain", "value": TEXT},
        {"type": "text/html", "value": HTML},
    ]


def test_the_sendgrid_json_is_utf8() -> None:
    raw = mail_send_json(_composed())

    assert NORDIC_SUBJECT.encode("utf-8") in raw
    assert json.loads(raw.decode("utf-8"))["subject"] == NORDIC_SUBJECT


def test_a_non_ascii_extra_header_survives_both_exporters() -> None:
    message = _built()

    _, parsed, body = _mime_and_json(message)

    assert _header(parsed, "X-Campaign") == "Vår kampanje ☀"
    assert body["headers"]["X-Campaign"] == "Vår kampanje ☀"


# --- the two exporters agree -------------------------------------------------------------


def _json_address(entry: dict[str, Any]) -> tuple[str, str]:
    return (entry.get("name", ""), entry["email"])


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_sendgrid_json_and_rfc5322_say_the_same(name: str) -> None:
    message = MESSAGES[name]()

    _, parsed, body = _mime_and_json(message)

    assert body == to_mail_send(message)
    assert [_json_address(body["from"])] == _addresses(parsed, "From") == _expected(message.sender)
    assert [_json_address(body["reply_to"])] == _addresses(parsed, "Reply-To")
    assert _addresses(parsed, "Reply-To") == _expected(message.reply_to)
    assert len(body["personalizations"]) == 1
    personalization = body["personalizations"][0]
    to = [_json_address(entry) for entry in personalization["to"]]
    assert to == _addresses(parsed, "To") == _expected(message.to)
    assert body["subject"] == _header(parsed, "Subject") == message.subject
    parts = _leaf_parts(parsed)
    assert [c["type"] for c in body["content"]] == [p.get_content_type() for p in parts]
    assert [_lf(c["value"]) for c in body["content"]] == [_lf(_content(p)) for p in parts]
    assert body["content"][0] == {"type": "text/plain", "value": message.text}
    for header in SEND_HEADERS:
        assert body["headers"].get(header) == _header(parsed, header), header
    for header, value in message.headers:
        assert body["headers"][header] == _header(parsed, header) == value
    smtpapi = _header(parsed, "X-SMTPAPI")
    assert smtpapi is not None
    unique_args = json.loads(smtpapi)["unique_args"]
    assert personalization.get("custom_args", {}) == unique_args == dict(message.custom_args)


def test_composed_custom_args_name_the_message() -> None:
    message = _composed()

    body = to_mail_send(message)

    assert body["personalizations"][0]["custom_args"] == {
        "message_id": "k5x2qhzv7mwa3nre",
        "enrollment": "42",
        "sequence": "outreach",
        "step": "intro",
        "variant": "b",
        "template": "intro",
    }


@pytest.mark.parametrize("name", ["composed-text", "built-text"])
def test_a_text_message_has_no_html_content_in_sendgrid_json(name: str) -> None:
    message = MESSAGES[name]()
    assert message.html is None

    body = json.loads(mail_send_json(message))

    assert body["content"] == [{"type": "text/plain", "value": message.text}]
    assert "text/html" not in json.dumps(body)


# --- SendGrid's contract ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_the_sendgrid_body_is_valid_mail_send(name: str) -> None:
    body = json.loads(mail_send_json(MESSAGES[name]()))

    assert _schema_errors(body) == []
    assert mail_send_problems(body) == []


def test_the_schema_check_rejects_what_sendgrid_rejects() -> None:
    # Guard: the validator above really applies SendGrid's rules.
    body = to_mail_send(_composed())
    no_from = {k: v for k, v in body.items() if k != "from"}
    empty_value = {**body, "content": [{"type": "text/plain", "value": ""}]}
    bad_email = {**body, "from": {"email": "not-an-address"}}
    no_to = {**body, "personalizations": [{"custom_args": {"a": "b"}}]}

    assert any("'from' is a required property" in e for e in _schema_errors(no_from))
    assert any("content/0/value" in e for e in _schema_errors(empty_value))
    assert any(e.startswith("from/email") for e in _schema_errors(bad_email))
    assert any("'to' is a required property" in e for e in _schema_errors(no_to))


def _with_personalizations(body: dict[str, Any], count: int) -> None:
    body["personalizations"] = [copy.deepcopy(body["personalizations"][0]) for _ in range(count)]


def _with_header(name: str) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        body["headers"][name] = "x"

    return change


def _with_custom_arg(value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        body["personalizations"][0]["custom_args"]["extra"] = value

    return change


def _with_categories(count: int) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        body["categories"] = [f"category-{i}" for i in range(count)]

    return change


def _html_first(body: dict[str, Any]) -> None:
    body["content"].reverse()


def _no_content(body: dict[str, Any]) -> None:
    del body["content"]


@pytest.mark.parametrize(
    ("change", "says", "schema_agrees"),
    [
        (lambda b: _with_personalizations(b, 1001), "1001 personalizations", True),
        (lambda b: _with_personalizations(b, 0), "0 personalizations", False),
        (_with_header("From"), "header From may not be set", False),
        (_with_header("content-type"), "header content-type may not be set", False),
        (_with_header("Reply-To"), "header Reply-To may not be set", False),
        (_with_header("DKIM-Signature"), "header DKIM-Signature may not be set", False),
        (_with_custom_arg(7), "custom_args extra must be a string", False),
        (_with_custom_arg(None), "custom_args extra must be a string", False),
        (_with_custom_arg("x" * 10_001), "custom_args are", False),
        # 5,500 characters, 11,000 bytes: the limit is in bytes
        (_with_custom_arg("ø" * 5_500), "at most 10000", False),
        (_with_categories(11), "more than 10 categories", True),
        (_html_first, "the first content must be text/plain", False),
        (_no_content, "the first content must be text/plain", False),
    ],
    ids=[
        "1001-personalizations",
        "no-personalizations",
        "header-From",
        "header-content-type",
        "header-Reply-To",
        "header-DKIM-Signature",
        "custom-arg-int",
        "custom-arg-null",
        "custom-args-over-10000-bytes",
        "custom-args-over-10000-bytes-not-chars",
        "11-categories",
        "html-first",
        "no-content",
    ],
)
def test_mail_send_problems_reports_broken_limits(
    change: Callable[[dict[str, Any]], None], says: str, schema_agrees: bool
) -> None:
    # Given a valid body, broken in one way
    body = to_mail_send(_composed())
    change(body)

    # When checked
    problems = mail_send_problems(body)

    # Then the problem is named; where SendGrid's schema has the rule, it agrees
    assert any(says in problem for problem in problems), problems
    if schema_agrees:
        assert _schema_errors(body)


@pytest.mark.parametrize(
    "change",
    [
        lambda b: _with_personalizations(b, 1000),
        _with_categories(10),
        _with_custom_arg("ø" * 4_500),
        _with_header("X-Entity-Ref-ID"),
    ],
    ids=["1000-personalizations", "10-categories", "9000-byte-custom-arg", "custom-header"],
)
def test_mail_send_problems_accepts_bodies_at_the_limits(
    change: Callable[[dict[str, Any]], None],
) -> None:
    body = to_mail_send(_composed())
    change(body)

    assert mail_send_problems(body) == []
    assert _schema_errors(body) == []


def test_mail_send_problems_counts_recipients_over_all_personalizations() -> None:
    body = to_mail_send(_composed())
    to = body["personalizations"][0]["to"][0]
    body["personalizations"] = [{"to": [to] * 500}, {"to": [to] * 400, "cc": [to] * 101}]

    assert any("1001 recipients" in p for p in mail_send_problems(body))
