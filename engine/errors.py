"""The engine's one error tree; every message says how to fix the problem."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class SalescycleError(Exception):
    """Base of every error the engine raises on purpose."""

    exit_code = 1


class ConfigurationError(SalescycleError):
    """A setting is missing or wrong; the message names the exact setting."""

    exit_code = 2


class DatabaseNotReadyError(SalescycleError):
    """The database is not migrated to the revision this version of salescycle expects."""

    exit_code = 3


class InputFileError(SalescycleError):
    """A file given on the command line cannot be read as a whole."""


@dataclass(frozen=True, order=True)
class Problem:
    """One mistake in a workspace file, reported as ``path:line: message``."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"


class WorkspaceError(SalescycleError):
    """One or more workspace files are wrong; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def relative_to(path: Path, root: Path) -> str:
    """Show ``path`` relative to ``root`` when it lies inside it."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
