"""Alembic migrations run from code, and the guard against a database at the wrong revision."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from engine.errors import DatabaseNotReadyError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest revision this version of salescycle knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or ``None`` when it was never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``; refuses a database newer than this salescycle."""
    _refuse_unknown_revision(engine)
    _run(engine, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, revision: str) -> None:
    """Revert migrations down to ``revision`` (``base`` removes every table)."""
    _refuse_unknown_revision(engine)
    _run(engine, lambda config: command.downgrade(config, revision))


def _run(engine: Engine, action: object) -> None:
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        assert callable(action)
        action(config)


def ensure_current(engine: Engine) -> None:
    """Raise a one-line explanation unless the database is at this version's head revision."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    where = engine.url.render_as_string(hide_password=True)
    if current is None:
        raise DatabaseNotReadyError(
            f"the database {where} is not migrated; run `salescycle db upgrade` first"
        )
    _refuse_unknown_revision(engine, current)
    raise DatabaseNotReadyError(
        f"the database {where} is at revision {current}, behind {head}; run `salescycle db upgrade`"
    )


def _refuse_unknown_revision(engine: Engine, current: str | None = None) -> None:
    """A revision this salescycle does not know was written by a newer one: never touch it."""
    current = current or current_revision(engine)
    known = {rev.revision for rev in ScriptDirectory.from_config(_config()).walk_revisions()}
    if current is not None and current not in known:
        where = engine.url.render_as_string(hide_password=True)
        raise DatabaseNotReadyError(
            f"the database {where} is at revision {current}, newer than this salescycle "
            f"(which knows up to {head_revision()}); upgrade salescycle"
        )
