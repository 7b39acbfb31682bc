"""Contacts a referral reply names ("talk to my colleague ana@acme.example"), for review.

Each named address becomes a contact of the referrer's owner and account, at the
pipeline's initial stage, linked to the referrer (``referred_by_id``) and marked
``{"referred_by": EMAIL, "needs_review": true}`` so no segment picks it up unseen,
unless the address is already a contact, is suppressed, or is not an address at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from engine.contacts.normalise import RejectedRow, normalise_email
from engine.contacts.suppressions import suppressed_among
from engine.stages import StageChange, record_stage_changes
from engine.storage.schema import contacts
from engine.vocabulary import StageCause

_OURS = ("reply+", "unsubscribe+")  # our own reply addresses are no one's colleague


def add_referrals(
    connection: Connection,
    referrer: Mapping[str, Any],
    addresses: Iterable[str],
    initial_stage: str,
    now: dt.datetime,
) -> list[int]:
    """Create the contacts ``referrer`` named; the ids of those created."""
    wanted = _addresses(addresses) - {str(referrer["email"]).lower()}
    if not wanted:
        return []
    existing = set(
        connection.execute(
            select(contacts.c.email).where(contacts.c.email.in_(sorted(wanted)))
        ).scalars()
    )
    fresh = sorted(wanted - existing - suppressed_among(connection, wanted))
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    created: list[int] = []
    for email in fresh:
        statement = (
            dialect.insert(contacts)
            .values(
                email=email,
                account_id=referrer["account_id"],
                owner_id=referrer["owner_id"],
                stage=initial_stage,
                stage_entered_at=now,
                referred_by_id=referrer["id"],
                attributes={"referred_by": str(referrer["email"]), "needs_review": True},
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["email"])
            .returning(contacts.c.id)
        )
        created += [int(i) for i in connection.execute(statement).scalars()]
    detail = f"referred by {referrer['email']}"
    changes = [StageChange(contact_id, None, initial_stage, detail) for contact_id in created]
    record_stage_changes(connection, changes, StageCause.REPLY, now)
    return created


def _addresses(addresses: Iterable[str]) -> set[str]:
    found = set()
    for address in addresses:
        try:
            email = normalise_email(address.strip())
        except RejectedRow:
            continue
        if not email.startswith(_OURS):
            found.add(email)
    return found
