"""Planning a sequence: who would enter it and what would be sent when, without sending.

A dry run over the database as it is: the contacts already active in the sequence go on
from their step, and the trigger's candidates that the enrollment rules admit now start
at its first step. Each contact walks the compiled program on a simulated clock the way
the step runner (``runner.py``) would: a send goes out at once inside its window, else
at the window's next opening plus the jitter; waits are those of the runner. Conditions
(a send's ``when``, a branch) are read once each, set-based, against today's data: the
plan assumes no new events.

Nothing is written: :func:`read_only` opens a transaction the database itself refuses
to write in, and rolls it back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, Row, Select, and_, func, select, text, union_all
from sqlalchemy.sql import Subquery
from sqlalchemy.sql.expression import ScalarSelect

from engine.segments.compiler import SegmentCompiler
from engine.segments.model import Condition
from engine.sequences.enrolling import EnrollmentRules, admission
from engine.sequences.model import ExitStep, NotifyStep, SendStep, Sequence, StageStep, WaitStep
from engine.sequences.program import Branch, Instruction, Jump, Program, compile_program
from engine.sequences.variants import choose_variant
from engine.sequences.windows import add_business_days, contact_timezone, next_open, schedule
from engine.storage.database import READ_ONLY
from engine.storage.schema import accounts, contacts, enrollments
from engine.vocabulary import EnrollmentStatus

ACTIVE = EnrollmentStatus.ACTIVE.value


@dataclass(frozen=True)
class PlannedSend:
    """One email the sequence would send."""

    contact_id: int
    email: str
    step_id: str
    template: str
    variant: str
    at: datetime  # UTC
    timezone: str  # the IANA zone the window was read in

    @property
    def local_time(self) -> datetime:
        """The send instant on the contact's clock (with its UTC offset)."""
        return self.at.astimezone(ZoneInfo(self.timezone))


@dataclass(frozen=True)
class PlannedAction:
    """A step that is not a send: a stage move, a notification, an exit."""

    contact_id: int
    email: str
    step_id: str
    kind: str  # "stage", "notify" or "exit"
    at: datetime  # UTC
    timezone: str  # the contact's zone (to show the contact's clock)
    detail: str = ""


@dataclass(frozen=True)
class Plan:
    """What ``sequence`` would do from ``start`` for ``days`` days."""

    sequence: str
    start: datetime
    days: int
    enrolled: int  # planned contacts already active in the sequence
    new: int  # planned contacts the trigger (or the given segment) would enroll now
    available: int  # enrolled and new before the limit
    sends: tuple[PlannedSend, ...]
    actions: tuple[PlannedAction, ...]
    step_order: tuple[str, ...] = field(default=(), compare=False)  # send step ids, in order

    @property
    def contacts(self) -> int:
        return self.enrolled + self.new

    @property
    def capped(self) -> bool:
        return self.available > self.contacts

    def sends_per_step(self) -> dict[str, int]:
        """How many sends each send step makes, in program order (zeros included)."""
        counts = Counter(send.step_id for send in self.sends)
        return {step: counts[step] for step in self.step_order}

    def busiest_days(self, count: int = 3) -> list[tuple[date, int]]:
        """The UTC dates with the most sends, most first (earlier first on a tie)."""
        per_day = Counter(send.at.date() for send in self.sends)
        return sorted(per_day.items(), key=lambda item: (-item[1], item[0]))[:count]


@dataclass(frozen=True)
class _Contact:
    id: int
    email: str
    zone: ZoneInfo
    country: str | None
    index: int
    since: datetime
    enrollment: int | None  # None: not enrolled yet


