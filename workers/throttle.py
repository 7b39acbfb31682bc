"""Throttles: a send rate for the whole provider, and a rate for each recipient domain.

Counted in fixed windows (a second for the provider, a minute for a domain), as
Dramatiq's ``BucketRateLimiter`` counts; in Redis when the workers use Redis, so every
process shares them, else in this process's memory. A denied send waits until its
window turns instead of failing.

Why not Dramatiq's rate limiters themselves: they admit one operation a call, and each
call costs four Redis round trips under WATCH (``WindowRateLimiter`` also reads one key
per second of its window: 60 for a per-minute domain rate). Measured in
``bench/pipeline.py``, two acquisitions a message cost about 1.9 ms of worker CPU, most
of the budget at 1,000 messages a second, and the WATCH retries grow with contention.
Here a whole batch is admitted in one atomic script: one round trip a broker message.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

PROVIDER_WINDOW_S, DOMAIN_WINDOW_S = 1, 60

# KEYS[1]: the provider's window; KEYS[2..]: each send's domain window (repeats allowed).
# ARGV: provider limit, domain limit, provider window ms, domain window ms.
# Returns per send 0 (admitted), 1 (the provider's rate is used up) or 2 (the domain's).
_ADMIT_SCRIPT = """
local provider = tonumber(redis.call('GET', KEYS[1]) or '0')
local provider_limit, domain_limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local counts, answers = {}, {}
for i = 2, #KEYS do
  local key = KEYS[i]
  local n = counts[key] or tonumber(redis.call('GET', key) or '0')
  if provider >= provider_limit then
    answers[i - 1] = 1
  elseif n >= domain_limit then
    answers[i - 1] = 2
  else
    provider, n, answers[i - 1] = provider + 1, n + 1, 0
  end
  counts[key] = n
end
redis.call('SET', KEYS[1], provider, 'PX', ARGV[3])
for key, n in pairs(counts) do redis.call('SET', key, n, 'PX', ARGV[4]) end
return answers
"""


class _Windows:
    """The window keys and the waits that go with a denial."""

    def __init__(self, per_second: int, per_domain_per_minute: int) -> None:
        self.per_second = per_second
        self.per_domain = per_domain_per_minute

    def keys(self, domains: Sequence[str], now: float) -> list[str]:
        second, minute = int(now) // PROVIDER_WINDOW_S, int(now) // DOMAIN_WINDOW_S
        return [f"salescycle:throttle:provider:{second}"] + [
            f"salescycle:throttle:domain:{domain.lower()}:{minute}" for domain in domains
        ]

    @staticmethod
    def waits(answers: Sequence[int], now: float) -> list[dt.timedelta | None]:
        """``None`` for an admitted send, else the time until its window turns."""
        to_next_second = PROVIDER_WINDOW_S - now % PROVIDER_WINDOW_S
        to_next_minute = DOMAIN_WINDOW_S - now % DOMAIN_WINDOW_S
        waits = {0: None, 1: dt.timedelta(seconds=to_next_second),
                 2: dt.timedelta(seconds=to_next_minute)}  # fmt: skip
        return [waits[int(answer)] for answer in answers]


class RedisThrottle:
    """The throttle shared by every worker through Redis."""

    def __init__(
        self, client: redis.Redis, per_second: int, per_domain_per_minute: int,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self._windows = _Windows(per_second, per_domain_per_minute)
        self._script = client.register_script(_ADMIT_SCRIPT)
        self._clock = clock

    def admit(self, recipient_domains: Sequence[str]) -> list[dt.timedelta | None]:
        """For each send, in order: ``None`` when it may go now, else how long to wait."""
        if not recipient_domains:
            return []
        now = self._clock()
        windows = self._windows
        arguments = [windows.per_second, windows.per_domain,
                     PROVIDER_WINDOW_S * 1000, DOMAIN_WINDOW_S * 1000]  # fmt: skip
        answers: Any = self._script(keys=windows.keys(recipient_domains, now), args=arguments)
        return windows.waits(answers, now)


class MemoryThrottle:
    """The same throttle counted in this process (the embedded run, tests)."""

    def __init__(
        self, per_second: int, per_domain_per_minute: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._windows = _Windows(per_second, per_domain_per_minute)
        self._clock = clock
        self._lock = threading.Lock()
        self._second, self._provider = -1, 0
        self._minute, self._domains = -1, dict[str, int]()

    def admit(self, recipient_domains: Sequence[str]) -> list[dt.timedelta | None]:
        """For each send, in order: ``None`` when it may go now, else how long to wait."""
        now = self._clock()
        second, minute = int(now) // PROVIDER_WINDOW_S, int(now) // DOMAIN_WINDOW_S
        answers = []
        with self._lock:
            if second != self._second:
                self._second, self._provider = second, 0
            if minute != self._minute:
                self._minute, self._domains = minute, {}
            for domain in (d.lower() for d in recipient_domains):
                if self._provider >= self._windows.per_second:
                    answers.append(1)
                elif self._domains.get(domain, 0) >= self._windows.per_domain:
                    answers.append(2)
                else:
                    self._provider += 1
                    self._domains[domain] = self._domains.get(domain, 0) + 1
                    answers.append(0)
        return self._windows.waits(answers, now)


def make_throttle(
    broker_url: str | None,
    per_second: int,
    per_domain_per_minute: int,
    clock: Callable[[], dt.datetime] | None = None,
) -> RedisThrottle | MemoryThrottle:
    """Redis at ``broker_url`` (shared by every worker), else this process's memory;
    windows counted on ``clock`` (the wall clock when ``None``)."""
    seconds = time.time if clock is None else (lambda: clock().timestamp())
    if broker_url:
        client = redis.Redis.from_url(broker_url)
        return RedisThrottle(client, per_second, per_domain_per_minute, seconds)
    return MemoryThrottle(per_second, per_domain_per_minute, seconds)
