"""The scheduler's chores: what the elected scheduler does now and then besides claiming."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import Engine

from engine.contacts.crm_webhook import CrmWebhookSender
from engine.sequences.reconcile import retry_unconfirmed
from engine.sequences.scheduler import batches
from engine.tracking.replay import pending_ids
from engine.wiring import Runtime
from workers.loop import Chore

INBOX_SWEEP_EVERY = dt.timedelta(seconds=30)
CRM_DELIVERY_EVERY = dt.timedelta(seconds=5)
UNCONFIRMED_EVERY = dt.timedelta(seconds=10)
INBOX_BATCH = 100


def inbox_sweep(database: Engine, dispatch: Callable[[list[int]], object]) -> Chore:
    """Hand inbox rows still ``received`` to the workers: the web app nudges a worker for
    each row it stores, and this catches the nudges that were lost (Redis restarted)."""

    def sweep(now: dt.datetime) -> int:
        with database.connect() as connection:
            ids = pending_ids(connection)
        for batch in batches(ids, INBOX_BATCH):
            dispatch(batch)
        return len(ids)

    return Chore("inbox sweep", INBOX_SWEEP_EVERY, sweep)


def crm_delivery(database: Engine, sender: CrmWebhookSender) -> Chore:
    """POST the stage changes and replies waiting in the CRM outbox (in order, per contact;
    a receiver that is down is tried again after its backoff)."""
    return Chore("CRM webhook", CRM_DELIVERY_EVERY, lambda now: sender.deliver_due(database, now))


def unconfirmed_resend(database: Engine, after: dt.timedelta) -> Chore:
    """Hand off again what no provider event confirmed ``after`` the hand-off."""

    def resend(now: dt.datetime) -> int:
        with database.begin() as connection:
            return retry_unconfirmed(connection, now - after, now)

    return Chore("unconfirmed hand-offs", UNCONFIRMED_EVERY, resend)


def standard_chores(runtime: Runtime, inbox: Callable[[list[int]], object]) -> list[Chore]:
    """The chores of ``salescycle scheduler`` and ``salescycle run``: the inbox sweep; the
    CRM webhook when ``crm_webhook.url`` is set; resending unconfirmed hand-offs when
    SendGrid's events can confirm them."""
    database = runtime.ready_database()
    chores = [inbox_sweep(database, inbox)]
    sender = runtime.crm_webhook_sender
    if sender is not None:
        chores.append(crm_delivery(database, sender))
    if runtime.confirms_hand_offs():
        after = runtime.settings.sending.unconfirmed_resend_after_seconds
        chores.append(unconfirmed_resend(database, dt.timedelta(seconds=after)))
    return chores