def plan_sequence(
    connection: Connection,
    sequence: Sequence,
    compiler: SegmentCompiler,
    rules: EnrollmentRules,
    *,
    candidates: Select[int] | None,
    default_timezone: str,
    start: datetime,
    days: int,
    limit: int,
) -> Plan:
    """Plan ``sequence`` for ``days`` days from ``start`` (UTC) for at most ``limit`` contacts.

    ``candidates`` (a ``SELECT contacts.id``, e.g. :func:`trigger_candidates`) are who
    would be enrolled at ``start``, subject to the rules; ``None`` plans only the contacts
    already in the sequence. ``compiler`` should evaluate at ``start``.
    """
    if days < 1 or limit < 1:
        raise ValueError("days and limit must be at least 1")
    start = start.astimezone(UTC)
    pool = _pool(sequence, rules, candidates, start)
    available = int(connection.execute(select(func.count()).select_from(pool)).scalar_one())
    planned = select(pool.c.id).order_by(pool.c.id).limit(limit).scalar_subquery()
    program = compile_program(sequence)
    matches = _matches(connection, compiler, program, planned)
    walker = _Walker(program, matches, start + timedelta(days=days))
    people = [_contact(row, sequence, default_timezone, start)
              for row in connection.execute(_contact_rows(sequence, planned))]  # fmt: skip
    for person in people:
        walker.walk(person)
    enrolled = sum(person.enrollment is not None for person in people)
    return Plan(
        sequence=sequence.name,
        start=start,
        days=days,
        enrolled=enrolled,
        new=len(people) - enrolled,
        available=available,
        sends=tuple(sorted(walker.sends, key=lambda s: (s.at, s.email, s.step_id))),
        actions=tuple(sorted(walker.actions, key=lambda a: (a.at, a.email, a.step_id))),
        step_order=tuple(step.id for step in sequence.sends()),
    )


