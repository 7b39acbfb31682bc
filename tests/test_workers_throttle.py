"""The Dramatiq rate-limit throttle: a provider-wide rate and a per-domain rate."""

from __future__ import annotations

import datetime as dt

import time_machine

from workers.throttle import RateLimitThrottle, rate_limiter_backend


def test_the_provider_rate_and_each_domain_rate_are_kept() -> None:
    with time_machine.travel(dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC), tick=False):
        throttle = RateLimitThrottle(
            rate_limiter_backend(None), per_second=3, per_domain_per_minute=2
        )

        answers = [throttle.admit(domain) for domain in ("a.dk", "a.dk", "a.dk", "b.se", "c.no")]

    # the third to a.dk waits a minute; then the provider's 3 a second are used up
    assert answers == [None, None, dt.timedelta(minutes=1), dt.timedelta(seconds=1),
                       dt.timedelta(seconds=1)]  # fmt: skip


def test_the_window_moves_on() -> None:
    start = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
    throttle = RateLimitThrottle(rate_limiter_backend(None), per_second=1, per_domain_per_minute=1)
    with time_machine.travel(start, tick=False):
        first = throttle.admit("a.dk")
    with time_machine.travel(start + dt.timedelta(seconds=61), tick=False):
        later = throttle.admit("a.dk")

    assert first is None and later is None
