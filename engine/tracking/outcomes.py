"""What became of each message and where exits happened, kept on the rows the reports read.

A report over millions of events must not join them to their messages each time, so
``record_events`` keeps two summaries up to date:

- ``messages.outcomes``: one bit per outcome (:data:`OUTCOME_BITS`), and
  ``messages.reply_intent``: the intent of the latest reply recorded (``unclassified`` when none was
  found). Both are recomputed from the message's events, so a click flagged as a machine's
  after the fact clears its bit, and a repeated batch changes nothing.
- ``events.contact_stage``: the contact's stage when an exit (an unsubscribe, a complaint,
  a bounce) was recorded, so the funnel names where contacts left without a history lookup.

:func:`refresh_outcomes` with no ids and :func:`fill_exit_stages` rebuild both from the
events and the stage history (migration 0005 does this for existing rows).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, func, literal, select, update

from engine.storage.bulk import in_chunks
from engine.storage.schema import events, messages, stage_history
from engine.vocabulary import EventKind

UNCLASSIFIED = "unclassified"
# outcome -> the events that mark a message with it (opens and clicks by people only)
OUTCOMES: dict[str, ColumnElement[bool]] = {
    "delivered": events.c.kind == EventKind.DELIVERED.value,
    "opened": (events.c.kind == EventKind.OPENED.value) & events.c.machine.is_(False),
    "bot_opened": (events.c.kind == EventKind.OPENED.value) & events.c.machine.is_(True),
    "clicked": (events.c.kind == EventKind.CLICKED.value) & events.c.machine.is_(False),
    "replied": events.c.kind == EventKind.REPLIED.value,
    "auto_replied": events.c.kind == EventKind.AUTO_REPLIED.value,
    "bounced": events.c.kind == EventKind.BOUNCED.value,
    "unsubscribed": events.c.kind == EventKind.UNSUBSCRIBED.value,
    "complained": events.c.kind == EventKind.COMPLAINED.value,
}
OUTCOME_BITS: dict[str, int] = {name: 1 << i for i, name in enumerate(OUTCOMES)}
# events after which a contact may not be emailed again; their stage is kept
EXIT_KINDS = (EventKind.UNSUBSCRIBED, EventKind.COMPLAINED, EventKind.BOUNCED)


def has_outcome(outcomes: Any, name: str) -> ColumnElement[bool]:
    """``outcomes`` (a ``messages.outcomes`` column) has the bit of outcome ``name``."""
    flagged: ColumnElement[bool] = outcomes.op("&")(OUTCOME_BITS[name]) != 0
    return flagged


def refresh_outcomes(connection: Connection, message_ids: Collection[int] | None = None) -> None:
    """Recompute ``outcomes`` and ``reply_intent`` of ``message_ids`` (every message: None)."""
    of_message = events.c.message_id == messages.c.id
    bits = sum(
        (func.max(case((condition, OUTCOME_BITS[name]), else_=0)) for name, condition in
         OUTCOMES.items()),
        start=literal(0),
    )  # fmt: skip
    latest_reply = (
        select(func.coalesce(events.c.detail["intent"].as_string(), UNCLASSIFIED))
        .where(of_message, events.c.kind == EventKind.REPLIED.value)
        # the latest recorded: the (message_id, kind) index gives that order, where ordering by
        # occurred_at had SQLite walk every reply in the (kind, occurred_at) index instead
        .order_by(events.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    statement = update(messages).values(
        outcomes=func.coalesce(select(bits).where(of_message).scalar_subquery(), 0),
        reply_intent=latest_reply,
    )
    if message_ids is None:
        connection.execute(statement)
        return
    for condition in in_chunks(connection.dialect.name, messages.c.id, message_ids):
        connection.execute(statement.where(condition))


def stage_at(contact_id: Any, instant: Any) -> ColumnElement[str]:
    """The stage ``contact_id`` was in at ``instant``, from the stage history."""
    h = stage_history.c
    return (
        select(h.to_stage)
        .where(h.contact_id == contact_id, h.changed_at <= instant)
        .order_by(h.changed_at.desc(), h.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def fill_exit_stages(connection: Connection) -> None:
    """Set ``contact_stage`` of exit events recorded without one, from the stage history."""
    e = events.c
    connection.execute(
        update(events)
        .where(
            e.kind.in_([k.value for k in EXIT_KINDS]),
            e.contact_id.is_not(None),
            e.contact_stage.is_(None),
        )
        .values(contact_stage=stage_at(e.contact_id, e.occurred_at))
    )
