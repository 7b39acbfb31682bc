"""Storage: the one schema, database engines, and migrations."""

from engine.storage import schema
from engine.storage.database import create_database_engine, resolve_database_url
from engine.storage.migrations import (
    current_revision,
    downgrade,
    ensure_current,
    head_revision,
    upgrade,
)

__all__ = [
    "create_database_engine",
    "current_revision",
    "downgrade",
    "ensure_current",
    "head_revision",
    "resolve_database_url",
    "schema",
    "upgrade",
]
