"""The service fixtures give real, isolated PostgreSQL and Redis servers."""

from __future__ import annotations

import pytest
import redis
from _services import PostgresServer, RedisServer
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def _scalar(url: str, query: str) -> object:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(query)).scalar_one()
    finally:
        engine.dispose()


def test_postgres_url_is_a_real_postgresql_server(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://")
    version = _scalar(postgres_url, "SELECT version()")
    assert isinstance(version, str)
    assert version.startswith("PostgreSQL ")


_seen_databases: set[str] = set()


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_its_own_empty_database(postgres_url: str, run: int) -> None:
    # Both runs create the same table: the second would fail on a shared database.
    database = make_url(postgres_url).database
    assert database is not None
    assert database not in _seen_databases
    _seen_databases.add(database)
    tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    assert _scalar(postgres_url, tables) == 0
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE contacts (id integer PRIMARY KEY)"))
    finally:
        engine.dispose()
    assert _scalar(postgres_url, tables) == 1


def test_a_table_is_not_visible_from_another_database(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    other = f"{make_url(postgres_url).database}_other"
    other_url = postgres_server.create_database(other)
    try:
        engine = create_engine(postgres_url)
        try:
            with engine.begin() as conn:
                conn.execute(text("CREATE TABLE contacts (id integer PRIMARY KEY)"))
        finally:
            engine.dispose()
        visible = "SELECT count(*) FROM information_schema.tables WHERE table_name = 'contacts'"
        assert _scalar(postgres_url, visible) == 1
        assert _scalar(other_url, visible) == 0
    finally:
        postgres_server.drop_database(other)


def test_redis_url_is_a_real_redis_server(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.ping() is True
        client.set("salescycle:probe", "hello")
        assert client.get("salescycle:probe") == b"hello"


def test_redis_db_is_flushed_before_each_test(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.dbsize() == 0
        client.set("salescycle:leftover", "1")  # the next test using redis_url must not see it


def test_redis_server_restarts_on_the_same_port(redis_url: str, redis_server: RedisServer) -> None:
    if not redis_server.managed:
        pytest.skip("external Redis server (SALESCYCLE_TEST_REDIS_URL): cannot restart it")
    with redis.Redis.from_url(redis_url) as client:
        client.set("salescycle:probe", "before")
        redis_server.restart()
        assert redis_server.url == redis_url
        assert client.ping() is True  # redis-py reconnects to the same address
        assert client.get("salescycle:probe") is None  # no persistence


def test_database_url_runs_on_both_backends(
    database_url: str, request: pytest.FixtureRequest
) -> None:
    backend = request.node.callspec.params["database_url"]
    assert database_url.startswith("sqlite:///" if backend == "sqlite" else "postgresql+psycopg://")
    assert _scalar(database_url, "SELECT 1 + 1") == 2
    if backend == "postgresql":
        assert request.node.get_closest_marker("postgres") is not None
    else:
        assert request.node.get_closest_marker("postgres") is None
