"""SQL pieces that differ between SQLite and PostgreSQL, kept in one place."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Date, Integer, case, cast, func, literal
from sqlalchemy.sql.elements import ColumnElement

QUANTILES = (0.5, 0.9)


def seconds_between(dialect: str, start: Any, end: Any) -> ColumnElement[float]:
    """``end - start`` in seconds, as a float."""
    if dialect == "postgresql":
        # date_part gives a float; EXTRACT gives a numeric, ten times slower to take a log of
        return func.date_part("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def utc_day(dialect: str, instant: Any) -> ColumnElement[Any]:
    """The UTC calendar day of an instant (SQLite keeps naive UTC text)."""
    if dialect == "postgresql":
        return cast(func.timezone("UTC", instant), Date)
    return func.date(instant)


# --------------------------------------------------------------------------
# Percentiles from a log-scale histogram
#
# Exact percentiles sort every duration of every group (two million stays at a million
# contacts: seconds of sorting on PostgreSQL, with no parallelism). A histogram whose
# buckets grow by a constant factor is counted in one hashed pass, merges across groups
# (owners into the team) by adding counts, and bounds the error relative to the value, as
# DDSketch does: each bucket's value is the one within ``ACCURACY`` of all it holds.

ACCURACY = 0.01
GAMMA = (1 + ACCURACY) / (1 - ACCURACY)
Histogram = dict[int, int]  # bucket -> count; bucket -1 holds durations under a second


def duration_bucket(seconds: ColumnElement[float]) -> ColumnElement[int]:
    """The histogram bucket of a duration: ``floor(log_GAMMA(seconds))``, -1 under 1 s."""
    index = cast(func.floor(func.ln(seconds) / math.log(GAMMA)), Integer)
    return case((seconds < 1.0, literal(-1)), else_=index)


def bucket_value(bucket: int) -> float:
    """The value within ``ACCURACY`` of every duration in ``bucket``."""
    return 0.0 if bucket < 0 else 2 * GAMMA ** (bucket + 1) / (GAMMA + 1)


def histogram_quantiles(histogram: Histogram) -> tuple[int, float, float]:
    """Count, median and 90th percentile, interpolated between ranks as ``percentile_cont``
    does, each rank's value its bucket's."""
    n = sum(histogram.values())
    ranked = sorted(histogram.items())

    def at_rank(rank: int) -> float:
        below = 0
        for bucket, count in ranked:
            below += count
            if rank < below:
                return bucket_value(bucket)
        return bucket_value(ranked[-1][0])

    def quantile(q: float) -> float:
        position = q * (n - 1)
        low = math.floor(position)
        low_value, high_value = at_rank(low), at_rank(min(low + 1, n - 1))
        return low_value + (position - low) * (high_value - low_value)

    return n, quantile(QUANTILES[0]), quantile(QUANTILES[1])


def merge(histograms: Iterable[Histogram]) -> Histogram:
    """The histogram of the union of the groups."""
    total: Histogram = {}
    for histogram in histograms:
        for bucket, count in histogram.items():
            total[bucket] = total.get(bucket, 0) + count
    return total
