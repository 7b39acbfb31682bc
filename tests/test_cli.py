"""The ``salescycle`` command line, driven as a user drives it (typer's CliRunner)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import typer
from _support import (
    STARTER_CSV,
    expected_stage_counts,
    explain,
    invoke,
    json_output,
    pipeline_stage_ids,
    read_csv,
)
from sqlalchemy import text
from typer.core import TyperGroup

from engine.cli import app
from engine.storage import create_database_engine, current_revision, head_revision

TOP_LEVEL_COMMANDS = ["init", "check", "db", "contacts", "pipeline", "demo"]
EXPECTED_LEAF_COMMANDS = {
    "init",
    "check",
    "demo",
    "pipeline",
    "db upgrade",
    "db downgrade",
    "db current",
    "contacts import",
    "contacts show",
}


# commands that need a migrated database; EXPORT stands for the workspace's starter export
NEEDS_SCHEMA = [
    ["pipeline"],
    ["contacts", "show", "anna@example.com"],
    ["contacts", "import", "EXPORT"],
]


def _in(workspace: Path, command: list[str]) -> list[str | Path]:
    """The command with EXPORT replaced by the workspace's copy of the starter export."""
    export = workspace / "examples" / "crm-contacts.csv"
    return [export if part == "EXPORT" else part for part in command]


def _leaf_commands() -> list[str]:
    """Every runnable command of the app, found by walking its command tree."""
    found: list[str] = []

    def walk(group: TyperGroup, prefix: list[str]) -> None:
        for name, command in group.commands.items():
            if isinstance(command, TyperGroup):
                walk(command, [*prefix, name])
            else:
                found.append(" ".join([*prefix, name]))

    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    walk(root, [])
    return sorted(found)


def _one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{output}"
    return lines[0]


def _set_revision(database_url: str, revision: str) -> None:
    engine = create_database_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        engine.dispose()


