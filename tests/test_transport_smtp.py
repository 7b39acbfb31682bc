"""The SMTP transport against a real aiosmtpd server on loopback.

Each test starts its own server on a free port (aiosmtpd's ``Controller(port=0)`` fails);
one handler records every envelope and answers as the test tells it: a refusal for a
recipient, a temporary failure, or no answer at all after the data.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dkim  # type: ignore[import-untyped]
import pytest
from _support import outbound_message
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from engine.delivery import (
    Address,
    AmbiguousError,
    DkimSigner,
    OutboundMessage,
    PermanentError,
    RetryableError,
    SmtpTransport,
    to_rfc5322,
)
from engine.errors import ConfigurationError

QUEUED = "250 2.0.0 Ok: queued as 4BX7RQ2K9Z"


@dataclass
class Received:
    peer: Any  # the client's (host, port): one value per connection
    mail_from: str | None
    rcpt_tos: list[str]
    data: bytes


@dataclass
class Handler:
    """Records each message's envelope and bytes; answers per recipient as configured."""

    received: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: dict[str, str] = field(default_factory=dict)
    hang_after_data: dict[str, float] = field(default_factory=dict)
    queued_reply: str = QUEUED

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        data = envelope.original_content or b""
        self.received.append(Received(session.peer, envelope.mail_from, envelope.rcpt_tos, data))
        [recipient] = envelope.rcpt_tos
        if recipient in self.hang_after_data:
            await asyncio.sleep(self.hang_after_data[recipient])
        return self.data_replies.get(recipient, self.queued_reply)


@dataclass
class Server:
    handler: Handler
    port: int


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


