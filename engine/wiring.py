"""All wiring in one place: from a workspace folder to settings, pipeline, segments, database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from engine.contacts import CRM_FILE, CrmMapping, load_mapping
from engine.errors import WorkspaceError
from engine.segments import FieldSpec, SegmentSet, field_specs, read_segments
from engine.sequences import sequence_names
from engine.settings import Settings, load_settings
from engine.stages import Pipeline, load_pipeline
from engine.storage import create_database_engine, ensure_current, resolve_database_url
from engine.workspace import Workspace


@dataclass
class Runtime:
    """One workspace opened for work; objects are built on first use."""

    workspace: Workspace
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, root: Path, **overrides: Any) -> Runtime:
        return cls(Workspace(root.resolve()), {k: v for k, v in overrides.items() if v})

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.workspace, self.overrides)

    @cached_property
    def pipeline(self) -> Pipeline:
        return load_pipeline(self.workspace)

    @cached_property
    def crm_mapping(self) -> CrmMapping:
        """The CRM mapping of ``config/crm.yaml``; raises with every problem in it."""
        return load_mapping(self.workspace.root / CRM_FILE, self.workspace, self.pipeline)

    @cached_property
    def fields(self) -> dict[str, FieldSpec]:
        """Every field segments may test: the built-in ones and the mapping's custom ones."""
        return field_specs(self.crm_mapping)

    @cached_property
    def segments(self) -> SegmentSet:
        """Every segment of ``segments/``; raises with every problem when any file is wrong."""
        segments, problems = read_segments(
            self.workspace, self.fields, self.pipeline.ids, sequence_names(self.workspace)
        )
        if problems:
            raise WorkspaceError(problems)
        return segments

    @cached_property
    def database_url(self) -> str:
        return resolve_database_url(self.settings.database_url, self.workspace.root)

    @cached_property
    def database(self) -> Engine:
        """The database engine, without any check of its revision (for ``db`` commands)."""
        return create_database_engine(self.database_url)

    def ready_database(self) -> Engine:
        """The database engine, refusing one that is not at this version's revision."""
        ensure_current(self.database)
        return self.database

    def close(self) -> None:
        if "database" in self.__dict__:
            self.database.dispose()
