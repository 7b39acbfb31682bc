"""SMTP: one connection reused across messages, optional STARTTLS, AUTH and DKIM signing.

A message is taken only when the server answers the end of its data, so a failure is
sorted by how far the transaction got: before the data was sent in full nothing was
taken (retry, after reconnecting once if a reused connection was dropped); after the
final dot was sent but before the answer came, the server may have taken it
(ambiguous); a 4xx answer is temporary, a 5xx permanent.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl as ssl_module
import threading
from collections.abc import Iterator

import dkim  # type: ignore[import-untyped]

from engine.delivery.message import OutboundMessage
from engine.delivery.mime import to_rfc5322
from engine.delivery.transport import (
    AmbiguousError,
    HandOff,
    HandOffError,
    PermanentError,
    RetryableError,
)
from engine.errors import ConfigurationError

# Signed when present; a listed header added later by someone else breaks the signature.
DKIM_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)
_INVALID_RECIPIENT_CODES = frozenset({550, 551, 553})
_ENHANCED_STATUS = re.compile(rb"^\s*([245])\.(\d{1,3})\.\d{1,3}\b")
_QUEUE_ID = re.compile(rb"queued as\s+([A-Za-z0-9]+)|\bid=([A-Za-z0-9-]+)", re.IGNORECASE)
_LINE_START_DOT = re.compile(rb"^\.", re.MULTILINE)


class DkimSigner:
    """Adds a DKIM-Signature (rsa-sha256, relaxed/relaxed) made with one selector's key."""

    def __init__(self, selector: str, domain: str, private_key_pem: bytes) -> None:
        try:
            dkim.crypto.parse_pem_private_key(private_key_pem)
        except dkim.crypto.UnparsableKeyError as exc:
            raise ConfigurationError(
                f"the DKIM key for {selector}._domainkey.{domain} is not a PEM RSA private key: "
                f"{exc}"
            ) from None
        self.selector = selector
        self.domain = domain
        self._key = private_key_pem

    def sign(self, data: bytes) -> bytes:
        """``data`` (an RFC 5322 message) with its DKIM-Signature header first."""
        signature: bytes = dkim.sign(
            data,
            self.selector.encode("ascii"),
            self.domain.encode("ascii"),
            self._key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[name.encode("ascii") for name in DKIM_HEADERS],
        )
        return signature + data


class _Dropped(Exception):
    """The server closed the connection before the message was sent: nothing was taken."""


