"""One ``sendgrid_inbound`` inbox row, start to end: the MIME out of the stored form, its
classification, and what it does (``process_inbound``). What ``InboxProcessor`` calls."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from email import message_from_bytes, policy
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from engine.replies.classify import classify
from engine.replies.forward import Forwarder
from engine.replies.inbound_parse import InboundPostError, read_post
from engine.replies.processing import InboundResult, ReplySetup, process_inbound
from engine.replies.rules import ReplyRules
from engine.replies.text import message_text
from engine.sequences.model import Sequence
from engine.stages import Pipeline
from engine.tracking.events import MalformedBodyError
from engine.tracking.tokens import TokenSigner

if TYPE_CHECKING:
    from engine.wiring import Runtime


class InboundHandler:
    """Reads, classifies and processes stored Inbound Parse posts."""

    def __init__(self, rules: ReplyRules, setup: ReplySetup) -> None:
        self.rules = rules
        self.setup = setup

    def process(
        self,
        connection: Connection,
        row_id: int,
        headers: Mapping[str, str],
        body: bytes,
        now: dt.datetime,
    ) -> InboundResult:
        """Process one stored post; raises ``MalformedBodyError`` for a body that is no
        Inbound Parse form (the row is then marked failed, with the reason)."""
        try:
            post = read_post(body, str(headers.get("content-type", "")))
        except InboundPostError as exc:
            raise MalformedBodyError(str(exc)) from None
        classification = classify(post.mime, self.rules, post.envelope_to)
        original = message_text(message_from_bytes(post.mime, policy=policy.default))
        return process_inbound(connection, row_id, classification, now, self.setup, original)


def inbound_handler(
    rules: ReplyRules,
    pipeline: Pipeline,
    sequences: Iterable[Sequence],
    signer: TokenSigner,
    forwarder: Forwarder | None,
    default_timezone: str = "UTC",
) -> InboundHandler:
    """A handler over one workspace's rules, pipeline and sequences."""
    setup = ReplySetup(pipeline, {s.name: s for s in sequences}, signer, forwarder,
                       dt.timedelta(days=rules.resume_after_days), default_timezone)  # fmt: skip
    return InboundHandler(rules, setup)


def handler_for(runtime: Runtime, forwarder: Forwarder | None) -> InboundHandler:
    """The handler of an opened workspace (``forwarder``: how the owners get their copy)."""
    return inbound_handler(runtime.reply_rules, runtime.pipeline, runtime.sequences,
                           runtime.tracking_links.signer, forwarder,
                           runtime.settings.default_timezone)  # fmt: skip
