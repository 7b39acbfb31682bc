"""``salescycle check``: validate every workspace file the engine knows, report every problem."""

from __future__ import annotations

from dataclasses import dataclass

from engine.contacts import CRM_FILE, read_mapping
from engine.errors import Problem
from engine.settings import SETTINGS_FILE, read_settings
from engine.stages import STAGES_FILE, read_pipeline
from engine.workspace import Workspace


@dataclass(frozen=True)
class CheckResult:
    """The files checked and every problem found in them."""

    checked: list[str]
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_workspace(workspace: Workspace) -> CheckResult:
    """Validate settings, stages and the CRM mapping (later: segments, sequences, templates)."""
    problems: list[Problem] = []
    _, settings_problems = read_settings(workspace)
    problems += settings_problems
    pipeline, stage_problems = read_pipeline(workspace)
    problems += stage_problems
    _, crm_problems = read_mapping(workspace.root / CRM_FILE, workspace, pipeline)
    problems += crm_problems
    return CheckResult([SETTINGS_FILE, STAGES_FILE, CRM_FILE], sorted(set(problems)))
