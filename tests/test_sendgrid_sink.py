"""The SendGrid sink: a real server on loopback, talked to by the official client and httpx2.

One sink serves the module (reset before each test); tests that need other settings start
their own. Nothing is mocked: requests go over TCP to uvicorn.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
import sendgrid
from _support import SINK_API_KEY, outbound_message
from python_http_client.exceptions import (
    TooManyRequestsError,
)
from sendgrid.helpers.mail import CustomArg, Mail

from engine.delivery import Address, OutboundMessage, to_mail_send
from engine.delivery.sendgrid import mail_send_json, mail_send_problems
from engine.delivery.sendgrid_schema import mail_send_schema, mail_send_validator
from engine.devtools import Faults, SendGridSink
from engine.errors import ConfigurationError

API_KEY = SINK_API_KEY
AUTHORIZED = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def client(sink: SendGridSink) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=sink.url, headers=AUTHORIZED, timeout=10.0) as http:
        yield http


def _official(sink: SendGridSink, key: str = API_KEY) -> Any:
    return sendgrid.SendGridAPIClient(key, host=sink.url)


def _official_mail(message_id: str = "m7kq2xw4zr9tbn3d") -> Any:
    mail = Mail(
        from_email=("sales@example.com", "Åsa Lindberg"),
        to_emails="bo@kunde.example.dk",
        subject="Hej Bo 🚀",
        plain_text_content="Hej Bo,\nkort spørgsmål.\n",
        html_content="<p>Hej Bo,<br>kort spørgsmål.</p>",
    )
    mail.add_custom_arg(CustomArg("message_id", message_id, p=0))
    mail.custom_arg = CustomArg("campaign", "nordics")  # message-level: an object on the wire
    return mail


def _message(message_id: str = "q7rbm2k4ztx6wd3c") -> OutboundMessage:
    return outbound_message(
        message_id,
        date=dt.datetime(2024, 11, 30, 23, 59, 1, tzinfo=dt.UTC),
        sender=Address("hello@example.com", "Example Sales"),
        to=Address("pat@example.org", "Pat"),
        reply_to=Address("reply+x@reply.example.com", "Example Sales"),
        subject="A plain ASCII subject",
        text="Hello Pat,\nline two\n",
        html="<p>Hello Pat,<br>line two</p>\n",
        headers=(("List-Unsubscribe", "<https://example.com/u/x>"),),
        custom_args={"message_id": message_id, "step": "intro"},
    )


def _post(client: httpx2.Client, body: object) -> httpx2.Response:
    return client.post("/v3/mail/send", content=json.dumps(body).encode())


def _errors(response: httpx2.Response) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = response.json()["errors"]
    assert all(set(error) == {"message", "field", "help"} for error in errors), errors
    return errors


# --- accepting ------------------------------------------------------------------------------


def test_the_official_client_gets_202_and_the_mail_is_recorded(sink: SendGridSink) -> None:
    mail = _official_mail("m7kq2xw4zr9tbn3d")

    response = _official(sink).send(mail)

    assert response.status_code == 202
    assert response.body == b""
    provider_id = response.headers["X-Message-Id"]
    assert len(provider_id) == 22
    [accepted] = sink.messages()
    assert accepted.provider_message_id == provider_id
    assert accepted.body == mail.get()
    assert accepted.recipients == ("bo@kunde.example.dk",)
    assert accepted.subject == "Hej Bo 🚀"
    assert accepted.message_ids == ("m7kq2xw4zr9tbn3d",)
    assert accepted.received_at.tzinfo is dt.UTC
    assert sink.stats().accepted == sink.stats().total == 1


def test_a_body_from_our_exporter_is_accepted(sink: SendGridSink) -> None:
    message = _message("k5x2qhzv7mwa3nre")

    response = _official(sink).send(to_mail_send(message))

    assert response.status_code == 202
    [accepted] = sink.messages()
    assert accepted.body == to_mail_send(message)
    assert accepted.message_ids == ("k5x2qhzv7mwa3nre",)
    assert accepted.recipients == ("pat@example.org",)
    assert accepted.subject == "A plain ASCII subject"


# --- refusing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "status", "says", "outcome"),
    [
        (None, 401, "authorization required", "unauthorized"),
        ("Basic dXNlcjpwYXNz", 401, "authorization required", "unauthorized"),
        ("Bearer", 401, "authorization required", "unauthorized"),
        ("Bearer SG.someone-else", 403, "access forbidden", "forbidden"),
    ],
    ids=["missing", "not-bearer", "no-key", "wrong-key"],
)
def test_requests_without_the_key_are_refused(
    sink: SendGridSink, authorization: str | None, status: int, says: str, outcome: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = httpx2.post(
        f"{sink.url}/v3/mail/send", json=to_mail_send(_message()), headers=headers
    )

    assert response.status_code == status
    assert _errors(response) == [{"message": says, "field": None, "help": None}]
    assert sink.messages() == []
    assert getattr(sink.stats(), outcome) == sink.stats().total == 1


def test_malformed_json_is_a_400(sink: SendGridSink, client: httpx2.Client) -> None:
    response = client.post("/v3/mail/send", content=b'{"personalizations": [')

    assert response.status_code == 400
    [error] = _errors(response)
    assert error["message"].startswith("the request body is not valid JSON")
    assert sink.messages() == []
    assert sink.stats().invalid == 1


def _without_personalizations(body: dict[str, Any]) -> None:
    del body["personalizations"]


def _personalization_without_to(body: dict[str, Any]) -> None:
    del body["personalizations"][0]["to"]


def _content_without_value(body: dict[str, Any]) -> None:
    del body["content"][0]["value"]


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        (_without_personalizations, "personalizations", "'personalizations' is a required"),
        (_personalization_without_to, "personalizations.0.to", "'to' is a required property"),
        (_content_without_value, "content.0.value", "'value' is a required property"),
    ],
    ids=["no-personalizations", "personalization-without-to", "content-without-value"],
)
def test_schema_violations_are_400_with_the_field(
    sink: SendGridSink,
    client: httpx2.Client,
    change: Callable[[dict[str, Any]], None],
    field: str,
    says: str,
) -> None:
    body = to_mail_send(_message())
    change(body)

    response = _post(client, body)

    assert response.status_code == 400
    errors = _errors(response)
    assert any(e["field"] == field and e["message"].startswith(says) for e in errors), errors
    assert sink.messages() == []
    assert sink.stats().invalid == 1


def test_every_reason_is_given(client: httpx2.Client) -> None:
    body = to_mail_send(_message())
    del body["from"]
    body["personalizations"] = []

    messages = [error["message"] for error in _errors(_post(client, body))]

    assert messages == [
        "'from' is a required property",
        "0 personalizations; allowed 1 to 1000",
    ]


def _personalizations(count: int) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        body["personalizations"] = body["personalizations"] * count

    return change


def _big_custom_args(body: dict[str, Any]) -> None:
    body["personalizations"][0]["custom_args"]["note"] = "ø" * 5_000  # 10,000 bytes


def _reserved_header(body: dict[str, Any]) -> None:
    body["headers"]["Reply-To"] = "other@example.com"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (_personalizations(1001), "1001 personalizations; allowed 1 to 1000"),
        (_big_custom_args, "personalization 0: custom_args are 10063 bytes; at most 10000"),
        (_reserved_header, "header Reply-To may not be set"),
    ],
    ids=["1001-personalizations", "custom-args-over-10000-bytes", "reserved-header"],
)
def test_documented_limits_are_400_with_the_reason(
    sink: SendGridSink, client: httpx2.Client, change: Callable[[dict[str, Any]], None], says: str
) -> None:
    body = to_mail_send(_message())
    change(body)

    response = _post(client, body)

    assert response.status_code == 400
    errors = _errors(response)
    assert says in [error["message"] for error in errors]
    assert all(len(error["message"]) < 300 for error in errors)  # no thousand-item reprs
    assert sink.messages() == []


def test_a_body_over_30_mb_is_a_413(sink: SendGridSink, client: httpx2.Client) -> None:
    body = b'{"padding": "' + b"x" * (30 * 1024 * 1024) + b'"}'

    response = client.post("/v3/mail/send", content=body)

    assert response.status_code == 413
    assert _errors(response) == [{"message": "content too large", "field": None, "help": None}]
    assert sink.stats().too_large == 1


# --- faults ---------------------------------------------------------------------------------


def test_a_429_carries_retry_after_and_records_nothing(sink: SendGridSink) -> None:
    sink.set_faults(Faults(rate_429=1.0, retry_after=7))

    with pytest.raises(TooManyRequestsError) as refused:
        _official(sink).send(_official_mail())

    assert refused.value.status_code == 429
    assert refused.value.headers["Retry-After"] == "7"
    assert json.loads(refused.value.body)["errors"][0]["message"] == "too many requests"
    assert sink.messages() == []
    assert sink.stats().rate_limited == sink.stats().total == 1


def _statuses(client: httpx2.Client, count: int) -> list[int]:
    body = to_mail_send(_message())
    return [_post(client, body).status_code for _ in range(count)]


def test_injected_faults_follow_their_rates_reproducibly(
    sink: SendGridSink, client: httpx2.Client
) -> None:
    sink.set_faults(Faults(rate_429=0.3, rate_500=0.1, rate_503=0.1), seed=2026)

    statuses = _statuses(client, 200)

    counts = Counter(statuses)
    assert counts == {202: 100, 429: 57, 500: 21, 503: 22}  # the seeded generator's draws
    for status, rate in {202: 0.5, 429: 0.3, 500: 0.1, 503: 0.1}.items():
        assert abs(counts[status] / 200 - rate) < 0.05
    stats = sink.stats()
    assert (stats.accepted, stats.rate_limited) == (counts[202], counts[429])
    assert (stats.internal_error, stats.unavailable) == (counts[500], counts[503])
    assert len(sink.messages()) == counts[202]  # a refused request records nothing

    # The same seed gives the same answers, request by request.
    sink.set_faults(sink.faults, seed=2026)
    assert _statuses(client, 200) == statuses


def test_a_slow_answer_outlasts_the_client_timeout_yet_the_mail_was_accepted(
    sink: SendGridSink,
) -> None:
    sink.set_faults(Faults(rate_slow=1.0, slow_seconds=3.0))

    with pytest.raises(httpx2.ReadTimeout):
        httpx2.post(
            f"{sink.url}/v3/mail/send",
            json=to_mail_send(_message()),
            headers=AUTHORIZED,
            timeout=0.2,
        )
    with pytest.raises(TimeoutError):
        _official(sink).client.mail.send.post(request_body=_official_mail().get(), timeout=0.2)

    # The ambiguous hand-off: the client gave up, the provider has the mail.
    assert len(sink.messages()) == 2
    assert sink.stats().accepted == sink.stats().delayed == 2


def test_faults_are_set_over_http(sink: SendGridSink, client: httpx2.Client) -> None:
    response = client.post("/_sink/faults", json={"rate_503": 1.0, "seed": 5})

    assert response.status_code == 200
    assert response.json()["rate_503"] == 1.0
    assert sink.faults == Faults(rate_503=1.0)
    assert _post(client, to_mail_send(_message())).status_code == 503
    assert client.get("/_sink/faults").json() == response.json()


@pytest.mark.parametrize(
    ("faults", "says"),
    [
        ({"rate_4299": 1}, "unknown fault ['rate_4299']; valid: ['rate_429',"),
        ({"rate_429": 2}, "rate_429 is 2; a rate is from 0 to 1"),
        ({"rate_429": 0.6, "rate_500": 0.6}, "rate_429 + rate_500 + rate_503 is over 1"),
        ({"retry_after": 1.5}, "['retry_after'] must be numbers"),
        ({"seed": "x"}, "seed must be an integer"),
        ([], "faults must be a JSON object"),
    ],
    ids=["unknown", "over-1", "sum-over-1", "fractional-retry-after", "bad-seed", "not-an-object"],
)
def test_bad_faults_over_http_are_a_400_that_changes_nothing(
    sink: SendGridSink, client: httpx2.Client, faults: object, says: str
) -> None:
    response = client.post("/_sink/faults", json=faults)

    assert response.status_code == 400
    assert says in _errors(response)[0]["message"]
    assert sink.faults == Faults()


def test_faults_add_up_to_at_most_one() -> None:
    assert Faults(rate_429=0.3, rate_500=0.3, rate_503=0.4).rate_503 == 0.4
    with pytest.raises(ConfigurationError, match=r"is over 1"):
        Faults(rate_429=0.8, rate_500=0.3)
    with pytest.raises(ConfigurationError, match=r"rate_slow is -0\.1"):
        Faults(rate_slow=-0.1)


# --- for other processes ---------------------------------------------------------------------


def test_the_record_file_holds_one_json_line_per_accepted_request(tmp_path: Path) -> None:
    record = tmp_path / "sent.jsonl"
    bodies = [to_mail_send(_message("first00000000000")), _official_mail("second0000000000").get()]

    with SendGridSink(record_file=record) as sink:  # no key configured: any key is taken
        for key, body in zip(["SG.one", "SG.two"], bodies, strict=True):
            assert _official(sink, key).send(body).status_code == 202
        refused = httpx2.post(f"{sink.url}/v3/mail/send", json={}, headers=AUTHORIZED)

    assert refused.status_code == 400
    assert [json.loads(line) for line in record.read_text("utf-8").splitlines()] == bodies


def test_messages_stats_and_reset_over_http(sink: SendGridSink, client: httpx2.Client) -> None:
    provider_id = _official(sink).send(_official_mail("m7kq2xw4zr9tbn3d")).headers["X-Message-Id"]

    [listed] = client.get("/_sink/messages").json()

    assert listed["provider_message_id"] == provider_id
    assert listed["message_ids"] == ["m7kq2xw4zr9tbn3d"]
    assert listed["recipients"] == ["bo@kunde.example.dk"]
    assert listed["subject"] == "Hej Bo 🚀"
    assert listed["body"] == _official_mail("m7kq2xw4zr9tbn3d").get()
    assert dt.datetime.fromisoformat(listed["received_at"]).utcoffset() == dt.timedelta(0)
    stats = client.get("/_sink/stats").json()
    assert (stats["accepted"], stats["total"]) == (1, 1)
    assert client.get("/_sink/health").json() == {"status": "ok"}

    assert client.delete("/_sink/messages").status_code == 204

    assert client.get("/_sink/messages").json() == []
    assert sink.messages() == []
    assert client.get("/_sink/stats").json()["total"] == 0


def test_unknown_paths_answer_in_sendgrid_shape(client: httpx2.Client) -> None:
    missing = client.get("/v3/templates")
    wrong_method = client.get("/v3/mail/send")

    assert (missing.status_code, _errors(missing)[0]["message"]) == (404, "not found")
    assert (wrong_method.status_code, _errors(wrong_method)[0]["message"]) == (
        405,
        "method not allowed",
    )


# --- running ---------------------------------------------------------------------------------


def test_each_sink_gets_its_own_free_port_and_frees_it_on_stop() -> None:
    with SendGridSink() as first, SendGridSink() as second:
        urls = (first.url, second.url)
        assert urls[0] != urls[1]
        assert all(httpx2.get(f"{url}/_sink/health").status_code == 200 for url in urls)

    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{urls[0]}/_sink/health")


def test_concurrent_clients_lose_nothing(sink: SendGridSink) -> None:
    bodies = [to_mail_send(_message(f"concurrent{i:06d}")) for i in range(100)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda body: _official(sink).send(body).status_code, bodies))

    assert statuses == [202] * 100
    accepted = sink.messages()
    assert sorted(m.message_ids[0] or "" for m in accepted) == [
        f"concurrent{i:06d}" for i in range(100)
    ]
    assert len({m.provider_message_id for m in accepted}) == 100


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_runs_in_the_foreground_of_another_process(tmp_path: Path) -> None:
    port, record = _free_port(), tmp_path / "sent.jsonl"
    code = (
        "from pathlib import Path; from engine.devtools import serve; "
        f"serve('127.0.0.1', {port}, api_key={API_KEY!r}, record_file=Path({str(record)!r}))"
    )
    server = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx2.get(f"{url}/_sink/health", timeout=1.0)
                break
            except httpx2.TransportError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.02)
        body = to_mail_send(_message())
        response = sendgrid.SendGridAPIClient(API_KEY, host=url).send(body)
        [listed] = httpx2.get(f"{url}/_sink/messages").json()
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=10)

    assert response.status_code == 202
    assert listed["provider_message_id"] == response.headers["X-Message-Id"]
    assert json.loads(record.read_text("utf-8")) == body
    assert server.returncode == 0, stderr.decode()


def test_the_schema_is_loaded_once() -> None:
    assert mail_send_validator() is mail_send_validator()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b,
        lambda b: b.pop("from"),
        lambda b: b.update({"from": {"email": 5}}),
        lambda b: b.update({"from": {"email": "not an address"}}),
        lambda b: b.update({"personalizations": []}),
        lambda b: b["personalizations"][0].update({"to": [{"name": "no address"}]}),
        lambda b: b.update({"subject": ["a", "list"]}),
        lambda b: b.update({"content": [{"type": "text/plain"}]}),
        lambda b: b.update({"send_at": "tomorrow"}),
        lambda b: b.update({"unknown_field": True}),
    ],
    ids=[
        "valid",
        "no-from",
        "from-number",
        "from-bad-format",
        "no-personalizations",
        "to-without-email",
        "subject-list",
        "content-without-value",
        "send_at-text",
        "unknown-field",
    ],
)
def test_the_fast_check_and_the_reference_validator_agree(mutate: Any) -> None:
    schema = mail_send_schema()
    body = orjson.loads(mail_send_json(outbound_message()))
    mutate(body)

    reference_valid = not list(schema.validator.iter_errors(body))

    assert schema.quick.is_valid(body) == reference_valid
    assert (schema.errors(body) == []) == (reference_valid and not mail_send_problems(body))
