"""The web app: SendGrid webhooks, own tracking links and health (``salescycle serve``)."""

from engine.web.app import app_from_runtime, create_app
from engine.web.context import OnStored, WebContext, no_nudge
from engine.web.limits import BodyTooLarge, read_body
from engine.web.sendgrid_webhooks import EventSignatureVerifier, is_multipart_form

__all__ = [
    # the app
    "app_from_runtime",
    "create_app",
    "OnStored",
    "WebContext",
    "no_nudge",
    # pieces
    "BodyTooLarge",
    "EventSignatureVerifier",
    "is_multipart_form",
    "read_body",
]