StartServer = Callable[..., Server]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Starts servers (keyword arguments go to aiosmtpd's SMTP); stops them after the test."""
    controllers: list[Controller] = []

    def start(**smtp_options: Any) -> Server:
        handler, port = Handler(), _free_port()
        controller = Controller(
            handler, hostname="127.0.0.1", port=port, server_hostname="mx.test", **smtp_options
        )
        controller.start()
        controllers.append(controller)
        return Server(handler, port)

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def server(start_server: StartServer) -> Server:
    return start_server()


@pytest.fixture
def transport(server: Server) -> Iterator[SmtpTransport]:
    sending = SmtpTransport("127.0.0.1", server.port, timeout=2.0, local_hostname="client.test")
    yield sending
    sending.close()


def _message(
    message_id: str = "q7rbm2k4ztx6wd3c", to: str = "pat@example.org", subject: str = "Hello"
) -> OutboundMessage:
    return outbound_message(
        message_id,
        to=Address(to, "Pat Prospect"),
        subject=subject,
        text="Hi Pat,\n.a line that starts with a dot\nBest, Rita\n",
        html="<p>Hi Pat,</p>",
        headers=(
            ("List-Unsubscribe", "<https://track.example.com/u/tok>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ),
    )


# --- delivered -------------------------------------------------------------------------------


def test_the_message_arrives_byte_for_byte_with_its_envelope(
    server: Server, transport: SmtpTransport
) -> None:
    message = _message()

    handoff = transport.send(message)

    [received] = server.handler.received
    assert received.data == to_rfc5322(message)  # CRLF, dot-stuffing undone
    assert received.mail_from == "rep@example.com"
    assert received.rcpt_tos == ["pat@example.org"]
    assert handoff.transport == "smtp"
    assert handoff.provider_message_id == "4BX7RQ2K9Z"


@pytest.mark.parametrize(
    ("reply", "queue_id"),
    [("250 OK", None), ("250 OK id=1tZ3kq-0004Ab-9X", "1tZ3kq-0004Ab-9X")],
    ids=["no-id", "exim"],
)
def test_the_queue_id_is_read_from_the_final_reply_when_there_is_one(
    server: Server, transport: SmtpTransport, reply: str, queue_id: str | None
) -> None:
    server.handler.queued_reply = reply

    assert transport.send(_message()).provider_message_id == queue_id


def test_one_connection_serves_several_messages(server: Server, transport: SmtpTransport) -> None:
    for index in range(5):
        transport.send(_message(f"reused{index:010d}"))

    assert len(server.handler.received) == 5
    assert len({received.peer for received in server.handler.received}) == 1


def test_a_connection_the_server_closed_is_reopened(start_server: StartServer) -> None:
    server = start_server(timeout=0.2)  # the server drops a connection idle for 0.2 s
    sending = SmtpTransport("127.0.0.1", server.port, timeout=2.0, local_hostname="client.test")
    try:
        sending.send(_message("first00000000000"))
        time.sleep(0.5)

        sending.send(_message("second0000000000"))
    finally:
        sending.close()

    first, second = server.handler.received
    assert first.peer != second.peer


# --- refused -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "invalid_address"),
    [
        ("550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown", True),
        ("550 No such user here", True),
        ("553 5.1.3 Bad recipient address syntax", True),
        ("554 5.7.1 <nobody@example.org>: Relay access denied", False),
        ("550 5.7.1 Message rejected by policy", False),
    ],
    ids=["550-5.1.1", "550-plain", "553", "554-relay", "550-5.7.1-policy"],
)
def test_a_refused_recipient_is_permanent_and_the_connection_stays_usable(
    server: Server, transport: SmtpTransport, reply: str, invalid_address: bool
) -> None:
    server.handler.rcpt_replies["nobody@example.org"] = reply

    with pytest.raises(PermanentError) as refused:
        transport.send(_message(to="nobody@example.org"))
    transport.send(_message())

    assert reply in str(refused.value)
    assert refused.value.invalid_address is invalid_address
    [delivered] = server.handler.received
    assert delivered.rcpt_tos == ["pat@example.org"]


def test_a_451_for_the_recipient_is_retryable(server: Server, transport: SmtpTransport) -> None:
    server.handler.rcpt_replies["pat@example.org"] = "451 4.7.1 Greylisted, try again later"

    with pytest.raises(RetryableError, match=r"RCPT TO: 451 4\.7\.1 Greylisted"):
        transport.send(_message())

    assert server.handler.received == []


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("451 4.3.0 Temporary lookup failure", RetryableError),
        ("554 5.6.0 Message content rejected", PermanentError),
    ],
    ids=["451", "554"],
)
def test_a_refusal_of_the_data_is_temporary_or_permanent_by_its_code(
    server: Server, transport: SmtpTransport, reply: str, error: type[Exception]
) -> None:
    server.handler.data_replies["pat@example.org"] = reply

    with pytest.raises(error, match=re.escape(reply)):
        transport.send(_message())


def test_no_answer_after_the_data_is_ambiguous_and_the_server_has_it(
    server: Server,
) -> None:
    server.handler.hang_after_data["slow@example.org"] = 1.5
    sending = SmtpTransport("127.0.0.1", server.port, timeout=0.3, local_hostname="client.test")
    try:
        with pytest.raises(AmbiguousError, match="may have taken it"):
            sending.send(_message("slow000000000000", to="slow@example.org"))

        sending.send(_message("after00000000000"))  # on a new connection
    finally:
        sending.close()

    # Why it is ambiguous: the server had the whole message when the client gave up.
    slow, after = server.handler.received
    assert slow.data == to_rfc5322(_message("slow000000000000", to="slow@example.org"))
    assert slow.peer != after.peer


def test_a_refused_connection_is_retryable() -> None:
    sending = SmtpTransport("127.0.0.1", _free_port(), timeout=1.0, local_hostname="client.test")

    with pytest.raises(RetryableError, match="Connection refused"):
        sending.send(_message())


def test_a_non_ascii_address_is_refused_for_good(transport: SmtpTransport) -> None:
    with pytest.raises(PermanentError, match="cannot be written as RFC 5322") as refused:
        transport.send(_message(to="søren@eksempel.dk"))

    assert refused.value.invalid_address is False


# --- TLS and AUTH ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def certificate(rsa_key: rsa.RSAPrivateKey, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed certificate for 127.0.0.1; its key file sits beside it as ``.key``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(rsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(rsa_key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "mx.key").write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (folder / "mx.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return folder / "mx.pem"


