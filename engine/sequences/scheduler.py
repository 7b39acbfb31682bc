"""The scheduler: one elected process enrolls by trigger and claims due work in batches.

Due work lives in the database (``enrollments.next_run_at``, indexed with the status),
so the cost of a tick grows with what is due, not with all enrollments. A claim is a
lease (``claimed_by``, ``claimed_until``): a broker message lost to a Redis restart or
a killed worker is claimed again once its lease runs out. PostgreSQL claims with
``FOR UPDATE SKIP LOCKED`` so schedulers never wait on each other; SQLite, with one
writer, runs one scheduler (the election lease sees to that too).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, Integer, Select, any_, insert, literal, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError

from engine.segments.compiler import SegmentCompiler
from engine.sequences.enrolling import EnrollmentRules, enroll, trigger_candidates
from engine.sequences.model import Sequence
from engine.storage.schema import enrollments, leases
from engine.vocabulary import EnrollmentStatus

SCHEDULER_LEASE = "scheduler"


def holder_name() -> str:
    """This process's name in leases and claims: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Scheduler:
    """Elects itself, enrolls by trigger, and claims due enrollments for the workers."""

    database: Engine
    holder: str = field(default_factory=holder_name)
    claim_lease: dt.timedelta = dt.timedelta(minutes=5)
    leader_lease: dt.timedelta = dt.timedelta(seconds=30)

    def elect(self, now: dt.datetime) -> bool:
        """Take or renew the scheduler lease; whether this process is the scheduler now."""
        with self.database.begin() as connection:
            taken = connection.execute(
                update(leases)
                .where(leases.c.name == SCHEDULER_LEASE)
                .where(or_(leases.c.holder == self.holder, leases.c.expires_at < now))
                .values(holder=self.holder, expires_at=now + self.leader_lease)
            ).rowcount
            if taken:
                return True
            try:
                with connection.begin_nested():
                    connection.execute(insert(leases).values(
                        name=SCHEDULER_LEASE, holder=self.holder,
                        expires_at=now + self.leader_lease))  # fmt: skip
            except IntegrityError:
                return False  # another scheduler holds a live lease
            return True

    def resign(self) -> None:
        """Give the lease up (on a clean shutdown) so another scheduler takes over at once."""
        with self.database.begin() as connection:
            connection.execute(
                leases.delete().where(
                    leases.c.name == SCHEDULER_LEASE, leases.c.holder == self.holder
                )
            )

    def enroll_by_triggers(
        self,
        sequences: Iterable[Sequence],
        segments: Callable[[dt.datetime], SegmentCompiler],
        rules: EnrollmentRules,
        now: dt.datetime,
    ) -> dict[str, int]:
        """Run every segment and stage trigger once; how many each enrolled."""
        enrolled = {}
        with self.database.begin() as connection:
            compiler = segments(now)
            for sequence in sequences:
                candidates = trigger_candidates(sequence, compiler)
                if candidates is not None:
                    enrolled[sequence.name] = enroll(connection, sequence, candidates, rules, now)
        return enrolled

    def claim(self, now: dt.datetime, limit: int) -> list[int]:
        """Claim up to ``limit`` due enrollments (earliest first) for ``claim_lease``.

        PostgreSQL: the due rows are selected ``FOR UPDATE SKIP LOCKED`` (schedulers never
        wait on each other), then updated by one array parameter (10,000 bound ids cost
        more than the claim itself). SQLite, one writer: one ``UPDATE ... RETURNING``.
        """
        lease = {"claimed_by": self.holder, "claimed_until": now + self.claim_lease}
        due = _due_ids(self.database.dialect.name, now, limit)
        with self.database.begin() as connection:
            if connection.dialect.name != "postgresql":
                claim = update(enrollments).where(enrollments.c.id.in_(due)).values(**lease)
                return [
                    int(i) for i in connection.execute(claim.returning(enrollments.c.id)).scalars()
                ]
            ids = [int(i) for i in connection.execute(due).scalars()]
            if ids:
                one_array = enrollments.c.id == any_(literal(ids, ARRAY(Integer)))
                connection.execute(update(enrollments).where(one_array).values(**lease))
            return ids

    def next_due(self) -> dt.datetime | None:
        """When the earliest active enrollment is due (to sleep until then)."""
        with self.database.connect() as connection:
            query = (
                select(enrollments.c.next_run_at)
                .where(
                    enrollments.c.status == EnrollmentStatus.ACTIVE,
                    enrollments.c.next_run_at.is_not(None),
                )
                .order_by(enrollments.c.next_run_at)
                .limit(1)
            )
            return connection.execute(query).scalar()


def _due_ids(dialect: str, now: dt.datetime, limit: int) -> Select[Any]:
    query = (
        select(enrollments.c.id)
        .where(
            enrollments.c.status == EnrollmentStatus.ACTIVE,
            enrollments.c.next_run_at <= now,
            or_(enrollments.c.claimed_until.is_(None), enrollments.c.claimed_until < now),
        )
        .order_by(enrollments.c.next_run_at)
        .limit(limit)
    )
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return query


MESSAGES_PER_BATCH = 50  # enrollment ids a broker message carries


def batches(ids: list[int], size: int) -> list[list[int]]:
    """``ids`` in broker-message-sized batches (one message per batch, not per email)."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]
