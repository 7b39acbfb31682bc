"""The workspace a team edits: locating it, its starter copy, and reading its YAML."""

from engine.workspace.layout import Workspace, init_workspace, starter_root
from engine.workspace.yamlfile import (
    declared_names,
    line_of,
    load_yaml,
    suggest,
    validation_problems,
)

__all__ = [
    # layout
    "Workspace",
    "init_workspace",
    "starter_root",
    # YAML with line numbers
    "declared_names",
    "line_of",
    "load_yaml",
    "suggest",
    "validation_problems",
]
