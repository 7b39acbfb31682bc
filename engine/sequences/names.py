"""The names of the workspace's sequences, so segments can check the ones they mention."""

from __future__ import annotations

from engine.workspace import Workspace, declared_names

SEQUENCES_DIR = "config/sequences"


def sequence_names(workspace: Workspace) -> set[str]:
    """The ``name`` of every ``config/sequences/*.yaml`` (the file's stem when unnamed)."""
    return declared_names(workspace.root / SEQUENCES_DIR)