@contextmanager
def read_only(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction the database refuses to write in; rolled back after."""
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            connection.execution_options(**{READ_ONLY: True})
            connection.exec_driver_sql("PRAGMA query_only = ON")
            connection.commit()
        else:
            connection.execute(text("SET TRANSACTION READ ONLY"))
        try:
            yield connection
        finally:
            connection.rollback()
            if sqlite:  # the pooled connection goes back writable
                connection.exec_driver_sql("PRAGMA query_only = OFF")
                connection.commit()
                connection.execution_options(**{READ_ONLY: False})


def _pool(
    sequence: Sequence, rules: EnrollmentRules, candidates: Select[int] | None, now: datetime
) -> Subquery:
    """``id`` of every contact to plan: active in the sequence, or admitted now."""
    active = select(enrollments.c.contact_id.label("id")).where(
        enrollments.c.sequence == sequence.name, enrollments.c.status == ACTIVE
    )
    if candidates is None:
        return active.subquery()
    admitted = candidates.where(*admission(sequence, rules, now)).order_by(None)
    return union_all(active, admitted).subquery()


def _matches(
    connection: Connection, compiler: SegmentCompiler, program: Program, planned: ScalarSelect[int]
) -> dict[int, set[int]]:
    """For every conditional instruction, the planned contacts its condition holds for."""
    conditions: dict[int, Condition] = {}
    for index, instruction in enumerate(program.instructions):
        if isinstance(instruction, Branch):
            conditions[index] = instruction.condition
        elif isinstance(instruction, SendStep) and instruction.when is not None:
            conditions[index] = instruction.when
    return {
        index: set(connection.execute(
            compiler.members_of(condition).where(contacts.c.id.in_(planned))).scalars())
        for index, condition in conditions.items()
    }  # fmt: skip


def _contact_rows(sequence: Sequence, planned: ScalarSelect[int]) -> Select[Any]:
    """Each planned contact with its zone, country and (if active here) its enrollment."""
    mine = and_(
        enrollments.c.contact_id == contacts.c.id,
        enrollments.c.sequence == sequence.name,
        enrollments.c.status == ACTIVE,
    )
    joined = contacts.outerjoin(accounts, contacts.c.account_id == accounts.c.id)
    columns = (contacts.c.id, contacts.c.email, contacts.c.timezone, accounts.c.country,
               enrollments.c.id, enrollments.c.step_index, enrollments.c.next_run_at)  # fmt: skip
    return (
        select(*columns)
        .select_from(joined.outerjoin(enrollments, mine))
        .where(contacts.c.id.in_(planned))
        .order_by(contacts.c.id)
    )


def _contact(row: Row[Any], sequence: Sequence, default: str, start: datetime) -> _Contact:
    contact_id, email, tz, country, enrollment, index, next_run = tuple(row)
    zone = contact_timezone(sequence.timezone or tz, country, None, default)  # as the runner
    if enrollment is None:  # new: from the first step, now
        return _Contact(contact_id, email, zone, country, 0, start, None)
    since = next_run if next_run is not None and next_run > start else start
    return _Contact(contact_id, email, zone, country, index, since, enrollment)


class _Walker:
    """Runs contacts through the program on a simulated clock, collecting what happens."""

    def __init__(self, program: Program, matches: dict[int, set[int]], end: datetime) -> None:
        self.program = program
        self.window = program.sequence.window
        self.matches = matches
        self.end = end
        self.sends: list[PlannedSend] = []
        self.actions: list[PlannedAction] = []

    def walk(self, person: _Contact) -> None:
        index, clock = person.index, person.since
        while clock <= self.end and (instruction := self.program.at(index)) is not None:
            if isinstance(instruction, ExitStep):
                self._act(person, instruction, clock)
                return
            index, clock = self._run(person, index, instruction, clock)

    def _run(
        self, person: _Contact, index: int, instruction: Instruction, clock: datetime
    ) -> tuple[int, datetime]:
        """The next position and the clock after one instruction."""
        if isinstance(instruction, Branch):
            taken = person.id in self.matches[index]
            return (index + 1 if taken else instruction.otherwise), clock
        if isinstance(instruction, Jump):
            return instruction.target, clock
        if isinstance(instruction, SendStep):
            return index + 1, self._send(person, instruction, index, clock)
        if isinstance(instruction, WaitStep):
            return index + 1, self._wait(person, instruction, clock)
        assert not isinstance(instruction, ExitStep)
        self._act(person, instruction, clock)
        return index + 1, clock

    def _send(self, person: _Contact, step: SendStep, index: int, clock: datetime) -> datetime:
        if step.when is not None and person.id not in self.matches[index]:
            return clock  # skipped: the condition does not hold today
        at = clock  # inside the window the runner sends at once; else at the next opening
        if next_open(self.window, clock, person.zone, person.country) > clock:
            # the runner's jitter key; a new contact has no enrollment id yet
            key = f"{person.enrollment or person.id}:{step.id}"
            at = schedule(self.window, clock, person.zone, person.country, key=key)
        if at <= self.end:
            variant = choose_variant(step.variants, person.id, self.program.sequence.name, step.id)
            self.sends.append(PlannedSend(person.id, person.email, step.id, step.template,
                                          variant, at, person.zone.key))  # fmt: skip
        return at

    def _wait(self, person: _Contact, step: WaitStep, clock: datetime) -> datetime:
        if step.business_days is not None:
            return add_business_days(clock, step.business_days, person.zone, person.country,
                                     self.window.days)  # fmt: skip
        if step.until is not None:
            return max(clock, step.until)
        return clock + (step.duration or timedelta())  # as the runner: elapsed time

    def _act(
        self, person: _Contact, step: StageStep | NotifyStep | ExitStep, clock: datetime
    ) -> None:
        if isinstance(step, StageStep):
            kind, detail = "stage", f"to {step.stage}"
        elif isinstance(step, NotifyStep):
            kind, detail = "notify", "owner" if step.owner else f"webhook {step.webhook}"
        else:
            kind, detail = "exit", step.reason
        self.actions.append(PlannedAction(person.id, person.email, step.id, kind, clock,
                                          person.zone.key, detail))  # fmt: skip
