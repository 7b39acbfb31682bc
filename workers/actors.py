"""The actors. Each takes enrollment ids, is safe to run twice, and calls the engine.

A broker message carries a batch of ids, not one email: at a few thousand messages a
second, one broker round trip per email would spend the budget on the queue.
"""

from __future__ import annotations

import logging

import dramatiq

from engine.clock import utc_now
from workers import broker as _broker  # noqa: F401  (sets the broker before any actor)
from workers.context import current

STEPS_QUEUE = "steps"
log = logging.getLogger("salescycle.workers")


@dramatiq.actor(queue_name=STEPS_QUEUE, max_retries=3, min_backoff=1_000, time_limit=300_000)
def run_enrollments(enrollment_ids: list[int]) -> None:
    """Run each enrollment as far as it goes now.

    One enrollment's unexpected error is logged and does not stop the others; its claim
    runs out and the scheduler hands it out again.
    """
    context = current()
    now = utc_now()
    for enrollment_id in enrollment_ids:
        try:
            context.runner.run(context.database, enrollment_id, now)
        except Exception:
            log.exception("enrollment %s failed; it will be claimed again", enrollment_id)
