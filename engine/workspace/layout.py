"""Where a workspace's files live, and creating a new workspace from the starter one."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from engine.errors import ConfigurationError, relative_to

STARTER_PARTS = ("config", "segments", "templates", "examples/crm-contacts.csv")
_WORKSPACE_GITIGNORE = "# salescycle keeps its database and outbox here\nvar/\n*.rejects.csv\n"


@dataclass(frozen=True)
class Workspace:
    """A team's folder: ``segments/``, ``templates/``, ``config/``, and ``var/`` for state."""

    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def var_dir(self) -> Path:
        """Generated state (SQLite database, outbox); never committed."""
        return self.root / "var"

    def shown(self, path: Path) -> str:
        """How a path is named in messages: relative to the workspace when inside it."""
        return relative_to(path, self.root)


def starter_root() -> Path:
    """The starter workspace: bundled in the wheel, or the repository root in a checkout."""
    bundled = Path(str(resources.files("engine") / "_starter"))
    if (bundled / "config").is_dir():
        return bundled
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "config" / "stages.yaml").is_file():
        return checkout
    raise ConfigurationError("the starter workspace is missing from this installation")


def init_workspace(target: Path) -> list[Path]:
    """Copy the starter workspace into ``target`` (new or empty); return what was created."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigurationError(f"{target} already exists and is not empty; choose a new folder")
    source = starter_root()
    created = []
    for part in STARTER_PARTS:
        origin, destination = source / part, target / part
        if origin.is_dir():
            shutil.copytree(origin, destination, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, destination)
        created.append(destination)
    (target / ".gitignore").write_text(_WORKSPACE_GITIGNORE, encoding="utf-8")
    return created
