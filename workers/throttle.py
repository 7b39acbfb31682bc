"""Throttles from Dramatiq's rate limiters: the whole provider, and each recipient domain.

Counted in Redis when the workers use Redis (so every process shares them), else in
memory; a send over a limit waits a moment instead of failing.
"""

from __future__ import annotations

import datetime as dt
from typing import cast

from dramatiq.rate_limits import RateLimiterBackend, WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend, StubBackend


def rate_limiter_backend(broker_url: str | None) -> RateLimiterBackend:
    """Redis at ``broker_url`` (shared by every worker), else this process's memory."""
    if broker_url:
        return cast(RateLimiterBackend, RedisBackend(url=broker_url))
    return cast(RateLimiterBackend, StubBackend())


class RateLimitThrottle:
    """At most ``per_second`` sends a second in all, and ``per_domain_per_minute`` to a domain."""

    def __init__(
        self, backend: RateLimiterBackend, per_second: int, per_domain_per_minute: int
    ) -> None:
        self._backend = backend
        self._provider = WindowRateLimiter(backend, "send:provider", limit=per_second, window=1)
        self._per_domain = per_domain_per_minute

    def admit(self, recipient_domain: str) -> dt.timedelta | None:
        """``None`` when the send may go now, else how long to wait."""
        with self._provider.acquire(raise_on_failure=False) as acquired:
            if not acquired:
                return dt.timedelta(seconds=1)
        domain = WindowRateLimiter(
            self._backend, f"send:domain:{recipient_domain.lower()}",
            limit=self._per_domain, window=60,
        )  # fmt: skip
        with domain.acquire(raise_on_failure=False) as acquired:
            return None if acquired else dt.timedelta(minutes=1)
