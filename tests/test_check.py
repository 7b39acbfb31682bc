"""``salescycle check``: every mistake reported as ``config/FILE.yaml:LINE: message``.

Each case edits one starter file and computes the expected line by finding the
edited text in the file written, so the tests do not depend on the starter's layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from _support import (
    assert_one_problem,
    explain,
    invoke,
    json_output,
    line_number,
    problems_in,
    replace_once,
)

STAGE_IDS = (
    "research, prospecting, connecting, qualification, pitching, objection_handling, "
    "negotiation, customer, lost"
)


@dataclass(frozen=True)
class Mistake:
    """One edit to a starter file, the line the problem must point at, and what it must say."""

    id: str
    file: str
    old: str
    new: str
    at: str  # a text unique to the line the problem is reported on (after the edit)
    says: tuple[str, ...]


MISTAKES = [
    Mistake(
        "misspelt-stage-in-transition",
        "stages.yaml",
        "connecting], to: qualification}\n  - {on: clicked",
        "connecting], to: qualifcation}\n  - {on: clicked",
        "to: qualifcation}",
        (
            "unknown stage 'qualifcation'",
            "did you mean 'qualification'",
            "valid: research, prospecting",
        ),
    ),
    Mistake(
        "misspelt-stage-in-from",
        "stages.yaml",
        "{on: replied, intent: objection, from: [qualification, pitching]",
        "{on: replied, intent: objection, from: [qualification, pitchng]",
        "from: [qualification, pitchng]",
        ("unknown stage 'pitchng'", "did you mean 'pitching'", f"valid: {STAGE_IDS}"),
    ),
    Mistake(
        "unknown-sequence-in-transition",
        "stages.yaml",
        "{on: clicked, link: booking,",
        "{on: clicked, sequence: conecting-outreach, link: booking,",
        "sequence: conecting-outreach",
        ("unknown sequence 'conecting-outreach'", "did you mean 'connecting-outreach'"),
    ),
    Mistake(
        "unknown-event",
        "stages.yaml",
        "{on: replied, from: [research, prospecting, connecting]",
        "{on: repled, from: [research, prospecting, connecting]",
        "{on: repled,",
        (
            "unknown event 'repled'",
            "did you mean 'replied'",
            "valid: queued, delivered, deferred, opened, clicked, replied",
        ),
    ),
    Mistake(
        "duplicate-stage-id",
        "stages.yaml",
        "  - id: lost\n",
        "  - id: pitching  # again\n  - id: lost\n",
        "id: pitching  # again",
        ("stage 'pitching' is defined twice",),
    ),
    Mistake(
        "unknown-key-in-stages",
        "stages.yaml",
        "\ntransitions:\n",
        "\ntransitons:\n",
        "transitons:",
        (
            "unknown key 'transitons'",
            "did you mean 'transitions'",
            "valid: stages, initial, transitions",
        ),
    ),
    Mistake(
        "unknown-key-in-a-stage",
        "stages.yaml",
        "    name: Pitching\n",
        "    name: Pitching\n    colour: green\n",
        "colour: green",
        ("unknown key 'colour'", "valid: id, name, description, kind"),
    ),
    Mistake(
        "link-on-a-non-clicked-transition",
        "stages.yaml",
        "{on: clicked, link: booking,",
        "{on: opened, link: booking,",
        "{on: opened, link: booking,",
        ("'link'", "'clicked'"),
    ),
    Mistake(
        "unknown-initial-stage",
        "stages.yaml",
        "initial: research",
        "initial: reserch",
        "initial: reserch",
        ("unknown stage 'reserch'", "did you mean 'research'", f"valid: {STAGE_IDS}"),
    ),
    Mistake(
        "yaml-syntax-error",
        "stages.yaml",
        "    name: Pitching\n",
        "    name: Pitching: the demo\n",
        "name: Pitching: the demo",
        ("YAML syntax error", "mapping values are not allowed"),
    ),
    Mistake(
        "duplicate-yaml-key",
        "stages.yaml",
        "    name: Pitching\n",
        "    name: Pitching\n    name: Pitch  # twice\n",
        "name: Pitch  # twice",
        ("duplicate key", '"name"'),
    ),
    Mistake(
        "bad-timezone",
        "settings.yaml",
        "default_timezone: Europe/Copenhagen",
        "default_timezone: Europe/Copenhaagen",
        "default_timezone: Europe/Copenhaagen",
        ("unknown timezone 'Europe/Copenhaagen'", "Europe/Copenhagen"),
    ),
    Mistake(
        "unknown-settings-key",
        "settings.yaml",
        "default_locale: en\n",
        "default_locale: en\ndefault_local: da\n",
        "default_local: da",
        ("unknown key 'default_local'", "did you mean 'default_locale'", "valid: database_url"),
    ),
    Mistake(
        "unknown-nested-settings-key",
        "settings.yaml",
        "  batch_size:",
        "  batch_sise:",
        "batch_sise:",
        ("unknown key 'batch_sise'", "did you mean 'batch_size'", "valid: batch_size"),
    ),
    Mistake(
        "secret-in-settings",
        "settings.yaml",
        "default_locale: en\n",
        "default_locale: en\nsecret_key: x\n",
        "secret_key: x",
        ("'secret_key'", "SALESCYCLE_SECRET_KEY", "environment"),
    ),
    Mistake(
        "sendgrid-key-in-settings",
        "settings.yaml",
        "default_locale: en\n",
        "default_locale: en\nsendgrid_api_key: SG.abc\n",
        "sendgrid_api_key: SG.abc",
        ("'sendgrid_api_key'", "SENDGRID_API_KEY"),
    ),
    Mistake(
        "unknown-contact-field",
        "crm.yaml",
        '  title: ["Job Title"',
        '  titel: ["Job Title"',
        'titel: ["Job Title"',
        (
            "unknown key 'titel'",
            "did you mean 'title'",
            "valid: email, crm_id, first_name, last_name, title",
        ),
    ),
    Mistake(
        "bad-attribute-type",
        "crm.yaml",
        "lead_score: {type: int,",
        "lead_score: {type: integer,",
        "lead_score: {type: integer,",
        ("'integer'", "valid: string, int, float, bool, date"),
    ),
    Mistake(
        "unknown-stage-in-stages-map",
        "crm.yaml",
        "Contact Made: connecting",
        "Contact Made: conecting",
        "Contact Made: conecting",
        ("unknown stage 'conecting'", "did you mean 'connecting'", "valid: research, prospecting"),
    ),
    Mistake(
        "column-mapped-to-two-contact-fields",
        "crm.yaml",
        '"Person - Job title", "Title"]',
        '"Person - Job title", "Title", "E-mail"]',
        '"Title", "E-mail"]',
        ("column 'E-mail'", "contact.email", "contact.title"),
    ),
    Mistake(
        "column-mapped-to-two-attributes",
        "crm.yaml",
        'linkedin_url: {type: string, columns: ["LinkedIn URL"',
        'linkedin_url: {type: string, columns: ["Lead Score", "LinkedIn URL"',
        'columns: ["Lead Score", "LinkedIn URL"',
        ("column 'Lead Score'", "attributes.lead_score", "attributes.linkedin_url"),
    ),
    Mistake(
        "column-mapped-to-an-account-field-and-an-account-attribute",
        "crm.yaml",
        'tech_stack: {type: string, columns: ["Tech Stack"',
        'tech_stack: {type: string, columns: ["Industry", "Tech Stack"',
        'columns: ["Industry", "Tech Stack"',
        ("column 'Industry'", "account.industry", "tech_stack"),
    ),
]


def test_the_starter_workspace_is_clean(workspace: Path) -> None:
    result = invoke("check", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    assert "no problems" in result.output
    assert problems_in(result.output) == []


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.id for m in MISTAKES])
def test_each_mistake_is_reported_with_file_line_and_valid_choices(
    workspace: Path, mistake: Mistake
) -> None:
    # Given one mistake in one workspace file
    path = workspace / "config" / mistake.file
    replace_once(path, mistake.old, mistake.new)
    expected_line = line_number(path, mistake.at)

    # When the workspace is checked
    result = invoke("check", "--workspace", workspace)

    # Then exactly that mistake is reported, as config/FILE.yaml:LINE: message
    assert_one_problem(result, f"config/{mistake.file}", expected_line, mistake.says)
    assert "1 problem(s) in 1 file(s)" in result.output


def test_an_unknown_settings_key_does_not_offer_secrets_as_valid_choices(workspace: Path) -> None:
    # Secrets are refused in settings.yaml, so naming them as valid keys there misleads
    replace_once(
        workspace / "config" / "settings.yaml",
        "default_locale: en\n",
        "default_locale: en\ncolour: red\n",
    )

    result = invoke("check", "--workspace", workspace)

    assert result.exit_code == 1, explain(result)
    [(_, _, message)] = problems_in(result.output)
    assert "unknown key 'colour'" in message
    valid = message.split("valid:", 1)[1]
    assert "default_timezone" in valid
    assert "secret_key" not in valid
    assert "sendgrid_api_key" not in valid


def test_a_missing_stages_file_is_reported(workspace: Path) -> None:
    (workspace / "config" / "stages.yaml").unlink()

    result = invoke("check", "--workspace", workspace)

    assert result.exit_code == 1, explain(result)
    assert re.search(r"^config/stages\.yaml: .*missing", result.output, re.MULTILINE), result.output


def test_a_missing_settings_file_means_defaults(workspace: Path) -> None:
    (workspace / "config" / "settings.yaml").unlink()

    result = invoke("check", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)


def test_several_mistakes_in_several_files_are_all_reported(workspace: Path) -> None:
    # Given four semantic mistakes in stages.yaml and one each in settings.yaml and crm.yaml
    chosen = [
        "misspelt-stage-in-transition",
        "unknown-event",
        "duplicate-stage-id",
        "link-on-a-non-clicked-transition",
        "bad-timezone",
        "unknown-stage-in-stages-map",
    ]
    mistakes = [m for m in MISTAKES if m.id in chosen]
    for mistake in mistakes:
        replace_once(workspace / "config" / mistake.file, mistake.old, mistake.new)
    expected = {
        (f"config/{m.file}", line_number(workspace / "config" / m.file, m.at)) for m in mistakes
    }

    result = invoke("check", "--workspace", workspace)

    # Then every one is reported, not only the first, and the run fails
    assert result.exit_code == 1, explain(result)
    problems = problems_in(result.output)
    assert {(path, line) for path, line, _ in problems} == expected
    assert len(problems) == len(mistakes)
    assert f"{len(mistakes)} problem(s) in 3 file(s)" in result.output


def test_a_structural_and_a_semantic_mistake_in_one_file_are_both_reported(
    workspace: Path,
) -> None:
    # Given an unknown key (a structural mistake) and a misspelt stage in the same file
    stages = workspace / "config" / "stages.yaml"
    unknown_key = next(m for m in MISTAKES if m.id == "unknown-key-in-a-stage")
    misspelt = next(m for m in MISTAKES if m.id == "misspelt-stage-in-transition")
    for mistake in (unknown_key, misspelt):
        replace_once(stages, mistake.old, mistake.new)

    result = invoke("check", "--workspace", workspace)

    # Then both are reported in the one run
    assert result.exit_code == 1, explain(result)
    lines = {line for _, line, _ in problems_in(result.output)}
    assert line_number(stages, unknown_key.at) in lines, result.output
    assert line_number(stages, misspelt.at) in lines, result.output


def test_check_json_reports_every_problem_for_machines(workspace: Path) -> None:
    replace_once(workspace / "config" / "stages.yaml", "initial: research", "initial: reserch")
    replace_once(
        workspace / "config" / "crm.yaml", "Contact Made: connecting", "Contact Made: conecting"
    )

    result = invoke("check", "--json", "--workspace", workspace)

    assert result.exit_code == 1, explain(result)
    report = json_output(result)
    assert report["ok"] is False
    assert set(report["checked"]) == {
        "config/settings.yaml",
        "config/stages.yaml",
        "config/crm.yaml",
        "config/owners.yaml",
        "config/replies.yaml",
        *(f"segments/{path.name}" for path in (workspace / "segments").glob("*.yaml")),
        *(f"config/sequences/{p.name}" for p in (workspace / "config/sequences").glob("*.yaml")),
        *(
            path.relative_to(workspace).as_posix()
            for path in (workspace / "templates").rglob("*.*")
            if path.is_file() and not path.name.startswith(".")
        ),
    }
    assert {(p["path"], p["line"]) for p in report["problems"]} == {
        ("config/stages.yaml", line_number(workspace / "config/stages.yaml", "initial: reserch")),
        ("config/crm.yaml", line_number(workspace / "config/crm.yaml", "Contact Made: conecting")),
    }
    assert all("did you mean" in p["message"] for p in report["problems"])


def test_check_json_on_a_clean_workspace(workspace: Path) -> None:
    result = invoke("check", "--json", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    report = json_output(result)
    assert report["ok"] is True
    assert report["problems"] == []
    segments = list((workspace / "segments").glob("*.yaml"))
    templates = [p for p in (workspace / "templates").rglob("*.*") if p.is_file()]
    sequences = list((workspace / "config" / "sequences").glob("*.yaml"))
    assert len(report["checked"]) == 5 + len(segments) + len(templates) + len(sequences)
