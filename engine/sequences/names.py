"""The names of the workspace's sequences, so segments can check the ones they mention."""

from __future__ import annotations

from engine.workspace import Workspace, load_yaml

SEQUENCES_DIR = "config/sequences"


def sequence_names(workspace: Workspace) -> set[str]:
    """The ``name`` of every ``config/sequences/*.yaml`` (the file's stem when unnamed).

    Files that do not parse are skipped here; ``salescycle check`` reports them.
    """
    names = set()
    for path in sorted((workspace.root / SEQUENCES_DIR).glob("*.yaml")):
        data, problems = load_yaml(path, workspace.shown(path))
        if problems:
            continue
        name = data.get("name") if isinstance(data, dict) else None
        names.add(name if isinstance(name, str) and name else path.stem)
    return names
