"""Importing a CRM export: upserts, zero-write re-imports, rejects with their true line.

Database-touching tests run on SQLite and on PostgreSQL (the ``database_url`` fixture).
Small edge-case files are written as explicit bytes, so what is tested is what is on disk.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _support import (
    STARTER_CSV,
    count_rows,
    expected_stage_counts,
    explain,
    generate_export,
    invoke,
    json_output,
    read_csv,
    read_rejects,
)
from sqlalchemy import Engine, event, select

from engine.contacts import CRM_FILE, ContactImporter, CrmMapping, ImportSummary, load_mapping
from engine.errors import InputFileError
from engine.stages import Pipeline, load_pipeline
from engine.storage import create_database_engine, upgrade
from engine.storage.schema import accounts, contacts, owners, stage_history
from engine.workspace import Workspace, init_workspace

# --------------------------------------------------------------------------
# fixtures and helpers


@dataclass(frozen=True)
class Starter:
    """The starter workspace's pipeline and CRM mapping."""

    root: Path
    pipeline: Pipeline
    mapping: CrmMapping


@pytest.fixture(scope="module")
def starter(tmp_path_factory: pytest.TempPathFactory) -> Starter:
    root = tmp_path_factory.mktemp("starter") / "ws"
    init_workspace(root)
    workspace = Workspace(root)
    pipeline = load_pipeline(workspace)
    return Starter(root, pipeline, load_mapping(root / CRM_FILE, workspace, pipeline))


@pytest.fixture
def database(database_url: str) -> Iterator[Engine]:
    """A migrated, empty database (SQLite, then PostgreSQL)."""
    engine = create_database_engine(database_url)
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@dataclass
class Imported:
    summary: ImportSummary
    rejects_path: Path
    rejects: list[list[str]] = field(default_factory=list)  # header first; [] when none

    @property
    def rejected_lines(self) -> list[int]:
        return [int(row[0]) for row in self.rejects[1:]]

    def reason(self, line: int) -> str:
        [reason] = [row[1] for row in self.rejects[1:] if int(row[0]) == line]
        return reason


def run_import(
    engine: Engine,
    starter: Starter,
    path: Path,
    batch_size: int = 2000,
    **options: Any,
) -> Imported:
    rejects_path = path.with_name(path.name + ".rejects.csv")
    importer = ContactImporter(engine, starter.pipeline, starter.mapping, batch_size, **options)
    summary = importer.run(path, rejects_path)
    imported = Imported(summary, rejects_path)
    if rejects_path.exists():
        imported.rejects = read_rejects(rejects_path)
    # nothing is silently dropped: every data row is counted exactly once
    s = summary
    assert s.rows == s.created + s.updated + s.unchanged + s.rejected, s
    assert s.rejected == len(imported.rejects[1:])
    assert (s.rejects_file is not None) == bool(s.rejected)
    return imported


@pytest.fixture
def starter_export(tmp_path: Path) -> Path:
    """A copy of the starter export (its rejects file would otherwise land in the repository)."""
    return write(tmp_path, "crm-contacts.csv", STARTER_CSV.read_bytes())


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def stored(engine: Engine) -> dict[str, dict[str, Any]]:
    """Every stored contact by email."""
    with engine.connect() as connection:
        rows = connection.execute(select(contacts)).mappings()
        return {row["email"]: dict(row) for row in rows}


class WriteCounter:
    """Counts statements that changed rows, on one engine."""

    def __init__(self, engine: Engine) -> None:
        self.statements: list[str] = []
        event.listen(engine, "after_cursor_execute", self._seen)

    def _seen(
        self, _conn: Any, cursor: Any, statement: str, _params: Any, _ctx: Any, _many: bool
    ) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb not in ("INSERT", "UPDATE", "DELETE"):
            return
        # SQLite reports rowcount 0 for INSERT ... RETURNING until the rows are fetched,
        # so a statement that returns rows counts as a write whatever its rowcount says.
        if cursor.rowcount > 0 or "RETURNING" in statement.upper():
            self.statements.append(statement)


# --------------------------------------------------------------------------
# the starter export


