"""Plain helpers shared by the foundation tests (no fixtures here; see ``conftest.py``)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from sqlalchemy import Engine, func, select
from sqlalchemy.sql.schema import Table
from typer.testing import CliRunner, Result

from engine.cli import app
from engine.cli.contacts_commands import run_import
from engine.delivery import Address, OutboundMessage
from engine.storage import upgrade
from engine.wiring import Runtime

REPO_ROOT = Path(__file__).resolve().parents[1]
PROBLEM = re.compile(
    r"^((?:config|segments)/[a-z0-9_/-]+\.yaml|templates/[^:]+\.(?:md|html)):(\d+): (.+)$"
)
STARTER_SEGMENTS = (
    "booked-a-call",
    "danish-speakers",
    "decision-makers",
    "engaged-prospects",
    "enterprise-accounts",
    "icp-nordic-midmarket",
    "new-customers",
    "not-on-holiday",
    "ready-for-outreach",
    "referral-candidates",
    "stalled-deals",
)
STARTER_CSV = REPO_ROOT / "examples" / "crm-contacts.csv"
GENERATOR = REPO_ROOT / "examples" / "generate_crm.py"


SINK_API_KEY = "SG.sink-tests.0123456789"  # the key the shared ``sink`` fixture accepts


def invoke(*args: str | Path, env: Mapping[str, str | None] | None = None) -> Result:
    """Run ``salescycle ARGS`` in process, as a user would type it."""
    return CliRunner().invoke(app, [str(arg) for arg in args], env=env)


def explain(result: Result) -> str:
    """Everything needed to understand a failed CLI assertion."""
    return (
        f"exit {result.exit_code}\n--- output ---\n{result.output}\nexception: {result.exception!r}"
    )


def json_output(result: Result) -> Any:
    """The JSON a ``--json`` command printed on stdout (stdout must hold nothing else)."""
    return json.loads(result.stdout)


def replace_once(path: Path, old: str, new: str) -> None:
    """Edit a workspace file: ``old`` must occur exactly once."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def line_number(path: Path, needle: str) -> int:
    """The 1-based number of the one line of ``path`` that contains ``needle``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = [number for number, line in enumerate(lines, start=1) if needle in line]
    assert len(found) == 1, f"{needle!r} is on lines {found} of {path}"
    return found[0]


def read_csv(path: Path) -> list[dict[str, str]]:
    """Every row of a UTF-8 CSV file as a dict."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def read_rejects(path: Path) -> list[list[str]]:
    """The rejects file as rows of cells, header first."""
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def crm_stage_names(workspace_root: Path) -> dict[str, str]:
    """CRM stage name (case-folded) -> stage id, as ``config/crm.yaml`` and stages.yaml say.

    Computed from the files themselves, independently of the engine's mapping code.
    """
    yaml = YAML(typ="safe", pure=True)
    stages = yaml.load((workspace_root / "config" / "stages.yaml").read_text(encoding="utf-8"))
    crm = yaml.load((workspace_root / "config" / "crm.yaml").read_text(encoding="utf-8"))
    names = {str(stage["id"]).casefold(): str(stage["id"]) for stage in stages["stages"]}
    names.update({str(name).casefold(): str(stage) for name, stage in crm["stages"].items()})
    return names


def pipeline_stage_ids(workspace_root: Path) -> list[str]:
    """The stage ids of ``config/stages.yaml`` in pipeline order."""
    yaml = YAML(typ="safe", pure=True)
    stages = yaml.load((workspace_root / "config" / "stages.yaml").read_text(encoding="utf-8"))
    return [str(stage["id"]) for stage in stages["stages"]]


def expected_stage_counts(export: Path, column: str, workspace_root: Path) -> Counter[str]:
    """Contacts per workspace stage that importing ``export`` should give."""
    names = crm_stage_names(workspace_root)
    return Counter(names[row[column].strip().casefold()] for row in read_csv(export))


def generate_export(out: Path, *, contacts: int, style: str = "hubspot") -> Path:
    """Write a CRM export with the project's deterministic generator."""
    command = [sys.executable, str(GENERATOR), "--style", style, "--contacts", str(contacts)]
    subprocess.run([*command, "--out", str(out)], check=True, timeout=120)
    return out


def count_rows(engine: Engine, table: Table) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def problems_in(output: str) -> list[tuple[str, int, str]]:
    """The ``path:line: message`` lines of ``salescycle check`` output, parsed."""
    return [
        (match[1], int(match[2]), match[3])
        for line in output.splitlines()
        if (match := PROBLEM.match(line))
    ]


def assert_one_problem(result: Result, shown: str, line: int, says: Sequence[str]) -> None:
    """``check`` failed with exactly one problem: in ``shown`` at ``line``, saying ``says``."""
    assert result.exit_code == 1, explain(result)
    problems = problems_in(result.output)
    assert len(problems) == 1, result.output
    where, reported, message = problems[0]
    assert where == shown
    assert reported == line, f"reported line {reported}, mistake is on {line}: {message}"
    for fragment in says:
        assert fragment in message, message


def outbound_message(message_id: str = "q7rbm2k4ztx6wd3c", **changes: Any) -> OutboundMessage:
    """A message built directly (no template, no compose); ``changes`` replace fields."""
    fields: dict[str, Any] = {
        "message_id": message_id,
        "rfc_message_id": f"<{message_id}@mail.example.com>",
        "date": dt.datetime(2026, 3, 2, 8, 30, tzinfo=dt.UTC),
        "sender": Address("rep@example.com", "Rita Rep"),
        "to": Address("pat@example.org", "Pat Prospect"),
        "reply_to": Address("reply+token@reply.example.com"),
        "subject": "Quick question, Pat",
        "text": "Hi Pat,\nshort question.\n",
        "html": "<p>Hi Pat,<br>short question.</p>",
        "headers": (("List-Unsubscribe", "<https://track.example.com/u/tok>"),),
        "custom_args": {"message_id": message_id},
    }
    return OutboundMessage(**{**fields, **changes})


@contextmanager
def imported_runtime(workspace: Path) -> Iterator[Runtime]:
    """The workspace opened and migrated, with its starter CRM export imported; closed after."""
    opened = Runtime.open(workspace)
    try:
        upgrade(opened.database)
        run_import(opened, workspace / "examples" / "crm-contacts.csv")
        yield opened
    finally:
        opened.close()
