"""Helpers for the web app tests: a migrated database, the app served by uvicorn on a free
loopback port in a thread, message rows to track, and what the inbox holds.

Plain functions and context managers (no fixtures): each test module builds the app it
needs with ``create_app`` and serves it with ``served``.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine, insert, select

from engine.storage import create_database_engine, upgrade
from engine.storage.schema import contacts, messages, suppressions, webhook_inbox
from engine.tracking.inbox import InboxSource

NOW = dt.datetime(2026, 3, 3, 9, 30, 15, tzinfo=dt.UTC)
SECRET_KEY = b"web-tests-secret-key-0123456789abcdef"


def migrated_engine(url: str) -> Engine:
    """An engine over ``url`` with the schema at head."""
    engine = create_database_engine(url)
    upgrade(engine)
    return engine


@dataclass
class Nudges:
    """An ``on_stored`` that keeps what it was told."""

    calls: list[tuple[InboxSource, int]] = field(default_factory=list)

    def __call__(self, source: InboxSource, inbox_id: int) -> None:
        self.calls.append((source, inbox_id))


@contextmanager
def served(app: FastAPI, port: int = 0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port, or ``port`` to come back on the
    address of a server stopped before); yields its base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, args=([listener],), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.005)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()


@contextmanager
def client_for(app: FastAPI) -> Iterator[httpx2.Client]:
    """An HTTP client (redirects not followed) talking to ``app`` served on loopback."""
    with served(app) as url, httpx2.Client(base_url=url, timeout=30.0) as client:
        yield client


def inbox_rows(engine: Engine) -> list[dict[str, Any]]:
    """Every inbox row, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(select(webhook_inbox).order_by(webhook_inbox.c.id))
        return [dict(row) for row in rows.mappings()]


def suppression_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(suppressions).order_by(suppressions.c.id))
        return [dict(row) for row in rows.mappings()]


def insert_message(
    engine: Engine,
    public_id: str,
    to_email: str = "Pat.Prospect@Example.org",
    links: Sequence[dict[str, Any]] | None = None,
) -> None:
    """A sent message (and its contact) whose tokens name ``public_id``."""
    with engine.begin() as connection:
        contact_id = connection.execute(
            insert(contacts).values(
                email=f"{public_id}-{to_email}".lower(), stage="connecting",
                stage_entered_at=NOW, attributes={}, created_at=NOW, updated_at=NOW,
            ).returning(contacts.c.id)
        ).scalar_one()  # fmt: skip
        connection.execute(
            insert(messages).values(
                idempotency_key=f"test:{public_id}", public_id=public_id, contact_id=contact_id,
                template="connecting/intro", to_email=to_email, from_email="rep@example.com",
                subject="Quick question", rfc_message_id=f"<{public_id}@mail.example.com>",
                status="sent", sent_at=NOW, links=list(links) if links is not None else None,
                created_at=NOW, updated_at=NOW,
            )
        )  # fmt: skip


def webhook_app(engine: Engine, nudges: Nudges, **options: Any) -> FastAPI:
    """The web app over ``engine`` at ``NOW``, nudging ``nudges``; no webhook configured
    unless ``options`` say so (``webhook_public_key=``, ``inbound_secret=``, limits)."""
    from engine.tracking.tokens import TokenSigner
    from engine.web import create_app

    settings: dict[str, Any] = {"webhook_public_key": None, "inbound_secret": None,
                                "clock": lambda: NOW, "on_stored": nudges, **options}  # fmt: skip
    return create_app(engine, TokenSigner(SECRET_KEY), **settings)