def test_starter_import_creates_contacts_accounts_owners_and_history(
    database: Engine, starter: Starter, starter_export: Path
) -> None:
    rows = read_csv(STARTER_CSV)

    imported = run_import(database, starter, starter_export)

    s = imported.summary
    assert (s.rows, s.created, s.updated, s.unchanged, s.rejected) == (2000, 2000, 0, 0, 0)
    assert len(rows) == 2000
    assert s.accounts_created == len({r["Company ID"] for r in rows}) == 400
    assert s.owners_created == len({r["Contact owner email"] for r in rows}) == 5
    assert s.stage_changes == 2000
    assert s.ignored_columns == []
    assert not imported.rejects_path.exists()
    assert count_rows(database, contacts) == 2000
    assert count_rows(database, accounts) == 400
    assert count_rows(database, owners) == 5

    # every contact has one history row: (new) -> its stage, caused by the CRM
    with database.connect() as connection:
        history = (
            connection.execute(
                select(stage_history, contacts.c.stage).join(
                    contacts, contacts.c.id == stage_history.c.contact_id
                )
            )
            .mappings()
            .all()
        )
    assert len(history) == 2000
    assert len({h["contact_id"] for h in history}) == 2000
    assert {h["cause"] for h in history} == {"crm"}
    assert all(h["from_stage"] is None and h["to_stage"] == h["stage"] for h in history)


def test_starter_values_are_stored_typed(
    database: Engine, starter: Starter, starter_export: Path
) -> None:
    rows = read_csv(STARTER_CSV)
    run_import(database, starter, starter_export)
    by_email = stored(database)
    # a row whose custom fields are all filled in
    row = next(
        r
        for r in rows
        if all(r[c] for c in ("Lead Score", "Decision Maker", "Last Meeting Date", "LinkedIn URL"))
    )
    contact = by_email[row["Email"].lower()]

    assert contact["crm_id"] == row["Record ID"]
    assert contact["first_name"] == row["First Name"]
    assert contact["phone"] == row["Phone Number"]
    assert contact["timezone"] == row["Time Zone"]
    assert contact["stage"] == row["Lifecycle Stage"]
    assert contact["attributes"] == {
        "lead_score": int(row["Lead Score"]),
        "decision_maker": row["Decision Maker"] == "true",
        "last_meeting": row["Last Meeting Date"],
        "linkedin_url": row["LinkedIn URL"],
    }
    with database.connect() as connection:
        account = (
            connection.execute(select(accounts).where(accounts.c.id == contact["account_id"]))
            .mappings()
            .one()
        )
    assert account["crm_id"] == row["Company ID"]
    assert account["employees"] == int(row["Number of Employees"])
    assert account["country"] == row["Country/Region"]
    assert account["attributes"]["annual_revenue"] == pytest.approx(float(row["Annual Revenue"]))


def test_reimport_changes_nothing_and_writes_nothing(
    database: Engine, starter: Starter, starter_export: Path
) -> None:
    counter = WriteCounter(database)
    run_import(database, starter, starter_export)
    first_writes = len(counter.statements)
    assert first_writes > 0  # the counter does see writes

    # When the same file is imported again
    counter.statements.clear()
    again = run_import(database, starter, starter_export)

    # Then every contact is unchanged and not one row is inserted, updated or deleted
    s = again.summary
    assert (s.created, s.updated, s.unchanged, s.rejected) == (0, 0, 2000, 0)
    assert (s.accounts_created, s.accounts_updated, s.owners_created, s.owners_updated) == (
        0,
        0,
        0,
        0,
    )
    assert s.stage_changes == 0
    assert counter.statements == []
    assert count_rows(database, stage_history) == 2000


