"""What an inbound message does, once classified: events, exits, pauses, the owner's copy.

``process_inbound`` matches the message to one of ours (``engine.replies.matching``),
records what it is through ``record_events`` (stage transitions by intent and
suppressions happen there) and applies the effects of new events only:

- a reply exits its enrollment (when the sequence exits on ``replied``), pauses the
  colleagues' outreach at the account under ``account_stop``, moves the contact to the
  ``on_reply`` stage when no rule moved them, queues the reply for the CRM and creates
  the contacts a referral names;
- an out-of-office keeps the contact's enrollments active and moves their next run to
  the day after the return date (or ``resume_after_days`` on), never earlier;
- a bounce suppresses hard-bounced addresses and ends their contacts' enrollments;
- an unsubscribe request (in words, or to the ``unsubscribe+`` address) suppresses the
  contact, ends their enrollments and tells the owner.

Replies and unsubscribe requests are forwarded to the owner (``engine.replies.forward``)
exactly once, tried again on later processing when the transport refused. Processing
the same row again changes nothing; another inbox row holding the same message (the
provider posted it twice) is a duplicate. A message matching nothing of ours is
``unmatched``: kept, and listed by ``salescycle inbound unmatched``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from engine.contacts.suppressions import add_suppressions
from engine.crm_outbox import enqueue_reply
from engine.delivery.transport import PermanentError, RetryableError
from engine.replies.effects import (
    back_at,
    end_contact_enrollments,
    end_enrollments,
    move_forward,
    pause_colleagues,
    postpone,
)
from engine.replies.forward import Forwarded, Forwarder, ForwardRequest, contact_name
from engine.replies.inbound_events import PROVIDER, inbound_events, recorded_by
from engine.replies.matching import Match, match_inbound
from engine.replies.model import Classification, InboundKind
from engine.replies.referrals import add_referrals
from engine.sequences.model import Sequence
from engine.stages import Pipeline
from engine.storage.schema import contacts, webhook_inbox
from engine.tracking.events import RejectReason, TrackingEvent
from engine.tracking.inbox import InboxStatus
from engine.tracking.processing import Recorded, record_events
from engine.tracking.tokens import TokenSigner
from engine.vocabulary import ReplyIntent

REPLIED = "replied"
MAX_NOTE = 2000


@dataclass(frozen=True)
class ReplySetup:
    """What processing needs from the workspace; no forwards without a ``forwarder``."""

    pipeline: Pipeline
    sequences: Mapping[str, Sequence]
    signer: TokenSigner
    forwarder: Forwarder | None = None
    resume_after: dt.timedelta = dt.timedelta(days=3)
    default_timezone: str = "UTC"


@dataclass(frozen=True)
class InboundResult:
    """How an inbox row ends: its status, a note kept on it, and the events recorded."""

    status: InboxStatus
    note: str | None = None
    recorded: Recorded = field(default_factory=Recorded)


@dataclass(frozen=True)
class _Inbound:
    row_id: int
    classification: Classification
    at: dt.datetime  # when it reached us
    original: str | None


def process_inbound(
    connection: Connection,
    inbox_row_id: int,
    classification: Classification,
    now: dt.datetime,
    setup: ReplySetup,
    original: str | None = None,
) -> InboundResult:
    """Apply what one classified inbound message means; ``original`` (its whole text) is
    quoted in the forward. Raises only for database errors."""
    match = match_inbound(connection, classification, setup.signer)
    inbound = _Inbound(inbox_row_id, classification, _received_at(connection, inbox_row_id, now),
                       original)  # fmt: skip
    kind = effective_kind(classification, match)
    batch = inbound_events(kind, classification, match, inbox_row_id, inbound.at)
    first_row = recorded_by(connection, batch)
    if first_row is not None and first_row != inbox_row_id:
        return InboundResult(InboxStatus.PROCESSED, f"duplicate of inbox row {first_row}")
    if kind is InboundKind.BOUNCE:
        return _bounce(connection, inbound, match, batch, now, setup)
    if match is None:
        return _unmatched(connection, kind, inbound, now)
    recorded = record_events(connection, batch, now, setup.pipeline)
    if first_row is None and recorded.new == 0:  # another worker recorded it just now
        return InboundResult(InboxStatus.PROCESSED, "recorded by another inbox row", recorded)
    new = recorded.new > 0
    if kind is InboundKind.AUTO_REPLY:
        if new:
            _postpone(connection, inbound, match, now, setup)
        return InboundResult(InboxStatus.PROCESSED, None, recorded)
    unsubscribe = kind is InboundKind.UNSUBSCRIBE_REQUEST
    if new and unsubscribe:
        end_contact_enrollments(connection, int(match.contact["id"]), "unsubscribed", now)
        _to_crm(connection, match, ReplyIntent.UNSUBSCRIBE_REQUEST, classification.subject, now)
    elif new:
        _reply_effects(connection, classification, match, recorded, now, setup)
    return _forward(connection, inbound, match, setup, now, recorded, unsubscribe)


def effective_kind(classification: Classification, match: Match | None) -> InboundKind:
    """What the message counts as: a mail to an unsubscribe address is a request, and so
    is a reply whose intent is one."""
    kind = classification.kind
    if kind in (InboundKind.BOUNCE, InboundKind.AUTO_REPLY):
        return kind
    if match is not None and match.unsubscribe:
        return InboundKind.UNSUBSCRIBE_REQUEST
    if classification.intent is ReplyIntent.UNSUBSCRIBE_REQUEST:
        return InboundKind.UNSUBSCRIBE_REQUEST
    return kind


def _received_at(connection: Connection, row_id: int, now: dt.datetime) -> dt.datetime:
    query = select(webhook_inbox.c.received_at).where(webhook_inbox.c.id == row_id)
    received: dt.datetime | None = connection.execute(query).scalar()
    return received or now


# by kind ------------------------------------------------------------------------------


def _reply_effects(
    connection: Connection,
    classification: Classification,
    match: Match,
    recorded: Recorded,
    now: dt.datetime,
    setup: ReplySetup,
) -> None:
    sequence = setup.sequences.get(str(match.message["sequence"] or ""))
    if match.enrollment is not None and (sequence is None or REPLIED in sequence.exit_when):
        end_enrollments(connection, [int(match.enrollment["id"])], REPLIED, now)
    pause_colleagues(connection, match.contact, setup.sequences, now)
    if sequence is not None and sequence.on_reply.stage and recorded.stage_changes == 0:
        detail = f"reply to message {match.message['public_id']} (on_reply of {sequence.name})"
        stage = sequence.on_reply.stage
        move_forward(connection, setup.pipeline, int(match.contact["id"]), stage, detail, now)
    _to_crm(connection, match, classification.intent, classification.subject, now)
    if classification.intent is ReplyIntent.REFERRAL and classification.referrals:
        initial = setup.pipeline.initial
        add_referrals(connection, match.contact, classification.referrals, initial, now)


def _to_crm(
    connection: Connection,
    match: Match,
    intent: ReplyIntent | None,
    subject: str,
    now: dt.datetime,
) -> None:
    enqueue_reply(connection, int(match.contact["id"]), now,
                  intent=intent.value if intent else None, message_id=int(match.message["id"]),
                  sequence=match.message["sequence"], subject=subject)  # fmt: skip


def _postpone(
    connection: Connection, inbound: _Inbound, match: Match, now: dt.datetime, setup: ReplySetup
) -> int:
    contact = match.contact
    until = back_at(inbound.classification.returns_on, inbound.at, setup.resume_after,
                    contact.get("timezone"), setup.default_timezone)  # fmt: skip
    return postpone(connection, int(contact["id"]), until, now)


def _bounce(
    connection: Connection,
    inbound: _Inbound,
    match: Match | None,
    batch: list[TrackingEvent],
    now: dt.datetime,
    setup: ReplySetup,
) -> InboundResult:
    """Record the bounces (hard ones suppress); hard-bounced contacts' enrollments end."""
    recorded = record_events(connection, batch, now, setup.pipeline)
    addresses = sorted({e.recipient for e in batch if e.recipient is not None})
    query = select(contacts.c.id, contacts.c.email).where(contacts.c.email.in_(addresses))
    known = {str(row.email): int(row.id) for row in connection.execute(query)}
    if recorded.new:
        hard = {e.recipient for e in batch if e.reject_reason is RejectReason.HARD_BOUNCE}
        for email in sorted(known.keys() & hard):
            end_contact_enrollments(connection, known[email], "bounced", now)
    if match is None and not known:
        note = f"a bounce about no contact of ours ({', '.join(addresses) or 'no address found'})"
        return InboundResult(InboxStatus.UNMATCHED, note[:MAX_NOTE], recorded)
    return InboundResult(InboxStatus.PROCESSED, None, recorded)


