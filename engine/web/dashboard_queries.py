"""Read-only queries behind the dashboard pages (the numbers come from ``engine.reports``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, select

from engine.segments import SegmentSet
from engine.segments.compiler import SegmentCompiler, count_members
from engine.sequences.model import BranchStep, SendStep, Step
from engine.storage.schema import contacts, enrollments, suppressions

LIST_LIMIT = 50


@dataclass(frozen=True)
class SegmentRow:
    """A segment with its member count and the first few members."""

    name: str
    description: str
    members: int
    sample: list[dict[str, Any]]


def enrollment_counts(connection: Connection) -> dict[str, dict[str, int]]:
    """Enrollments per sequence and status."""
    query = select(enrollments.c.sequence, enrollments.c.status, func.count()).group_by(
        enrollments.c.sequence, enrollments.c.status
    )
    counts: dict[str, dict[str, int]] = {}
    for sequence, status, count in connection.execute(query):
        counts.setdefault(sequence, {})[status] = int(count)
    return counts


def send_steps(steps: Iterable[Step]) -> Iterator[SendStep]:
    """The send steps of a sequence in reading order (branches included)."""
    for step in steps:
        if isinstance(step, SendStep):
            yield step
        elif isinstance(step, BranchStep):
            yield from send_steps(step.then)
            yield from send_steps(step.otherwise)


def recent_enrollments(
    connection: Connection, sequence: str, limit: int = LIST_LIMIT
) -> list[dict[str, Any]]:
    """The latest enrollments in ``sequence`` with their contact's email."""
    query = (
        select(
            contacts.c.email,
            contacts.c.first_name,
            contacts.c.last_name,
            enrollments.c.status,
            enrollments.c.step_id,
            enrollments.c.next_run_at,
            enrollments.c.enrolled_at,
            enrollments.c.exit_reason,
        )
        .select_from(enrollments.join(contacts, contacts.c.id == enrollments.c.contact_id))
        .where(enrollments.c.sequence == sequence)
        .order_by(enrollments.c.enrolled_at.desc(), enrollments.c.id.desc())
        .limit(limit)
    )
    return [dict(row) for row in connection.execute(query).mappings()]


def segment_rows(
    connection: Connection, compiler: SegmentCompiler, segments: SegmentSet, sample: int = 5
) -> list[SegmentRow]:
    """Every segment with its member count and its first ``sample`` members."""
    rows = []
    for segment in sorted(segments, key=lambda s: s.name):
        members = compiler.members(segment.name).limit(sample).subquery()
        people = select(contacts.c.email, contacts.c.first_name, contacts.c.last_name).where(
            contacts.c.id.in_(select(members.c.id))
        )
        rows.append(
            SegmentRow(
                segment.name,
                segment.description or "",
                count_members(connection, compiler, segment.name),
                [dict(r) for r in connection.execute(people.order_by(contacts.c.id)).mappings()],
            )
        )
    return rows


def find_contacts(
    connection: Connection, text: str = "", stage: str | None = None, limit: int = LIST_LIMIT
) -> list[dict[str, Any]]:
    """Contacts whose email contains ``text`` (and in ``stage``, if given), by email."""
    where: list[ColumnElement[bool]] = []
    if text.strip():
        needle = text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(contacts.c.email.like(f"%{needle}%", escape="\\"))
    if stage:
        where.append(contacts.c.stage == stage)
    query = (
        select(contacts.c.email, contacts.c.first_name, contacts.c.last_name, contacts.c.title,
               contacts.c.stage, contacts.c.stage_entered_at)
        .where(and_(True, *where))
        .order_by(contacts.c.email)
        .limit(limit)
    )  # fmt: skip
    return [dict(row) for row in connection.execute(query).mappings()]


def latest_suppressions(
    connection: Connection, limit: int = 500
) -> tuple[int, list[dict[str, Any]]]:
    """How many suppressions there are, and the newest ``limit`` of them."""
    total = connection.execute(select(func.count()).select_from(suppressions)).scalar_one()
    newest = (suppressions.c.created_at.desc(), suppressions.c.id.desc())
    query = select(suppressions).order_by(*newest)
    rows = connection.execute(query.limit(limit)).mappings().all()
    return int(total), [dict(row) for row in rows]
