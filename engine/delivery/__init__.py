"""Delivery: the message every transport receives, and its RFC 5322 and SendGrid forms."""

from engine.delivery.message import Address, OutboundMessage, new_message_id
from engine.delivery.mime import to_rfc5322
from engine.delivery.sendgrid import mail_send_json, mail_send_problems, to_mail_send

__all__ = [
    "Address",
    "OutboundMessage",
    "new_message_id",
    "to_rfc5322",
    "mail_send_json",
    "mail_send_problems",
    "to_mail_send",
]
