"""``GET /metrics`` over real HTTP: answers counted by route template, the backlog by
status from the database, and the API token required when one is set."""

from __future__ import annotations

from _web import NOW, SECRET_KEY, client_for, migrated_engine
from sqlalchemy import Engine

from engine.tracking.inbox import InboxSource, store_raw
from engine.tracking.tokens import TokenSigner
from engine.web import create_app

TOKEN = "metrics-token-0123456789"


def test_metrics_count_answers_by_route_and_read_the_backlog(database_url: str) -> None:
    engine: Engine = migrated_engine(database_url)
    try:
        with engine.begin() as connection:
            store_raw(connection, InboxSource.TRACKING, {}, b"{}", NOW)
        app = create_app(engine, TokenSigner(SECRET_KEY), webhook_public_key=None,
                         inbound_secret=None, clock=lambda: NOW, api_token=TOKEN)  # fmt: skip
        with client_for(app) as client:
            forged = client.get("/t/o/not-a-token.0123456789abcdef")
            healthy = client.get("/healthz")
            refused = client.get("/metrics")
            shown = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        engine.dispose()

    assert (forged.status_code, healthy.status_code, refused.status_code) == (404, 200, 401)
    assert shown.status_code == 200
    text = shown.text
    assert 'salescycle_http_responses_total{route="/t/o/{token}",status="404"} 1.0' in text
    assert 'salescycle_http_responses_total{route="/healthz",status="200"} 1.0' in text
    assert 'salescycle_inbox_rows{status="received"} 1.0' in text
    assert "salescycle_crm_outbox_undelivered 0.0" in text
    assert "not-a-token" not in text  # paths never become labels
