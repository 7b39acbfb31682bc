"""The CRM JSON API over real HTTP (uvicorn on loopback), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from _support import imported_runtime
from _web import NOW, SECRET_KEY, client_for
from sqlalchemy import insert, select

from engine.contacts.suppressions import add_suppression
from engine.storage.schema import accounts, contacts, enrollments, events, messages, stage_history
from engine.tracking.tokens import TokenSigner
from engine.web import create_app
from engine.web.api import ApiSetup
from engine.wiring import Runtime

TOKEN = "crm-api-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
THOMAS = "thomas.williams@redwateranalytics.com"
DANIEL = "daniel.evans@redwateranalytics.com"


@pytest.fixture
def runtime(workspace: Path, workspace_database: str) -> Iterator[Runtime]:
    with imported_runtime(workspace) as opened:
        yield opened


@pytest.fixture
def client(runtime: Runtime) -> Iterator[httpx2.Client]:
    setup = ApiSetup(
        runtime.pipeline, runtime.sequences, runtime.enrollment_rules(), runtime.crm_mapping
    )
    app = create_app(
        runtime.database,
        TokenSigner(SECRET_KEY),
        webhook_public_key=None,
        inbound_secret=None,
        clock=lambda: NOW,
        api_token=TOKEN,
        api=setup,
    )
    with client_for(app) as http:
        yield http


def contact_row(runtime: Runtime, email: str) -> dict[str, Any] | None:
    with runtime.database.connect() as connection:
        row = connection.execute(select(contacts).where(contacts.c.email == email)).mappings()
        found = row.first()
        return None if found is None else dict(found)


def test_every_route_wants_the_token(client: httpx2.Client, runtime: Runtime) -> None:
    routes = [
        ("POST", "/api/contacts"),
        ("POST", "/api/accounts"),
        ("POST", f"/api/contacts/{THOMAS}/stage"),
        ("POST", "/api/enrollments"),
        ("POST", "/api/enrollments/pause"),
        ("GET", f"/api/contacts/{THOMAS}"),
    ]
    wrong = [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ]
    for method, path in routes:
        for headers in wrong:
            answer = client.request(method, path, headers=headers, content=b"{not json")
            assert answer.status_code == 401, (method, path, headers, answer.text)
            assert answer.json() == {"detail": "missing or wrong bearer token"}
            assert answer.headers["www-authenticate"] == "Bearer"
    assert contact_row(runtime, THOMAS) is not None


def test_without_a_configured_token_the_api_is_unavailable(runtime: Runtime) -> None:
    app = create_app(
        runtime.database, TokenSigner(SECRET_KEY), webhook_public_key=None, inbound_secret=None
    )
    with client_for(app) as http:
        answer = http.get(f"/api/contacts/{THOMAS}", headers=AUTH)
    assert answer.status_code == 503 and "SALESCYCLE_API_TOKEN" in answer.json()["detail"]


def test_contacts_are_upserted_and_bad_items_reported_by_index(
    client: httpx2.Client, runtime: Runtime
) -> None:
    batch = {
        "contacts": [
            {
                "email": " New.Person@Example.DK ",
                "first_name": "New",
                "stage": "Contact Made",
                "timezone": "Europe/Copenhagen",
                "attributes": {"lead_score": 71, "decision_maker": True},
                "owner": {"email": "rita@salescycle-demo.example", "name": "Rita Rep"},
                "account": {
                    "name": "Example ApS",
                    "domain": "https://www.example.dk/",
                    "country": "DK",
                    "employees": 120,
                    "attributes": {"annual_revenue": 1.5e6},
                },
            },
            {"email": "not-an-address"},
            {"email": THOMAS, "title": "CMO"},
            {"email": "odd@example.dk", "stage": "nowhere"},
            {"email": "attr@example.dk", "attributes": {"shoe_size": 44}},
            {"email": "new.person@example.dk"},
            {"email": "tz@example.dk", "timezone": "Mars/Olympus"},
        ]
    }
    answer = client.post("/api/contacts", json=batch, headers=AUTH)

    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["received"], result["created"], result["updated"]) == (7, 1, 1)
    assert (result["accounts_created"], result["owners_created"]) == (1, 1)
    errors = {e["index"]: e["error"] for e in result["errors"]}
    assert sorted(errors) == [1, 3, 4, 5, 6]
    assert "invalid email 'not-an-address'" in errors[1]
    assert "unknown stage 'nowhere'; valid:" in errors[3]
    assert "unknown attributes.'shoe_size'; valid choices: decision_maker" in errors[4]
    assert errors[5] == "duplicate email new.person@example.dk: already at index 0"
    assert "unknown timezone 'Mars/Olympus'" in errors[6]
    new = contact_row(runtime, "new.person@example.dk")
    assert new is not None and new["stage"] == "connecting" and new["first_name"] == "New"
    assert new["attributes"] == {"lead_score": 71, "decision_maker": True}
    thomas = contact_row(runtime, THOMAS)
    assert thomas is not None and thomas["title"] == "CMO" and thomas["first_name"] == "Thomas"
    with runtime.database.connect() as connection:
        account = (
            connection.execute(select(accounts).where(accounts.c.id == new["account_id"]))
            .mappings()
            .one()
        )
    assert (account["domain"], account["country"], account["employees"]) == (
        "example.dk",
        "DK",
        120,
    )
    assert contact_row(runtime, "odd@example.dk") is None


def test_malformed_and_oversized_requests_are_refused(
    client: httpx2.Client, runtime: Runtime
) -> None:
    one = {"email": "x@example.dk"}
    as_json = {**AUTH, "Content-Type": "application/json"}
    broken = client.post("/api/contacts", content=b'{"contacts": [', headers=as_json)
    wrong_shape = client.post("/api/contacts", json={"contacts": [{"mail": "x"}]}, headers=AUTH)
    empty = client.post("/api/contacts", json={"contacts": []}, headers=AUTH)
    too_many = client.post("/api/contacts", json={"contacts": [one] * 1001}, headers=AUTH)
    too_big = client.post("/api/contacts", content=b" " * (5 * 1024 * 1024), headers=as_json)

    assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"
    assert wrong_shape.status_code == 422
    assert empty.status_code == 422
    assert too_many.status_code == 422 and "at most 1000" in too_many.text
    assert too_big.status_code == 413
    assert contact_row(runtime, "x@example.dk") is None


def test_accounts_are_upserted_on_their_own(client: httpx2.Client, runtime: Runtime) -> None:
    batch = {
        "accounts": [
            {"crm_id": "acc-1", "name": "Fjord Data AS", "country": "Norway", "employees": 80},
            {"crm_id": "7340000023", "industry": "Fintech"},
            {"industry": "no key"},
            {"crm_id": "acc-2", "name": "X", "country": "Atlantis"},
            {"crm_id": "acc-3", "name": "Y", "attributes": {"colour": "red"}},
        ]
    }
    answer = client.post("/api/accounts", json=batch, headers=AUTH)

    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["created"], result["updated"]) == (1, 1)
    errors = {e["index"]: e["error"] for e in result["errors"]}
    assert errors[2] == "an account needs a crm_id, a domain or a name"
    assert "unknown country 'Atlantis'" in errors[3]
    assert "unknown account.attributes.'colour'; valid choices: annual_revenue" in errors[4]
    with runtime.database.connect() as connection:
        query = select(accounts.c.crm_id, accounts.c.industry).where(
            accounts.c.crm_id.in_(["acc-1", "7340000023", "acc-2"])
        )
        stored = {row.crm_id: row.industry for row in connection.execute(query)}
    assert stored == {"acc-1": None, "7340000023": "Fintech"}


def test_a_stage_change_is_validated_and_recorded(client: httpx2.Client, runtime: Runtime) -> None:
    moved = client.post(
        f"/api/contacts/{THOMAS.upper()}/stage",
        headers=AUTH,
        json={"stage": "negotiation", "note": "deal desk approved"},
    )
    same = client.post(f"/api/contacts/{THOMAS}/stage", json={"stage": "negotiation"}, headers=AUTH)
    unknown = client.post(f"/api/contacts/{THOMAS}/stage", json={"stage": "closed"}, headers=AUTH)
    nobody = client.post("/api/contacts/no@body.dk/stage", json={"stage": "lost"}, headers=AUTH)
    extra = client.post(
        f"/api/contacts/{THOMAS}/stage", json={"stage": "lost", "x": 1}, headers=AUTH
    )

    assert moved.status_code == 200, moved.text
    assert moved.json() == {
        "email": THOMAS,
        "from_stage": "research",
        "stage": "negotiation",
        "changed": True,
    }
    assert same.json()["changed"] is False
    assert unknown.status_code == 422
    assert unknown.json()["detail"].startswith("unknown stage 'closed'; valid choices: research, ")
    assert nobody.status_code == 404 and extra.status_code == 422
    thomas = contact_row(runtime, THOMAS)
    assert thomas is not None and thomas["stage"] == "negotiation"
    with runtime.database.connect() as connection:
        history = connection.execute(
            select(
                stage_history.c.from_stage,
                stage_history.c.to_stage,
                stage_history.c.cause,
                stage_history.c.detail,
            )
            .where(stage_history.c.contact_id == thomas["id"])
            .order_by(stage_history.c.id)
        ).all()
    assert tuple(history[-1]) == ("research", "negotiation", "api", "deal desk approved")
    assert len(history) == 2  # the import, then this one change


def test_enrolling_tells_who_was_left_out_and_why(client: httpx2.Client, runtime: Runtime) -> None:
    with runtime.database.begin() as connection:
        add_suppression(connection, DANIEL, "unsubscribed", NOW)
    request = {"sequence": "customer-nurture", "emails": [THOMAS, DANIEL, "no@body.dk"]}

    first = client.post("/api/enrollments", json=request, headers=AUTH)
    again = client.post("/api/enrollments", json=request, headers=AUTH)
    unknown = client.post(
        "/api/enrollments", json={"sequence": "custmer-nurture", "emails": [THOMAS]}, headers=AUTH
    )

    assert first.status_code == 200, first.text
    assert first.json() == {
        "sequence": "customer-nurture",
        "enrolled": 1,
        "left_out": [
            {"email": DANIEL, "reason": "suppressed"},
            {"email": "no@body.dk", "reason": "no contact with this email"},
        ],
    }
    assert again.json()["enrolled"] == 0
    assert {"email": THOMAS, "reason": "already in the sequence"} in again.json()["left_out"]
    assert unknown.status_code == 422
    assert "did you mean 'customer-nurture'? valid choices:" in unknown.json()["detail"]


def test_pause_resume_and_stop(client: httpx2.Client, runtime: Runtime) -> None:
    enrolled = client.post(
        "/api/enrollments",
        headers=AUTH,
        json={"sequence": "customer-nurture", "emails": [THOMAS, DANIEL]},
    )
    assert enrolled.json()["enrolled"] == 2

    one = {"sequence": "customer-nurture", "email": THOMAS}
    paused = client.post("/api/enrollments/pause", json=one, headers=AUTH)
    resumed = client.post("/api/enrollments/resume", json=one, headers=AUTH)
    stopped = client.post(
        "/api/enrollments/stop", json={"sequence": "customer-nurture"}, headers=AUTH
    )
    nobody = client.post(
        "/api/enrollments/pause",
        headers=AUTH,
        json={"sequence": "customer-nurture", "email": "no@body.dk"},
    )
    unknown = client.post("/api/enrollments/pause", json={"sequence": "x"}, headers=AUTH)

    assert paused.json() == {"action": "pause", "sequence": "customer-nurture", "changed": 1}
    assert resumed.json()["changed"] == 1 and stopped.json()["changed"] == 2
    assert nobody.status_code == 404 and unknown.status_code == 422
    with runtime.database.connect() as connection:
        statuses = connection.execute(select(enrollments.c.status, enrollments.c.exit_reason)).all()
    assert [tuple(s) for s in statuses] == [("exited", "stopped")] * 2


def test_the_timeline_shows_history_messages_with_events_and_enrollments(
    client: httpx2.Client, runtime: Runtime
) -> None:
    client.post(f"/api/contacts/{THOMAS}/stage", json={"stage": "qualification"}, headers=AUTH)
    client.post(
        "/api/enrollments", json={"sequence": "customer-nurture", "emails": [THOMAS]}, headers=AUTH
    )
    thomas = contact_row(runtime, THOMAS)
    assert thomas is not None
    with runtime.database.begin() as connection:
        message_id = connection.execute(
            insert(messages)
            .values(
                idempotency_key="t:1",
                public_id="pub0000000000001",
                contact_id=thomas["id"],
                template="connecting/intro",
                to_email=THOMAS,
                from_email="rep@example.com",
                subject="Quick question",
                rfc_message_id="<pub1@mail.example.com>",
                status="sent",
                sent_at=NOW,
                created_at=NOW,
                updated_at=NOW,
            )
            .returning(messages.c.id)
        ).scalar_one()
        for number, kind in enumerate(("delivered", "opened")):
            connection.execute(
                insert(events).values(
                    provider="sendgrid",
                    provider_event_id=f"e{number}",
                    kind=kind,
                    message_id=message_id,
                    contact_id=thomas["id"],
                    occurred_at=NOW,
                    detail={},
                    created_at=NOW,
                )
            )

    answer = client.get(f"/api/contacts/{THOMAS}", headers=AUTH)
    missing = client.get("/api/contacts/no@body.dk", headers=AUTH)

    assert answer.status_code == 200, answer.text
    timeline = answer.json()
    assert timeline["contact"]["email"] == THOMAS and timeline["contact"]["first_name"] == "Thomas"
    assert timeline["account"]["name"] == "Redwater Analytics Corp."
    assert timeline["owner"]["email"] == "ingrid.solheim@salescycle-demo.example"
    # (in time order: the API's clock is NOW, which is before the import's real time)
    assert [(h["from_stage"], h["to_stage"], h["cause"]) for h in timeline["stage_history"]] == [
        ("research", "qualification", "api"),
        (None, "research", "crm"),
    ]
    [message] = timeline["messages"]
    assert (message["id"], message["subject"], message["status"]) == (
        "pub0000000000001",
        "Quick question",
        "sent",
    )
    assert [e["kind"] for e in message["events"]] == ["delivered", "opened"]
    assert timeline["other_events"] == []
    assert [(e["sequence"], e["status"]) for e in timeline["enrollments"]] == [
        ("customer-nurture", "active")
    ]
    assert missing.status_code == 404


def test_the_openapi_schema_lists_the_api(client: httpx2.Client) -> None:
    schema = client.get("/openapi.json").json()

    paths = schema["paths"]
    for path in (
        "/api/contacts",
        "/api/accounts",
        "/api/contacts/{email}/stage",
        "/api/enrollments",
        "/api/enrollments/pause",
        "/api/enrollments/resume",
        "/api/enrollments/stop",
        "/api/contacts/{email}",
    ):
        assert path in paths, path
    upsert = paths["/api/contacts"]["post"]
    body = upsert["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ContactBatch"}
    assert {"200", "401", "413", "422", "503"} <= set(upsert["responses"])
    assert upsert["security"] == [{"HTTPBearer": []}]
    assert "ContactTimeline" in schema["components"]["schemas"]