def test_one_changed_title_and_one_changed_stage_update_exactly_two_contacts(
    database: Engine, starter: Starter, starter_export: Path, tmp_path: Path
) -> None:
    first_at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    run_import(database, starter, starter_export, clock=lambda: first_at)
    header, *rows = list(csv.reader(io.StringIO(STARTER_CSV.read_text(encoding="utf-8"))))
    title_col, stage_col = header.index("Job Title"), header.index("Lifecycle Stage")
    retitled, moved = rows[10], rows[20]
    retitled[title_col] = "Chief Everything Officer"
    old_stage = moved[stage_col]
    ids = starter.pipeline.ids
    new_stage = ids[(ids.index(old_stage) + 2) % len(ids)]
    moved[stage_col] = new_stage
    copy = tmp_path / "changed.csv"
    with copy.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *rows])
    email_col = header.index("Email")

    # When the edited copy is imported a day later
    second_at = first_at + timedelta(days=1)
    again = run_import(database, starter, copy, clock=lambda: second_at)

    # Then exactly those two contacts are updated, and one stage change is recorded
    s = again.summary
    assert (s.created, s.updated, s.unchanged, s.rejected) == (0, 2, 1998, 0)
    assert s.stage_changes == 1
    by_email = stored(database)
    assert by_email[retitled[email_col]]["title"] == "Chief Everything Officer"
    assert by_email[retitled[email_col]]["stage_entered_at"] == first_at
    assert by_email[moved[email_col]]["stage"] == new_stage
    assert by_email[moved[email_col]]["stage_entered_at"] == second_at
    with database.connect() as connection:
        new_history = (
            connection.execute(select(stage_history).where(stage_history.c.changed_at == second_at))
            .mappings()
            .all()
        )
    assert len(new_history) == 1
    change = new_history[0]
    assert change["contact_id"] == by_email[moved[email_col]]["id"]
    assert (change["from_stage"], change["to_stage"], change["cause"]) == (
        old_stage,
        new_stage,
        "crm",
    )
    assert count_rows(database, stage_history) == 2001


# --------------------------------------------------------------------------
# file formats


def test_utf8_bom_is_not_part_of_the_first_header(
    database: Engine, starter: Starter, tmp_path: Path
) -> None:
    source = write(tmp_path, "bom.csv", b"\xef\xbb\xbfEmail,First Name\r\nann@example.com,Ann\r\n")

    imported = run_import(database, starter, source)

    assert imported.summary.created == 1
    assert imported.summary.ignored_columns == []
    assert stored(database)["ann@example.com"]["first_name"] == "Ann"


def test_semicolon_delimiter(database: Engine, starter: Starter, tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "semi.csv",
        b"Email;First Name;Job Title\nann@example.com;Ann;CTO, Nordics\n"
        b'bob@example.com;Bob;"Head of Sales; EMEA"\n',
    )

    imported = run_import(database, starter, source)

    assert imported.summary.created == 2
    by_email = stored(database)
    assert by_email["ann@example.com"]["title"] == "CTO, Nordics"
    assert by_email["bob@example.com"]["title"] == "Head of Sales; EMEA"
    assert by_email["bob@example.com"]["first_name"] == "Bob"


def test_tab_delimiter(database: Engine, starter: Starter, tmp_path: Path) -> None:
    source = write(
        tmp_path, "tabs.tsv", b"Email\tFirst Name\tJob Title\nann@example.com\tAnn\tCTO, Nordics\n"
    )

    imported = run_import(database, starter, source)

    assert imported.summary.created == 1
    contact = stored(database)["ann@example.com"]
    assert (contact["first_name"], contact["title"]) == ("Ann", "CTO, Nordics")


def test_quoted_newlines_keep_later_line_numbers_true(
    database: Engine, starter: Starter, tmp_path: Path
) -> None:
    source = write(
        tmp_path,
        "multiline.csv",
        b"Email,First Name,Job Title\r\n"  # line 1
        b'ann@example.com,Ann,"Head of\n'  # line 2
        b'Sales, Nordics"\r\n'  # line 3
        b"bob@example.com,Bob,CTO\r\n"  # line 4
        b'not-an-email,"Bad\n'  # line 5: a bad row that itself spans two lines
        b'Row",CTO\r\n'  # line 6
        b'cid@example.com,Cid,"a\n'  # line 7
        b"b\n"  # line 8
        b'c"\r\n'  # line 9
        b"dan@,Dan,CEO\r\n",  # line 10
    )

    imported = run_import(database, starter, source)

    assert imported.rejected_lines == [5, 10]
    assert imported.rejects[1][2:] == ["not-an-email", "Bad\nRow", "CTO"]
    assert imported.summary.created == 3
    by_email = stored(database)
    assert by_email["ann@example.com"]["title"] == "Head of\nSales, Nordics"
    assert by_email["cid@example.com"]["title"] == "a\nb\nc"


