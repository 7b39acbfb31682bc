"""``salescycle check`` on segments: every mistake as ``segments/FILE.yaml:LINE: message``.

Each case writes one segment file into a fresh starter workspace and computes the
expected line by finding a text unique to the mistaken line in the file written, so
the tests do not depend on the layout of the starter segments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from _support import (
    STARTER_SEGMENTS,
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
EVENT_KINDS = (
    "queued, delivered, deferred, opened, clicked, replied, auto_replied, bounced, dropped, "
    "unsubscribed, complained"
)


@dataclass(frozen=True)
class Mistake:
    """A segment file with one mistake, the line it must be reported on, and what it says."""

    id: str
    text: str  # the whole file, segments/<id>.yaml
    at: str  # a text unique to the line the problem is reported on
    says: tuple[str, ...]


def _segment(name: str, where: str, description: str = "A segment with a mistake") -> str:
    """A segment file: ``where`` is the YAML under ``where:``, already indented by two."""
    return f"# {description}\nname: {name}\ndescription: {description}\nwhere:\n{where}"


MISTAKES = [
    Mistake(
        "unknown-field",
        _segment("unknown-field", "  all:\n    - stage: research\n    - titel: CTO\n"),
        "- titel: CTO",
        ("unknown field 'titel'", "did you mean 'title'", "valid: email, first_name, last_name"),
    ),
    Mistake(
        "unknown-operator",
        _segment(
            "unknown-operator",
            "  all:\n    - stage: research\n    - account.employees:\n        greater: 100\n",
        ),
        "greater: 100",
        (
            "account.employees: unknown operator 'greater' for an int field",
            "valid: eq, ne, in, not_in, gt, gte, lt, lte, between, exists",
        ),
    ),
    Mistake(
        "wrong-value-type",
        _segment("wrong-value-type", '  account.employees: {gt: "many"}\n'),
        'account.employees: {gt: "many"}',
        ("account.employees: 'many' is not a whole number",),
    ),
    Mistake(
        "malformed-duration",
        _segment("malformed-duration", "  event: opened\n  within: 3x\n"),
        "within: 3x",
        ("within: '3x' is not a duration", "30m, 12h, 14d or 2w"),
    ),
    Mistake(
        "unknown-stage",
        _segment(
            "unknown-stage",
            "  all:\n    - account.country: DK\n    - stage: {in: [research, prospectin]}\n",
        ),
        "prospectin]",
        ("unknown stage 'prospectin'", "did you mean 'prospecting'", f"valid: {STAGE_IDS}"),
    ),
    Mistake(
        "unknown-event",
        _segment("unknown-event", "  any:\n    - stage: customer\n    - {event: opend}\n"),
        "{event: opend}",
        ("unknown event 'opend'", "did you mean 'opened'", f"valid: {EVENT_KINDS}"),
    ),
    Mistake(
        "unknown-sequence",
        _segment("unknown-sequence", "  all:\n    - stage: research\n    - in_sequence: nope\n"),
        "in_sequence: nope",
        ("unknown sequence 'nope'", "valid: connecting-outreach, customer-nurture"),
    ),
    Mistake(
        "unknown-segment-reference",
        _segment(
            "unknown-segment-reference",
            "  all:\n    - stage: research\n    - segment: decision-maker\n",
        ),
        "segment: decision-maker",
        (
            "unknown segment 'decision-maker'",
            "did you mean 'decision-makers'",
            "valid: booked-a-call, danish-speakers, decision-makers",
        ),
    ),
    Mistake(
        "unknown-custom-attribute",
        _segment(
            "unknown-custom-attribute",
            "  all:\n    - stage: research\n    - attributes.decision_makr: true\n",
        ),
        "attributes.decision_makr: true",
        (
            "unknown custom field 'attributes.decision_makr'",
            "config/crm.yaml",
            "did you mean 'attributes.decision_maker'",
        ),
    ),
    Mistake(
        "yaml-syntax-error",
        _segment("yaml-syntax-error", "  stage: research\n", "Nordic: our ICP"),
        "description: Nordic: our ICP",
        ("YAML syntax error", "mapping values are not allowed"),
    ),
    Mistake(
        "unknown-top-level-key",
        _segment("unknown-top-level-key", "  stage: research\n") + "were:\n  stage: customer\n",
        "were:",
        ("unknown key 'were'", "did you mean 'where'", "valid: name, description, where"),
    ),
]


def _write(workspace: Path, name: str, text: str) -> Path:
    path = workspace / "segments" / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------
# the starter workspace


def test_the_starter_segments_check_clean_and_are_listed(workspace: Path) -> None:
    result = invoke("check", "--json", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    report = json_output(result)
    assert report["ok"] is True
    assert report["problems"] == []
    files = sorted(p.name for p in (workspace / "segments").glob("*.yaml"))
    assert files == [f"{name}.yaml" for name in STARTER_SEGMENTS]
    assert {f"segments/{file}" for file in files} <= set(report["checked"])


def test_the_starter_workspace_check_counts_the_segment_files(workspace: Path) -> None:
    result = invoke("check", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)
    templates = [p for p in (workspace / "templates").rglob("*.*") if p.is_file()]
    sequences = list((workspace / "config" / "sequences").glob("*.yaml"))
    # + settings, stages, crm, owners, replies
    checked = 5 + len(STARTER_SEGMENTS) + len(templates) + len(sequences)
    assert f"ok: {checked} files checked, no problems" in result.output


def test_each_starter_segment_is_named_after_its_file_and_has_a_comment_and_description(
    workspace: Path,
) -> None:
    for name in STARTER_SEGMENTS:
        text = (workspace / "segments" / f"{name}.yaml").read_text(encoding="utf-8")
        assert text.startswith("# "), f"{name}.yaml has no comment header"
        assert re.search(rf"^name: {re.escape(name)}$", text, re.MULTILINE), name
        assert re.search(r"^description: \S", text, re.MULTILINE), name
        code = [line.split("#", 1)[0] for line in text.splitlines()]
        assert not any("sequence" in line for line in code), f"{name}.yaml names a sequence"


# --------------------------------------------------------------------------
# one mistake at a time


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.id for m in MISTAKES])
def test_each_mistake_is_reported_with_file_line_and_valid_choices(
    workspace: Path, mistake: Mistake
) -> None:
    # Given a segment file with one mistake
    path = _write(workspace, mistake.id, mistake.text)
    expected_line = line_number(path, mistake.at)

    # When the workspace is checked
    result = invoke("check", "--workspace", workspace)

    # Then exactly that mistake is reported, as segments/FILE.yaml:LINE: message
    assert_one_problem(result, f"segments/{mistake.id}.yaml", expected_line, mistake.says)
    assert "1 problem(s) in 1 file(s)" in result.output


def test_an_unknown_sequence_is_offered_the_sequences_that_exist(workspace: Path) -> None:
    # Given one sequence, and a segment that misspells it
    sequences = workspace / "config" / "sequences"
    for starter in sequences.glob("*.yaml"):
        if starter.name != "connecting-outreach.yaml":
            starter.unlink()
    path = _write(
        workspace,
        "in-outreach",
        _segment("in-outreach", "  completed_sequence: connecting-outreah\n"),
    )

    result = invoke("check", "--workspace", workspace)

    # Then the segment's problem names the sequence that exists
    assert result.exit_code == 1, explain(result)
    mine = [p for p in problems_in(result.output) if p[0].startswith("segments/")]
    assert mine == [
        (
            "segments/in-outreach.yaml",
            line_number(path, "completed_sequence: connecting-outreah"),
            "completed_sequence: unknown sequence 'connecting-outreah'; "
            "did you mean 'connecting-outreach'? "
            "valid: connecting-outreach",
        )
    ]


def test_a_cycle_of_references_is_reported_with_its_chain(workspace: Path) -> None:
    # Given two segments that refer to each other
    where = "  all:\n    - stage: research\n    - segment: cycle-b\n"
    first = _write(workspace, "cycle-a", _segment("cycle-a", where))
    _write(workspace, "cycle-b", _segment("cycle-b", "  any:\n    - segment: cycle-a\n"))

    result = invoke("check", "--workspace", workspace)

    # Then one problem names the whole chain, at the reference that closes it
    assert result.exit_code == 1, explain(result)
    assert problems_in(result.output) == [
        (
            "segments/cycle-a.yaml",
            line_number(first, "segment: cycle-b"),
            "segments refer to each other in a cycle: cycle-a -> cycle-b -> cycle-a",
        )
    ]


def test_a_segment_referring_to_itself_is_a_cycle(workspace: Path) -> None:
    path = _write(workspace, "selfish", _segment("selfish", "  not: {segment: selfish}\n"))

    result = invoke("check", "--workspace", workspace)

    assert result.exit_code == 1, explain(result)
    assert problems_in(result.output) == [
        (
            "segments/selfish.yaml",
            line_number(path, "not: {segment: selfish}"),
            "segments refer to each other in a cycle: selfish -> selfish",
        )
    ]


def test_a_name_defined_in_two_files_names_both_places(workspace: Path) -> None:
    # Given a second file that reuses the name of a starter segment
    original = workspace / "segments" / "enterprise-accounts.yaml"
    copy = _write(
        workspace, "big-companies", _segment("enterprise-accounts", "  account.employees: 5000\n")
    )

    result = invoke("check", "--workspace", workspace)

    # Then the problem is on one file's name line and points at the other's
    assert result.exit_code == 1, explain(result)
    [(shown, line, message)] = problems_in(result.output)
    places = {
        ("segments/big-companies.yaml", line_number(copy, "name: enterprise-accounts")),
        ("segments/enterprise-accounts.yaml", line_number(original, "name: enterprise-accounts")),
    }
    assert (shown, line) in places
    [(other, other_line)] = places - {(shown, line)}
    assert (
        message == f"segment 'enterprise-accounts' is defined twice (also in {other}:{other_line})"
    )


# --------------------------------------------------------------------------
# several mistakes, and mistakes elsewhere


def test_several_mistakes_are_all_reported(workspace: Path) -> None:
    # Given three mistakes in one file and one in each of two more files
    several = _write(
        workspace,
        "several",
        _segment(
            "several",
            "  all:\n"
            "    - titel: CTO\n"
            "    - account.employees: {gt: many}\n"
            "    - {event: opened, within: 2 weeks}\n"
            "    - stage: customer\n",
        ),
    )
    syntax = _write(workspace, "broken", _segment("broken", "  stage: research\n", "ICP: 2"))
    reference = _write(workspace, "referring", _segment("referring", "  segment: nowhere\n"))

    result = invoke("check", "--workspace", workspace)

    # Then every one is reported, each at its own line, and the run fails
    assert result.exit_code == 1, explain(result)
    found = {(shown, line) for shown, line, _ in problems_in(result.output)}
    assert found == {
        ("segments/several.yaml", line_number(several, "titel: CTO")),
        ("segments/several.yaml", line_number(several, "{gt: many}")),
        ("segments/several.yaml", line_number(several, "within: 2 weeks")),
        ("segments/broken.yaml", line_number(syntax, "description: ICP: 2")),
        ("segments/referring.yaml", line_number(reference, "segment: nowhere")),
    }, result.output
    assert "5 problem(s) in 3 file(s)" in result.output


def test_a_stages_file_that_cannot_be_read_does_not_make_segment_stages_unknown(
    workspace: Path,
) -> None:
    # Given a syntax error in config/stages.yaml (the stages are unknown)
    stages = workspace / "config" / "stages.yaml"
    replace_once(stages, "    name: Pitching\n", "    name: Pitching: the demo\n")

    result = invoke("check", "--json", "--workspace", workspace)

    # Then only that file's problem is reported: segments naming stages are not blamed
    assert result.exit_code == 1, explain(result)
    report = json_output(result)
    assert [(p["path"], p["line"]) for p in report["problems"]] == [
        ("config/stages.yaml", line_number(stages, "name: Pitching: the demo"))
    ]
    assert "segments/stalled-deals.yaml" in report["checked"]


def test_a_segment_mistake_and_a_config_mistake_are_both_reported(workspace: Path) -> None:
    replace_once(workspace / "config" / "stages.yaml", "initial: research", "initial: reserch")
    path = _write(workspace, "typo", _segment("typo", "  locale: {startswith: da}\n"))

    result = invoke("check", "--json", "--workspace", workspace)

    assert result.exit_code == 1, explain(result)
    report = json_output(result)
    assert {(p["path"], p["line"]) for p in report["problems"]} == {
        ("config/stages.yaml", line_number(workspace / "config/stages.yaml", "initial: reserch")),
        ("segments/typo.yaml", line_number(path, "startswith: da")),
    }
    [segment_problem] = [p for p in report["problems"] if p["path"] == "segments/typo.yaml"]
    assert "did you mean 'starts_with'" in segment_problem["message"]


def test_a_mistake_elsewhere_in_crm_yaml_keeps_the_custom_fields_known(workspace: Path) -> None:
    # Given a structural mistake in config/crm.yaml, away from its custom fields
    crm = workspace / "config" / "crm.yaml"
    replace_once(crm, '  title: ["Job Title"', '  titel: ["Job Title"')

    result = invoke("check", "--json", "--workspace", workspace)

    # Then segments testing attributes.decision_maker are not blamed for it
    assert result.exit_code == 1, explain(result)
    report = json_output(result)
    assert [(p["path"], p["line"]) for p in report["problems"]] == [
        ("config/crm.yaml", line_number(crm, 'titel: ["Job Title"'))
    ]


def test_an_unknown_sequence_when_there_are_none_says_so(workspace: Path) -> None:
    for sequence in (workspace / "config" / "sequences").glob("*.yaml"):
        sequence.unlink()
    _write(workspace, "orphan", _segment("orphan", "  in_sequence: nope\n"))

    result = invoke("check", "--workspace", workspace)

    assert result.exit_code == 1, explain(result)
    assert "no sequences are defined yet (config/sequences/ is empty)" in result.output
