"""The SendGrid transport against the SendGrid sink: a real HTTP server on loopback.

Each way a hand-off can end is met for real: 202, a 429 with Retry-After, 5xx, a slow
answer the client gives up on (while the sink keeps the mail), a refused connection, a
body or key the sink refuses.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Iterator
from email.utils import format_datetime
from pathlib import Path

import httpx2
import pytest
from _support import SINK_API_KEY, outbound_message

from engine.delivery import (
    Address,
    AmbiguousError,
    OutboundMessage,
    PermanentError,
    RetryableError,
    SendGridTransport,
    to_mail_send,
)
from engine.delivery.sendgrid import retry_after
from engine.devtools import Faults, SendGridSink
from engine.errors import ConfigurationError

API_KEY = SINK_API_KEY


@pytest.fixture
def transport(sink: SendGridSink) -> Iterator[SendGridTransport]:
    sending = SendGridTransport(API_KEY, host=sink.url, timeout=5.0)
    yield sending
    sending.close()


def _message(
    message_id: str = "k5x2qhzv7mwa3nre",
    *,
    to: str = "pat@example.org",
    subject: str = "Quick question, Pat",
    headers: tuple[tuple[str, str], ...] = (("List-Unsubscribe", "<https://u.example/x>"),),
) -> OutboundMessage:
    return outbound_message(
        message_id, to=Address(to, "Pat Prospect"), subject=subject, headers=headers
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- taken -----------------------------------------------------------------------------------


def test_a_202_records_the_body_and_returns_the_provider_id(
    sink: SendGridSink, transport: SendGridTransport
) -> None:
    message = _message()

    handoff = transport.send(message)

    [accepted] = sink.messages()
    assert handoff.transport == "sendgrid"
    assert handoff.provider_message_id == accepted.provider_message_id
    assert accepted.body == to_mail_send(message)
    assert accepted.message_ids == ("k5x2qhzv7mwa3nre",)
    assert accepted.recipients == ("pat@example.org",)


def test_sandbox_and_categories_are_in_the_body(sink: SendGridSink) -> None:
    sending = SendGridTransport(
        API_KEY, host=sink.url, sandbox=True, categories=("outreach", "nordics")
    )
    try:
        sending.send(_message())
    finally:
        sending.close()

    [accepted] = sink.messages()
    assert accepted.body["categories"] == ["outreach", "nordics"]
    assert accepted.body["mail_settings"] == {"sandbox_mode": {"enable": True}}


def _client_connections_to(port: int) -> int | None:
    """Open TCP connections whose far end is ``port`` (None where /proc/net/tcp is missing)."""
    table = Path("/proc/net/tcp")
    if not table.exists():
        return None
    rows = [line.split() for line in table.read_text().splitlines()[1:]]
    established = "01"
    return sum(1 for row in rows if int(row[2].split(":")[1], 16) == port and row[3] == established)


def test_one_pooled_connection_serves_fifty_sends(
    sink: SendGridSink, transport: SendGridTransport
) -> None:
    handoffs = [transport.send(_message(f"pooled{i:010d}")) for i in range(50)]

    assert sink.stats().accepted == sink.stats().total == 50
    assert [m.message_ids[0] for m in sink.messages()] == [f"pooled{i:010d}" for i in range(50)]
    assert len({h.provider_message_id for h in handoffs}) == 50
    port = httpx2.URL(sink.url).port
    assert port is not None
    assert _client_connections_to(port) in (1, None)


# --- refused before anything was taken: retry -------------------------------------------


def test_a_429_is_retryable_after_the_retry_after_seconds(
    sink: SendGridSink, transport: SendGridTransport
) -> None:
    sink.set_faults(Faults(rate_429=1.0, retry_after=7))

    with pytest.raises(RetryableError) as refused:
        transport.send(_message())

    assert refused.value.retry_after == 7.0
    assert "429" in str(refused.value)
    assert "too many requests" in str(refused.value)
    assert sink.messages() == []


@pytest.mark.parametrize(
    ("faults", "says"),
    [
        (Faults(rate_500=1.0), "500"),
        (Faults(rate_503=1.0), "503"),
    ],
    ids=["500", "503"],
)
def test_a_5xx_is_retryable(
    sink: SendGridSink, transport: SendGridTransport, faults: Faults, says: str
) -> None:
    sink.set_faults(faults)

    with pytest.raises(RetryableError) as refused:
        transport.send(_message())

    assert says in str(refused.value)
    assert refused.value.retry_after is None
    assert sink.messages() == []


def test_a_refused_connection_is_retryable() -> None:
    sending = SendGridTransport(API_KEY, host=f"http://127.0.0.1:{_free_port()}", timeout=2.0)
    try:
        with pytest.raises(RetryableError, match="cannot reach SendGrid"):
            sending.send(_message())
    finally:
        sending.close()


def test_a_stopped_sink_is_retryable_although_a_connection_was_pooled() -> None:
    own_sink = SendGridSink(API_KEY).start()
    sending = SendGridTransport(API_KEY, host=own_sink.url, timeout=2.0)
    try:
        sending.send(_message())
        own_sink.stop()

        with pytest.raises(RetryableError, match="cannot reach SendGrid"):
            sending.send(_message())
    finally:
        sending.close()
        own_sink.stop()


# --- sent, no answer: ambiguous -------------------------------------------------------------


def test_a_slow_answer_is_ambiguous_and_the_sink_has_the_mail(sink: SendGridSink) -> None:
    sink.set_faults(Faults(rate_slow=1.0, slow_seconds=1.5))
    sending = SendGridTransport(API_KEY, host=sink.url, timeout=0.3)
    try:
        with pytest.raises(AmbiguousError, match="may have taken the message"):
            sending.send(_message("slow000000000000"))
    finally:
        sending.close()

    # Why it is ambiguous: the provider did take it; resending would send it twice.
    [accepted] = sink.messages()
    assert accepted.message_ids == ("slow000000000000",)


# --- refused for good -----------------------------------------------------------------------


def test_a_body_the_sink_refuses_is_permanent_with_its_reasons(
    sink: SendGridSink, transport: SendGridTransport
) -> None:
    with pytest.raises(PermanentError) as refused:
        transport.send(_message(headers=(("From", "x"),), subject=""))

    said = str(refused.value)
    assert "400" in said
    assert "header From may not be set" in said
    assert "no subject" in said
    assert refused.value.invalid_address is False
    assert sink.messages() == []


def test_an_invalid_recipient_is_permanent_and_marks_the_address(
    sink: SendGridSink, transport: SendGridTransport
) -> None:
    with pytest.raises(PermanentError) as refused:
        transport.send(_message(to="not-an-address"))

    assert "personalizations.0.to.0.email" in str(refused.value)
    assert refused.value.invalid_address is True


def test_a_wrong_key_names_the_setting_but_not_the_key(sink: SendGridSink) -> None:
    wrong = "SG.not-the-right-key-4711"
    sending = SendGridTransport(wrong, host=sink.url)
    try:
        with pytest.raises(PermanentError) as refused:
            sending.send(_message())
    finally:
        sending.close()

    said = str(refused.value)
    assert "SENDGRID_API_KEY" in said
    assert "403" in said
    assert wrong not in said
    assert "not-the-right-key" not in repr(refused.value)
    assert refused.value.invalid_address is False
    assert sink.stats().forbidden == 1


def test_an_empty_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="SENDGRID_API_KEY"):
        SendGridTransport("  ")


# --- how long to wait after a 429 ------------------------------------------------------------


def test_retry_after_reads_seconds_a_date_or_the_rate_limit_reset() -> None:
    now = 1_770_000_000.0
    in_a_minute = format_datetime(dt.datetime.fromtimestamp(now + 60, dt.UTC), usegmt=True)

    assert retry_after(httpx2.Headers({"Retry-After": "12"}), now) == 12.0
    assert retry_after(httpx2.Headers({"Retry-After": in_a_minute}), now) == 60.0
    assert retry_after(httpx2.Headers({"X-RateLimit-Reset": str(int(now) + 30)}), now) == 30.0
    assert retry_after(httpx2.Headers({"X-RateLimit-Reset": str(int(now) - 5)}), now) == 0.0
    assert retry_after(httpx2.Headers({"Retry-After": "soon"}), now) is None
    assert retry_after(httpx2.Headers({}), time.time()) is None