def test_non_ascii_names_survive_the_round_trip(
    database: Engine, starter: Starter, tmp_path: Path
) -> None:
    people = [
        ("soren@example.dk", "Søren", "Østergaard-Æbelø", "Ærø Fiskeri ApS"),
        ("jurgen@example.de", "Jürgen", "Müller", "Bäckerei Müller GmbH"),
        ("renee@example.fr", "Renée", "André", "Café Crème SARL"),
    ]
    text = "Email,First Name,Last Name,Company name\n"
    text += "".join(f"{e},{f},{last},{c}\n" for e, f, last, c in people)
    text += "not-an-email,Åsa,Nyström,Öberg AB\n"
    source = write(tmp_path, "names.csv", text.encode("utf-8"))

    imported = run_import(database, starter, source)

    assert imported.summary.created == 3
    by_email = stored(database)
    with database.connect() as connection:
        names = {row.id: row.name for row in connection.execute(select(accounts))}
    for email, first, last, company in people:
        assert (by_email[email]["first_name"], by_email[email]["last_name"]) == (first, last)
        assert names[by_email[email]["account_id"]] == company
    # a rejected row keeps its characters too
    assert imported.rejects[1][2:] == ["not-an-email", "Åsa", "Nyström", "Öberg AB"]


def test_jsonl_with_a_broken_line_and_a_non_object_line(
    database: Engine, starter: Starter, tmp_path: Path
) -> None:
    source = write(
        tmp_path,
        "export.jsonl",
        b'{"Email": "ann@example.com", "First Name": "Ann", "Lead Score": 42,'
        b' "Decision Maker": true}\n'  # line 1
        b'{"Email": "bob@example.com", "First Name": "Bob"\n'  # line 2: not valid JSON
        b'["not", "an", "object"]\n'  # line 3
        b"\n"  # line 4: blank
        b'{"Email": "cid@example.com", "First Name": "C\xc3\xadd", "Lead Score": null}\n',  # 5
    )

    imported = run_import(database, starter, source)

    assert imported.rejected_lines == [2, 3]
    assert imported.rejects[0] == ["line", "reason", "record"]
    assert "JSON" in imported.reason(2)
    assert "object" in imported.reason(3)
    assert imported.rejects[2][2] == '["not", "an", "object"]'
    assert imported.summary.created == 2
    by_email = stored(database)
    assert by_email["ann@example.com"]["attributes"] == {"lead_score": 42, "decision_maker": True}
    assert by_email["cid@example.com"]["first_name"] == "Cíd"
    assert "bob@example.com" not in by_email


# --------------------------------------------------------------------------
# rejected rows: each with its line and reason, the good rows still imported

HEADER = b"Email,First Name,Job Title,Lifecycle Stage\n"


def test_duplicate_email_in_one_file(database: Engine, starter: Starter, tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "dup.csv",
        HEADER
        + b"ann@example.com,Ann,CTO,research\n"
        + b"bob@example.com,Bob,CFO,research\n"
        + b"ANN@Example.com,Annie,CEO,pitching\n",
    )

    imported = run_import(database, starter, source)

    assert imported.rejected_lines == [4]
    assert "duplicate email" in imported.reason(4)
    assert "line 2" in imported.reason(4)
    assert imported.summary.created == 2
    ann = stored(database)["ann@example.com"]
    assert (ann["first_name"], ann["stage"]) == ("Ann", "research")  # the first row wins


def test_duplicate_email_far_apart_across_batches(
    database: Engine, starter: Starter, tmp_path: Path
) -> None:
    lines = [f"person{i}@example.com,P{i},CTO,research\n" for i in range(1, 8)]
    lines.append("person2@example.com,Again,CTO,research\n")  # line 9 repeats line 3
    source = write(tmp_path, "dup-far.csv", HEADER + "".join(lines).encode())

    imported = run_import(database, starter, source, batch_size=3)

    assert imported.rejected_lines == [9]
    assert "line 3" in imported.reason(9)
    assert imported.summary.created == 7


def test_duplicate_crm_id_in_one_file(database: Engine, starter: Starter, tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "dup-id.csv",
        b"Record ID,Email\n1001,ann@example.com\n1002,bob@example.com\n1001,cid@example.com\n",
    )

    imported = run_import(database, starter, source)

    assert imported.rejected_lines == [4]
    assert "duplicate CRM id" in imported.reason(4)
    assert "line 2" in imported.reason(4)
    assert set(stored(database)) == {"ann@example.com", "bob@example.com"}


@pytest.mark.parametrize(
    "address", ["not-an-email", "ann@", "ann@@example.com", "ann@exa mple.com"]
)
def test_invalid_email(database: Engine, starter: Starter, tmp_path: Path, address: str) -> None:
    source = write(
        tmp_path,
        "bad-email.csv",
        HEADER + f"{address},Ann,CTO,research\n".encode() + b"bob@example.com,Bob,CFO,research\n",
    )

    imported = run_import(database, starter, source)

    assert imported.rejected_lines == [2]
    assert "invalid email" in imported.reason(2)
    assert set(stored(database)) == {"bob@example.com"}


