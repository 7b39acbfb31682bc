"""Enrolling contacts in a sequence: one set-based statement, however many contacts.

``INSERT INTO enrollments ... SELECT`` over the candidates (a segment's members, the
contacts who just entered a stage, or named contacts) minus, by anti-join, everyone
the rules keep out: an open enrollment in the sequence already, an earlier run the
re-enrollment policy forbids, the limit of concurrent outreach sequences, and a
suppressed address. The partial unique index on open enrollments makes a second,
concurrent run insert nothing twice (``ON CONFLICT DO NOTHING``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Connection,
    Insert,
    Select,
    and_,
    exists,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite

from engine.segments.compiler import SegmentCompiler
from engine.sequences.model import Sequence, SequenceKind, TriggerKind
from engine.storage.schema import contacts, enrollments, stage_history, suppressions
from engine.vocabulary import EnrollmentStatus

OPEN = (EnrollmentStatus.ACTIVE.value, EnrollmentStatus.PAUSED.value)


@dataclass(frozen=True)
class EnrollmentRules:
    """Limits across sequences: how many outreach sequences a contact may be in at once."""

    max_concurrent_outreach: int
    outreach_sequences: frozenset[str]


def enroll(
    connection: Connection,
    sequence: Sequence,
    candidates: Select[int],
    rules: EnrollmentRules,
    now: datetime,
) -> int:
    """Enroll the ``candidates`` (a ``SELECT contacts.id``) the rules allow; the count."""
    allowed = candidates.where(*admission(sequence, rules, now)).order_by(None)
    ids = allowed.subquery()
    # (SQLite needs a WHERE in INSERT ... SELECT ... ON CONFLICT to parse it)
    rows = select(
        ids.c.id,
        literal(sequence.name),
        literal(EnrollmentStatus.ACTIVE.value),
        literal(0),
        literal(now, enrollments.c.next_run_at.type),
        literal(now, enrollments.c.enrolled_at.type),
        literal(now, enrollments.c.updated_at.type),
    ).where(true())
    columns = ["contact_id", "sequence", "status", "step_index", "next_run_at", "enrolled_at",
               "updated_at"]  # fmt: skip
    statement = _insert_ignoring_duplicates(connection).from_select(columns, rows)
    result = connection.execute(statement.execution_options(preserve_rowcount=True))
    return int(result.rowcount)


def admission(
    sequence: Sequence, rules: EnrollmentRules, now: datetime
) -> list[ColumnElement[bool]]:
    """The conditions a contact must meet to enter ``sequence`` now (for ``contacts.id``)."""
    mine = and_(enrollments.c.contact_id == contacts.c.id, enrollments.c.sequence == sequence.name)
    conditions = [~exists().where(mine, enrollments.c.status.in_(OPEN))]
    if sequence.reenroll_after is None:
        conditions.append(~exists().where(mine))
    else:
        since = now - sequence.reenroll_after
        recent = or_(enrollments.c.ended_at.is_(None), enrollments.c.ended_at > since)
        conditions.append(~exists().where(mine, recent))
    if sequence.kind is SequenceKind.OUTREACH:
        conditions.append(_below_outreach_limit(rules))
    conditions.append(~exists().where(suppressions.c.email == contacts.c.email))
    return conditions


def trigger_candidates(sequence: Sequence, segments: SegmentCompiler) -> Select[int] | None:
    """Who the sequence's own trigger would enroll now; ``None`` for a manual sequence."""
    if sequence.trigger.kind is TriggerKind.SEGMENT:
        return segments.members(str(sequence.trigger.target))
    if sequence.trigger.kind is TriggerKind.STAGE_ENTERED:
        return stage_entrants(sequence)
    return None


def stage_entrants(sequence: Sequence) -> Select[int]:
    """Contacts who moved into the trigger's stage and have not been enrolled since.

    Only a real move counts (the history row has a ``from_stage``): importing a CRM
    full of customers does not start their onboarding.
    """
    assert sequence.trigger.kind is TriggerKind.STAGE_ENTERED
    stage = sequence.trigger.target
    moved_in = exists().where(
        stage_history.c.contact_id == contacts.c.id,
        stage_history.c.to_stage == stage,
        stage_history.c.from_stage.is_not(None),
        stage_history.c.from_stage != stage,
        stage_history.c.changed_at >= contacts.c.stage_entered_at,
    )
    since_entry = exists().where(
        enrollments.c.contact_id == contacts.c.id,
        enrollments.c.sequence == sequence.name,
        enrollments.c.enrolled_at >= contacts.c.stage_entered_at,
    )
    return select(contacts.c.id).where(contacts.c.stage == stage, moved_in, ~since_entry)


def named_contacts(ids: Collection[int]) -> Select[int]:
    """``SELECT contacts.id`` of the given contacts (manual enrollment)."""
    return select(contacts.c.id).where(contacts.c.id.in_(list(ids)))


def _below_outreach_limit(rules: EnrollmentRules) -> ColumnElement[bool]:
    open_outreach = (
        select(func.count())
        .where(
            enrollments.c.contact_id == contacts.c.id,
            enrollments.c.status.in_(OPEN),
            enrollments.c.sequence.in_(sorted(rules.outreach_sequences)),
        )
        .scalar_subquery()
    )
    return open_outreach < rules.max_concurrent_outreach


def _insert_ignoring_duplicates(connection: Connection) -> Insert:
    if connection.dialect.name == "postgresql":
        return postgresql.insert(enrollments).on_conflict_do_nothing()
    return sqlite.insert(enrollments).on_conflict_do_nothing()
