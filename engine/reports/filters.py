"""What a report covers: a period, an owner, a sequence; resolved against the database."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, select, union

from engine.errors import SalescycleError
from engine.storage.schema import contacts, enrollments, messages, owners, stage_history


class ReportFilterError(SalescycleError):
    """A filter value that matches nothing stored; the message names the valid choices."""


@dataclass(frozen=True)
class ReportFilter:
    """The period ``[since, until)`` (UTC instants) and an owner (email or name) or sequence."""

    since: datetime | None = None
    until: datetime | None = None
    owner: str | None = None
    sequence: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "owner": self.owner,
            "sequence": self.sequence,
        }


@dataclass(frozen=True)
class Scope:
    """A filter resolved to ids: the ``WHERE`` clauses every section adds."""

    since: datetime | None
    until: datetime | None
    owner_id: int | None
    sequence: str | None

    def period(self, column: Any) -> list[ColumnElement[bool]]:
        """``column`` within the period."""
        clauses: list[ColumnElement[bool]] = []
        if self.since is not None:
            clauses.append(column >= self.since)
        if self.until is not None:
            clauses.append(column < self.until)
        return clauses

    def contact(self, contact_id: Any) -> list[ColumnElement[bool]]:
        """Contacts of the owner, and (with a sequence) ever enrolled in it."""
        clauses: list[ColumnElement[bool]] = []
        if self.owner_id is not None:
            mine = select(contacts.c.id).where(contacts.c.owner_id == self.owner_id)
            clauses.append(contact_id.in_(mine))
        return clauses + self._enrolled(contact_id)

    def history(self) -> list[ColumnElement[bool]]:
        """Stage history rows of the owner (the one when the stage was entered) and of
        contacts ever enrolled in the sequence."""
        h = stage_history.c
        clauses: list[ColumnElement[bool]] = []
        if self.owner_id is not None:
            clauses.append(h.owner_id == self.owner_id)
        return clauses + self._enrolled(h.contact_id)

    def _enrolled(self, contact_id: Any) -> list[ColumnElement[bool]]:
        if self.sequence is None:
            return []
        enrolled = select(enrollments.c.contact_id).where(enrollments.c.sequence == self.sequence)
        return [contact_id.in_(enrolled)]

    def message(self) -> list[ColumnElement[bool]]:
        """Sent sequence messages in the period, of the owner's contacts and the sequence."""
        clauses: list[ColumnElement[bool]] = [
            messages.c.sent_at.is_not(None),
            messages.c.sequence.is_not(None),
        ]
        clauses += self.period(messages.c.sent_at)
        if self.sequence is not None:
            clauses.append(messages.c.sequence == self.sequence)
        if self.owner_id is not None:
            mine = select(contacts.c.id).where(contacts.c.owner_id == self.owner_id)
            clauses.append(messages.c.contact_id.in_(mine))
        return clauses


def resolve_filter(
    connection: Connection, wanted: ReportFilter, known_sequences: Collection[str] = ()
) -> Scope:
    """The filter as ids; raises :class:`ReportFilterError` naming the valid choices."""
    if wanted.since and wanted.until and wanted.since >= wanted.until:
        raise ReportFilterError(
            f"the period is empty: since {wanted.since:%Y-%m-%d %H:%M} is not before "
            f"until {wanted.until:%Y-%m-%d %H:%M}"
        )
    owner_id = _owner_id(connection, wanted.owner) if wanted.owner else None
    if wanted.sequence is not None:
        _check_sequence(connection, wanted.sequence, known_sequences)
    return Scope(wanted.since, wanted.until, owner_id, wanted.sequence)


def _owner_id(connection: Connection, wanted: str) -> int:
    rows = connection.execute(select(owners.c.id, owners.c.email, owners.c.name)).all()
    key = wanted.strip().casefold()
    found = [r for r in rows if key in (r.email.casefold(), (r.name or "").casefold())]
    if len(found) == 1:
        return int(found[0].id)
    choices = ", ".join(sorted(f"{r.name} <{r.email}>" if r.name else r.email for r in rows))
    if found:
        raise ReportFilterError(f"owner '{wanted}' is ambiguous; give the email: {choices}")
    raise ReportFilterError(f"unknown owner '{wanted}'; valid: {choices or '(no owners yet)'}")


def _check_sequence(connection: Connection, wanted: str, known: Collection[str]) -> None:
    stored = union(
        select(messages.c.sequence).where(messages.c.sequence.is_not(None)).distinct(),
        select(enrollments.c.sequence).distinct(),
    )
    valid = set(known) | {name for (name,) in connection.execute(stored)}
    if wanted not in valid:
        choices = ", ".join(sorted(valid)) or "(no sequences yet)"
        raise ReportFilterError(f"unknown sequence '{wanted}'; valid: {choices}")
