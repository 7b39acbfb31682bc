"""SQL pieces that differ between SQLite and PostgreSQL, kept in one place."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Date,
    Float,
    Integer,
    Subquery,
    cast,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.sql.elements import ColumnElement

Key = tuple[Any, ...]
QUANTILES = (0.5, 0.9)


def seconds_between(dialect: str, start: Any, end: Any) -> ColumnElement[float]:
    """``end - start`` in seconds, as a float."""
    if dialect == "postgresql":
        return cast(func.extract("epoch", end - start), Float)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def utc_day(dialect: str, instant: Any) -> ColumnElement[Any]:
    """The UTC calendar day of an instant (SQLite keeps naive UTC text)."""
    if dialect == "postgresql":
        return cast(func.timezone("UTC", instant), Date)
    return func.date(instant)


def percentiles(
    connection: Connection, durations: Subquery, keys: Sequence[str]
) -> dict[Key, tuple[int, float, float]]:
    """Count, median and 90th percentile of ``durations.c.seconds`` per ``keys`` group.

    Interpolated as ``percentile_cont`` does; PostgreSQL computes them itself, SQLite
    (which has no ordered-set aggregates) numbers the sorted durations of each group and
    returns only the rows either side of each quantile.
    """
    if connection.dialect.name == "postgresql":
        return _percentile_cont(connection, durations, keys)
    return _ranked(connection, durations, keys)


def _percentile_cont(
    connection: Connection, durations: Subquery, keys: Sequence[str]
) -> dict[Key, tuple[int, float, float]]:
    columns = [durations.c[k] for k in keys]
    seconds = durations.c.seconds
    query = select(
        *columns,
        func.count(),
        *(func.percentile_cont(q).within_group(seconds) for q in QUANTILES),
    ).group_by(*columns)
    return {
        tuple(row[: len(keys)]): (int(row[-3]), float(row[-2]), float(row[-1]))
        for row in connection.execute(query)
    }


def _ranked(
    connection: Connection, durations: Subquery, keys: Sequence[str]
) -> dict[Key, tuple[int, float, float]]:
    columns = [durations.c[k] for k in keys]
    seconds = durations.c.seconds
    ranked = select(
        *columns,
        seconds,
        (func.row_number().over(partition_by=columns, order_by=seconds) - 1).label("rank"),
        func.count().over(partition_by=columns).label("n"),
    ).subquery()
    near = [
        ranked.c.rank.between(_floor(q, ranked.c.n), _floor(q, ranked.c.n) + 1) for q in QUANTILES
    ]
    query = select(*(ranked.c[k] for k in keys), ranked.c.n, ranked.c.rank, ranked.c.seconds)
    values: dict[Key, tuple[int, dict[int, float]]] = {}
    for row in connection.execute(query.where(or_(*near))):
        key = tuple(row[: len(keys)])
        n, rank, value = int(row[-3]), int(row[-2]), float(row[-1])
        values.setdefault(key, (n, {}))[1][rank] = value
    return {
        key: (n, _interpolate(near_values, n, 0.5), _interpolate(near_values, n, 0.9))
        for key, (n, near_values) in values.items()
    }


def _floor(quantile: float, n: Any) -> ColumnElement[int]:
    # CAST truncates, which is floor for the non-negative positions used here
    return cast(literal(quantile, Float) * (n - 1), Integer)


def _interpolate(values: dict[int, float], n: int, quantile: float) -> float:
    position = quantile * (n - 1)
    low = math.floor(position)
    high = min(low + 1, n - 1)
    return values[low] + (position - low) * (values[high] - values[low])
