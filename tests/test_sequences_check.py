"""``salescycle check`` on sequences, and ``sequences list|show``."""

from __future__ import annotations

from pathlib import Path

import pytest
from _support import explain, invoke, json_output, line_number, problems_in

STARTER_SEQUENCES = ("connecting-outreach", "customer-nurture", "negotiation-check-in",
                     "pitching-follow-up", "qualification-follow-up")  # fmt: skip
GOOD = """\
name: probe
enroll: {segment: ready-for-outreach}
window: {days: mon-fri, hours: "09:00-17:00"}
steps:
  - {id: first, send: connecting/intro}
  - {wait: 3 business days}
  - {id: second, send: connecting/bump, thread: first}
"""


def write(workspace: Path, text: str, name: str = "probe") -> Path:
    path = workspace / "config" / "sequences" / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(workspace: Path) -> list[tuple[str, int, str]]:
    result = invoke("check", "--workspace", workspace)
    assert result.exit_code == 1, explain(result)
    return problems_in(result.output)


def test_the_starter_sequences_pass_check(workspace: Path) -> None:
    write(workspace, GOOD)

    result = invoke("check", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("connecting/bump", "connecting/bmp", "unknown template 'connecting/bmp'; did you mean "
                                              "'connecting/bump'?"),
        ("ready-for-outreach", "ready-for-outreac", "unknown segment 'ready-for-outreac'; did you"),
        ("enroll: {segment: ready-for-outreach}", "enroll: {stage_entered: qualifcation}",
         "unknown stage 'qualifcation'; did you mean 'qualification'?"),
        ("thread: first", "thread: frist", "thread: unknown send step 'frist'; did you mean "
                                           "'first'?"),
        ("3 business days", "3 bussiness days", "wait: '3 bussiness days' is not a wait"),
        ('hours: "09:00-17:00"', 'hours: "17:00-09:00"', "hours:"),
        ("days: mon-fri", "days: mon-fry", "days:"),
        ("{id: first, send: connecting/intro}", "{id: first, send: connecting/intro, "
         "variants: {a: 1, c: 1}}", "template 'connecting/intro' has no variant 'c'; valid: a, b"),
        ("{wait: 3 business days}", "{wiat: 3 business days}", "a step is one of send, wait"),
        ("{id: second, send: connecting/bump, thread: first}",
         "{send: connecting/bump, thread: first}", "a send step needs an id"),
        ("{id: second, send: connecting/bump", "{id: first, send: connecting/bump",
         "id: 'first' is used by another step"),
        ("name: probe", "name: probe\nformat: rich",
         "format: 'rich' is not valid; valid: text, html"),
    ],
)  # fmt: skip
def test_each_mistake_is_reported_on_its_line(
    workspace: Path, old: str, new: str, says: str
) -> None:
    path = write(workspace, GOOD.replace(old, new))
    needle = new.splitlines()[-1]

    found = problems(workspace)

    assert [(p[0], p[1]) for p in found] == [
        ("config/sequences/probe.yaml", line_number(path, needle))
    ], found
    assert says in found[0][2]


def test_thread_pointing_at_a_later_step(workspace: Path) -> None:
    text = GOOD.replace("thread: first}", "}").replace(
        "{id: first, send: connecting/intro}", "{id: first, send: connecting/intro, thread: second}"
    )
    path = write(workspace, text)

    found = problems(workspace)

    assert found == [("config/sequences/probe.yaml", line_number(path, "thread: second"),
                      "thread: 'second' comes later; a step can only be sent in the thread of "
                      "a send step before it")]  # fmt: skip


def test_steps_after_an_exit_are_unreachable(workspace: Path) -> None:
    wait = "  - {wait: 3 business days}\n"
    path = write(workspace, GOOD.replace(wait, "  - {exit: done}\n" + wait))

    found = problems(workspace)

    assert [(p[1], p[2]) for p in found] == [
        (line_number(path, "{wait: 3 business days}"),
         f"unreachable: the exit on line {line_number(path, '{exit: done}')} ends every "
         "enrollment before this step"),
    ]  # fmt: skip


def test_a_branch_that_exits_on_both_arms_makes_the_rest_unreachable(workspace: Path) -> None:
    text = GOOD.replace(
        "  - {wait: 3 business days}\n",
        "  - branch: {event: replied}\n    then: [{exit: replied}]\n    else: [{exit: silent}]\n"
        "  - {wait: 3 business days}\n",
    )
    path = write(workspace, text)

    found = problems(workspace)

    assert [p[1] for p in found] == [line_number(path, "{wait: 3 business days}")]


def test_a_bad_condition_is_reported_with_the_segment_language_message(workspace: Path) -> None:
    path = write(workspace, GOOD.replace("thread: first}", "thread: first, when: {evnt: replied}}"))

    found = problems(workspace)

    assert [p[1] for p in found] == [line_number(path, "evnt")]
    assert "unknown field 'evnt'" in found[0][2] or "evnt" in found[0][2]


def test_unknown_keys_and_exit_events_name_the_valid_ones(workspace: Path) -> None:
    text = GOOD.replace(
        "name: probe", "name: probe\nexit_when: [replied, bouncd]\nacount_stop: true"
    )
    path = write(workspace, text)

    found = {(p[1], p[2].split(";")[0]) for p in problems(workspace)}

    assert (line_number(path, "bouncd"), "exit_when: unknown 'bouncd'") in found
    assert (line_number(path, "acount_stop"), "unknown key 'acount_stop'") in found


def test_a_broken_template_file_does_not_break_the_sequences_using_it(workspace: Path) -> None:
    write(workspace, GOOD)
    (workspace / "templates" / "connecting" / "bump.md").write_text("no front matter\n")

    found = problems(workspace)

    assert {p[0] for p in found} == {"templates/connecting/bump.md"}


def test_list_and_show(workspace: Path) -> None:
    listed = invoke("sequences", "list", "--json", "--workspace", workspace)
    shown = invoke("sequences", "show", "connecting-outreach", "--json", "--workspace", workspace)
    typo = invoke("sequences", "show", "connecting-outrech", "--workspace", workspace)

    assert listed.exit_code == 0, explain(listed)
    assert [s["name"] for s in json_output(listed)] == list(STARTER_SEQUENCES)
    assert shown.exit_code == 0, explain(shown)
    details = json_output(shown)
    assert details["format"] == "text" and details["enroll"] == "segment ready-for-outreach"
    intro = next(step for step in details["steps"] if step["id"] == "intro")
    assert intro["variants"] == {"a": 1, "b": 1}
    bump = next(step for step in details["steps"] if step["id"] == "bump")
    assert bump["thread"] == "intro" and bump["conditional"] is True
    assert typo.exit_code == 1
    assert "unknown sequence 'connecting-outrech'; did you mean 'connecting-outreach'?" in (
        typo.output
    )
    nurture = json_output(invoke("sequences", "show", "customer-nurture", "--json",
                                 "--workspace", workspace))  # fmt: skip
    assert nurture["format"] == "html" and nurture["kind"] == "nurture"
