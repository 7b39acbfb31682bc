"""Every parser of what arrives from outside, fuzzed: SendGrid event batches, our own
tracking hits, Inbound Parse posts and raw MIME. Each answers with a result or its one
documented error, never anything else (the workers mark such rows failed and go on)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.replies import InboundPostError, read_post
from engine.replies.classify import classify
from engine.replies.model import InboundKind
from engine.replies.rules import load_reply_rules
from engine.tracking.events import MalformedBodyError
from engine.tracking.sendgrid import SendGridEvents
from engine.tracking.tracking_hits import parse_hit
from engine.workspace import Workspace

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
    st.sampled_from(["delivered", "open", "click", "bounce", "blocked", "spamreport",
                     "group_unsubscribe", "processed", "opened", "clicked", "unsubscribed",
                     "2026-11-28T10:00:00Z", "sg-1", "https://x.example/", "a@b.example"]),
)  # fmt: skip
_KEYS = st.sampled_from([
    "event", "email", "timestamp", "sg_event_id", "sg_message_id", "message_id", "url",
    "type", "reason", "status", "useragent", "ip", "sg_machine_open", "url_offset",
    "kind", "link_index", "user_agent", "at", "category", "response", "x",
])  # fmt: skip
_JSON = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_KEYS, children, max_size=8)
    ),
    max_leaves=30,
)


def _bodies() -> st.SearchStrategy[bytes]:
    shaped = _JSON.map(lambda value: json.dumps(value).encode())  # big integers too
    return st.one_of(shaped, st.binary(max_size=300))


@FUZZ
@given(body=_bodies())
def test_sendgrid_event_batches_parse_or_say_what_is_wrong(body: bytes) -> None:
    try:
        parsed = SendGridEvents().parse(body)
    except MalformedBodyError:
        return
    for event in parsed.events:
        assert event.occurred_at.tzinfo is not None
        assert event.provider_event_id


@FUZZ
@given(body=_bodies(), row_id=st.integers(1, 10**9))
def test_tracking_hits_parse_or_say_what_is_wrong(body: bytes, row_id: int) -> None:
    try:
        parsed = parse_hit(body, row_id)
    except MalformedBodyError:
        return
    assert [e.provider_event_id for e in parsed.events] == [f"tracking:{row_id}"]


_FIELDS = st.sampled_from(["email", "headers", "text", "html", "from", "to", "subject",
                           "envelope", "charsets", "attachment-info", "attachment1",
                           "x"])  # fmt: skip


def _multipart(parts: list[tuple[str, bytes]], boundary: str) -> bytes:
    chunks = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value + b"\r\n"
        for name, value in parts
    ]  # fmt: skip
    return b"".join(chunks) + f"--{boundary}--\r\n".encode()


@FUZZ
@given(
    parts=st.lists(st.tuples(_FIELDS, st.binary(max_size=200)), max_size=6),
    boundary=st.sampled_from(["xYzZY", "b", "----WebKitFormBoundary7MA4YWxkTrZu0gW"]),
    broken=st.booleans(),
    content_type=st.sampled_from(["multipart/form-data; boundary={b}", "multipart/form-data",
                                  "text/plain", "multipart/form-data; boundary=\"{b}\""]),
)  # fmt: skip
def test_inbound_parse_posts_are_read_or_refused_with_a_reason(
    parts: list[tuple[str, bytes]], boundary: str, broken: bool, content_type: str
) -> None:
    body = _multipart(parts, boundary)
    if broken:
        body = body[: len(body) // 2]
    try:
        post = read_post(body, content_type.format(b=boundary))
    except InboundPostError as exc:
        assert str(exc)
        return
    assert isinstance(post.mime, bytes)


_HEADER_NAMES = st.sampled_from(["From", "To", "Subject", "Date", "Message-ID", "In-Reply-To",
                                 "References", "Auto-Submitted", "Content-Type",
                                 "Content-Transfer-Encoding", "X-Autoreply",
                                 "Precedence"])  # fmt: skip
_HEADER_VALUES = st.one_of(
    st.text(max_size=40).map(lambda t: t.replace("\r", " ").replace("\n", " ")),
    st.sampled_from(["auto-replied", "multipart/report; report-type=delivery-status",
                     "text/plain; charset=x-unknown", "quoted-printable", "base64",
                     "=?utf-8?b?!!!?=", "<a@b>", "Mon, 99 Foo 2026 25:61:00 +9999"]),
)  # fmt: skip


@FUZZ
@given(
    headers=st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=8),
    body=st.one_of(st.text(max_size=300),
                   st.binary(max_size=300).map(lambda b: b.decode("latin-1"))),
)  # fmt: skip
def test_classify_reads_any_message_and_never_raises(
    headers: list[tuple[str, str]], body: str
) -> None:
    raw = "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n" + body
    reading = classify(raw.encode("utf-8", "surrogateescape"), _starter_rules())

    assert reading.kind in set(InboundKind)
    assert reading.reason


_RULES: list[Any] = []


def _starter_rules() -> Any:
    if not _RULES:
        from pathlib import Path

        _RULES.append(load_reply_rules(Workspace(Path(__file__).resolve().parents[1])))
    return _RULES[0]


def test_a_parsed_post_with_an_address_the_email_package_cannot_parse_is_kept() -> None:
    body = _multipart([("from", b"<"), ("to", b"a@b.example"), ("text", b"Hello")], "b")

    post = read_post(body, "multipart/form-data; boundary=b")

    assert b"From: <\r\n" in post.mime and b"Hello" in post.mime
    assert classify(post.mime, _starter_rules()).text.startswith("Hello")
