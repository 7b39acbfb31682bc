"""SendGrid v3 Mail Send: the request body of a message, SendGrid's documented limits, and
the transport that posts it.

The body is built with the ``sendgrid`` package's mail helpers; names and addresses
are set on the helper objects directly, since their constructors parse every address
again with ``email.utils`` (a third of the cost of a message). The transport posts it
through a ``urllib3`` connection pool rather than the package's own client, which opens a
connection per request and has no timeout (urllib3 rather than httpx: at a thousand
messages a second its 0.2 ms of CPU a request against httpx's 0.36 ms is a tenth of the
budget).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import orjson
import urllib3
from sendgrid.helpers.mail import (
    Content,
    CustomArg,
    From,
    Header,
    Mail,
    MimeType,
    Personalization,
    ReplyTo,
    Subject,
    To,
)

from engine.delivery.message import Address, OutboundMessage
from engine.delivery.transport import AmbiguousError, HandOff, PermanentError, RetryableError
from engine.errors import ConfigurationError

_E = TypeVar("_E", From, To, ReplyTo)

# Headers SendGrid does not let a request set (Mail Send, `headers`).
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "Content-Type",
        "Content-Transfer-Encoding",
        "To",
        "From",
        "Subject",
        "Reply-To",
        "CC",
        "BCC",
    )
)
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_CATEGORIES = 10


def to_mail_send(message: OutboundMessage) -> dict[str, Any]:
    """The Mail Send request body (a JSON-ready dict) for one message."""
    mail = Mail()
    mail.from_email = _email(From, message.sender)
    mail.reply_to = _email(ReplyTo, message.reply_to)
    personalization = Personalization()
    personalization.add_to(_email(To, message.to))
    for key, value in message.custom_args.items():
        personalization.add_custom_arg(CustomArg(key, value))
    mail.add_personalization(personalization)
    mail.subject = Subject(message.subject)
    mail.add_content(Content(MimeType.text, message.text))
    if message.html is not None:
        mail.add_content(Content(MimeType.html, message.html))
    mail.add_header(Header("Message-ID", message.rfc_message_id))
    for name, value in message.headers:
        mail.add_header(Header(name, value))
    body: dict[str, Any] = mail.get()
    return body


def mail_send_json(message: OutboundMessage) -> bytes:
    """The Mail Send request body as the JSON bytes to post (orjson: a tenth of json's time)."""
    return orjson.dumps(to_mail_send(message))


def _email(kind: type[_E], address: Address) -> _E:
    email = kind()
    email.email = address.email
    if address.name:
        email.name = address.name
    return email


def mail_send_problems(body: dict[str, Any]) -> list[str]:
    """What in a Mail Send body breaks SendGrid's documented limits (empty when none)."""
    problems = []
    personalizations = body.get("personalizations") or []
    if not 1 <= len(personalizations) <= MAX_PERSONALIZATIONS:
        problems.append(f"{len(personalizations)} personalizations; allowed 1 to 1000")
    recipients = sum(len(p.get(k) or []) for p in personalizations for k in ("to", "cc", "bcc"))
    if recipients > MAX_RECIPIENTS:
        problems.append(f"{recipients} recipients; at most {MAX_RECIPIENTS}")
    for index, personalization in enumerate(personalizations):
        problems += _custom_args_problems(personalization.get("custom_args") or {}, index)
    headers = body.get("headers") or {}
    problems += [
        f"header {name} may not be set" for name in headers if name.lower() in RESERVED_HEADERS
    ]
    problems += [
        f"header {name} must be a string"
        for name, value in headers.items()
        if not isinstance(value, str)
    ]
    if len(body.get("categories") or []) > MAX_CATEGORIES:
        problems.append(f"more than {MAX_CATEGORIES} categories")
    content = body.get("content") or []
    if not content or content[0].get("type") != "text/plain":
        problems.append("the first content must be text/plain")
    if not body.get("subject") and not all(p.get("subject") for p in personalizations):
        problems.append("no subject")
    return problems


def _custom_args_problems(custom_args: dict[str, Any], index: int) -> list[str]:
    problems = [
        f"personalization {index}: custom_args {key} must be a string"
        for key, value in custom_args.items()
        if not isinstance(value, str)
    ]
    size = len(json.dumps(custom_args, ensure_ascii=False).encode("utf-8"))
    if size > MAX_CUSTOM_ARGS_BYTES:
        problems.append(f"personalization {index}: custom_args are {size} bytes; at most 10000")
    return problems


# --- the transport ------------------------------------------------------------------------

_MAIL_SEND_PATH = "/v3/mail/send"
# SendGrid's error fields that name the recipient's address (personalizations.0.to.0.email).
_RECIPIENT_FIELD = re.compile(r"^personalizations(\.|\[)?\d*\]?\.(to|cc|bcc)\b.*\bemail$")
_INVALID_EMAIL = re.compile(r"(invalid|not (contain )?a valid)\b.*\b(e-?mail|address)", re.I)
_MAX_BODY_IN_ERROR = 2000  # characters of a refusal's body kept in the error message
# Failures before the request could have been read: nothing was taken, send it again.
_NOT_SENT = (
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.ConnectTimeoutError,
    urllib3.exceptions.NameResolutionError,
    urllib3.exceptions.EmptyPoolError,
)
# Failures after the request went out: SendGrid may have taken the message.
_AMBIGUOUS = (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError)


class SendGridTransport:
    """Posts each message to SendGrid's v3 Mail Send over one pooled, keep-alive client.

    The API key travels only in the Authorization header: it is never logged nor put
    in an error message. Thread-safe (the HTTP client is).
    """

    name = "sendgrid"

    def __init__(
        self,
        api_key: str,
        host: str = "https://api.sendgrid.com",
        timeout: float = 10.0,
        sandbox: bool = False,
        categories: tuple[str, ...] = (),
    ) -> None:
        if not api_key.strip():
            raise ConfigurationError("SENDGRID_API_KEY is empty; set it to a SendGrid API key")
        self._api_key = api_key
        self._url = f"{host.rstrip('/')}{_MAIL_SEND_PATH}"
        self._sandbox = sandbox
        self._categories = list(categories)
        self._headers = {"Authorization": f"Bearer {api_key}",
                         "Content-Type": "application/json"}  # fmt: skip
        self._pool = urllib3.connection_from_url(
            self._url, maxsize=20, retries=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
        )  # fmt: skip

    def send(self, message: OutboundMessage) -> HandOff:
        body = self._body(message)
        try:
            response = self._pool.urlopen("POST", self._url, body=body, headers=self._headers,
                                          redirect=False, preload_content=True)  # fmt: skip
        except _NOT_SENT as exc:
            raise RetryableError(f"cannot reach SendGrid at {self._url}: {_describe(exc)}") from exc
        except _AMBIGUOUS as exc:
            raise AmbiguousError(
                f"SendGrid at {self._url} did not answer after the request was sent "
                f"({_describe(exc)}); it may have taken the message"
            ) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise RetryableError(f"cannot reach SendGrid at {self._url}: {_describe(exc)}") from exc
        return self._outcome(response)

    def reconcile(self, message_id: str) -> bool | None:
        """Mail Send has no lookup by our id; SendGrid's events (custom_args) settle it."""
        return None

    def close(self) -> None:
        self._pool.close()

    def _body(self, message: OutboundMessage) -> bytes:
        body = to_mail_send(message)
        if self._categories:
            body["categories"] = self._categories
        if self._sandbox:
            body.setdefault("mail_settings", {})["sandbox_mode"] = {"enable": True}
        return orjson.dumps(body)

    def _outcome(self, response: urllib3.BaseHTTPResponse) -> HandOff:
        status = response.status
        if 200 <= status < 300:  # 202; 200 in sandbox mode
            return HandOff(self.name, provider_message_id=response.headers.get("X-Message-Id"))
        said = f"SendGrid refused the message: {status} {self._shown(response)}"
        if status == 429:
            raise RetryableError(said, retry_after=retry_after(response.headers, time.time()))
        if status >= 500:
            raise RetryableError(said)
        if status in (401, 403):
            raise PermanentError(
                f"SendGrid refused the API key ({status} {self._shown(response)}); "
                "check SENDGRID_API_KEY"
            )
        errors = _api_errors(response)
        raise PermanentError(
            f"SendGrid refused the message: {status} {_summary(errors) or self._shown(response)}",
            invalid_address=any(_names_recipient(error) for error in errors),
        )

    def _shown(self, response: urllib3.BaseHTTPResponse) -> str:
        """The response body as text, shortened, with the API key blanked should it echo it."""
        text = response.data.decode("utf-8", "replace")[:_MAX_BODY_IN_ERROR] or "(no body)"
        return text.replace(self._api_key, "[SENDGRID_API_KEY]")


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait after a 429: Retry-After (seconds or a date), else X-RateLimit-Reset."""
    if (value := headers.get("Retry-After")) is not None:
        with contextlib.suppress(ValueError):
            return max(0.0, float(value))
        with contextlib.suppress(TypeError, ValueError):
            return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    if (reset := headers.get("X-RateLimit-Reset")) is not None:
        with contextlib.suppress(ValueError):
            return max(0.0, float(reset) - now)
    return None


def _api_errors(response: urllib3.BaseHTTPResponse) -> list[dict[str, Any]]:
    """SendGrid's ``{"errors": [{"message", "field", "help"}]}``, or none when it is not that."""
    try:
        errors = orjson.loads(response.data).get("errors")
    except (orjson.JSONDecodeError, AttributeError):
        return []
    if not isinstance(errors, list):
        return []
    return [error for error in errors if isinstance(error, dict)]


def _summary(errors: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{error.get('message')} (field {error['field']})"
        if error.get("field")
        else str(error.get("message"))
        for error in errors
    )


def _names_recipient(error: dict[str, Any]) -> bool:
    field = str(error.get("field") or "")
    if field and not field.startswith("personalizations"):
        return False  # e.g. from.email: our own address, not the contact's
    message = str(error.get("message") or "")
    return bool(_RECIPIENT_FIELD.match(field)) or bool(_INVALID_EMAIL.search(message))


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