def _unmatched(
    connection: Connection, kind: InboundKind, inbound: _Inbound, now: dt.datetime
) -> InboundResult:
    """Keep it for a person; an unsubscribe request is honoured for its sender all the same."""
    classification = inbound.classification
    sender = classification.sender
    note = (f"no reply token, In-Reply-To or References of ours: {kind} from "
            f"{sender or 'an unknown sender'}, subject {classification.subject!r}")  # fmt: skip
    if kind is InboundKind.UNSUBSCRIBE_REQUEST and sender:
        detail = f"unsubscribe request by email (inbox row {inbound.row_id})"
        row = {"email": sender.lower(), "reason": "unsubscribed", "source": PROVIDER,
               "detail": detail, "created_at": now}  # fmt: skip
        add_suppressions(connection, [row])
        note += "; the sender is suppressed"
    return InboundResult(InboxStatus.UNMATCHED, note[:MAX_NOTE])


# the owner's copy ---------------------------------------------------------------------


def _forward(
    connection: Connection,
    inbound: _Inbound,
    match: Match,
    setup: ReplySetup,
    now: dt.datetime,
    recorded: Recorded,
    unsubscribe: bool,
) -> InboundResult:
    """Forward to the owner; a refused hand-off leaves the row ``received`` for a retry."""
    if setup.forwarder is None:
        return InboundResult(InboxStatus.PROCESSED, None, recorded)
    request = _forward_request(connection, inbound, match, setup, unsubscribe)
    target = setup.forwarder.target(request)
    try:
        outcome = setup.forwarder.forward(connection, request, now)
    except RetryableError as exc:
        note = f"forward to {target} refused, tried again on the next processing: {exc}"
        return InboundResult(InboxStatus.RECEIVED, note[:MAX_NOTE], recorded)
    except PermanentError as exc:
        note = f"forward to {target} refused for good: {exc}"
        return InboundResult(InboxStatus.FAILED, note[:MAX_NOTE], recorded)
    if outcome is Forwarded.AMBIGUOUS:
        note = f"the forward to {target} may not have gone out (no answer from the transport)"
        return InboundResult(InboxStatus.PROCESSED, note, recorded)
    return InboundResult(InboxStatus.PROCESSED, None, recorded)


def _forward_request(
    connection: Connection, inbound: _Inbound, match: Match, setup: ReplySetup, unsubscribe: bool
) -> ForwardRequest:
    classification = inbound.classification
    query = select(contacts.c.stage).where(contacts.c.id == match.contact["id"])
    stage = connection.execute(query).scalar() or match.contact["stage"]
    banner, label = None, "Reply"
    if unsubscribe:
        label = "Unsubscribe request"
        banner = (f"{contact_name(match.contact)} asked to be removed from our emails: the "
                  "address is suppressed and their sequences are stopped.")  # fmt: skip
    return ForwardRequest(
        inbox_row_id=inbound.row_id,
        contact=match.contact,
        account=match.account,
        owner=match.owner,
        message=match.message,
        sequence=setup.sequences.get(str(match.message["sequence"] or "")),
        stage=str(stage),
        intent=classification.intent.value if classification.intent else None,
        text=classification.text,
        original=inbound.original,
        banner=banner,
        label=label,
    )
