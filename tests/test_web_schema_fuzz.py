"""Schemathesis against the web app's own OpenAPI schema, over real HTTP: whatever a
client sends that the schema describes, with the API token and without, no endpoint
answers 5xx (everything is configured, and the database is up)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from _web import NOW, SECRET_KEY, served
from hypothesis import HealthCheck, given, settings

from engine.cli.contacts_commands import run_import
from engine.devtools import EventSigner
from engine.storage import upgrade
from engine.tracking.tokens import TokenSigner
from engine.web import create_app
from engine.web.api import ApiSetup
from engine.wiring import Runtime

TOKEN = "schema-fuzz-token-0123456789"


@pytest.fixture(scope="module")
def web_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from engine.workspace import init_workspace

    root = tmp_path_factory.mktemp("fuzz") / "ws"
    init_workspace(root)
    runtime = Runtime.open(root, database_url=f"sqlite:///{root.parent / 'fuzz.db'}")
    upgrade(runtime.database)
    run_import(runtime, root / "examples" / "crm-contacts.csv")
    setup = ApiSetup(
        runtime.pipeline, runtime.sequences, runtime.enrollment_rules(), runtime.crm_mapping
    )
    app = create_app(
        runtime.database, TokenSigner(SECRET_KEY),
        webhook_public_key=EventSigner().public_key_base64, inbound_secret="inbound-secret-0123",
        clock=lambda: NOW, api_token=TOKEN, api=setup,
    )  # fmt: skip
    try:
        with served(app) as url:
            yield schemathesis.openapi.from_url(f"{url}/openapi.json")
    finally:
        runtime.close()


def test_no_request_makes_the_app_fail(web_schema: Any) -> None:
    operations = [result.ok() for result in web_schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)  # fmt: skip
        def no_failure(case: Any) -> None:
            for headers in ({"Authorization": f"Bearer {TOKEN}"}, {}):
                response = case.call(headers=headers)
                assert response.status_code < 500, (
                    f"{case.method} {case.formatted_path}: {response.status_code} "
                    f"{response.text[:300]}"
                )

        no_failure()


def test_the_schema_lists_every_endpoint(web_schema: Any) -> None:
    paths = set(web_schema.raw_schema["paths"])

    assert {"/webhooks/sendgrid/events", "/webhooks/sendgrid/inbound", "/t/o/{token}",
            "/t/c/{token}", "/u/{token}", "/healthz", "/api/contacts"} <= paths  # fmt: skip
