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
