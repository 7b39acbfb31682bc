"""Our own tracking over real HTTP: the open pixel, click redirects, unsubscribe links.

Tokens are signed as the links in sent emails are (``TrackingLinks``); the app runs on
uvicorn on loopback, over SQLite and PostgreSQL. Forged or misused tokens get 404 and
store nothing; GET on an unsubscribe link changes nothing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from _web import (
    NOW,
    SECRET_KEY,
    Nudges,
    client_for,
    inbox_rows,
    insert_message,
    migrated_engine,
    suppression_rows,
)
from sqlalchemy import Engine, insert

from engine.storage.schema import suppressions
from engine.tracking import TokenPurpose, TokenSigner, TrackingLinks, click_payload
from engine.tracking.inbox import InboxSource
from engine.web import create_app
from engine.web.tracking_routes import PIXEL

MESSAGE = "q7rbm2k4ztx6wd3c"
LINKS: list[dict[str, Any]] = [
    {"url": "https://example.com/pricing?plan=team&utm_source=mail", "tag": None},
    {"url": "https://cal.example.com/rita/30min", "tag": "booking"},
    {"url": "javascript:alert(1)", "tag": "evil"},  # never in a real email: never followed
]
SIGNER = TokenSigner(SECRET_KEY)
TRACKING = TrackingLinks(SIGNER, "http://tracking.invalid", "reply.example.com")
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari"


def _path(url: str) -> str:
    return url.removeprefix("http://tracking.invalid")


OPEN = _path(TRACKING.for_message(MESSAGE).open_url)
FORGER = TokenSigner(b"another-key-0123456789abcdef")
UNSUBSCRIBE = _path(TRACKING.for_message(MESSAGE).unsubscribe_url)


def _click(index: int, message: str = MESSAGE) -> str:
    return _path(TRACKING.for_message(message).click_url(index))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = migrated_engine(database_url)
    insert_message(engine, MESSAGE, "Pat.Prospect@Example.org", LINKS)
    yield engine
    engine.dispose()


@pytest.fixture
def client(engine: Engine, nudges: Nudges) -> Iterator[httpx2.Client]:
    app = create_app(engine, SIGNER, webhook_public_key=None, inbound_secret=None,
                     clock=lambda: NOW, on_stored=nudges)  # fmt: skip
    with client_for(app) as http:
        http.headers["User-Agent"] = UA
        yield http


def _hits(engine: Engine) -> list[dict[str, Any]]:
    rows = inbox_rows(engine)
    assert all(r["source"] == InboxSource.TRACKING and r["headers"] == {} for r in rows)
    return [json.loads(bytes(r["body"])) for r in rows]


def _hit(kind: str, link_index: int | None = None, url: str | None = None) -> dict[str, Any]:
    return {
        "kind": kind, "message_id": MESSAGE, "link_index": link_index, "url": url,
        "user_agent": UA, "ip": "127.0.0.1", "at": "2026-03-03T09:30:15+00:00",
    }  # fmt: skip


def test_the_open_pixel_is_a_transparent_gif_that_is_never_cached(
    client: httpx2.Client, engine: Engine, nudges: Nudges
) -> None:
    response = client.get(OPEN)

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content == PIXEL and PIXEL.startswith(b"GIF89a\x01\x00\x01\x00")
    assert "no-store" in response.headers["cache-control"]
    assert _hits(engine) == [_hit("opened")]
    assert nudges.calls == [(InboxSource.TRACKING, inbox_rows(engine)[0]["id"])]


def test_a_click_redirects_to_the_link_that_was_in_the_email(
    client: httpx2.Client, engine: Engine
) -> None:
    response = client.get(_click(1))

    assert response.status_code == 302
    assert response.headers["location"] == LINKS[1]["url"]
    assert _hits(engine) == [_hit("clicked", 1, LINKS[1]["url"])]


def test_a_click_keeps_the_query_string_of_the_link(client: httpx2.Client) -> None:
    assert client.get(_click(0)).headers["location"] == LINKS[0]["url"]


def _edited(path: str, payload: str) -> str:
    """``path`` with its token's payload replaced and its signature kept."""
    return f"/t/c/{payload}.{path.rpartition('.')[2]}"


