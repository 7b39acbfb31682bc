"""The inbox actor: turns stored webhook bodies into recorded events, stage moves and
suppressions, and inbound replies into their effects and the owner's copy. Takes inbox
row ids, is safe to run twice (processed rows are skipped, event ids deduplicate, a
forward goes out once), and calls the engine.
"""

from __future__ import annotations

import dramatiq

from engine.replies.forward import Forwarder
from engine.replies.handler import handler_for
from engine.tracking.replay import InboxProcessor
from workers import broker as _broker  # noqa: F401  (sets the broker before any actor)
from workers.context import WorkerContext, current

INBOX_QUEUE = "inbox"


@dramatiq.actor(queue_name=INBOX_QUEUE, max_retries=5, min_backoff=1_000, time_limit=300_000)
def process_inbox(ids: list[int]) -> None:
    """Process the inbox rows ``ids`` that are still ``received``.

    A row that cannot be read or recorded is marked failed and kept; an error that
    stops the whole batch (the database is gone) raises, so Dramatiq retries it.
    """
    context = current()
    inbox_processor(context).process_ids(ids, context.clock())


def inbox_processor(context: WorkerContext) -> InboxProcessor:
    """A processor for every source, inbound replies included (forwarded through the
    runner's builder and transport)."""
    forwarder = Forwarder(context.runner.builder, context.runner.transport)
    inbound = handler_for(context.runtime, forwarder)
    return InboxProcessor(context.database, context.runtime.pipeline, inbound=inbound)
