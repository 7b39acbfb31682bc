"""POST /webhooks/sendgrid/inbound over real HTTP: the secret, the size limit, the shape.

Requests are multipart forms as SendGrid Inbound Parse posts them, with "send raw" (one
``email`` field holding the whole MIME message) and without it (parsed fields and
attachments), built by the HTTP client and posted to uvicorn on loopback.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import httpx2
import pytest
from _web import Nudges, client_for, inbox_rows, webhook_app
from sqlalchemy import Engine

from engine.tracking.inbox import InboxSource
from engine.web import is_multipart_form

PATH = "/webhooks/sendgrid/inbound"
SECRET = "inbound-secret-Zq8xN3"
ENVELOPE = '{"to":["reply+q7rbm2k4ztx6wd3c.1a2b3c@reply.example.com"],"from":"pat@example.org"}'


def _raw_mime(attachment_bytes: int = 0) -> bytes:
    message = EmailMessage()
    message["From"] = "Pat Prospect <pat@example.org>"
    message["To"] = "reply+q7rbm2k4ztx6wd3c.1a2b3c@reply.example.com"
    message["Subject"] = "Re: Kort spørgsmål"
    message["In-Reply-To"] = "<q7rbm2k4ztx6wd3c@mail.example.com>"
    message.set_content("Ja tak, ring gerne torsdag.\n\n> Hej Pat,\n> kort spørgsmål.\n")
    if attachment_bytes:
        message.add_attachment(
            bytes(range(256)) * (attachment_bytes // 256), maintype="application",
            subtype="pdf", filename="tilbud.pdf",
        )  # fmt: skip
    return message.as_bytes()


def _raw_form(mime: bytes) -> dict[str, Any]:
    return {
        "data": {
            "to": "reply+q7rbm2k4ztx6wd3c.1a2b3c@reply.example.com",
            "from": "Pat Prospect <pat@example.org>",
            "subject": "Re: Kort spørgsmål",
            "envelope": ENVELOPE,
            "charsets": '{"to":"UTF-8","subject":"UTF-8","from":"UTF-8"}',
            "SPF": "pass",
            "dkim": "{@example.org : pass}",
        },
        # a part without a file name: a plain form field, as SendGrid posts "email"
        "files": {"email": (None, mime, "text/plain")},
    }


def _parsed_form() -> dict[str, Any]:
    return {
        "data": {
            "headers": "From: pat@example.org\nSubject: Re: Kort spørgsmål\n",
            "text": "Ja tak, ring gerne torsdag.",
            "html": "<p>Ja tak, ring gerne torsdag.</p>",
            "from": "Pat Prospect <pat@example.org>",
            "to": "reply+q7rbm2k4ztx6wd3c.1a2b3c@reply.example.com",
            "subject": "Re: Kort spørgsmål",
            "envelope": ENVELOPE,
            "attachments": "1",
            "attachment-info": '{"attachment1":{"filename":"tilbud.pdf","type":"application/pdf"}}',
        },
        "files": {
            "attachment1": ("tilbud.pdf", b"%PDF-1.4\n" + bytes(range(256)), "application/pdf")
        },
    }


def _app(engine: Engine, nudges: Nudges, **options: Any) -> Any:
    return webhook_app(engine, nudges, **{"inbound_secret": SECRET, **options})


@pytest.fixture
def client(engine: Engine, nudges: Nudges) -> Iterator[httpx2.Client]:
    with client_for(_app(engine, nudges)) as http:
        yield http


def _post(
    client: httpx2.Client, form: dict[str, Any], **options: Any
) -> tuple[httpx2.Response, httpx2.Request]:
    """Post ``form`` as multipart/form-data; the response and the exact request sent."""
    request = client.build_request("POST", PATH, **form, **options)
    request.read()
    return client.send(request), request


def _basic(password: str, user: str = "sendgrid") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_a_raw_mime_post_with_basic_auth_is_stored_as_it_came(
    client: httpx2.Client, engine: Engine, nudges: Nudges
) -> None:
    response, sent = _post(client, _raw_form(_raw_mime()), headers=_basic(SECRET))

    assert response.status_code == 200, response.text
    [row] = inbox_rows(engine)
    assert row["source"] == InboxSource.SENDGRID_INBOUND
    assert bytes(row["body"]) == sent.content
    assert row["headers"] == {"content-type": sent.headers["content-type"]}
    assert row["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="email"' in sent.content and b"In-Reply-To: <q7rbm2k4ztx6wd3c@" in sent.content
    assert nudges.calls == [(InboxSource.SENDGRID_INBOUND, row["id"])]


def test_a_parsed_post_with_the_secret_in_the_url_is_stored(
    client: httpx2.Client, engine: Engine
) -> None:
    response, sent = _post(client, _parsed_form(), params={"secret": SECRET})

    assert response.status_code == 200, response.text
    [row] = inbox_rows(engine)
    assert bytes(row["body"]) == sent.content
    assert b'filename="tilbud.pdf"' in bytes(row["body"])


def test_any_user_name_goes_with_the_secret(client: httpx2.Client, engine: Engine) -> None:
    response, _ = _post(client, _parsed_form(), headers=_basic(SECRET, user=""))
    assert response.status_code == 200
    assert len(inbox_rows(engine)) == 1


def test_a_large_raw_email_is_accepted(client: httpx2.Client, engine: Engine) -> None:
    # Over the 1 MB per part that FastAPI's own form parsing allows.
    response, sent = _post(client, _raw_form(_raw_mime(attachment_bytes=3_000_000)),
                           params={"secret": SECRET})  # fmt: skip

    assert response.status_code == 200, response.text
    assert len(sent.content) > 3_000_000
    assert [bytes(r["body"]) for r in inbox_rows(engine)] == [sent.content]


@pytest.mark.parametrize(
    "auth",
    [
        {},
        {"headers": _basic("wrong-secret")},
        {"headers": _basic(SECRET[:-1])},
        {"headers": _basic(SECRET + "x")},
        {"params": {"secret": "wrong-secret"}},
        {"params": {"secret": ""}},
        {"headers": {"Authorization": f"Bearer {SECRET}"}},
        {"headers": {"Authorization": "Basic !!!not-base64!!!"}},
        {"headers": {"Authorization": "Basic " + base64.b64encode(SECRET.encode()).decode()}},
    ],
    ids=["none", "wrong", "prefix", "longer", "wrong-query", "empty-query", "bearer",
         "malformed-basic", "no-colon"],
)  # fmt: skip
def test_a_missing_or_wrong_secret_is_401_and_stores_nothing(
    client: httpx2.Client, engine: Engine, nudges: Nudges, auth: dict[str, Any]
) -> None:
    response, _ = _post(client, _raw_form(_raw_mime()), **auth)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert inbox_rows(engine) == []
    assert nudges.calls == []


def test_a_body_over_the_limit_is_413_and_stores_nothing(engine: Engine, nudges: Nudges) -> None:
    form = _raw_form(_raw_mime(attachment_bytes=200_000))
    with client_for(_app(engine, nudges, inbound_max_bytes=64 * 1024)) as client:
        declared, _ = _post(client, form, params={"secret": SECRET})
        body = client.build_request("POST", PATH, **form).read()
        content_type = client.build_request("POST", PATH, **form).headers["content-type"]
        chunks = (body[i : i + 16384] for i in range(0, len(body), 16384))
        streamed = client.post(PATH, params={"secret": SECRET}, content=chunks,
                               headers={"Content-Type": content_type})  # fmt: skip
        small, _ = _post(client, _parsed_form(), params={"secret": SECRET})

    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert small.status_code == 200
    assert len(inbox_rows(engine)) == 1


BOUNDARY = "b0undary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
ONE_PART = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="text"\r\n\r\nhej\r\n--{BOUNDARY}--\r\n'
).encode()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"email": "From: x"}'),
        ("application/x-www-form-urlencoded", b"email=From%3A+x"),
        ("text/plain", ONE_PART),
        ("multipart/form-data", ONE_PART),  # no boundary
        ("multipart/mixed; boundary=b0undary", ONE_PART),
        ("multipart/form-data; boundary=other", ONE_PART),
        (MULTIPART, ONE_PART[:-14]),  # cut off before the closing boundary
        (MULTIPART, f"--{BOUNDARY}--\r\n".encode()),  # no part at all
        (MULTIPART, b""),
        (MULTIPART, b"\x00\xff" * 100),
        (f"multipart/form-data; boundary={'x' * 300}", ONE_PART),
    ],
    ids=["json", "urlencoded", "text", "no-boundary", "mixed", "other-boundary", "truncated",
         "no-parts", "empty", "binary", "boundary-too-long"],
)  # fmt: skip
def test_a_body_that_is_not_a_multipart_form_is_400_and_stores_nothing(
    client: httpx2.Client, engine: Engine, content_type: str, body: bytes
) -> None:
    response = client.post(PATH, params={"secret": SECRET}, content=body,
                           headers={"Content-Type": content_type})  # fmt: skip

    assert response.status_code == 400, response.text
    assert inbox_rows(engine) == []


def test_the_smallest_valid_form_is_accepted(client: httpx2.Client, engine: Engine) -> None:
    response = client.post(PATH, params={"secret": SECRET}, content=ONE_PART,
                           headers={"Content-Type": MULTIPART})  # fmt: skip
    assert response.status_code == 200
    assert [bytes(r["body"]) for r in inbox_rows(engine)] == [ONE_PART]


def test_without_a_secret_everything_is_refused_and_start_up_warns(
    engine: Engine, nudges: Nudges, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="salescycle.web"):
        app = _app(engine, nudges, inbound_secret=None)
    assert any("SALESCYCLE_INBOUND_SECRET" in r.getMessage() for r in caplog.records)

    with client_for(app) as client:
        anonymous, _ = _post(client, _parsed_form())
        guessing, _ = _post(client, _parsed_form(), params={"secret": ""})

    assert (anonymous.status_code, guessing.status_code) == (503, 503)
    assert inbox_rows(engine) == []


def test_the_openapi_schema_documents_the_answers(client: httpx2.Client) -> None:
    operation = client.get("/openapi.json").json()["paths"][PATH]["post"]
    assert {"200", "400", "401", "413", "503"} <= set(operation["responses"])
    assert "multipart/form-data" in operation["requestBody"]["content"]


def test_is_multipart_form_accepts_what_an_http_client_builds() -> None:
    request = httpx2.Request("POST", "http://x/", **_parsed_form())
    assert is_multipart_form(request.headers["content-type"], request.read())
    assert not is_multipart_form(request.headers["content-type"], request.read()[:-10])
