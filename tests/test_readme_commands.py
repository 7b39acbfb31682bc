"""Every ``salescycle`` command README.md shows exists, and takes the options shown."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from _support import explain, invoke

from engine.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
_INLINE = re.compile(r"`(salescycle [^`]+)`")
_LINE = re.compile(r"^(salescycle [^#\n]+?)\s*(?:#.*)?$", re.MULTILINE)


def _documented() -> list[str]:
    text = README.read_text(encoding="utf-8")
    found = {m.strip().rstrip("\\").strip() for m in _INLINE.findall(text) + _LINE.findall(text)}
    return sorted(found)


def _words_and_options(command: str) -> tuple[list[str], list[str]]:
    """The command's words as the CLI knows them (``contacts import``), and its long options."""
    parts = shlex.split(command.replace("|", " ").replace("[", " ").replace("]", " "))[1:]
    node: Any = typer.main.get_command(app)
    words: list[str] = []
    for part in parts:
        children = getattr(node, "commands", {})  # a group's subcommands
        if part not in children:
            break
        words.append(part)
        node = children[part]
    options = [p.split("=")[0] for p in parts if p.startswith("--")]
    return words, options


@pytest.mark.parametrize("command", _documented())
def test_a_documented_command_exists_with_its_options(command: str) -> None:
    words, options = _words_and_options(command)
    shown = invoke(*words, "--help")

    assert shown.exit_code == 0, explain(shown)
    for option in options:
        assert option in shown.output, f"{command}: {option} is not an option of {words}"


def test_the_readme_shows_the_commands_a_user_needs() -> None:
    commands = {" ".join(_words_and_options(c)[0]) for c in _documented()}

    assert {"check", "db upgrade", "run", "serve", "scheduler", "report",
            "contacts import", "inbound classify"} <= commands  # fmt: skip


# --------------------------------------------------------------------------
# The walk-through, run as written


def _sh_block(heading: str) -> list[str]:
    """The command lines of the first ``sh`` block under ``heading`` (continuations joined,
    comments dropped)."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    block = section[section.index("```sh\n") + 6 :]
    block = block[: block.index("```")].replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_walk_through_and_the_report_examples_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SALESCYCLE_DATABASE_URL", raising=False)
    monkeypatch.delenv("SALESCYCLE_WORKSPACE", raising=False)
    export = (README.parent / "examples" / "crm-contacts.csv").read_text(encoding="utf-8")
    first_email = export.splitlines()[1].split(",")[1]
    owner = "ingrid.solheim@salescycle-demo.example"  # an owner in the starter export
    assert owner in export
    lines = _sh_block("## Using it") + _sh_block("### Reports and the dashboard")
    ran = []
    for line in lines:
        words = shlex.split(line.replace("~", str(tmp_path)))
        if words[0] == ".":  # `. .venv/bin/activate`: the test already runs in it
            continue
        if words[0] == "cd":
            monkeypatch.chdir(words[1])
            (Path(words[1]) / "export.csv").write_text(export, encoding="utf-8")
            continue
        assert words[0] == "salescycle", line
        args = [{"anna@example.com": first_email, "rita@acme.example": owner}.get(w, w)
                for w in words[1:]]  # fmt: skip
        result = invoke(*args)
        assert result.exit_code == 0, f"{line}\n{explain(result)}"
        ran.append(" ".join(args[:2]))
    assert "contacts import" in ran and "report --html" in ran
    assert Path("report.html").read_text(encoding="utf-8").startswith("<!doctype html>")
    assert Path("welcome.eml").exists() and Path("welcome.html").exists()