def _server_tls(certificate: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, certificate.with_suffix(".key"))
    return context


def _authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    good = isinstance(auth_data, LoginPassword) and auth_data == (b"rita", b"pa55word")
    return AuthResult(success=good, handled=False)  # aiosmtpd answers 535 itself


@pytest.fixture
def tls_server(start_server: StartServer, certificate: Path) -> Server:
    return start_server(
        tls_context=_server_tls(certificate),
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
    )


def _starttls(server: Server, password: str, trust: Path | None) -> SmtpTransport:
    context = ssl.create_default_context(cafile=trust) if trust else None
    return SmtpTransport(
        "127.0.0.1",
        server.port,
        username="rita",
        password=password,
        starttls=True,
        timeout=2.0,
        local_hostname="client.test",
        tls_context=context,
    )


def test_starttls_and_auth(tls_server: Server, certificate: Path) -> None:
    sending = _starttls(tls_server, "pa55word", certificate)
    try:
        sending.send(_message())
    finally:
        sending.close()

    assert len(tls_server.handler.received) == 1


def test_a_wrong_password_names_the_settings_but_not_the_password(
    tls_server: Server, certificate: Path
) -> None:
    with pytest.raises(PermanentError) as refused:
        _starttls(tls_server, "wrong-secret-77", certificate).send(_message())

    said = str(refused.value)
    assert "535" in said
    assert "SALESCYCLE_SMTP_PASSWORD" in said
    assert "wrong-secret-77" not in said
    assert tls_server.handler.received == []


def test_an_untrusted_certificate_is_permanent(tls_server: Server) -> None:
    with pytest.raises(PermanentError, match="certificate does not verify"):
        _starttls(tls_server, "pa55word", trust=None).send(_message())


def test_tls_from_the_start(start_server: StartServer, certificate: Path) -> None:
    server = start_server(ssl_context=_server_tls(certificate))
    sending = SmtpTransport(
        "127.0.0.1",
        server.port,
        ssl=True,
        local_hostname="client.test",
        tls_context=ssl.create_default_context(cafile=certificate),
    )
    try:
        sending.send(_message())
    finally:
        sending.close()

    assert server.handler.received[0].data == to_rfc5322(_message())


def test_starttls_and_ssl_together_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="exclude each other"):
        SmtpTransport("127.0.0.1", 25, starttls=True, ssl=True)


# --- DKIM -------------------------------------------------------------------------------------


def _dns_record(rsa_key: rsa.RSAPrivateKey) -> Callable[..., bytes | None]:
    public = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        return record if name == b"sc2026._domainkey.example.com." else None

    return lookup


def test_the_dkim_signature_verifies_at_the_receiver(
    server: Server, rsa_key: rsa.RSAPrivateKey
) -> None:
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    signer = DkimSigner("sc2026", "example.com", pem)
    sending = SmtpTransport(
        "127.0.0.1", server.port, dkim=signer, local_hostname="client.test", timeout=2.0
    )
    try:
        sending.send(_message(subject="Ærlig talt, et spørgsmål"))
    finally:
        sending.close()

    [received] = server.handler.received
    assert received.data.startswith(b"DKIM-Signature: ")
    assert received.data.endswith(to_rfc5322(_message(subject="Ærlig talt, et spørgsmål")))
    signed = received.data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    for header in (b"from", b"to", b"subject", b"message-id", b"list-unsubscribe-post"):
        assert header in signed.split(b"h=", 1)[1].split(b";", 1)[0].lower()
    assert dkim.verify(received.data, dnsfunc=_dns_record(rsa_key))
    tampered = received.data.replace(b"Subject: ", b"Subject: RE: ", 1)
    assert not dkim.verify(tampered, dnsfunc=_dns_record(rsa_key))


def test_a_key_that_is_not_pem_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"sc2026\._domainkey\.example\.com"):
        DkimSigner("sc2026", "example.com", b"not a key")
