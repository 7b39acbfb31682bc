"""The throttles: a provider-wide rate and a per-domain rate, in memory and in Redis."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import redis

from workers.throttle import MemoryThrottle, RedisThrottle

NINE = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC).timestamp()
Throttles = Callable[[int, int, Callable[[], float]], MemoryThrottle | RedisThrottle]


@pytest.fixture(params=["memory", "redis"])
def make(request: pytest.FixtureRequest) -> Throttles:
    if request.param == "memory":
        return lambda second, minute, clock: MemoryThrottle(second, minute, clock)
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    request.addfinalizer(client.close)
    return lambda second, minute, clock: RedisThrottle(client, second, minute, clock)


def test_the_provider_rate_and_each_domain_rate_are_kept(make: Throttles) -> None:
    throttle = make(3, 2, lambda: NINE + 0.25)

    answers = throttle.admit(["a.dk", "a.dk", "A.DK", "b.se", "c.no"])

    # the third to a.dk waits for the next minute; b.se takes the provider's third send
    # of this second, so c.no waits for the next second
    assert answers == [None, None, dt.timedelta(seconds=59.75), None,
                       dt.timedelta(seconds=0.75)]  # fmt: skip


def test_the_counts_are_shared_between_calls_and_the_windows_turn(make: Throttles) -> None:
    now = [NINE]
    throttle = make(10, 1, lambda: now[0])

    first = throttle.admit(["a.dk"])
    again = throttle.admit(["a.dk", "b.se"])
    now[0] += 61
    later = throttle.admit(["a.dk"])

    assert first == [None]
    assert again == [dt.timedelta(seconds=60), None]
    assert later == [None]


def test_two_throttles_on_one_redis_share_the_provider_rate(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        one, two = (RedisThrottle(client, 2, 100, lambda: NINE) for _ in range(2))

        answers = one.admit(["a.dk"]) + two.admit(["b.se", "c.no"])
    finally:
        client.close()

    assert answers == [None, None, dt.timedelta(seconds=1)]


def test_nothing_to_admit_asks_nothing(make: Throttles) -> None:
    assert make(1, 1, lambda: NINE).admit([]) == []
