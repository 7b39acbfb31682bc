"""Executing one INSERT or UPDATE for many rows at the driver, for the import's hot path.

SQLAlchemy's executemany builds parameters row by row through generic machinery;
for hundreds of thousands of rows that costs more than the database's own work.
Here the statement is compiled once, each column's bind processor (JSON, UTC
instants) is looked up once, and the driver gets plain tuples or dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.sql.dml import Insert, Update


def execute_many(
    connection: Connection, statement: Insert | Update, rows: Sequence[dict[str, Any]]
) -> None:
    """Run ``statement`` once per row; every row has the keys of the first."""
    if not rows:
        return
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect, column_keys=list(rows[0]))
    names = list(compiled.positiontup or []) if compiled.positional else list(compiled.binds)
    processors = [
        (i, _remembering(processor))
        for i, name in enumerate(names)
        if (processor := compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
    ]
    take = itemgetter(*names)
    params: list[Any] = []
    for row in rows:
        values = list(take(row)) if len(names) > 1 else [take(row)]
        for i, process in processors:
            values[i] = process(values[i])
        if compiled.positional:
            params.append(tuple(values))
        else:
            params.append(dict(zip(names, values, strict=True)))
    connection.exec_driver_sql(compiled.string, params)


def _remembering(processor: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Reuse the last result for the same instant (a whole batch shares one "now")."""
    last: list[Any] = [_NOTHING, None]

    def process(value: Any) -> Any:
        if value is last[0]:
            return last[1]
        result = processor(value)
        if isinstance(value, datetime):
            last[0], last[1] = value, result
        return result

    return process


_NOTHING = object()