def _revision(database_url: str) -> str | None:
    engine = create_database_engine(database_url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------
# help


def test_help_lists_every_command() -> None:
    result = invoke("--help")

    assert result.exit_code == 0, explain(result)
    for name in TOP_LEVEL_COMMANDS:
        # each command is listed on its own line, followed by its one-line description
        assert re.search(rf"^\W*{name}\s{{2,}}\w", result.output, re.MULTILINE), (
            f"{name} is not listed:\n{result.output}"
        )


def test_the_command_tree_has_every_documented_command() -> None:
    assert set(_leaf_commands()) >= EXPECTED_LEAF_COMMANDS


@pytest.mark.parametrize("command", _leaf_commands())
def test_every_command_help_shows_an_example(command: str) -> None:
    result = invoke(*command.split(), "--help")

    assert result.exit_code == 0, explain(result)
    examples = [line for line in result.output.splitlines() if "Example:" in line]
    assert examples, f"`salescycle {command} --help` shows no Example: line\n{result.output}"
    assert any(f"salescycle {command}" in line for line in examples), examples


# --------------------------------------------------------------------------
# init


def test_init_creates_a_workspace_and_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    target = tmp_path / "acme"

    first = invoke("init", target)

    assert first.exit_code == 0, explain(first)
    assert (target / "config" / "stages.yaml").is_file()
    assert (target / "examples" / "crm-contacts.csv").is_file()
    assert "salescycle check" in first.output  # says what to do next

    # Given a folder that now has files, When init runs again, Then it refuses in one line
    again = invoke("init", target)

    assert again.exit_code != 0
    line = _one_line(again.output)
    assert "not empty" in line
    assert str(target) in line


# --------------------------------------------------------------------------
# the database's revision


@pytest.mark.parametrize(
    "command",
    NEEDS_SCHEMA,
    ids=["pipeline", "contacts-show", "contacts-import"],
)
def test_commands_refuse_an_unmigrated_database(
    workspace: Path, workspace_database: str, command: list[str]
) -> None:
    # Given a workspace whose database was never migrated
    # When a command that needs the schema runs
    result = invoke(*_in(workspace, command), "--workspace", workspace)

    # Then it exits non-zero with one line that says what to run
    assert result.exit_code != 0, explain(result)
    assert result.exception is None or isinstance(result.exception, SystemExit), explain(result)
    line = _one_line(result.output)
    assert "salescycle db upgrade" in line
    assert "not migrated" in line
    # and it did not migrate (or half-create) anything on its own
    assert _revision(workspace_database) is None


def test_db_upgrade_then_current(workspace: Path, workspace_database: str) -> None:
    head = head_revision()

    before = invoke("db", "current", "--workspace", workspace)
    assert before.exit_code == 0, explain(before)
    assert "database: not migrated" in before.output
    assert re.search(rf"newest:\s+{head}\b", before.output)

    upgraded = invoke("db", "upgrade", "--workspace", workspace)
    assert upgraded.exit_code == 0, explain(upgraded)
    assert f"-> {head}" in upgraded.output

    current = invoke("db", "current", "--workspace", workspace)
    assert current.exit_code == 0, explain(current)
    assert re.search(rf"database:\s+{head}\b", current.output), current.output
    assert _revision(workspace_database) == head

    again = invoke("db", "upgrade", "--workspace", workspace)
    assert again.exit_code == 0, explain(again)
    assert f"already at revision {head}" in again.output

    # the schema is usable now: an empty pipeline, not an error
    report = invoke("pipeline", "--json", "--workspace", workspace)
    assert report.exit_code == 0, explain(report)
    assert json_output(report)["total"] == 0


@pytest.mark.parametrize(
    "command",
    NEEDS_SCHEMA,
    ids=["pipeline", "contacts-show", "contacts-import"],
)
def test_a_database_at_a_newer_revision_is_refused(
    workspace: Path, workspace_database: str, command: list[str]
) -> None:
    # Given a database migrated by a newer salescycle (a revision this one does not know)
    assert invoke("db", "upgrade", "--workspace", workspace).exit_code == 0
    _set_revision(workspace_database, "ffff")

    result = invoke(*_in(workspace, command), "--workspace", workspace)

    assert result.exit_code != 0, explain(result)
    line = _one_line(result.output)
    assert "newer" in line
    assert "ffff" in line
    assert _revision(workspace_database) == "ffff"


def test_db_upgrade_refuses_a_database_at_a_newer_revision(
    workspace: Path, workspace_database: str
) -> None:
    # Given a database at a revision from a newer salescycle
    assert invoke("db", "upgrade", "--workspace", workspace).exit_code == 0
    _set_revision(workspace_database, "ffff")

    # When the older salescycle is asked to upgrade it
    result = invoke("db", "upgrade", "--workspace", workspace)

    # Then it refuses in one readable line (not a traceback) and leaves the database alone
    assert result.exit_code != 0, explain(result)
    assert result.exception is None or isinstance(result.exception, SystemExit), explain(result)
    assert "newer" in _one_line(result.output), explain(result)
    assert _revision(workspace_database) == "ffff"


# --------------------------------------------------------------------------
# demo


# --------------------------------------------------------------------------
# pipeline and contacts show after an import


def _import_starter(workspace: Path) -> None:
    assert invoke("db", "upgrade", "--workspace", workspace).exit_code == 0
    export = workspace / "examples" / "crm-contacts.csv"
    result = invoke("contacts", "import", export, "--workspace", workspace)
    assert result.exit_code == 0, explain(result)


def test_pipeline_json_counts_match_the_starter_export(
    workspace: Path, workspace_database: str
) -> None:
    _import_starter(workspace)
    rows = read_csv(STARTER_CSV)
    per_stage = expected_stage_counts(STARTER_CSV, "Lifecycle Stage", workspace)
    per_owner = Counter(row["Contact owner email"].lower() for row in rows)

    result = invoke("pipeline", "--json", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    report = json_output(result)
    assert report["total"] == len(rows)
    assert [s["stage"] for s in report["stages"]] == pipeline_stage_ids(workspace)
    assert {s["stage"]: s["contacts"] for s in report["stages"] if s["contacts"]} == per_stage
    for stage in report["stages"]:
        assert sum(stage["by_owner"].values()) == stage["contacts"], stage
    assert {o["owner"]: o["contacts"] for o in report["owners"]} == dict(per_owner)
    owner_names = {row["Contact owner email"].lower(): row["Contact owner"] for row in rows}
    assert {o["owner"]: o["name"] for o in report["owners"]} == owner_names
    assert sum(s["contacts"] for s in report["stages"]) == report["total"]


def test_pipeline_table_shows_every_stage_and_the_total(
    workspace: Path, workspace_database: str
) -> None:
    _import_starter(workspace)

    result = invoke("pipeline", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    assert "pipeline: 2000 contacts" in result.output
    assert "Research" in result.output
    assert "Customer" in result.output


def test_contacts_show_json_has_contact_account_owner_and_crm_timeline(
    workspace: Path, workspace_database: str
) -> None:
    _import_starter(workspace)
    row = read_csv(STARTER_CSV)[0]

    # looked up case-insensitively, as people type addresses
    result = invoke("contacts", "show", row["Email"].upper(), "--json", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    view = json_output(result)
    assert view["contact"]["email"] == row["Email"].lower()
    assert view["contact"]["crm_id"] == row["Record ID"]
    assert view["contact"]["first_name"] == row["First Name"]
    assert view["contact"]["title"] == row["Job Title"]
    assert view["contact"]["stage"] == row["Lifecycle Stage"]
    assert view["account"]["name"] == row["Company name"]
    assert view["account"]["crm_id"] == row["Company ID"]
    assert view["account"]["domain"] == row["Company Domain Name"]
    assert view["owner"]["email"] == row["Contact owner email"]
    assert view["owner"]["name"] == row["Contact owner"]
    crm_entries = [e for e in view["timeline"] if e.get("cause") == "crm"]
    assert len(crm_entries) == 1, view["timeline"]
    assert crm_entries[0]["from"] is None
    assert crm_entries[0]["to"] == row["Lifecycle Stage"]


def test_contacts_show_prints_a_readable_card(workspace: Path, workspace_database: str) -> None:
    _import_starter(workspace)
    row = read_csv(STARTER_CSV)[0]

    result = invoke("contacts", "show", row["Email"], "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    assert f"{row['First Name']} {row['Last Name']}" in result.output
    assert f"stage: {row['Lifecycle Stage']}" in result.output
    assert row["Company name"] in result.output
    assert row["Contact owner email"] in result.output


def test_contacts_show_unknown_email_exits_1(workspace: Path, workspace_database: str) -> None:
    assert invoke("db", "upgrade", "--workspace", workspace).exit_code == 0

    result = invoke("contacts", "show", "nobody@example.com", "--workspace", workspace)

    assert result.exit_code == 1, explain(result)
    line = _one_line(result.output)
    assert "nobody@example.com" in line
    assert "no contact" in line
