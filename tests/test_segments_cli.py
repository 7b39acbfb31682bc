"""``salescycle segments list|preview|explain`` after importing the starter export.

Every count is computed again here from the CSV itself, independently of the
compiler, for the segments the CSV decides alone; the segments that need email
events have no members yet, since a fresh import has no events.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from _support import STARTER_CSV, crm_stage_names, explain, invoke, json_output, read_csv
from _support import STARTER_SEGMENTS as STARTER

from engine.storage import create_database_engine

STARTER_SEGMENTS = set(STARTER)
# They need events (opens, clicks) that a fresh import does not have.
NEED_EVENTS = {"booked-a-call", "engaged-prospects"}
# Contacts entered their stage at the import, moments ago.
NEED_TIME_IN_STAGE = {"stalled-deals", "referral-candidates"}
DECISION_TITLES = ("cto", "ceo", "cfo", "head of", "vp", "director")


def _ascii_lower(text: str) -> str:
    return text.translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"))


def _employees(row: dict[str, str]) -> int | None:
    cell = row["Number of Employees"].strip()
    return int(cell) if cell else None


def _expected_members(workspace: Path) -> dict[str, set[str]]:
    """The emails of each CSV-decidable starter segment, read from the export directly."""
    rows = read_csv(STARTER_CSV)
    stages = crm_stage_names(workspace)

    def email(row: dict[str, str]) -> str:
        return row["Email"].strip().lower()

    def decision_maker(row: dict[str, str]) -> bool:
        title = _ascii_lower(row["Job Title"])
        flagged = row["Decision Maker"].strip().lower() == "true"
        return flagged or any(word in title for word in DECISION_TITLES)

    def icp(row: dict[str, str]) -> bool:
        title = _ascii_lower(row["Job Title"])
        flagged = row["Decision Maker"].strip().lower() == "true"
        return (
            row["Country/Region"].strip() in ("DK", "SE", "NO", "FI")
            and 100 <= (_employees(row) or 0) <= 500
            and (flagged or any(word in title for word in ("cto", "head of", "vp")))
        )

    def stage(row: dict[str, str]) -> str:
        return stages[row["Lifecycle Stage"].strip().casefold()]

    return {
        # no events yet: nobody is on holiday, nobody bounced or unsubscribed
        "icp-nordic-midmarket": {email(r) for r in rows if icp(r)},
        "ready-for-outreach": {
            email(r)
            for r in rows
            if icp(r) and decision_maker(r) and stage(r) in ("research", "prospecting")
        },
        "enterprise-accounts": {email(r) for r in rows if (_employees(r) or 0) >= 1000},
        "decision-makers": {email(r) for r in rows if decision_maker(r)},
        "danish-speakers": {
            email(r)
            for r in rows
            if r["Preferred language"].strip().lower().startswith("da")
            or r["Country/Region"].strip().upper() == "DK"
        },
        # every customer became one at the import, less than 30 days ago
        "new-customers": {email(r) for r in rows if stage(r) == "customer"},
        # nobody has an out-of-office reply yet
        "not-on-holiday": {email(r) for r in rows},
    }


def _import_starter(workspace: Path) -> None:
    upgrade = invoke("db", "upgrade", "--workspace", workspace)
    assert upgrade.exit_code == 0, explain(upgrade)
    export = workspace / "examples" / "crm-contacts.csv"
    result = invoke("contacts", "import", export, "--workspace", workspace)
    assert result.exit_code == 0, explain(result)


def _one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{output}"
    return lines[0]


def _run_raw_sql(database_url: str, sql: str) -> list[Any]:
    """Run SQL as pasted into sqlite3 or psql: through the driver, no parameter parsing."""
    engine = create_database_engine(database_url)
    try:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(sql)
            return [row[0] for row in cursor.fetchall()]
        finally:
            raw.close()
    finally:
        engine.dispose()


# --------------------------------------------------------------------------
# list


def test_list_counts_every_starter_segment(workspace: Path, workspace_database: str) -> None:
    _import_starter(workspace)
    expected = _expected_members(workspace)
    assert len(expected["enterprise-accounts"]) > 100  # the export does exercise each one
    assert 0 < len(expected["decision-makers"]) < 2000

    result = invoke("segments", "list", "--json", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    report = json_output(result)
    counts = {s["name"]: s["members"] for s in report["segments"]}
    assert set(counts) == STARTER_SEGMENTS
    for name, emails in expected.items():
        assert counts[name] == len(emails), name
    for name in NEED_EVENTS | NEED_TIME_IN_STAGE:
        assert counts[name] == 0, name
    for segment in report["segments"]:
        assert segment["description"], segment
        assert segment["path"] == f"segments/{segment['name']}.yaml"


def test_list_prints_a_table_with_every_segment(workspace: Path) -> None:
    _import_starter(workspace)
    expected = _expected_members(workspace)

    result = invoke("segments", "list", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    assert "segments: 11" in result.output
    for name in STARTER_SEGMENTS:
        assert name in result.output
    row = next(line for line in result.output.splitlines() if "enterprise-accounts" in line)
    assert re.search(rf"\b{len(expected['enterprise-accounts'])}\b", row), row


# --------------------------------------------------------------------------
# preview


def test_preview_json_shows_the_first_members_with_their_details(
    workspace: Path, workspace_database: str
) -> None:
    _import_starter(workspace)
    by_email = {row["Email"].strip().lower(): row for row in read_csv(STARTER_CSV)}
    stages = crm_stage_names(workspace)
    enterprise = _expected_members(workspace)["enterprise-accounts"]

    result = invoke(
        "segments", "preview", "enterprise-accounts", "--limit", "5", "--json",
        "--workspace", workspace,
    )  # fmt: skip

    assert result.exit_code == 0, explain(result)
    report = json_output(result)
    assert report["segment"] == "enterprise-accounts"
    assert report["members"] == len(enterprise)
    rows = report["contacts"]
    assert len(rows) == 5
    assert len({row["email"] for row in rows}) == 5
    for row in rows:
        assert {"email", "name", "account", "stage", "owner"} <= set(row)
        source = by_email[row["email"]]
        assert (_employees(source) or 0) >= 1000, row
        assert row["name"] == f"{source['First Name']} {source['Last Name']}"
        assert row["account"] == source["Company name"]
        assert row["stage"] == stages[source["Lifecycle Stage"].strip().casefold()]
        assert row["owner"] == source["Contact owner email"].lower()


def test_preview_table_shows_the_members(workspace: Path) -> None:
    _import_starter(workspace)

    result = invoke(
        "segments", "preview", "danish-speakers", "--limit", "3", "--workspace", workspace
    )

    assert result.exit_code == 0, explain(result)
    total = len(_expected_members(workspace)["danish-speakers"])
    assert f"danish-speakers: 3 of {total} members" in result.output
    for column in ("email", "name", "account", "stage", "owner"):
        assert column in result.output


def test_preview_of_an_empty_segment_is_empty(workspace: Path) -> None:
    _import_starter(workspace)

    result = invoke("segments", "preview", "booked-a-call", "--json", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    assert json_output(result) == {"segment": "booked-a-call", "members": 0, "contacts": []}


# --------------------------------------------------------------------------
# explain


def test_explain_prints_the_sql_and_the_plan(workspace: Path, workspace_database: str) -> None:
    _import_starter(workspace)

    result = invoke("segments", "explain", "ready-for-outreach", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    sql, _, plan = result.output.partition("-- query plan")
    assert "SELECT contacts.id" in sql
    assert "FROM contacts" in sql
    assert "'bounced'" in sql  # values are written in, not left as parameters
    assert ":param" not in sql and "%(" not in sql and "?" not in sql
    command = "EXPLAIN QUERY PLAN" if workspace_database.startswith("sqlite") else "EXPLAIN"
    assert plan.splitlines()[0] == f" ({command})"
    steps = [line for line in plan.splitlines()[1:] if line.strip()]
    assert steps, result.output
    assert any("contacts" in step for step in steps), plan


@pytest.mark.parametrize(
    "name", ["decision-makers", "new-customers", "danish-speakers", "enterprise-accounts"]
)
def test_the_explained_sql_selects_the_members_when_run_as_printed(
    workspace: Path, workspace_database: str, name: str
) -> None:
    # Patterns (LIKE '%...%') and instants (time_in_stage) are written in as the
    # database reads them: the SQL shown finds the same contacts as the command
    _import_starter(workspace)
    listed = json_output(invoke("segments", "list", "--json", "--workspace", workspace))
    members = {s["name"]: s["members"] for s in listed["segments"]}[name]

    result = invoke("segments", "explain", name, "--json", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    report = json_output(result)
    assert report["dialect"] == workspace_database.split(":")[0].split("+")[0]
    assert report["plan"]
    ids = _run_raw_sql(workspace_database, report["sql"])
    assert len(ids) == members
    assert ids == sorted(ids)


# --------------------------------------------------------------------------
# mistakes


@pytest.mark.parametrize("command", ["preview", "explain"])
def test_an_unknown_segment_is_one_line_with_a_suggestion(workspace: Path, command: str) -> None:
    _import_starter(workspace)

    result = invoke("segments", command, "enterprise-acounts", "--workspace", workspace)

    assert result.exit_code == 1, explain(result)
    line = _one_line(result.output)
    assert "unknown segment 'enterprise-acounts'" in line
    assert "did you mean 'enterprise-accounts'?" in line
    assert "valid: booked-a-call, danish-speakers, decision-makers" in line


@pytest.mark.parametrize(
    "command",
    [["list"], ["preview", "decision-makers"], ["explain", "decision-makers"]],
    ids=["list", "preview", "explain"],
)
def test_segments_commands_refuse_an_unmigrated_database(
    workspace: Path, workspace_database: str, command: list[str]
) -> None:
    result = invoke("segments", *command, "--workspace", workspace)

    assert result.exit_code != 0, explain(result)
    assert result.exception is None or isinstance(result.exception, SystemExit), explain(result)
    line = _one_line(result.output)
    assert "not migrated" in line
    assert "salescycle db upgrade" in line


def test_segments_commands_refuse_a_workspace_with_a_broken_segment(workspace: Path) -> None:
    _import_starter(workspace)
    broken = workspace / "segments" / "broken.yaml"
    broken.write_text("name: broken\nwhere:\n  stage: qualifcation\n", encoding="utf-8")

    result = invoke("segments", "list", "--workspace", workspace)

    assert result.exit_code == 1, explain(result)
    line = _one_line(result.output)
    assert line.startswith("segments/broken.yaml:3: stage: unknown stage 'qualifcation'"), line
    assert "did you mean 'qualification'" in line
