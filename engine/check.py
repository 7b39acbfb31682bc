"""``salescycle check``: validate every workspace file the engine knows, report every problem."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from engine.contacts import CRM_FILE, read_mapping
from engine.contacts.owners import OWNERS_FILE, read_owner_profiles
from engine.errors import Problem
from engine.segments import SEGMENTS_DIR, field_specs, read_segments
from engine.sequences import sequence_names
from engine.settings import SETTINGS_FILE, Settings, read_settings
from engine.stages import STAGES_FILE, read_pipeline
from engine.templating import (
    AttributeTypes,
    MessageBuilder,
    TemplateRenderer,
    read_catalog,
    template_problems,
)
from engine.tracking import TokenSigner, TrackingLinks
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
    """Validate settings, stages, the CRM mapping, owners, segments and templates.

    A file that cannot be read does not make the files depending on it report
    mistakes that are not theirs: segments are checked against whatever part of the
    stages and the CRM mapping is readable, and not checked for the rest.
    """
    settings, problems = read_settings(workspace)
    pipeline, stage_problems = read_pipeline(workspace)
    mapping, crm_problems = read_mapping(workspace.root / CRM_FILE, workspace, pipeline)
    _, segment_problems = read_segments(
        workspace,
        field_specs(mapping),
        pipeline.ids if pipeline is not None else None,
        sequence_names(workspace),
        custom_fields_known=not crm_problems,  # else crm.yaml's own problems come first
    )
    profiles, owner_problems = read_owner_profiles(workspace)
    catalog = read_catalog(workspace)
    settings = settings or Settings.model_construct()
    links = TrackingLinks(TokenSigner(secrets.token_bytes(32)), "https://t.invalid", "r.invalid")
    builder = MessageBuilder(
        TemplateRenderer(catalog, settings.default_locale, links),
        AttributeTypes.from_fields(field_specs(mapping)),
        settings,
        profiles,
        links,
    )
    problems += stage_problems + crm_problems + segment_problems + owner_problems
    problems += template_problems(catalog, builder)
    segment_files = sorted((workspace.root / SEGMENTS_DIR).glob("*.yaml"))
    template_files = sorted(workspace.shown(p) for p in catalog.root.rglob("*.*") if p.is_file())
    checked = [
        SETTINGS_FILE,
        STAGES_FILE,
        CRM_FILE,
        OWNERS_FILE,
        *map(workspace.shown, segment_files),
        *template_files,
    ]
    return CheckResult(checked, sorted(set(problems)))
