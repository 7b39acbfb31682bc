"""``salescycle check``: validate every workspace file the engine knows, report every problem."""

from __future__ import annotations

from dataclasses import dataclass

from engine.contacts import CRM_FILE, read_mapping
from engine.errors import Problem
from engine.segments import SEGMENTS_DIR, field_specs, read_segments
from engine.sequences import sequence_names
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
    """Validate settings, stages, the CRM mapping and the segments (later: sequences, templates).

    A file that cannot be read does not make the files depending on it report
    mistakes that are not theirs: segments are checked against whatever part of the
    stages and the CRM mapping is readable, and not checked for the rest.
    """
    _, problems = read_settings(workspace)
    pipeline, stage_problems = read_pipeline(workspace)
    mapping, crm_problems = read_mapping(workspace.root / CRM_FILE, workspace, pipeline)
    _, segment_problems = read_segments(
        workspace,
        field_specs(mapping),
        pipeline.ids if pipeline is not None else None,
        sequence_names(workspace),
        custom_fields_known=not crm_problems,  # else crm.yaml's own problems come first
    )
    problems += stage_problems + crm_problems + segment_problems
    segment_files = sorted((workspace.root / SEGMENTS_DIR).glob("*.yaml"))
    checked = [SETTINGS_FILE, STAGES_FILE, CRM_FILE, *map(workspace.shown, segment_files)]
    return CheckResult(checked, sorted(set(problems)))
