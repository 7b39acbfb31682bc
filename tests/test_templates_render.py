"""Rendering templates into messages: context, locales, Markdown, layouts, links and footers."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from engine.delivery import OutboundMessage
from engine.templating import (
    MessageBuilder,
    MessageFormat,
    MessageIdentity,
    Recipient,
    SendRequest,
    TemplateRenderError,
)
from engine.tracking import TokenPurpose, TokenSigner
from engine.wiring import Runtime

NOW = dt.datetime(2026, 11, 28, 9, 30, tzinfo=dt.UTC)
SECRET = "a-test-secret-key-of-32-bytes!!!"
HREF = re.compile(r'href="([^"]*)"')


@pytest.fixture
def builder(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> MessageBuilder:
    monkeypatch.setenv("SALESCYCLE_SECRET_KEY", SECRET)
    return Runtime.open(workspace).message_builder()


def person(**contact: Any) -> Recipient:
    """A contact at a Danish account, owned by Mette (who has a profile in owners.yaml)."""
    row = {
        "email": "soren@nordlys.dk",
        "first_name": "Søren",
        "last_name": "Østergaard",
        "title": "Salgschef",
        "stage": "connecting",
        "locale": "en",
        "timezone": "Europe/Copenhagen",
        "attributes": {"last_meeting": "2026-11-03"},
    }
    row.update(contact)
    account = {
        "name": "Nordlys A/S",
        "industry": "Software",
        "country": "DK",
        "employees": 120,
        "attributes": {"annual_revenue": 12500000.5},
    }
    owner = {"email": "mette.kristensen@salescycle-demo.example", "name": "Mette Kristensen"}
    return Recipient(row, account, owner)


def build(
    builder: MessageBuilder,
    template: str,
    recipient: Recipient | None = None,
    message_format: MessageFormat = MessageFormat.TEXT,
    **options: Any,
) -> OutboundMessage:
    request = SendRequest(
        template, options.pop("variant", "a"), recipient or person(),
        MessageIdentity("msg0001", 7, "connecting-outreach", "intro"), message_format, **options,
    )  # fmt: skip
    return builder.build(request, NOW)


def write_template(workspace: Path, name: str, text: str) -> None:
    path = workspace / "templates" / f"{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def rebuild(workspace: Path) -> MessageBuilder:
    return Runtime.open(workspace).message_builder()


def test_a_text_message_has_the_contact_owner_and_company_in_it(builder: MessageBuilder) -> None:
    message = build(builder, "connecting/intro")

    assert message.subject == "Sales follow-ups at Nordlys A/S"
    assert message.text.startswith("Hi Søren,")
    assert "Mette Kristensen" in message.text
    assert message.sender.email == "mette.kristensen@salescycle-demo.example"
    assert message.to.email == "soren@nordlys.dk"
    assert message.to.name == "Søren Østergaard"
    # the engine's footer: postal address and unsubscribe link, in the template's language
    assert "Vesterbrogade 1, 1620 København V, Denmark" in message.text
    assert "Unsubscribe: https://track.salescycle-demo.example/u/" in message.text


def test_text_format_has_no_html_and_no_pixel(builder: MessageBuilder) -> None:
    message = build(builder, "connecting/intro")

    assert message.html is None
    assert "/t/o/" not in message.text
    assert "<" not in message.text.replace("<https", "")


def test_a_contact_with_a_danish_locale_gets_the_danish_file_and_danish_words(
    builder: MessageBuilder,
) -> None:
    message = build(builder, "connecting/intro", person(locale="da_DK"))

    assert message.subject.startswith("Salgsopfølgning hos Nordlys A/S")
    assert message.text.startswith("Hej Søren,")
    assert "Afmeld: https://" in message.text  # the footer speaks Danish too


def test_a_locale_without_its_own_file_falls_back_to_the_default_language(
    builder: MessageBuilder,
) -> None:
    message = build(builder, "connecting/intro", person(locale="sv"))

    assert message.text.startswith("Hi Søren,")


def test_danish_dates_numbers_and_currency_come_from_babel(workspace: Path) -> None:
    write_template(workspace, "t/dates.da", "---\nsubject: x\n---\n"
                   "{{ contact.attributes.last_meeting | date }} · {{ today | date }} · "
                   "{{ account.attributes.annual_revenue | currency('DKK') }} · "
                   "{{ account.employees | number }}\n")  # fmt: skip
    write_template(
        workspace,
        "t/dates",
        "---\nsubject: x\n---\n{{ contact.attributes.last_meeting | date }} · {{ today | date }}\n",
    )

    danish = build(rebuild(workspace), "t/dates", person(locale="da"))
    english = build(rebuild(workspace), "t/dates", person(locale="en"))

    expected = "3. november 2026 · 28. november 2026 · 12.500.000,50\xa0kr. · 120"
    assert danish.text.startswith(expected)
    assert english.text.startswith("November 3, 2026 · November 28, 2026")


def test_today_is_the_date_in_the_contacts_own_timezone(workspace: Path) -> None:
    write_template(workspace, "t/today", "---\nsubject: x\n---\n{{ today.isoformat() }}\n")
    late = dt.datetime(2026, 11, 28, 23, 30, tzinfo=dt.UTC)
    request = SendRequest("t/today", "a", person(timezone="Asia/Tokyo"),
                          MessageIdentity("msg0002"), MessageFormat.TEXT)  # fmt: skip

    message = rebuild(workspace).build(request, late)

    assert message.text.startswith("2026-11-29")


def test_an_empty_value_falls_back_through_default_and_fails_without_it(workspace: Path) -> None:
    write_template(
        workspace,
        "t/greet",
        "---\nsubject: Hi\n---\nHi {{ contact.first_name | default('there') }}\n",
    )
    write_template(workspace, "t/bare", "---\nsubject: Hi\n---\n\nHi {{ contact.first_name }}\n")
    nameless = person(first_name=None)

    assert build(rebuild(workspace), "t/greet", nameless).text.startswith("Hi there")
    with pytest.raises(TemplateRenderError) as failure:
        build(rebuild(workspace), "t/bare", nameless)
    assert failure.value.shown == "templates/t/bare.md"
    assert failure.value.line == 5  # the file's own line, front matter counted
    assert "contact.first_name is empty" in failure.value.reason
    assert "default(" in failure.value.reason


def test_an_unknown_field_names_the_valid_ones(workspace: Path) -> None:
    write_template(workspace, "t/typo", "---\nsubject: Hi\n---\nHi {{ contact.frist_name }}\n")

    with pytest.raises(TemplateRenderError) as failure:
        build(rebuild(workspace), "t/typo")

    assert "contact has no field 'frist_name'; did you mean 'first_name'?" in str(failure.value)


def test_partials_are_picked_for_the_language(workspace: Path) -> None:
    write_template(workspace, "_partials/ps", "PS: see you in **Copenhagen**")
    write_template(workspace, "_partials/ps.da", "PS: vi ses i **København**")
    body = "---\nsubject: x\n---\nHello\n\n{% include '_partials/ps.md' %}\n"
    write_template(workspace, "t/ps", body)
    write_template(workspace, "t/ps.da", body)

    english = build(rebuild(workspace), "t/ps", message_format=MessageFormat.HTML)
    danish = build(rebuild(workspace), "t/ps", person(locale="da"), MessageFormat.HTML)

    assert "PS: see you in Copenhagen" in english.text
    assert re.search(r"<strong[^>]*>Copenhagen</strong>", english.html or "")
    assert "PS: vi ses i København" in danish.text


def test_html_messages_use_the_layout_with_css_inlined_and_a_pixel(
    builder: MessageBuilder,
) -> None:
    message = build(builder, "nurture/welcome", message_format=MessageFormat.HTML)
    html = message.html or ""

    assert html.lstrip().lower().startswith("<!doctype html")
    assert 'class="content"' in html and "style=" in html  # inlined from the layout's <style>
    assert re.search(r'<img src="https://track\.salescycle-demo\.example/t/o/msg0001\.[0-9a-f]+"',
                     html)  # fmt: skip
    assert "Vesterbrogade 1" in html and ">Unsubscribe</a>" in html
    assert "Welcome aboard" in message.text and "<" not in message.text.split("-- ")[0]


def test_every_html_link_is_tracked_except_unsubscribe(workspace: Path) -> None:
    write_template(
        workspace,
        "t/links",
        "---\nsubject: x\n---\n"
        "[Book]({{ link('https://cal.example.com/x?a=1&b=2', tag='booking') }}), "
        "[site](https://example.com/plain), [mail](mailto:a@example.com) and "
        "[{{ account.name }}](https://example.com/{{ account.country | lower }})\n",
    )
    request = SendRequest("t/links", "a", person(), MessageIdentity("msg0004"), MessageFormat.HTML)

    rendered = rebuild(workspace).render(request, NOW)

    hrefs = HREF.findall(rendered.html or "")
    assert [(link.url, link.tag) for link in rendered.links] == [
        ("https://cal.example.com/x?a=1&b=2", "booking"),
        ("https://example.com/plain", None),
        ("https://example.com/dk", None),
    ]
    assert sum("/t/c/msg0004-" in h for h in hrefs) == 3
    untracked = [h for h in hrefs if "/t/c/" not in h]
    assert untracked[0] == "mailto:a@example.com"
    assert [h for h in untracked[1:] if "/u/msg0004." not in h] == []  # only unsubscribe


def test_tracked_links_point_at_signed_click_tokens_for_the_urls_in_the_email(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESCYCLE_SECRET_KEY", SECRET)
    write_template(
        workspace,
        "t/one",
        "---\nsubject: x\n---\n"
        "[Book]({{ link('https://cal.example.com/x?a=1&b=2', tag='booking') }})\n",
    )
    builder = rebuild(workspace)
    request = SendRequest("t/one", "a", person(), MessageIdentity("msg0003"), MessageFormat.HTML)

    rendered = builder.render(request, NOW)

    assert [(link.url, link.tag) for link in rendered.links] == [
        ("https://cal.example.com/x?a=1&b=2", "booking")
    ]
    token = re.search(r"/t/c/([0-9a-z.-]+)", rendered.text)
    assert token is not None
    assert TokenSigner(SECRET.encode()).verify(TokenPurpose.CLICK, token[1]) == "msg0003-0"


def test_a_signature_keeps_its_line_breaks_in_html(builder: MessageBuilder) -> None:
    write_dir = builder.renderer.catalog.root
    (write_dir / "t").mkdir()
    (write_dir / "t" / "sig.md").write_text("---\nsubject: x\n---\n{{ owner.signature }}\n")
    fresh = Runtime.open(write_dir.parent).message_builder()

    message = build(fresh, "t/sig", message_format=MessageFormat.HTML)

    assert "Mette Kristensen<br>\nSenior Account Executive" in (message.html or "")
    assert "Mette Kristensen\nSenior Account Executive" in message.text


def test_variants_render_their_own_file(builder: MessageBuilder) -> None:
    base = build(builder, "connecting/intro", variant="a")
    other = build(builder, "connecting/intro", variant="b")

    assert base.subject != other.subject
    assert other.custom_args["variant"] == "b"
    with pytest.raises(TemplateRenderError, match="no variant 'c'; valid: a, b"):
        build(builder, "connecting/intro", variant="c")


def test_an_unknown_template_is_a_clear_error(builder: MessageBuilder) -> None:
    with pytest.raises(TemplateRenderError, match="unknown template 'connecting/intr'; did you"):
        build(builder, "connecting/intr")


def test_every_starter_template_renders_for_every_starter_contact(workspace: Path) -> None:
    from engine.cli.contacts_commands import run_import
    from engine.storage import upgrade

    runtime = Runtime.open(workspace)
    upgrade(runtime.database)
    run_import(runtime, workspace / "examples" / "crm-contacts.csv")
    recipients = starter_recipients(runtime)
    runtime.close()
    builder = runtime.message_builder()
    catalog = builder.renderer.catalog

    built = 0
    for name in catalog.names():
        # the post-sale nurture is the html sequence; outreach and follow-ups are plain text
        message_format = MessageFormat.HTML if name.startswith("nurture/") else MessageFormat.TEXT
        for variant in catalog.variants(name):
            for index, recipient in enumerate(recipients):
                identity = MessageIdentity(f"m{index}")
                message = builder.build(
                    SendRequest(name, variant, recipient, identity, message_format), NOW
                )
                assert message.subject.strip() and message.text.strip()
                assert "None" not in message.text and "None" not in message.subject
                built += 1
    assert len(recipients) == 2000
    assert built == 2000 * sum(len(catalog.variants(n)) for n in catalog.names())


def starter_recipients(runtime: Runtime) -> list[Recipient]:
    from sqlalchemy import select

    from engine.storage.schema import accounts, contacts, owners

    with runtime.ready_database().connect() as connection:
        account_rows = {r["id"]: dict(r) for r in connection.execute(select(accounts)).mappings()}
        owner_rows = {r["id"]: dict(r) for r in connection.execute(select(owners)).mappings()}
        rows = connection.execute(select(contacts)).mappings()
        return [
            Recipient(dict(r), account_rows.get(r["account_id"]), owner_rows.get(r["owner_id"]))
            for r in rows
        ]