@pytest.mark.parametrize(
    ("case", "path"),
    [
        ("index edited", _edited(_click(0), click_payload(MESSAGE, 1))),
        ("message edited", _edited(_click(0), click_payload("q7rbm2k4ztx6wd3d", 0))),
        ("signature edited", _click(0)[:-1] + ("0" if _click(0)[-1] != "0" else "1")),
        ("forged", "/t/c/" + FORGER.sign(TokenPurpose.CLICK, click_payload(MESSAGE, 0))),
        ("open token", "/t/c/" + OPEN.removeprefix("/t/o/")),
        ("index out of range", _click(7)),
        ("javascript link", _click(2)),
        ("unknown message", _click(0, message="zzzzzzzzzzzzzzzz")),
        ("no signature", "/t/c/" + click_payload(MESSAGE, 0)),
        ("garbage", "/t/c/%00%ff..."),
        ("huge", "/t/c/" + "a" * 4000 + ".00"),
        ("negative index", "/t/c/" + SIGNER.sign(TokenPurpose.CLICK, f"{MESSAGE}--1")),
        ("no index", "/t/c/" + SIGNER.sign(TokenPurpose.CLICK, MESSAGE)),
    ],
    ids=lambda value: value if isinstance(value, str) and not value.startswith("/") else "",
)  # fmt: skip
def test_a_click_that_is_not_genuine_is_404_and_stores_nothing(
    client: httpx2.Client, engine: Engine, nudges: Nudges, case: str, path: str
) -> None:
    response = client.get(path)

    assert response.status_code == 404, case
    assert "location" not in response.headers
    assert inbox_rows(engine) == []
    assert nudges.calls == []


@pytest.mark.parametrize(
    "path",
    [
        OPEN[:-1] + ("0" if OPEN[-1] != "0" else "1"),
        "/t/o/" + UNSUBSCRIBE.removeprefix("/u/"),
        "/t/o/" + FORGER.sign(TokenPurpose.OPEN, MESSAGE),
        "/t/o/" + MESSAGE,
    ],
    ids=["edited", "unsubscribe-token", "forged", "unsigned"],
)
def test_an_open_that_is_not_genuine_is_404_and_stores_nothing(
    client: httpx2.Client, engine: Engine, path: str
) -> None:
    assert client.get(path).status_code == 404
    assert inbox_rows(engine) == []


def test_get_on_an_unsubscribe_link_shows_a_form_and_changes_nothing(
    client: httpx2.Client, engine: Engine, nudges: Nudges
) -> None:
    response = client.get(UNSUBSCRIBE)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in response.text
    assert suppression_rows(engine) == []
    assert inbox_rows(engine) == []
    assert nudges.calls == []


def test_posting_the_unsubscribe_form_suppresses_the_recipient_at_once(
    client: httpx2.Client, engine: Engine, nudges: Nudges
) -> None:
    response = client.post(UNSUBSCRIBE, data={"confirm": "yes"})

    assert response.status_code == 200
    assert "unsubscribed" in response.text
    [suppression] = suppression_rows(engine)
    assert (suppression["email"], suppression["reason"], suppression["source"]) == (
        "pat.prospect@example.org", "unsubscribed", "link",
    )  # fmt: skip
    assert suppression["created_at"] == NOW
    assert _hits(engine) == [_hit("unsubscribed")]
    assert [source for source, _ in nudges.calls] == [InboxSource.TRACKING]


def test_one_click_unsubscribe_rfc_8058(client: httpx2.Client, engine: Engine) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = client.post(UNSUBSCRIBE, content=b"List-Unsubscribe=One-Click", headers=form)

    assert response.status_code == 200
    assert [s["email"] for s in suppression_rows(engine)] == ["pat.prospect@example.org"]


def test_unsubscribing_twice_keeps_one_suppression(client: httpx2.Client, engine: Engine) -> None:
    statuses = [client.post(UNSUBSCRIBE).status_code for _ in range(2)]

    assert statuses == [200, 200]
    assert len(suppression_rows(engine)) == 1
    assert [hit["kind"] for hit in _hits(engine)] == ["unsubscribed", "unsubscribed"]