def test_unknown_stage_lists_the_valid_ones(
    database: Engine, starter: Starter, tmp_path: Path
) -> None:
    source = write(
        tmp_path,
        "stage.csv",
        HEADER + b"ann@example.com,Ann,CTO,Closed Wonn\n" + b"bob@example.com,Bob,CFO,Closed Won\n",
    )

    imported = run_import(database, starter, source)

    assert imported.rejected_lines == [2]
    reason = imported.reason(2)
    assert "unknown stage 'Closed Wonn'" in reason
    assert "valid:" in reason
    for stage_id in starter.pipeline.ids:
        assert stage_id in reason
    assert stored(database)["bob@example.com"]["stage"] == "customer"


def test_wrong_type_for_an_int_attribute(
    database: Engine, starter: Starter, tmp_path: Path
) -> None:
    source = write(
        tmp_path,
        "score.csv",
        b"Email,Lead Score\nann@example.com,lots\nbob@example.com,12\ncid@example.com,\n",
    )

    imported = run_import(database, starter, source)

    assert imported.rejected_lines == [2]
    reason = imported.reason(2)
    assert "lead_score" in reason
    assert "'lots'" in reason
    assert "int" in reason
    by_email = stored(database)
    assert by_email["bob@example.com"]["attributes"] == {"lead_score": 12}
    assert by_email["cid@example.com"]["attributes"] == {}


def test_bad_timezone(database: Engine, starter: Starter, tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "tz.csv",
        b"Email,Time Zone\nann@example.com,Mars/Olympus_Mons\nbob@example.com,Europe/Oslo\n",
    )

    imported = run_import(database, starter, source)

    assert imported.rejected_lines == [2]
    assert "unknown timezone 'Mars/Olympus_Mons'" in imported.reason(2)
    assert stored(database)["bob@example.com"]["timezone"] == "Europe/Oslo"


def test_unknown_country(database: Engine, starter: Starter, tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "country.csv",
        b"Email,Company name,Country/Region\n"
        b"ann@example.com,Acme,Atlantis\n"
        b"bob@example.com,Bcme,Denmark\n"
        b"cid@example.com,Ccme,se\n",
    )

    imported = run_import(database, starter, source)

    assert imported.rejected_lines == [2]
    assert "unknown country 'Atlantis'" in imported.reason(2)
    with database.connect() as connection:
        countries = {row.name: row.country for row in connection.execute(select(accounts))}
    assert countries == {"Bcme": "DK", "Ccme": "SE"}


def test_a_row_with_too_many_fields(database: Engine, starter: Starter, tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "wide.csv",
        HEADER
        + b"ann@example.com,Ann,CTO,research,surprise\n"
        + b"bob@example.com,Bob,CFO,research\n",
    )

    imported = run_import(database, starter, source)

    assert imported.rejected_lines == [2]
    assert "5 fields" in imported.reason(2)
    assert imported.rejects[1][2:] == ["ann@example.com", "Ann", "CTO", "research", "surprise"]
    assert set(stored(database)) == {"bob@example.com"}


def test_a_file_without_an_email_column_is_refused_naming_the_columns_looked_for(
    database: Engine, starter: Starter, tmp_path: Path
) -> None:
    source = write(tmp_path, "no-email.csv", b"First Name,Job Title\nAnn,CTO\nBob,CFO\n")

    with pytest.raises(InputFileError) as raised:
        run_import(database, starter, source)

    message = str(raised.value)
    assert "email" in message
    assert "Email" in message  # one of the headers contact.email is looked for under
    assert stored(database) == {}


