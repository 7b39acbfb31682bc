"""Hot paths that go to the driver: many-row INSERT/UPDATE, and streaming one column out.

SQLAlchemy's executemany builds parameters row by row through generic machinery;
for hundreds of thousands of rows that costs more than the database's own work.
Here the statement is compiled once, each column's bind processor (JSON, UTC
instants) is looked up once, and the driver gets plain tuples or dicts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Integer, Select, String, Table, any_, bindparam, literal, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.elements import ColumnElement

SQLITE_IN_LIST = 900  # values per IN list: SQLite's default limit is 999 parameters


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


def update_rows(
    connection: Connection, table: Table, changes: Mapping[int, Mapping[str, Any]]
) -> None:
    """Apply ``{row id: {column: value}}`` with one statement per set of changed columns."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row_id, values in changes.items():
        row = {f"new_{column}": value for column, value in values.items()}
        shapes[tuple(sorted(values))].append({"row_id": row_id, **row})
    for columns, rows in shapes.items():
        statement = (
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values({column: bindparam(f"new_{column}") for column in columns})
        )
        execute_many(connection, statement, rows)


def in_chunks(dialect: str, column: Any, values: Collection[Any]) -> Iterator[ColumnElement[bool]]:
    """``column`` is one of ``values`` (sorted, so concurrent writers lock rows in one order):
    one array on PostgreSQL, IN lists of a size SQLite takes elsewhere; nothing if empty."""
    ordered = sorted(values, key=str)
    if not ordered:
        return
    if dialect == "postgresql":
        kind = Integer if isinstance(column.type, Integer) else String
        yield column == any_(literal(ordered, ARRAY(kind)))
        return
    for start in range(0, len(ordered), SQLITE_IN_LIST):
        yield column.in_(ordered[start : start + SQLITE_IN_LIST])


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


def stream_first_column(
    connection: Connection, query: Select[Any], batch_size: int
) -> Iterator[list[Any]]:
    """The first column of ``query``'s rows in batches, read through the driver's cursor.

    SQLAlchemy builds a Row per result row; for a million ids that costs three times
    the database's own work. The statement is compiled once, its parameters go through
    the bind processors SQLAlchemy would use; PostgreSQL streams from a server-side
    cursor (inside the connection's transaction), SQLite's cursor is lazy anyway.
    """
    dialect = connection.dialect
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    values = compiled.construct_params()
    for name, value in values.items():
        # an expanded IN list's parameters are named NAME_1, NAME_2, ... after NAME
        bind = compiled.binds[name if name in compiled.binds else name.rsplit("_", 1)[0]]
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            values[name] = processor(value)
    names = compiled.positiontup or []
    parameters: Any = tuple(values[n] for n in names) if compiled.positional else values
    connection.exec_driver_sql("SELECT 1")  # begins the transaction a named cursor needs
    driver = connection.connection.dbapi_connection
    assert driver is not None
    named = {"name": f"salescycle_stream_{id(query):x}"} if dialect.name == "postgresql" else {}
    cursor = driver.cursor(**named)
    try:
        cursor.execute(compiled.string, parameters)
        while rows := cursor.fetchmany(batch_size):
            yield [row[0] for row in rows]
    finally:
        cursor.close()
