"""Owner profiles from ``config/owners.yaml``: what the CRM export does not say about a rep.

The CRM gives each owner's name and address; the profile adds the title, phone and
signature their emails are signed with. An owner without a profile signs with
their name.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.errors import Problem
from engine.workspace import Workspace, load_yaml, validation_problems

OWNERS_FILE = "config/owners.yaml"


class OwnerProfile(BaseModel):
    """One rep's details for signatures and the From header."""

    model_config = ConfigDict(extra="forbid")

    email: str
    name: str | None = None
    title: str | None = None
    phone: str | None = None
    signature: str | None = None


class OwnersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owners: list[OwnerProfile] = []


def read_owner_profiles(workspace: Workspace) -> tuple[dict[str, OwnerProfile], list[Problem]]:
    """Profiles by lower-cased email; a missing file means no profiles, not a problem."""
    path = workspace.root / OWNERS_FILE
    if not path.exists():
        return {}, []
    data, problems = load_yaml(path, OWNERS_FILE)
    if problems:
        return {}, problems
    try:
        parsed = OwnersFile.model_validate(data or {})
    except ValidationError as exc:
        return {}, validation_problems(OWNERS_FILE, data, exc, OwnersFile)
    return {profile.email.lower(): profile for profile in parsed.owners}, []