def test_rejects_file_has_line_reason_then_the_original_header(
    database: Engine, starter: Starter, tmp_path: Path
) -> None:
    source = write(
        tmp_path,
        "mixed.csv",
        b"Email,First Name,Favourite Colour,Lifecycle Stage\n"
        b"ann@example.com,Ann,green,research\n"
        b'nope,"Bo, Jr.",blue,research\n'
        b"cid@example.com,Cid,red,Closed Wonn\n"
        b"dan@example.com,Dan,grey,pitching\n",
    )

    imported = run_import(database, starter, source)

    # the good rows are imported in the same run as the bad ones are kept aside
    assert imported.rejects == [
        ["line", "reason", "Email", "First Name", "Favourite Colour", "Lifecycle Stage"],
        ["3", imported.reason(3), "nope", "Bo, Jr.", "blue", "research"],
        ["4", imported.reason(4), "cid@example.com", "Cid", "red", "Closed Wonn"],
    ]
    assert set(stored(database)) == {"ann@example.com", "dan@example.com"}
    assert imported.summary.ignored_columns == ["Favourite Colour"]


def test_a_stale_rejects_file_is_removed_by_a_clean_import(
    database: Engine, starter: Starter, tmp_path: Path
) -> None:
    bad = write(tmp_path, "crm.csv", HEADER + b"nope,Ann,CTO,research\n")
    assert run_import(database, starter, bad).rejects_path.exists()

    write(tmp_path, "crm.csv", HEADER + b"ann@example.com,Ann,CTO,research\n")
    clean = run_import(database, starter, bad)

    assert not clean.rejects_path.exists()


# --------------------------------------------------------------------------
# matching stored contacts


def test_upsert_by_email_when_the_file_has_no_crm_id(
    database: Engine, starter: Starter, tmp_path: Path
) -> None:
    first = write(
        tmp_path,
        "a.csv",
        b"Email,First Name,Job Title\nann@example.com,Ann,CTO\nbob@example.com,Bob,CFO\n",
    )
    second = write(
        tmp_path, "b.csv", b"Email,Job Title\nANN@example.com,CEO\nbob@example.com,COO\n"
    )
    run_import(database, starter, first)

    again = run_import(database, starter, second)

    assert (again.summary.created, again.summary.updated) == (0, 2)
    by_email = stored(database)
    assert set(by_email) == {"ann@example.com", "bob@example.com"}
    assert by_email["ann@example.com"]["title"] == "CEO"
    assert by_email["bob@example.com"]["title"] == "COO"
    assert by_email["ann@example.com"]["first_name"] == "Ann"  # a column not in the file stays
    assert by_email["ann@example.com"]["crm_id"] is None


def test_an_email_that_belongs_to_another_crm_id_is_rejected(
    database: Engine, starter: Starter, tmp_path: Path
) -> None:
    run_import(
        database,
        starter,
        write(tmp_path, "a.csv", b"Record ID,Email\n100,ann@example.com\n200,bob@example.com\n"),
    )
    clash = write(
        tmp_path,
        "b.csv",
        b"Record ID,Email,Job Title\n"
        b"300,ann@example.com,CEO\n"  # a new CRM id with ann's address
        b"100,bob@example.com,CTO\n",  # ann's CRM id with bob's address
    )

    imported = run_import(database, starter, clash)

    assert imported.rejected_lines == [2, 3]
    assert "ann@example.com" in imported.reason(2)
    assert "100" in imported.reason(2)
    assert "bob@example.com" in imported.reason(3)
    assert "200" in imported.reason(3)
    by_email = stored(database)
    assert {e: (c["crm_id"], c["title"]) for e, c in by_email.items()} == {
        "ann@example.com": ("100", None),
        "bob@example.com": ("200", None),
    }


def test_a_crm_id_match_updates_the_email(
    database: Engine, starter: Starter, tmp_path: Path
) -> None:
    run_import(
        database, starter, write(tmp_path, "a.csv", b"Record ID,Email\n100,ann@old.example\n")
    )

    again = run_import(
        database, starter, write(tmp_path, "b.csv", b"Record ID,Email\n100,ann@new.example\n")
    )

    assert (again.summary.created, again.summary.updated) == (0, 1)
    assert set(stored(database)) == {"ann@new.example"}


# --------------------------------------------------------------------------
# other CRMs' exports