def test_an_earlier_suppression_is_kept_as_it_was(client: httpx2.Client, engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(insert(suppressions).values(
            email="pat.prospect@example.org", reason="bounced", source="sendgrid",
            created_at=NOW))  # fmt: skip

    assert client.post(UNSUBSCRIBE).status_code == 200

    [suppression] = suppression_rows(engine)
    assert (suppression["reason"], suppression["source"]) == ("bounced", "sendgrid")
    assert [hit["kind"] for hit in _hits(engine)] == ["unsubscribed"]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(
    "path",
    [
        UNSUBSCRIBE[:-1] + ("0" if UNSUBSCRIBE[-1] != "0" else "1"),
        "/u/" + OPEN.removeprefix("/t/o/"),
        "/u/" + FORGER.sign(TokenPurpose.UNSUBSCRIBE, MESSAGE),
        _path(TRACKING.for_message("zzzzzzzzzzzzzzzz").unsubscribe_url),
    ],
    ids=["edited", "open-token", "forged", "unknown-message"],
)  # fmt: skip
def test_an_unsubscribe_link_that_is_not_genuine_is_404_and_changes_nothing(
    client: httpx2.Client, engine: Engine, method: str, path: str
) -> None:
    response = client.request(method, path, content=b"List-Unsubscribe=One-Click")

    assert response.status_code == 404
    assert suppression_rows(engine) == []
    assert inbox_rows(engine) == []


def test_an_oversized_unsubscribe_post_is_413_and_changes_nothing(
    client: httpx2.Client, engine: Engine
) -> None:
    response = client.post(UNSUBSCRIBE, content=b"x" * 100_000)

    assert response.status_code == 413
    assert suppression_rows(engine) == []
    assert inbox_rows(engine) == []


def test_healthz(client: httpx2.Client) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"ok": True})


def test_the_openapi_schema_documents_the_answers(client: httpx2.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"200", "404"} <= set(paths["/t/o/{token}"]["get"]["responses"])
    assert {"302", "404"} <= set(paths["/t/c/{token}"]["get"]["responses"])
    assert {"200", "404", "413"} <= set(paths["/u/{token}"]["post"]["responses"])
    assert {"200", "503"} <= set(paths["/healthz"]["get"]["responses"])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_salescycle_serve_answers_on_the_given_port(
    workspace: Path, workspace_database: str
) -> None:
    env = {
        **os.environ,
        "SALESCYCLE_SECRET_KEY": SECRET_KEY.decode(),
        "SALESCYCLE_INBOUND_SECRET": "s3cret",
        "SALESCYCLE_DATABASE_URL": workspace_database,
    }
    command = [sys.executable, "-m", "engine", "--workspace", str(workspace)]  # fmt: skip
    subprocess.run([*command[:3], "db", "upgrade", *command[3:]], env=env, check=True, timeout=120)
    engine = migrated_engine(workspace_database)
    insert_message(engine, MESSAGE, "pat@example.org", LINKS)
    port = _free_port()
    serve = [*command[:3], "serve", *command[3:], "--port", str(port)]
    server = subprocess.Popen(serve, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        health = _wait_for(f"http://127.0.0.1:{port}/healthz")
        click = httpx2.get(f"http://127.0.0.1:{port}{_click(1)}", timeout=10.0)
        inbound = httpx2.post(f"http://127.0.0.1:{port}/webhooks/sendgrid/inbound?secret=nope")
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[0].decode()
        engine.dispose()
    assert health.status_code == 200, output
    assert (click.status_code, click.headers["location"]) == (302, LINKS[1]["url"])
    assert inbound.status_code == 401
    assert "SALESCYCLE_SENDGRID_WEBHOOK_PUBLIC_KEY is not set" in output


def _wait_for(url: str) -> httpx2.Response:
    deadline = time.monotonic() + 30
    while True:
        try:
            return httpx2.get(url, timeout=5.0)
        except httpx2.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
