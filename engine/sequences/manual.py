"""Enrolling contacts named by email, telling who was left out and why."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, select

from engine.contacts.suppressions import suppressed_among
from engine.sequences.enrolling import OPEN, EnrollmentRules, enroll, named_contacts
from engine.sequences.model import Sequence
from engine.storage.schema import contacts, enrollments

NO_CONTACT = "no contact with this email"
SUPPRESSED = "suppressed"
ALREADY_IN = "already in the sequence"
KEPT_OUT = "kept out by the re-enrollment policy or the outreach limit"


@dataclass
class NamedEnrollment:
    """How many entered, and ``(email, reason)`` for every address left out."""

    enrolled: int = 0
    left_out: list[tuple[str, str]] = field(default_factory=list)


def enroll_emails(
    connection: Connection,
    sequence: Sequence,
    emails: Iterable[str],
    rules: EnrollmentRules,
    now: datetime,
) -> NamedEnrollment:
    """Enroll the contacts with these addresses (set-based, like any enrollment)."""
    wanted = list(dict.fromkeys(e.strip().lower() for e in emails))
    query = select(contacts.c.email, contacts.c.id).where(contacts.c.email.in_(wanted))
    found = {str(email): int(contact_id) for email, contact_id in connection.execute(query)}
    before = _open_in(connection, sequence.name, found.values())
    result = NamedEnrollment()
    result.enrolled = enroll(connection, sequence, named_contacts(found.values()), rules, now)
    entered = _open_in(connection, sequence.name, found.values()) - before
    suppressed = suppressed_among(connection, found)
    for email in wanted:
        contact_id = found.get(email)
        if contact_id is None:
            result.left_out.append((email, NO_CONTACT))
        elif contact_id not in entered:
            why = (
                SUPPRESSED
                if email in suppressed
                else ALREADY_IN
                if contact_id in before
                else KEPT_OUT
            )
            result.left_out.append((email, why))
    return result


def _open_in(connection: Connection, sequence: str, contact_ids: Iterable[int]) -> set[int]:
    query = select(enrollments.c.contact_id).where(
        enrollments.c.sequence == sequence,
        enrollments.c.status.in_(OPEN),
        enrollments.c.contact_id.in_(list(contact_ids)),
    )
    return set(connection.execute(query).scalars())
