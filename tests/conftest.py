"""Shared pytest fixtures.

Service fixtures (PostgreSQL, Redis)
------------------------------------
The suite starts its own throw-away servers (see ``tests/_services.py``); nothing
has to be running beforehand.  Set ``SALESCYCLE_TEST_POSTGRES_URL`` /
``SALESCYCLE_TEST_REDIS_URL`` to use existing servers instead.

* ``postgres_server`` / ``redis_server`` (session): the servers.
* ``postgres_url`` (function): URL of a fresh, empty database, dropped afterwards.
* ``redis_url`` (function): URL of a Redis database flushed before the test.
* ``database_url`` (function, params ``sqlite`` and ``postgresql``): run a test on both.

Tests using them are marked ``postgres`` / ``redis`` automatically, so
``pytest -m "not postgres"`` deselects them.  When a server cannot be had they
are skipped on a laptop, but fail when ``CI`` is set: CI never skips them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import redis
from _services import (
    PostgresServer,
    RedisServer,
    ServiceStartError,
    postgres_available,
    redis_available,
)
from _support import SINK_API_KEY
from _web import Nudges, migrated_engine
from sqlalchemy import Engine

from engine.devtools import Faults, SendGridSink

POSTGRES_URL_ENV = "SALESCYCLE_TEST_POSTGRES_URL"
REDIS_URL_ENV = "SALESCYCLE_TEST_REDIS_URL"


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def _unavailable(reason: str) -> NoReturn:
    if running_in_ci():
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: needs a PostgreSQL server (started by fixtures)")
    config.addinivalue_line("markers", "redis: needs a Redis server (started by fixtures)")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselection looks at the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("database_url") == "postgresql"
        if "postgres_server" in fixtures or on_postgres:
            item.add_marker(pytest.mark.postgres)
        if "redis_server" in fixtures:
            item.add_marker(pytest.mark.redis)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    try:
        if external := os.environ.get(POSTGRES_URL_ENV):
            server = PostgresServer.external(external)
        else:
            reason = postgres_available()
            if reason is not None:
                _unavailable(reason)
            server = PostgresServer.start(tmp_path_factory.mktemp("postgres"))
    except ServiceStartError as exc:
        _unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    try:
        if external := os.environ.get(REDIS_URL_ENV):
            server = RedisServer.external(external)
            try:
                with redis.Redis.from_url(server.url) as client:
                    client.ping()
            except redis.ConnectionError as exc:
                raise ServiceStartError(f"cannot connect to Redis at {server.url}: {exc}") from exc
        else:
            reason = redis_available()
            if reason is not None:
                _unavailable(reason)
            server = RedisServer.start(tmp_path_factory.mktemp("redis"))
    except ServiceStartError as exc:
        _unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database of its own, dropped after the test."""
    name = f"salescycle_test_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of a Redis database, emptied before the test."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    return redis_server.url


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on SQLite, then on PostgreSQL: the test must hold on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/salescycle.db"
    # Requested lazily so the sqlite variant never starts PostgreSQL.
    url: str = request.getfixturevalue("postgres_url")
    return url


# --------------------------------------------------------------------------
# Workspaces and the database they point at (foundation suite)


@pytest.fixture(autouse=True)
def _hermetic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SALESCYCLE_* setting (nor SENDGRID_API_KEY) leaks in from the caller's shell.

    The service variables (SALESCYCLE_TEST_*) stay: the server fixtures read them.
    """
    for name in list(os.environ):
        if name.startswith("SALESCYCLE_") and not name.startswith("SALESCYCLE_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A new workspace copied from the starter one (as ``salescycle init`` makes it)."""
    from engine.workspace import init_workspace

    root = tmp_path / "ws"
    init_workspace(root)
    return root


@pytest.fixture
def workspace_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the settings at the test database (SQLite, then PostgreSQL); return its URL."""
    monkeypatch.setenv("SALESCYCLE_DATABASE_URL", database_url)
    return database_url


# --------------------------------------------------------------------------
# The web app's database and nudges, and a SendGrid sink on loopback (shared suites)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated engine over the test's database (SQLite, then PostgreSQL)."""
    migrated = migrated_engine(database_url)
    yield migrated
    migrated.dispose()


@pytest.fixture
def nudges() -> Nudges:
    return Nudges()


@pytest.fixture(scope="module")
def running_sink() -> Iterator[SendGridSink]:
    with SendGridSink(SINK_API_KEY) as sink:
        yield sink


@pytest.fixture
def sink(running_sink: SendGridSink) -> SendGridSink:
    """The module's sink, without faults and with nothing recorded yet."""
    running_sink.set_faults(Faults(), seed=0)
    running_sink.reset()
    return running_sink