@pytest.mark.parametrize(
    ("style", "email_column", "stage_column", "connecting_name"),
    [
        ("pipedrive", "Person - Email", "Deal - Stage", "Contact Made"),
        ("nutshell", "Email", "Pipeline Stage", "Connected"),
    ],
)
def test_other_crm_exports_map_onto_the_workspace_stages(
    database: Engine,
    starter: Starter,
    tmp_path: Path,
    style: str,
    email_column: str,
    stage_column: str,
    connecting_name: str,
) -> None:
    source = generate_export(tmp_path / f"{style}.csv", contacts=200, style=style)
    rows = read_csv(source)
    expected = expected_stage_counts(source, stage_column, starter.root)

    imported = run_import(database, starter, source)

    assert (imported.summary.created, imported.summary.rejected) == (200, 0)
    by_email = stored(database)
    assert Counter(c["stage"] for c in by_email.values()) == expected
    made_contact = [r[email_column].lower() for r in rows if r[stage_column] == connecting_name]
    assert made_contact, f"the {style} sample has no '{connecting_name}' contacts"
    assert {by_email[email]["stage"] for email in made_contact} == {"connecting"}
    assert imported.summary.ignored_columns == []


# --------------------------------------------------------------------------
# unreadable files


def test_an_empty_file_is_an_error_and_imports_nothing(
    database: Engine, starter: Starter, tmp_path: Path
) -> None:
    source = write(tmp_path, "empty.csv", b"")

    with pytest.raises(InputFileError, match="empty"):
        run_import(database, starter, source)

    assert stored(database) == {}


def test_header_only_imports_zero_rows(database: Engine, starter: Starter, tmp_path: Path) -> None:
    imported = run_import(database, starter, write(tmp_path, "header.csv", HEADER))

    assert imported.summary.rows == 0
    assert imported.rejects == []


# --------------------------------------------------------------------------
# the command line: contacts import


def test_cli_import_exit_code_and_json_summary(
    workspace: Path, workspace_database: str, tmp_path: Path
) -> None:
    assert invoke("db", "upgrade", "--workspace", workspace).exit_code == 0
    good = write(tmp_path, "good.csv", HEADER + b"ann@example.com,Ann,CTO,research\n")
    mixed = write(
        tmp_path,
        "mixed.csv",
        HEADER
        + b"ann@example.com,Ann,CEO,research\n"
        + b"nope,Bo,CTO,research\n"
        + b"cid@example.com,Cid,CTO,research\n",
    )

    clean = invoke("contacts", "import", good, "--json", "--workspace", workspace)

    assert clean.exit_code == 0, explain(clean)
    summary = json_output(clean)
    assert {k: summary[k] for k in ("created", "updated", "unchanged", "rejected")} == {
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
    }
    assert summary["rejects_file"] is None

    # When some rows are rejected, Then the import still happens but the exit code says so
    partly = invoke("contacts", "import", mixed, "--json", "--workspace", workspace)

    assert partly.exit_code == 1, explain(partly)
    summary = json_output(partly)
    assert {k: summary[k] for k in ("created", "updated", "unchanged", "rejected")} == {
        "created": 1,
        "updated": 1,
        "unchanged": 0,
        "rejected": 1,
    }
    rejects = Path(summary["rejects_file"])
    assert rejects == tmp_path / "mixed.csv.rejects.csv"
    assert [row[0] for row in read_rejects(rejects)[1:]] == ["3"]


def test_cli_import_prints_a_human_summary(
    workspace: Path, workspace_database: str, tmp_path: Path
) -> None:
    assert invoke("db", "upgrade", "--workspace", workspace).exit_code == 0
    source = write(
        tmp_path, "crm.csv", HEADER + b"ann@example.com,Ann,CTO,research\nnope,B,C,research\n"
    )
    rejects = tmp_path / "kept-aside.csv"

    result = invoke("contacts", "import", source, "--rejects", rejects, "--workspace", workspace)

    assert result.exit_code == 1, explain(result)
    assert "1 created, 0 updated, 0 unchanged, 1 rejected" in result.output
    assert str(rejects) in result.output
    assert rejects.is_file()


def test_cli_import_of_an_empty_file_fails_clearly(
    workspace: Path, workspace_database: str, tmp_path: Path
) -> None:
    assert invoke("db", "upgrade", "--workspace", workspace).exit_code == 0
    source = write(tmp_path, "empty.csv", b"")

    result = invoke("contacts", "import", source, "--workspace", workspace)

    assert result.exit_code != 0, explain(result)
    assert "empty" in result.output
    assert "Traceback" not in result.output
    engine = create_database_engine(workspace_database)
    try:
        assert count_rows(engine, contacts) == 0
    finally:
        engine.dispose()


