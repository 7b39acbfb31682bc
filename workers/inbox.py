"""The inbox actor: turns stored webhook bodies into recorded events, stage moves and
suppressions. Takes inbox row ids, is safe to run twice (processed rows are skipped,
event ids deduplicate), and calls the engine.
"""

from __future__ import annotations

import dramatiq

from engine.clock import utc_now
from engine.tracking.replay import InboxProcessor
from workers import broker as _broker  # noqa: F401  (sets the broker before any actor)
from workers.context import current

INBOX_QUEUE = "inbox"


@dramatiq.actor(queue_name=INBOX_QUEUE, max_retries=5, min_backoff=1_000, time_limit=300_000)
def process_inbox(ids: list[int]) -> None:
    """Process the inbox rows ``ids`` that are still ``received``.

    A row that cannot be read or recorded is marked failed and kept; an error that
    stops the whole batch (the database is gone) raises, so Dramatiq retries it.
    """
    context = current()
    processor = InboxProcessor(context.database, context.runtime.pipeline)
    processor.process_ids(ids, utc_now())
