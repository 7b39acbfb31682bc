"""Templates render in Jinja's sandbox: injection payloads fail clearly, contact data stays data."""

from __future__ import annotations

import datetime as dt
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from typing import Any

import pytest

from engine.delivery import to_mail_send, to_rfc5322
from engine.templating import (
    MessageBuilder,
    MessageFormat,
    MessageIdentity,
    Recipient,
    SendRequest,
    TemplateRenderError,
)
from engine.wiring import Runtime

NOW = dt.datetime(2026, 11, 28, 9, 30, tzinfo=dt.UTC)

# The classic server-side template injection payloads, each reaching for Python internals.
PAYLOADS = (
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__()[40]('/etc/passwd').read() }}",
    "{{ contact.__class__.__init__.__globals__ }}",
    "{{ contact.__class__.__mro__ }}",
    "{{ self.__init__.__globals__.__builtins__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__.os.popen('id').read() }}",
    "{{ namespace.__init__.__globals__.os.popen('id').read() }}",
    "{{ config.items() }}",
    "{{ request.application.__globals__ }}",
    "{{ range.__class__.__subclasses__() }}",
    "{{ link.__globals__ }}",
    "{{ link._links }}",
    "{{ url_for.__globals__ }}",
    "{{ ''.__class__.__mro__[2].__subclasses__()[59].__init__.func_globals.linecache.os }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ contact['__class__'] }}",
    "{{ (contact|attr('__class__')) }}",
    "{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ 'a' * 1000000000 }}",
    "{{ 10 ** 100000000 }}",
    "{% for i in range(1000000000) %}x{% endfor %}",
)


def person(**contact: Any) -> Recipient:
    row = {"email": "bo@example.com", "first_name": "Bo", "stage": "connecting", "locale": "en"}
    row.update(contact)
    return Recipient(row, {"name": "Acme"}, None)


def builder_with(workspace: Path, body: str, subject: str = "Hello") -> MessageBuilder:
    path = workspace / "templates" / "t" / "probe.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\nsubject: '{subject}'\n---\n{body}\n", encoding="utf-8")
    return Runtime.open(workspace).message_builder()


def render(builder: MessageBuilder, recipient: Recipient, fmt: MessageFormat) -> Any:
    request = SendRequest("t/probe", "a", recipient, MessageIdentity("msg1"), fmt)
    return builder.build(request, NOW)


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("fmt", list(MessageFormat))
def test_injection_payloads_in_a_template_fail_with_a_clear_error(
    workspace: Path, payload: str, fmt: MessageFormat
) -> None:
    builder = builder_with(workspace, f"Hi\n\n{payload}\n")

    with pytest.raises(TemplateRenderError) as failure:
        render(builder, person(), fmt)

    message = str(failure.value)
    assert message.startswith("templates/t/probe.md:")
    assert any(
        clue in message
        for clue in (
            "unsafe",
            "is undefined",
            "has no field",
            "has no attribute",
            "too large",
            "too long",
            "too big",
        )
    ), message


@pytest.mark.parametrize("payload", PAYLOADS[:3])
def test_check_reports_injection_payloads_as_problems_with_a_line(
    workspace: Path, payload: str
) -> None:
    from _support import explain, invoke, problems_in

    builder_with(workspace, f"Hi\n\n{payload}\n")

    result = invoke("check", "--workspace", workspace)

    assert result.exit_code == 1, explain(result)
    assert ("templates/t/probe.md", 6) in {(p[0], p[1]) for p in problems_in(result.output)}


@pytest.mark.parametrize("fmt", list(MessageFormat))
def test_template_syntax_in_contact_data_is_printed_as_text(
    workspace: Path, fmt: MessageFormat
) -> None:
    body = "Hi {{ contact.first_name }} at {{ account.name }}"
    builder = builder_with(workspace, body, "Hi {{ contact.first_name }}")
    sneaky = Recipient(
        {"email": "x@example.com", "first_name": "{{ 7*7 }}", "stage": "connecting"},
        {"name": "{% for x in range(3) %}loop{% endfor %}"},
        None,
    )

    message = render(builder, sneaky, fmt)

    assert message.subject == "Hi {{ 7*7 }}"
    assert "Hi {{ 7*7 }} at {% for x in range(3) %}loop{% endfor %}" in message.text
    # (tokens in the links are random hex, so look where the name was printed)
    assert "Hi 49" not in message.text and "looploop" not in message.text
    if fmt is MessageFormat.HTML:
        assert "{{ 7*7 }}" in message.html and "Hi 49" not in message.html


def test_html_in_contact_data_is_escaped_in_the_html_part(workspace: Path) -> None:
    body = "Hi {{ contact.first_name }}, see [x]({{ link('https://a.example/') }})"
    builder = builder_with(workspace, body)
    hostile = person(first_name='<script>alert("x")</script><a href="https://evil.example">')

    message = render(builder, hostile, MessageFormat.HTML)

    assert "<script>" not in message.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in message.html
    assert "https://evil.example" not in message.html.replace("&#34;https://evil.example&#34;", "")
    assert 'href="https://evil.example"' not in message.html


def test_markdown_in_contact_data_is_not_read_as_markdown(workspace: Path) -> None:
    builder = builder_with(workspace, "Hi {{ contact.first_name }}")

    message = render(builder, person(first_name="[click](https://evil.example) **bold**"),
                     MessageFormat.HTML)  # fmt: skip

    assert "<strong>" not in message.html and 'href="https://evil.example"' not in message.html
    assert "[click](https://evil.example) **bold**" in message.text


def test_line_breaks_in_contact_data_cannot_inject_headers(workspace: Path) -> None:
    builder = builder_with(workspace, "Hi", "Hi {{ contact.first_name }}")
    hostile = person(first_name="Bo\r\nBcc: victim@example.com\r\nX-Evil: 1", last_name="Ø\nX: y")

    message = render(builder, hostile, MessageFormat.TEXT)
    raw = to_rfc5322(message)
    parsed = message_from_bytes(raw, policy=email_policy.default)

    assert parsed["Bcc"] is None and parsed["X-Evil"] is None and parsed["X"] is None
    assert str(parsed["Subject"]) == "Hi Bo Bcc: victim@example.com X-Evil: 1"
    body = to_mail_send(message)
    assert "\n" not in body["subject"] and "\n" not in body["personalizations"][0]["to"][0]["name"]
