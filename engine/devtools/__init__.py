"""Tools for development, tests, benchmarks and the demo; nothing in production imports them."""

from engine.devtools.sendgrid_events import EventSigner, events_for, post_events
from engine.devtools.sendgrid_sink import (
    AcceptedMail,
    Faults,
    Outcome,
    SendGridSink,
    SinkStats,
    serve,
)

__all__ = [
    # the SendGrid Mail Send sink
    "SendGridSink",
    "serve",
    "Faults",
    # what it keeps and counts
    "AcceptedMail",
    "Outcome",
    "SinkStats",
    # signed Event Webhook batches about accepted mail
    "EventSigner",
    "events_for",
    "post_events",
]
