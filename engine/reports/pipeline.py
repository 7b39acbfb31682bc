"""The pipeline now: contacts per stage and per owner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from engine.stages import Pipeline
from engine.storage.schema import contacts, owners

UNASSIGNED = "(no owner)"


@dataclass(frozen=True)
class PipelineReport:
    """Counts per stage (in pipeline order) and per owner within each stage."""

    stages: list[str]
    owners: list[str]
    counts: dict[tuple[str, str], int]
    owner_names: dict[str, str]

    def stage_total(self, stage: str) -> int:
        return sum(n for (s, _), n in self.counts.items() if s == stage)

    def owner_total(self, owner: str) -> int:
        return sum(n for (_, o), n in self.counts.items() if o == owner)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "stages": [
                {
                    "stage": stage,
                    "contacts": self.stage_total(stage),
                    "by_owner": {o: self.counts.get((stage, o), 0) for o in self.owners},
                }
                for stage in self.stages
            ],
            "owners": [
                {"owner": o, "name": self.owner_names[o], "contacts": self.owner_total(o)}
                for o in self.owners
            ],
        }


def pipeline_report(connection: Connection, pipeline: Pipeline) -> PipelineReport:
    """Count contacts per stage and owner in one grouped query."""
    query = (
        select(contacts.c.stage, owners.c.email, owners.c.name, func.count())
        .select_from(contacts.outerjoin(owners, contacts.c.owner_id == owners.c.id))
        .group_by(contacts.c.stage, owners.c.email, owners.c.name)
    )
    counts: dict[tuple[str, str], int] = {}
    names: dict[str, str] = {}
    for stage, email, name, count in connection.execute(query):
        owner = email or UNASSIGNED
        counts[(stage, owner)] = int(count)
        names[owner] = name or owner
    unknown = sorted({stage for stage, _ in counts if stage not in pipeline})
    return PipelineReport(pipeline.ids + unknown, sorted(names), counts, names)
