"""``salescycle check``: validate every workspace file the engine knows, report every problem."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from engine.contacts import CRM_FILE, read_mapping
from engine.contacts.owners import OWNERS_FILE, OwnerProfile, read_owner_profiles
from engine.errors import Problem
from engine.replies import REPLIES_FILE, read_reply_rules
from engine.segments import SEGMENTS_DIR, FieldSpec, field_specs, read_segments
from engine.segments.parsing import SegmentParser
from engine.sequences import SEQUENCES_DIR, References, read_sequences, sequence_names
from engine.settings import SETTINGS_FILE, Settings, read_settings
from engine.stages import STAGES_FILE, read_pipeline
from engine.templating import (
    TEMPLATES_DIR,
    AttributeTypes,
    MessageBuilder,
    TemplateCatalog,
    TemplateRenderer,
    read_catalog,
    template_problems,
)
from engine.tracking import TokenSigner, TrackingLinks
from engine.workspace import Workspace, declared_names, line_of, load_yaml, suggest


@dataclass(frozen=True)
class CheckResult:
    """The files checked and every problem found in them."""

    checked: list[str]
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_workspace(workspace: Workspace) -> CheckResult:
    """Validate settings, stages, the CRM mapping, owners, segments, templates and sequences.

    A file that cannot be read does not make the files depending on it report
    mistakes that are not theirs: segments are checked against whatever part of the
    stages and the CRM mapping is readable, and not checked for the rest.
    """
    settings, problems = read_settings(workspace)
    pipeline, stage_problems = read_pipeline(workspace)
    mapping, crm_problems = read_mapping(workspace.root / CRM_FILE, workspace, pipeline)
    fields = field_specs(mapping)
    stages = pipeline.ids if pipeline is not None else None
    custom_fields_known = not crm_problems  # else crm.yaml's own problems come first
    sequences = sequence_names(workspace)
    _, segment_problems = read_segments(workspace, fields, stages, sequences, custom_fields_known)
    profiles, owner_problems = read_owner_profiles(workspace)
    catalog = read_catalog(workspace)
    references = References(catalog, declared_names(workspace.root / SEGMENTS_DIR), stages)
    conditions = SegmentParser(fields, stages, sequences, custom_fields_known)
    _, sequence_problems = read_sequences(workspace, references, conditions)
    problems += stage_problems + crm_problems + segment_problems + owner_problems
    problems += _template_problems(
        catalog, settings or Settings.model_construct(), fields, profiles
    )
    problems += sequence_problems + _transition_sequence_problems(workspace, sequences)
    problems += read_reply_rules(workspace)[1]
    checked = [SETTINGS_FILE, STAGES_FILE, CRM_FILE, OWNERS_FILE, REPLIES_FILE]
    for folder in (SEGMENTS_DIR, TEMPLATES_DIR, SEQUENCES_DIR):
        files = (p for p in (workspace.root / folder).rglob("*.*")
                 if p.is_file() and not p.name.startswith("."))  # fmt: skip
        checked += sorted(workspace.shown(path) for path in files)
    return CheckResult(checked, sorted(set(problems)))


def _transition_sequence_problems(workspace: Workspace, sequences: set[str]) -> list[Problem]:
    """A transition rule's ``sequence:`` must name a sequence of config/sequences/."""
    data, _ = load_yaml(workspace.root / STAGES_FILE, STAGES_FILE)  # its problems: read_pipeline's
    rules = data.get("transitions") if isinstance(data, dict) else None
    problems = []
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        name = rule.get("sequence") if isinstance(rule, dict) else None
        if isinstance(name, str) and name not in sequences:
            line = line_of(data, ["transitions", index, "sequence"])
            message = f"unknown sequence '{name}' in transition; {suggest(name, sorted(sequences))}"
            problems.append(Problem(STAGES_FILE, line, message))
    return problems


def _template_problems(
    catalog: TemplateCatalog,
    settings: Settings,
    fields: dict[str, FieldSpec],
    profiles: dict[str, OwnerProfile],
) -> list[Problem]:
    """Every template rendered for sample contacts (links signed with a throw-away key)."""
    links = TrackingLinks(TokenSigner(secrets.token_bytes(32)), "https://t.invalid", "r.invalid")
    renderer = TemplateRenderer(catalog, settings.default_locale, links)
    types = AttributeTypes.from_fields(fields)
    return template_problems(catalog, MessageBuilder(renderer, types, settings, profiles, links))
