"""Reading inbound mail: SendGrid Inbound Parse posts, bounces, auto-replies, intents.

``classify`` is one pure function of the raw message and the rules of
``config/replies.yaml``; the webhook workers, ``salescycle inbound classify`` and
the tests share it.
"""

from engine.replies.classify import classify
from engine.replies.inbound_parse import InboundPost, InboundPostError, raw_mime_of, read_post
from engine.replies.model import BouncedAddress, Classification, InboundKind
from engine.replies.rules import (
    REPLIES_FILE,
    PhraseMatch,
    ReplyRules,
    load_reply_rules,
    read_reply_rules,
)

__all__ = [
    # the model
    "BouncedAddress",
    "Classification",
    "InboundKind",
    # reading one message
    "classify",
    # SendGrid Inbound Parse posts
    "InboundPost",
    "InboundPostError",
    "raw_mime_of",
    "read_post",
    # config/replies.yaml
    "REPLIES_FILE",
    "PhraseMatch",
    "ReplyRules",
    "load_reply_rules",
    "read_reply_rules",
]