class SmtpTransport:
    """Sends over one SMTP connection, opened on first use and reopened when dropped.

    One message at a time per instance (a lock guards the connection), so worker threads
    may share it. ``tls_context`` verifies the server (the system's CAs by default).
    """

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        ssl: bool = False,
        timeout: float = 10.0,
        dkim: DkimSigner | None = None,
        local_hostname: str | None = None,
        tls_context: ssl_module.SSLContext | None = None,
    ) -> None:
        if starttls and ssl:
            raise ConfigurationError("SMTP: starttls and ssl exclude each other; set one of them")
        if username is not None and password is None:
            raise ConfigurationError(
                f"SMTP user {username!r} has no password: set SALESCYCLE_SMTP_PASSWORD"
            )
        self.host, self.port = host, port
        self._username, self._password = username, password
        self._starttls, self._ssl = starttls, ssl
        self._timeout = timeout
        self._dkim = dkim
        self._local_hostname = local_hostname
        self._tls_context = tls_context or ssl_module.create_default_context()
        self._lock = threading.Lock()
        self._connection: smtplib.SMTP | None = None

    @property
    def _where(self) -> str:
        return f"SMTP server {self.host}:{self.port}"

    def send(self, message: OutboundMessage) -> HandOff:
        data = _rfc5322(message)
        if self._dkim is not None:
            data = self._dkim.sign(data)
        with self._lock:
            if self._connection is not None:
                with contextlib.suppress(_Dropped):  # closed while idle: reconnect once
                    return self._transaction(self._connection, message, data)
            try:
                return self._transaction(self._connect(), message, data)
            except _Dropped as exc:
                raise RetryableError(f"{self._where} closed the connection: {exc}") from exc

    def reconcile(self, message_id: str) -> bool | None:
        """An SMTP server keeps no record we could ask for; a person checks the mailbox."""
        return None

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    self._connection.quit()
                self._drop()

    # connecting ---------------------------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        with self._connection_errors():
            connection = self._dial()
            try:
                connection.ehlo()
                if self._starttls:
                    connection.starttls(context=self._tls_context)
                    connection.ehlo()
                if self._username is not None and self._password is not None:
                    connection.login(self._username, self._password)
            except BaseException:
                connection.close()
                raise
        self._connection = connection
        return connection

    def _dial(self) -> smtplib.SMTP:
        """Connected and greeted (the host is given here: STARTTLS verifies it)."""
        if self._ssl:
            return smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=self._local_hostname,
                timeout=self._timeout,
                context=self._tls_context,
            )
        return smtplib.SMTP(
            self.host, self.port, local_hostname=self._local_hostname, timeout=self._timeout
        )

    @contextlib.contextmanager
    def _connection_errors(self) -> Iterator[None]:
        """Connecting, TLS and AUTH failures as hand-off errors."""
        try:
            yield
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentError(f"{self._where}: {exc} (see sending.smtp settings)") from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise self._auth_refused(exc) from exc
        except smtplib.SMTPResponseException as exc:
            raise _refusal(self._where, "the connection", exc.smtp_code, exc.smtp_error) from exc
        except ssl_module.SSLCertVerificationError as exc:
            raise PermanentError(
                f"{self._where}: its TLS certificate does not verify: {exc.verify_message}; "
                "check sending.smtp.host"
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise RetryableError(f"cannot connect to {self._where}: {exc}") from exc

    def _auth_refused(self, exc: smtplib.SMTPAuthenticationError) -> HandOffError:
        if 400 <= exc.smtp_code < 500:
            return _refusal(self._where, "AUTH", exc.smtp_code, exc.smtp_error)
        return PermanentError(
            f"{self._where} refused the login of {self._username!r}: {exc.smtp_code} "
            f"{_text(exc.smtp_error)}; check sending.smtp.username and SALESCYCLE_SMTP_PASSWORD"
        )

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None

    # one transaction ----------------------------------------------------------------------

    def _transaction(
        self, connection: smtplib.SMTP, message: OutboundMessage, data: bytes
    ) -> HandOff:
        """MAIL, RCPT, DATA; raises ``_Dropped`` when the connection was lost before the data."""
        try:
            self._expect(connection, "MAIL FROM", connection.mail(message.sender.email), (250,))
            self._expect(connection, "RCPT TO", connection.rcpt(message.to.email), (250, 251))
            self._expect(connection, "DATA", connection.docmd("DATA"), (354,))
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            raise _Dropped(str(exc)) from exc
        code, reply = self._send_data(connection, data)
        if code != 250:
            self._reset(connection, code)
            raise _refusal(self._where, "the message", code, reply, after_data=True)
        return HandOff(self.name, provider_message_id=_queue_id(reply))

    def _expect(
        self, connection: smtplib.SMTP, step: str, answer: tuple[int, bytes], codes: tuple[int, ...]
    ) -> None:
        code, reply = answer
        if code in codes:
            return
        if code == 421:  # the server is closing the connection (often an idle timeout)
            self._drop()
            raise _Dropped(f"{code} {_text(reply)}")
        self._reset(connection, code)
        raise _refusal(self._where, step, code, reply, recipient_step=step == "RCPT TO")

    def _send_data(self, connection: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
        stuffed = _LINE_START_DOT.sub(b"..", data)
        if not stuffed.endswith(b"\r\n"):
            stuffed += b"\r\n"
        try:
            connection.send(stuffed + b".\r\n")
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()  # the final dot never left: the server cannot have taken it
            raise RetryableError(f"{self._where}: lost while sending the message: {exc}") from exc
        try:
            return connection.getreply()
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            raise AmbiguousError(
                f"{self._where} did not answer after the message was sent ({exc}); "
                "it may have taken it"
            ) from exc

    def _reset(self, connection: smtplib.SMTP, code: int) -> None:
        """Abandon the transaction, keeping the connection when the server still talks."""
        if code == 421:
            self._drop()
            return
        try:
            connection.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()


def _refusal(
    where: str,
    step: str,
    code: int,
    reply: bytes | str,
    *,
    recipient_step: bool = False,
    after_data: bool = False,
) -> HandOffError:
    """The error for a refusing answer: 4xx is temporary, 5xx permanent."""
    text = _text(reply)
    said = f"{where} refused {step}: {code} {text}"
    if 400 <= code < 500:
        return RetryableError(said)
    enhanced = _ENHANCED_STATUS.match(text.encode("utf-8", "replace"))
    if enhanced is not None:  # 5.1.x is about the address (RFC 3463); 5.7.x policy, ...
        invalid = recipient_step or after_data
        return PermanentError(said, invalid_address=invalid and enhanced.groups() == (b"5", b"1"))
    return PermanentError(said, invalid_address=recipient_step and code in _INVALID_RECIPIENT_CODES)


def _rfc5322(message: OutboundMessage) -> bytes:
    """The message's bytes; a message they cannot be made of is refused for good."""
    try:
        return to_rfc5322(message)
    except UnicodeEncodeError as exc:  # a non-ASCII address: no SMTPUTF8 support yet
        raise PermanentError(
            f"message {message.message_id} cannot be written as RFC 5322 "
            f"({message.sender.email} -> {message.to.email}): {exc}"
        ) from exc


def _queue_id(reply: bytes) -> str | None:
    """The server's id of the queued message ("queued as ABC123", Exim's "id=..."), if any."""
    found = _QUEUE_ID.search(reply)
    if found is None:
        return None
    return (found[1] or found[2]).decode("ascii")


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