def test_cli_import_of_a_header_only_file_succeeds(
    workspace: Path, workspace_database: str, tmp_path: Path
) -> None:
    assert invoke("db", "upgrade", "--workspace", workspace).exit_code == 0
    source = write(tmp_path, "header.csv", HEADER)

    result = invoke("contacts", "import", source, "--json", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    summary = json_output(result)
    assert (summary["rows"], summary["created"], summary["rejected"]) == (0, 0, 0)


def test_cli_import_rejects_a_latin1_row_naming_utf8(
    workspace: Path, workspace_database: str, tmp_path: Path
) -> None:
    assert invoke("db", "upgrade", "--workspace", workspace).exit_code == 0
    source = write(
        tmp_path, "latin1.csv", HEADER + "søren@example.dk,Søren,CTO,research\n".encode("latin-1")
    )

    result = invoke("contacts", "import", source, "--workspace", workspace)

    # Then the row is rejected with a reason naming UTF-8, its bytes kept as they came
    assert result.exit_code == 1, explain(result)
    assert "Traceback" not in result.output
    rejects = source.with_name(source.name + ".rejects.csv")
    rejected = rejects.read_bytes().decode("utf-8", errors="surrogateescape").splitlines()
    assert len(rejected) == 2, rejected
    assert rejected[1].startswith("2,not valid UTF-8; export the file as UTF-8,")
    assert "søren@example.dk".encode("latin-1") in rejects.read_bytes()


def test_cli_import_rejects_only_the_row_that_is_not_utf8(
    workspace: Path, workspace_database: str, tmp_path: Path
) -> None:
    # Given the starter export whose 1500th data row was saved as Latin-1
    assert invoke("db", "upgrade", "--workspace", workspace).exit_code == 0
    header, *lines = STARTER_CSV.read_text(encoding="utf-8").splitlines(keepends=True)
    before, bad, after = lines[:1499], lines[1499], lines[1500:1510]
    bad_cells = bad.split(",")
    bad_cells[2] = "Søren"
    source = tmp_path / "latin1-inside.csv"
    source.write_bytes(
        (header + "".join(before)).encode("utf-8")
        + ",".join(bad_cells).encode("latin-1")
        + "".join(after).encode("utf-8")
    )

    result = invoke("contacts", "import", source, "--workspace", workspace)

    # Then only the bad row is rejected, naming UTF-8, and every good row is kept
    assert result.exit_code == 1, explain(result)
    rejects = source.with_name(source.name + ".rejects.csv")
    rejected = rejects.read_bytes().decode("utf-8", errors="surrogateescape").splitlines()
    assert [r.split(",")[:2] for r in rejected[1:]] == [
        ["1501", "not valid UTF-8; export the file as UTF-8"]
    ]
    engine = create_database_engine(workspace_database)
    try:
        kept = set(stored(engine))
    finally:
        engine.dispose()
    expected = {line.split(",")[1].lower() for line in before + after}
    assert len(expected) == 1509
    lost = expected - kept
    assert not lost, f"{len(lost)} of the 1509 good rows were not kept"
    assert bad.split(",")[1].lower() not in kept


# --------------------------------------------------------------------------
# a file large enough to be read in a child process (over 8 MiB)


@pytest.mark.slow
def test_a_large_file_keeps_true_lines_and_duplicates_across_the_whole_file(
    database: Engine, starter: Starter, tmp_path: Path
) -> None:
    source = generate_export(tmp_path / "large.csv", contacts=30_000)
    header, *lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    email_of = {
        n: line.split(",")[1] for n, line in enumerate(lines, start=2)
    }  # file line -> email

    def with_email(number: int, email: str) -> None:
        cells = lines[number - 2].split(",")
        cells[1] = email
        lines[number - 2] = ",".join(cells)

    with_email(5, "not-an-email")
    with_email(12_000, "also@not@valid")
    with_email(20_000, email_of[3].upper())  # repeats line 3, far away in another batch
    with_email(29_990, "broken@")
    source.write_text(header + "".join(lines), encoding="utf-8")
    assert source.stat().st_size > 8 * 1024 * 1024

    imported = run_import(database, starter, source)

    assert imported.rejected_lines == [5, 12_000, 20_000, 29_990]
    assert "line 3" in imported.reason(20_000)
    assert imported.summary.created == 30_000 - 4
    assert count_rows(database, contacts) == 30_000 - 4

    again = run_import(database, starter, source)

    assert (again.summary.created, again.summary.updated) == (0, 0)
    assert (again.summary.unchanged, again.summary.rejected) == (30_000 - 4, 4)
