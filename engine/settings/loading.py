"""Resolving settings once, in one order: defaults, workspace YAML, environment, arguments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from engine.errors import ConfigurationError, Problem, WorkspaceError
from engine.settings.model import SECRET_SETTINGS, Settings
from engine.workspace import Workspace, line_of, load_yaml, validation_problems

SETTINGS_FILE = "config/settings.yaml"


def load_settings(workspace: Workspace, overrides: Mapping[str, Any] | None = None) -> Settings:
    """The workspace's settings; raises on any problem in the file or the environment."""
    settings, problems = read_settings(workspace, overrides)
    if problems or settings is None:
        raise WorkspaceError(problems)
    return settings


def read_settings(
    workspace: Workspace, overrides: Mapping[str, Any] | None = None
) -> tuple[Settings | None, list[Problem]]:
    """Settings plus every problem in ``config/settings.yaml`` (a missing file means defaults)."""
    path = workspace.root / SETTINGS_FILE
    data: Any = {}
    if path.exists():
        data, problems = load_yaml(path, SETTINGS_FILE)
        if problems:
            return None, problems
        data = {} if data is None else data
    if not isinstance(data, Mapping):
        return None, [Problem(SETTINGS_FILE, line_of(data, ()), "expected a mapping of settings")]
    problems = _secret_problems(data)
    try:
        from_file = _FileSettings.model_validate(
            {k: v for k, v in data.items() if k not in SECRET_SETTINGS}
        )
    except ValidationError as exc:
        return None, problems + validation_problems(SETTINGS_FILE, data, exc, Settings)
    merged = _deep_merge(from_file.model_dump(exclude_unset=True), _from_environment())
    merged = _deep_merge(merged, dict(overrides or {}))
    return Settings.model_validate(merged), problems


class _FileSettings(Settings):
    """The settings of the file alone: pydantic-settings would otherwise read the
    environment while validating it, and blame the file for a bad variable."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _secret_problems(data: Mapping[str, Any]) -> list[Problem]:
    return [
        Problem(
            SETTINGS_FILE,
            line_of(data, [key]),
            f"'{key}' is a secret and is read only from the environment; "
            f"remove it here and set {variable}",
        )
        for key, variable in SECRET_SETTINGS.items()
        if key in data
    ]


def _from_environment() -> dict[str, Any]:
    try:
        return Settings().model_dump(exclude_unset=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"]]
        variable = "SALESCYCLE_" + "__".join(loc).upper()
        raise ConfigurationError(f"environment variable {variable}: {first['msg']}") from None


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
