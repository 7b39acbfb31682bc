"""The actors. Each takes enrollment ids, is safe to run twice, and calls the engine.

A broker message carries a batch of ids, not one email: at a few thousand messages a
second, one broker round trip per email would spend the budget on the queue.
"""

from __future__ import annotations

import logging

import dramatiq

from workers import broker as _broker  # noqa: F401  (sets the broker before any actor)
from workers.context import current

STEPS_QUEUE = "steps"
log = logging.getLogger("salescycle.workers")


@dramatiq.actor(queue_name=STEPS_QUEUE, max_retries=3, min_backoff=1_000, time_limit=300_000)
def run_enrollments(enrollment_ids: list[int]) -> None:
    """Run the enrollments as far as they go now, as one batch.

    An unexpected error is logged and the batch left as it is: the claims run out and the
    scheduler hands the enrollments out again, while the messages written before a
    hand-off keep any of them from going out twice.
    """
    context = current()
    try:
        context.runner.run_many(context.database, enrollment_ids, context.clock())
    except Exception:
        log.exception("enrollments %s failed; they will be claimed again", enrollment_ids)
