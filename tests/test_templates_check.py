"""``salescycle check`` on templates: every mistake reported as ``templates/PATH:LINE: message``."""

from __future__ import annotations

from pathlib import Path

from _support import assert_one_problem, explain, invoke, problems_in, replace_once

HEAD = "---\nsubject: Hi\n---\n"


def write(workspace: Path, relative: str, text: str) -> Path:
    path = workspace / "templates" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def check(workspace: Path) -> list[tuple[str, int, str]]:
    result = invoke("check", "--workspace", workspace)
    assert result.exit_code == 1, explain(result)
    return problems_in(result.output)


def test_the_starter_templates_pass_check(workspace: Path) -> None:
    result = invoke("check", "--workspace", workspace)

    assert result.exit_code == 0, explain(result)


def test_a_jinja_syntax_error_points_at_its_line(workspace: Path) -> None:
    write(workspace, "t/broken.md", HEAD + "Hello\n\n{% if contact.title %}\nno end\n")

    result = invoke("check", "--workspace", workspace)

    assert_one_problem(result, "templates/t/broken.md", 6, ["'endif'", "block that needs"])


def test_an_undefined_variable_is_an_error_with_the_valid_fields(workspace: Path) -> None:
    write(workspace, "t/typo.md", "---\nsubject: Hi\n---\nHello\n{{ account.nmae }}\n")

    result = invoke("check", "--workspace", workspace)

    assert_one_problem(result, "templates/t/typo.md", 5,
                       ["account has no field 'nmae'", "did you mean 'name'?"])  # fmt: skip


def test_an_unknown_variable_in_the_subject_points_at_the_subject_line(workspace: Path) -> None:
    subject = "---\npreheader: x\nsubject: Hi {{ contct.first_name }}\n---\nHello\n"
    write(workspace, "t/subject.md", subject)

    result = invoke("check", "--workspace", workspace)

    assert_one_problem(result, "templates/t/subject.md", 3, ["'contct' is undefined"])


def test_a_field_printed_without_default_is_reported_for_contacts_that_lack_it(
    workspace: Path,
) -> None:
    write(workspace, "t/title.md", "---\nsubject: Hi\n---\nHello\n\nAs {{ contact.title }}, ...\n")

    result = invoke("check", "--workspace", workspace)

    assert_one_problem(result, "templates/t/title.md", 6,
                       ["contact.title is empty", "default("])  # fmt: skip


def test_an_unknown_partial_and_an_unknown_layout(workspace: Path) -> None:
    write(workspace, "t/partial.md", HEAD + "Hello\n\n{% include '_partials/nope.md' %}\n")
    write(workspace, "t/layout.md", "---\nsubject: Hi\nlayout: fancy\n---\nHello\n")

    problems = check(workspace)

    assert ("templates/t/partial.md", 6, "unknown partial '_partials/nope.md'") in problems
    assert ("templates/t/layout.md", 3, "unknown layout 'fancy'; valid: default") in problems


def test_missing_subject_missing_text_and_unknown_front_matter_keys(workspace: Path) -> None:
    write(workspace, "t/nosubject.md", "---\npreheader: x\n---\nHello\n")
    write(workspace, "t/empty.md", "---\nsubject: Hi\n---\n\n")
    write(workspace, "t/key.md", "---\nsubject: Hi\nsubjet: typo\n---\nHello\n")
    write(workspace, "t/nofront.md", "Hello\n")

    problems = check(workspace)

    assert ("templates/t/nosubject.md", 1, "missing 'subject'") in problems
    assert ("templates/t/empty.md", 4, "the template has no text") in problems
    assert any(p[:2] == ("templates/t/key.md", 3) and "unknown key 'subjet'" in p[2]
               and "did you mean 'subject'?" in p[2] for p in problems)  # fmt: skip
    assert any(p[:2] == ("templates/t/nofront.md", 1) and "front matter" in p[2]
               for p in problems)  # fmt: skip


def test_a_link_helper_given_a_non_http_url(workspace: Path) -> None:
    write(workspace, "t/js.md", HEAD + "Hello\n\n[x]({{ link('javascript:alert(1)') }})\n")

    result = invoke("check", "--workspace", workspace)

    assert_one_problem(result, "templates/t/js.md", 6, ["link() needs an http:// or https:// URL"])


def test_a_static_non_http_link_in_an_html_template_is_reported(workspace: Path) -> None:
    write(workspace, "t/static.md", "---\nsubject: Hi\n---\nHello [x](ftp://files.example.com/x)\n")

    problems = check(workspace)

    assert [p[0] for p in problems] == ["templates/t/static.md"]
    assert "link() needs an http:// or https:// URL, got 'ftp://files" in problems[0][2]


def test_a_bad_file_name_and_a_locale_file_without_its_default(workspace: Path) -> None:
    write(workspace, "t/Intro Mail.md", "---\nsubject: Hi\n---\nHello\n")
    write(workspace, "t/lonely.da.md", "---\nsubject: Hej\n---\nHej\n")

    result = invoke("check", "--workspace", workspace)

    assert result.exit_code == 1, explain(result)
    output = result.output
    assert "templates/t/Intro Mail.md: 'Intro Mail.md' is not a template file name" in output
    assert "templates/t/lonely.da.md: no default-language file templates/t/lonely.md" in output


def test_a_layout_error_is_reported_in_the_layout(workspace: Path) -> None:
    layout = workspace / "templates" / "_layouts" / "default.html"
    replace_once(layout, "{{ content }}", "{{ contents }}")

    result = invoke("check", "--workspace", workspace)

    assert result.exit_code == 1, explain(result)
    assert "templates/_layouts/default.html: the layout has no {{ content }}" in result.output


def test_every_problem_in_one_file_is_reported_in_one_run(workspace: Path) -> None:
    write(workspace, "t/many.md", "---\nsubject: Hi {{ contact.frist_name }}\n"
          "preheader: '{{ account.nmae }}'\n---\nHello {{ contact.emial }}\n")  # fmt: skip

    problems = check(workspace)

    assert [(p[0], p[1]) for p in problems] == [
        ("templates/t/many.md", 2), ("templates/t/many.md", 3), ("templates/t/many.md", 5),
    ]  # fmt: skip
