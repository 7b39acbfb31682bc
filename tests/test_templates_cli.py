"""``salescycle templates list`` and ``templates render`` for a real contact."""

from __future__ import annotations

from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from _support import explain, invoke, json_output

CONTACT = "thomas.williams@redwateranalytics.com"


@pytest.fixture
def imported(workspace: Path) -> Path:
    """The starter workspace with its example CRM export imported."""
    upgrade = invoke("db", "upgrade", "--workspace", workspace)
    assert upgrade.exit_code == 0, explain(upgrade)
    export = workspace / "examples" / "crm-contacts.csv"
    imported = invoke("contacts", "import", export, "--workspace", workspace)
    assert imported.exit_code == 0, explain(imported)
    return workspace


def test_list_names_every_template_with_its_locales_and_variants(workspace: Path) -> None:
    result = invoke("templates", "list", "--json", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    rows = {row["name"]: row for row in json_output(result)}
    assert {"connecting/intro", "connecting/bump", "nurture/welcome",
            "nurture/referral-request"} <= set(rows)  # fmt: skip
    assert rows["connecting/intro"]["locales"] == ["en", "da"]
    assert rows["connecting/intro"]["variants"] == ["a", "b"]
    assert rows["nurture/welcome"]["variants"] == ["a"]
    assert rows["nurture/welcome"]["file"] == "templates/nurture/welcome.md"


def test_list_refuses_a_broken_template_folder_with_its_problems(workspace: Path) -> None:
    (workspace / "templates" / "connecting" / "Bad Name.md").write_text("x", encoding="utf-8")

    result = invoke("templates", "list", "--workspace", workspace)

    assert result.exit_code == 1
    assert "templates/connecting/Bad Name.md: 'Bad Name.md' is not a template file name" in (
        result.output
    )


def test_render_shows_the_message_exactly_as_it_would_be_sent(
    imported: Path, tmp_path: Path
) -> None:
    eml, html = tmp_path / "out.eml", tmp_path / "out.html"

    result = invoke("templates", "render", "nurture/welcome", "--contact", CONTACT,
                    "--format", "html", "--eml", eml, "--html", html, "--json",
                    "--workspace", imported)  # fmt: skip

    assert result.exit_code == 0, explain(result)
    shown = json_output(result)
    assert shown["subject"] == "Welcome to Salescycle Demo ApS"
    assert shown["headers"]["From"] == "Ingrid Solheim <ingrid.solheim@salescycle-demo.example>"
    assert shown["headers"]["To"] == f"Thomas Williams <{CONTACT}>"
    assert shown["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert shown["parts"] == ["text/plain", "text/html"]
    assert shown["sendgrid"]["personalizations"][0]["to"][0]["email"] == CONTACT
    parsed = message_from_bytes(eml.read_bytes(), policy=email_policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Message-ID"] == f"<{shown['message_id']}@mail.salescycle-demo.example>"
    html_part = parsed.get_body(("html",))
    assert html_part is not None
    # on the wire, text lines end in CRLF (RFC 5322's canonical form)
    sent = html_part.get_content().replace("\r\n", "\n")
    assert sent == html.read_text(encoding="utf-8") == shown["html"]


def test_render_in_another_locale_and_as_text(imported: Path) -> None:
    result = invoke("templates", "render", "connecting/intro", "--contact", CONTACT,
                    "--locale", "da", "--workspace", imported)  # fmt: skip

    assert result.exit_code == 0, explain(result)
    assert "Subject: Salgsopfølgning hos Redwater Analytics Corp." in result.output
    assert "Hej Thomas," in result.output
    assert "Afmeld: https://track.salescycle-demo.example/u/" in result.output


def test_render_an_unknown_contact_or_template_is_one_clear_line(imported: Path) -> None:
    nobody = invoke("templates", "render", "connecting/intro", "--contact", "no@body.example",
                    "--workspace", imported)  # fmt: skip
    typo = invoke("templates", "render", "connecting/intr", "--contact", CONTACT,
                  "--workspace", imported)  # fmt: skip

    assert nobody.exit_code == 1
    assert "error: no contact with email no@body.example" in nobody.output
    assert typo.exit_code == 1
    assert "unknown template 'connecting/intr'; did you mean 'connecting/intro'?" in typo.output
