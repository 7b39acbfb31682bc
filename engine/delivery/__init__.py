"""Delivery: the message every transport receives, its RFC 5322 and SendGrid forms, and the
transports that hand it off (memory stub, file outbox, SMTP, SendGrid)."""

from engine.delivery.factory import make_transport
from engine.delivery.memory import MemoryTransport
from engine.delivery.message import Address, OutboundMessage, new_message_id
from engine.delivery.mime import to_rfc5322
from engine.delivery.outbox import OutboxTransport, outbox_messages
from engine.delivery.sendgrid import (
    SendGridTransport,
    mail_send_json,
    mail_send_problems,
    to_mail_send,
)
from engine.delivery.smtp import DkimSigner, SmtpTransport
from engine.delivery.transport import (
    AmbiguousError,
    HandOff,
    HandOffError,
    PermanentError,
    RetryableError,
    Transport,
)

__all__ = [
    # the message
    "Address",
    "OutboundMessage",
    "new_message_id",
    "to_rfc5322",
    "mail_send_json",
    "mail_send_problems",
    "to_mail_send",
    # the transport protocol and its outcomes
    "Transport",
    "HandOff",
    "HandOffError",
    "RetryableError",
    "AmbiguousError",
    "PermanentError",
    # the transports
    "MemoryTransport",
    "OutboxTransport",
    "outbox_messages",
    "SmtpTransport",
    "DkimSigner",
    "SendGridTransport",
    "make_transport",
]
