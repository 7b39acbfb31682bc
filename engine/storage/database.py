"""Opening the database: URL resolution, engine creation, per-dialect connection set-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from engine.errors import ConfigurationError


def resolve_database_url(url: str, workspace_root: Path) -> str:
    """Make a relative SQLite path relative to the workspace (creating its folder)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(
            f"database_url '{url}' is not a database URL; use sqlite:///var/salescycle.db "
            "or postgresql://user@host/db (SALESCYCLE_DATABASE_URL)"
        ) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(str(parsed.database))
        if not path.is_absolute():
            path = workspace_root / path
        path.parent.mkdir(parents=True, exist_ok=True)
        parsed = parsed.set(database=str(path))
    elif parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"database_url: '{parsed.get_backend_name()}' is not supported; "
            "valid: sqlite, postgresql"
        )
    return parsed.render_as_string(hide_password=False)


def create_database_engine(url: str) -> Engine:
    """An engine whose connections are set up the same way everywhere in the engine."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_immediately)
    return engine


READ_ONLY = "salescycle_read_only"  # an execution option: this connection never writes


def _begin_immediately(connection: Connection) -> None:
    # A deferred SQLite transaction that reads, then writes while another connection
    # writes, fails at once with "database is locked": the busy timeout cannot help,
    # since waiting could deadlock. Taking the write lock at BEGIN makes the second
    # transaction wait its turn instead (the web app and the workers share the file).
    # A connection that promised not to write (PRAGMA query_only) begins deferred.
    read_only = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own implicit BEGIN is off; SQLAlchemy's "begin" event issues ours
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA busy_timeout = 30000")
    # 64 MiB of page cache (the default is 2 MiB) keeps a large table's indexes in memory
    cursor.execute("PRAGMA cache_size = -65536")
    cursor.close()
