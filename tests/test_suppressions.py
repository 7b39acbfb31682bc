"""``salescycle suppress add|remove|list|import``: normalised addresses, bad rows kept aside,
and an erased person's entry that cannot be removed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from _support import explain, invoke, json_output, read_rejects
from sqlalchemy import insert

from engine.contacts.suppressions import hashed_email, suppression_keys
from engine.storage import create_database_engine, upgrade
from engine.storage.schema import suppressions
from engine.wiring import Runtime


@pytest.fixture
def ws(workspace: Path, workspace_database: str) -> Path:
    engine = create_database_engine(workspace_database)
    upgrade(engine)
    engine.dispose()
    return workspace


def listed(ws: Path, *args: str) -> list[dict[str, str]]:
    result = invoke("suppress", "list", "--json", *args, "--workspace", ws)
    assert result.exit_code == 0, explain(result)
    rows: list[dict[str, str]] = json_output(result)
    return rows


def test_add_normalises_and_list_filters_by_reason(ws: Path) -> None:
    added = invoke("suppress", "add", "  Pat.Prospect@Example.ORG ", "--workspace", ws)
    again = invoke("suppress", "add", "pat.prospect@example.org", "--workspace", ws)
    bounced = invoke(
        "suppress", "add", "gone@example.org", "--reason", "bounced", "--workspace", ws
    )

    assert added.exit_code == 0 and "suppressed pat.prospect@example.org" in added.output
    assert again.exit_code == 0 and "already suppressed" in again.output
    assert bounced.exit_code == 0, explain(bounced)
    assert [(r["email"], r["reason"], r["source"]) for r in listed(ws)] == [
        ("pat.prospect@example.org", "manual", "manual"),
        ("gone@example.org", "bounced", "manual"),
    ]
    assert [r["email"] for r in listed(ws, "--reason", "bounced")] == ["gone@example.org"]


def test_bad_input_is_refused_with_the_valid_choices(ws: Path) -> None:
    not_an_address = invoke("suppress", "add", "not-an-address", "--workspace", ws)
    bad_reason = invoke("suppress", "add", "a@example.org", "--reason", "spam", "--workspace", ws)
    erased = invoke("suppress", "add", "a@example.org", "--reason", "erased", "--workspace", ws)
    bad_filter = invoke("suppress", "list", "--reason", "spam", "--workspace", ws)

    assert not_an_address.exit_code == 1 and "invalid email" in not_an_address.output
    assert bad_reason.exit_code == 1
    assert "unknown reason 'spam'; valid choices: unsubscribed, bounced" in bad_reason.output
    assert erased.exit_code == 1 and "salescycle contacts erase" in erased.output
    assert bad_filter.exit_code == 1 and "valid choices" in bad_filter.output
    assert listed(ws) == []


def test_remove_lifts_a_suppression_but_never_an_erased_one(ws: Path) -> None:
    invoke("suppress", "add", "pat@example.org", "--workspace", ws)
    runtime = Runtime.open(ws)
    with runtime.database.begin() as connection:
        connection.execute(insert(suppressions).values(
            email=hashed_email("erased@example.org"), reason="erased", source="erasure",
            created_at=dt.datetime.now(dt.UTC)))  # fmt: skip
    runtime.close()

    removed = invoke("suppress", "remove", "PAT@example.org", "--workspace", ws)
    missing = invoke("suppress", "remove", "pat@example.org", "--workspace", ws)
    refused = invoke("suppress", "remove", "Erased@Example.org", "--workspace", ws)
    re_added = invoke("suppress", "add", "erased@example.org", "--workspace", ws)

    assert removed.exit_code == 0 and "removed" in removed.output, explain(removed)
    assert missing.exit_code == 1 and "not suppressed" in missing.output
    assert refused.exit_code == 1 and "erased at the person's request" in refused.output
    assert re_added.exit_code == 0 and "already suppressed" in re_added.output
    rows = listed(ws)
    assert [(r["email"], r["reason"]) for r in rows] == [
        (suppression_keys("erased@example.org")[1], "erased")
    ]
    assert rows[0]["email"].startswith("sha256:") and "erased@" not in rows[0]["email"]


def test_import_keeps_bad_rows_aside_and_imports_the_good_ones(ws: Path, tmp_path: Path) -> None:
    file = tmp_path / "unsubscribes.csv"
    file.write_text(
        "Email,Reason,Detail\n"
        "Anna@Example.com,unsubscribed,form\n"  # line 2
        "not-an-email,,\n"  # line 3
        "\n"
        "bob@example.com,spam,\n"  # line 5
        "carl@example.com,,\n"  # line 6: the default reason
        "anna@example.com,bounced,\n",  # line 7: already in the file
        encoding="utf-8",
    )
    result = invoke("suppress", "import", file, "--reason", "complained", "--workspace", ws)

    assert result.exit_code == 1, explain(result)
    assert f"{file}:3: invalid email 'not-an-email'" in result.stderr
    assert f"{file}:5: unknown reason 'spam'; valid choices:" in result.stderr
    assert "5 rows: 2 added, 1 already suppressed, 2 rejected" in result.stdout
    rejects = read_rejects(Path(f"{file}.rejects.csv"))
    assert [r[0] for r in rejects] == ["line", "3", "5"]
    assert rejects[2][2:] == ["bob@example.com", "spam", ""]
    rows = {r["email"]: r for r in listed(ws)}
    assert {e: (r["reason"], r["detail"]) for e, r in rows.items()} == {
        "anna@example.com": ("unsubscribed", "form"),
        "carl@example.com": ("complained", None),
    }


def test_import_of_one_address_per_row_is_idempotent(ws: Path, tmp_path: Path) -> None:
    file = tmp_path / "plain.csv"
    file.write_text("pat@example.org\r\nsam@example.org\r\n", encoding="utf-8")

    first = invoke("suppress", "import", file, "--json", "--workspace", ws)
    second = invoke("suppress", "import", file, "--json", "--workspace", ws)

    assert first.exit_code == 0, explain(first)
    assert json_output(first)["added"] == 2 and json_output(first)["rejected"] == 0
    assert json_output(second)["added"] == 0 and json_output(second)["already"] == 2
    assert not Path(f"{file}.rejects.csv").exists()


def test_import_of_an_unreadable_file_says_why(ws: Path, tmp_path: Path) -> None:
    binary = tmp_path / "latin1.csv"
    binary.write_bytes("email\nj\xf8rgen@example.dk\n".encode("latin-1"))

    missing = invoke("suppress", "import", tmp_path / "nope.csv", "--workspace", ws)
    not_utf8 = invoke("suppress", "import", binary, "--workspace", ws)

    assert missing.exit_code == 1 and "no such file" in missing.output
    assert not_utf8.exit_code == 1 and "not UTF-8" in not_utf8.output
    assert listed(ws) == []
