"""Rows for segment tests, written straight into the tables, and both ways of reading members.

Plain helpers (no fixtures): ``test_segments_semantics.py`` and
``test_segments_equivalence.py`` build their data with them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, insert

from engine.contacts import load_mapping
from engine.segments import FieldSpec, SegmentSet, field_specs, read_segments
from engine.segments.compiler import SegmentCompiler, count_members, iter_member_ids
from engine.segments.reference import ReferenceEvaluator, load_dataset
from engine.stages import Pipeline, load_pipeline
from engine.storage import schema
from engine.workspace import Workspace

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)  # the clock every segment test reads
Row = dict[str, Any]


def owner_row(id: int, email: str, name: str | None = None, title: str | None = None) -> Row:
    return {"id": id, "email": email, "name": name, "title": title, "phone": None,
            "signature": None, "created_at": NOW, "updated_at": NOW}  # fmt: skip


def account_row(id: int, name: str, **values: Any) -> Row:
    """An account; ``values`` may set crm_id, domain, industry, country, employees, attributes."""
    row: Row = {"id": id, "crm_id": None, "name": name, "name_key": name.casefold(), "domain": None,
           "industry": None, "country": None, "employees": None, "attributes": {},
           "created_at": NOW, "updated_at": NOW}  # fmt: skip
    return row | values


def contact_row(id: int, stage: str, stage_entered_at: datetime, **values: Any) -> Row:
    """A contact; ``values`` may set any other column (email defaults to a unique one)."""
    row: Row = {"id": id, "crm_id": None, "email": f"contact{id}@example.test", "first_name": None,
           "last_name": None, "title": None, "phone": None, "account_id": None,
           "owner_id": None, "stage": stage, "stage_entered_at": stage_entered_at,
           "timezone": None, "locale": None, "attributes": {}, "referred_by_id": None,
           "created_at": NOW, "updated_at": NOW}  # fmt: skip
    return row | values


def message_row(id: int, contact_id: int, sequence: str | None, step_id: str | None) -> Row:
    return {"id": id, "idempotency_key": f"message-{id}", "enrollment_id": None,
            "contact_id": contact_id, "sequence": sequence, "step_id": step_id, "variant": None,
            "template": "connecting/intro", "to_email": f"contact{contact_id}@example.test",
            "from_email": "rep@sales.test", "subject": "Hello", "rfc_message_id": f"<{id}@t>",
            "in_reply_to": None, "status": "sent", "transport": "file",
            "provider_message_id": None, "attempts": 1, "last_error": None, "sent_at": NOW,
            "created_at": NOW, "updated_at": NOW}  # fmt: skip


def event_row(
    id: int,
    contact_id: int | None,
    kind: str,
    occurred_at: datetime,
    *,
    message_id: int | None = None,
    link_tag: str | None = None,
    machine: bool = False,
) -> Row:
    return {"id": id, "provider": "test", "provider_event_id": f"event-{id}", "kind": kind,
            "message_id": message_id, "contact_id": contact_id, "occurred_at": occurred_at,
            "url": None, "link_tag": link_tag, "machine": machine, "reject_reason": None,
            "detail": {}, "created_at": NOW}  # fmt: skip


def enrollment_row(id: int, contact_id: int, sequence: str, status: str) -> Row:
    return {"id": id, "contact_id": contact_id, "sequence": sequence, "status": status,
            "step_index": 0, "step_id": None, "next_run_at": None, "claimed_by": None,
            "claimed_until": None, "exit_reason": None, "error": None, "enrolled_at": NOW,
            "ended_at": None, "updated_at": NOW}  # fmt: skip


@dataclass
class Rows:
    """Rows of every table a segment reads, inserted in the order the foreign keys need."""

    owners: list[Row] = field(default_factory=list)
    accounts: list[Row] = field(default_factory=list)
    contacts: list[Row] = field(default_factory=list)
    messages: list[Row] = field(default_factory=list)
    events: list[Row] = field(default_factory=list)
    enrollments: list[Row] = field(default_factory=list)

    def insert(self, connection: Connection) -> None:
        for table, rows in self._tables():
            if rows:
                connection.execute(insert(table), rows)

    def _tables(self) -> list[tuple[Any, list[Row]]]:
        return [(schema.owners, self.owners), (schema.accounts, self.accounts),
                (schema.contacts, self.contacts), (schema.messages, self.messages),
                (schema.events, self.events), (schema.enrollments, self.enrollments)]  # fmt: skip


def delete_rows(connection: Connection) -> None:
    """Empty every table :class:`Rows` fills, children first."""
    for table in (schema.events, schema.messages, schema.enrollments, schema.contacts,
                  schema.accounts, schema.owners):  # fmt: skip
        connection.execute(delete(table))


def workspace_fields(root: Path) -> tuple[dict[str, FieldSpec], Pipeline]:
    """The fields segments may test in the workspace at ``root``, and its pipeline."""
    workspace = Workspace(root)
    pipeline = load_pipeline(workspace)
    mapping = load_mapping(root / "config" / "crm.yaml", workspace, pipeline)
    return field_specs(mapping), pipeline


def load_segments(
    root: Path, sequences: Collection[str]
) -> tuple[SegmentSet, dict[str, FieldSpec]]:
    """Every segment in ``root/segments`` (a problem in any fails the test) and the fields."""
    fields, pipeline = workspace_fields(root)
    segments, problems = read_segments(Workspace(root), fields, pipeline.ids, sequences)
    assert problems == [], "\n".join(str(problem) for problem in problems)
    return segments, fields


@dataclass(frozen=True)
class Members:
    """A segment's members as the compiled SQL and the reference evaluator see them."""

    counted: int  # count_members
    streamed: list[int]  # iter_member_ids, batches joined
    reference: list[int]  # ReferenceEvaluator.members


def members(
    connection: Connection,
    segments: SegmentSet,
    fields: dict[str, FieldSpec],
    name: str,
    batch_size: int = 10_000,
) -> Members:
    compiler = SegmentCompiler(segments, fields, NOW)
    batches = list(iter_member_ids(connection, compiler, name, batch_size=batch_size))
    assert all(0 < len(batch) <= batch_size for batch in batches), batches
    streamed = [contact_id for batch in batches for contact_id in batch]
    reference = ReferenceEvaluator(segments, fields, NOW).members(load_dataset(connection), name)
    return Members(count_members(connection, compiler, name), streamed, reference)
