"""What a batch of enrollments needs to know before it sends, read in a few statements.

A worker runs the enrollments of one broker message together: instead of asking the
database once per enrollment (its contact, exit events, suppression, earlier messages,
the caps), ``RunBatch.read`` asks once per batch, and the run keeps these facts up to
date as it sends. Writes to the enrollments are collected in ``EnrollmentWrites`` and
go out as one statement per shape when the transaction ends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    LABEL_STYLE_TABLENAME_PLUS_COL,
    Connection,
    RowMapping,
    Table,
    func,
    select,
)

from engine.contacts.suppressions import suppressed_among
from engine.sequences.limits import SendLimits
from engine.sequences.model import STAGE_CHANGED, Sequence, SequenceKind
from engine.sequences.records import Enrolled, MessageStatus
from engine.storage.bulk import update_rows
from engine.storage.schema import (
    accounts,
    contacts,
    enrollments,
    events,
    messages,
    owners,
    stage_history,
)

_REPLIED = "replied"


@dataclass
class RunBatch:
    """The enrollments of one batch with the facts their runs read."""

    enrolled: list[Enrolled]
    # (contact id, event kind) -> the latest human event of that kind
    latest_events: dict[tuple[int, str], dt.datetime] = field(default_factory=dict)
    # contact id -> [(detail, latest change)] of its stage history
    stage_moves: dict[int, list[tuple[str | None, dt.datetime]]] = field(default_factory=dict)
    # account id -> [(contact id, email, latest reply)]
    account_replies: dict[int, list[tuple[int, str, dt.datetime]]] = field(default_factory=dict)
    suppressed: set[str] = field(default_factory=set)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # by idempotency key
    last_sent: dict[int, dt.datetime] = field(default_factory=dict)  # by contact id
    sent_today: dict[str, int] = field(default_factory=dict)  # by sender address

    @classmethod
    def read(
        cls,
        connection: Connection,
        enrollment_ids: Collection[int],
        sequences: Mapping[str, Sequence],
        sender_of: Callable[[Enrolled], str],
        limits: SendLimits,
        now: dt.datetime,
    ) -> RunBatch:
        """Load the enrollments and every fact their runs need; ``sender_of`` says which
        address would send an enrollment's next email (for the daily cap)."""
        batch = cls(load_enrolled(connection, enrollment_ids))
        if not batch.enrolled:
            return batch
        contact_ids = {int(e.contact["id"]) for e in batch.enrolled}
        running = [sequences[s] for s in {str(e.row["sequence"]) for e in batch.enrolled}
                   if s in sequences]  # fmt: skip
        batch._read_exit_facts(connection, contact_ids, running)
        emails = {str(e.contact["email"]).lower() for e in batch.enrolled}
        batch.suppressed = suppressed_among(connection, emails)  # plain or erased (hashed)
        ids = [e.id for e in batch.enrolled]
        for row in connection.execute(select(messages).where(messages.c.enrollment_id.in_(ids))):
            batch.messages[str(row.idempotency_key)] = dict(row._mapping)
        senders = {sender_of(e).lower() for e in batch.enrolled}
        batch._read_caps(connection, contact_ids, senders, limits, now)
        return batch

    # facts ------------------------------------------------------------------------------

    def exit_reason(self, enrolled: Enrolled, sequence: Sequence) -> str | None:
        """The first ``exit_when`` rule met since the contact enrolled, if any."""
        since, contact_id = enrolled.row["enrolled_at"], int(enrolled.contact["id"])
        for kind in sorted(sequence.exit_when - {STAGE_CHANGED}):
            latest = self.latest_events.get((contact_id, kind))
            if latest is not None and latest >= since:
                return kind
        if STAGE_CHANGED in sequence.exit_when:
            own = f"enrollment {enrolled.id}"  # the sequence's own stage steps do not count
            for detail, changed_at in self.stage_moves.get(contact_id, ()):
                if detail != own and changed_at > since:
                    return STAGE_CHANGED
        return None

    def colleague_replied(self, enrolled: Enrolled, sequence: Sequence) -> str | None:
        """With ``account_stop``, the address of someone at the contact's account who replied."""
        account_id = enrolled.contact.get("account_id")
        if not sequence.account_stop or sequence.kind is not SequenceKind.OUTREACH:
            return None
        for contact_id, email, replied_at in self.account_replies.get(account_id or 0, ()):
            if contact_id != enrolled.contact["id"] and replied_at >= enrolled.row["enrolled_at"]:
                return email
        return None

    def is_suppressed(self, email: str) -> bool:
        return email.lower() in self.suppressed

    def message(self, enrollment_id: int, step_id: str | None) -> dict[str, Any] | None:
        """The message a step of an enrollment wrote, if any."""
        return None if step_id is None else self.messages.get(f"{enrollment_id}:{step_id}")

    def allowed_at(
        self, limits: SendLimits, contact_id: int, sender: str, now: dt.datetime
    ) -> dt.datetime | None:
        """When the caps next allow an email to this contact from this sender; ``None``: now."""
        later = []
        last = self.last_sent.get(contact_id)
        if limits.contact_gap is not None and last is not None and last + limits.contact_gap > now:
            later.append(last + limits.contact_gap)
        cap = limits.owner_daily_cap
        if cap is not None and self.sent_today.get(sender.lower(), 0) >= cap:
            later.append(_midnight(now) + dt.timedelta(days=1))
        return max(later) if later else None

    def count_send(self, contact_id: int, sender: str, now: dt.datetime) -> None:
        """Count a send this batch is about to make towards the caps."""
        self.last_sent[contact_id] = now
        self.sent_today[sender.lower()] = self.sent_today.get(sender.lower(), 0) + 1

    # reading ----------------------------------------------------------------------------

    def _read_exit_facts(
        self, connection: Connection, contact_ids: set[int], running: Iterable[Sequence]
    ) -> None:
        running = list(running)
        since = min(e.row["enrolled_at"] for e in self.enrolled)
        kinds = set().union(*(s.exit_when - {STAGE_CHANGED} for s in running))
        if any(s.account_stop and s.kind is SequenceKind.OUTREACH for s in running):
            kinds.add(_REPLIED)
        if kinds:
            query = (
                select(events.c.contact_id, events.c.kind, func.max(events.c.occurred_at))
                .where(events.c.contact_id.in_(contact_ids), events.c.kind.in_(sorted(kinds)),
                       events.c.occurred_at >= since, events.c.machine.is_(False))
                .group_by(events.c.contact_id, events.c.kind)
            )  # fmt: skip
            for contact_id, kind, latest in connection.execute(query):
                self.latest_events[(int(contact_id), str(kind))] = latest
        if any(STAGE_CHANGED in s.exit_when for s in running):
            query = (
                select(stage_history.c.contact_id, stage_history.c.detail,
                       func.max(stage_history.c.changed_at))
                .where(stage_history.c.contact_id.in_(contact_ids),
                       stage_history.c.changed_at > since)
                .group_by(stage_history.c.contact_id, stage_history.c.detail)
            )  # fmt: skip
            for contact_id, detail, latest in connection.execute(query):
                self.stage_moves.setdefault(int(contact_id), []).append((detail, latest))
        if any(s.account_stop and s.kind is SequenceKind.OUTREACH for s in running):
            self._read_account_replies(connection, since)

    def _read_account_replies(self, connection: Connection, since: dt.datetime) -> None:
        account_ids = {int(a) for e in self.enrolled if (a := e.contact.get("account_id"))}
        if not account_ids:
            return
        query = (
            select(contacts.c.account_id, contacts.c.id, contacts.c.email,
                   func.max(events.c.occurred_at))
            .join(events, events.c.contact_id == contacts.c.id)
            .where(contacts.c.account_id.in_(account_ids), events.c.kind == _REPLIED,
                   events.c.machine.is_(False), events.c.occurred_at >= since)
            .group_by(contacts.c.account_id, contacts.c.id, contacts.c.email)
        )  # fmt: skip
        for account_id, contact_id, email, latest in connection.execute(query):
            self.account_replies.setdefault(int(account_id), []).append(
                (int(contact_id), str(email), latest)
            )

    def _read_caps(
        self, connection: Connection, contact_ids: set[int], senders: set[str],
        limits: SendLimits, now: dt.datetime,
    ) -> None:  # fmt: skip
        sent = messages.c.status == MessageStatus.SENT
        if limits.contact_gap is not None:
            query = (
                select(messages.c.contact_id, func.max(messages.c.sent_at))
                .where(messages.c.contact_id.in_(contact_ids), sent,
                       messages.c.sent_at > now - limits.contact_gap)
                .group_by(messages.c.contact_id)
            )  # fmt: skip
            self.last_sent = {int(c): at for c, at in connection.execute(query)}
        if limits.owner_daily_cap is not None and senders:
            query = (
                select(messages.c.from_email, func.count())
                .where(messages.c.from_email.in_(sorted(senders)), sent,
                       messages.c.sent_at >= _midnight(now))
                .group_by(messages.c.from_email)
            )  # fmt: skip
            self.sent_today = {str(s).lower(): int(n) for s, n in connection.execute(query)}


def load_enrolled(connection: Connection, enrollment_ids: Collection[int]) -> list[Enrolled]:
    """The enrollments with their contacts, accounts and owners, in one query."""
    query = (
        select(enrollments, contacts, accounts, owners)
        .select_from(
            enrollments.join(contacts, contacts.c.id == enrollments.c.contact_id)
            .outerjoin(accounts, accounts.c.id == contacts.c.account_id)
            .outerjoin(owners, owners.c.id == contacts.c.owner_id)
        )
        .where(enrollments.c.id.in_(list(enrollment_ids)))
        .order_by(enrollments.c.id)
        .set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)
    )
    tables = (enrollments, contacts, accounts, owners)
    names = {t.name: [(c.name, f"{t.name}_{c.name}") for c in t.columns] for t in tables}

    def part(row: RowMapping, table: Table) -> dict[str, Any] | None:
        values = {name: row[label] for name, label in names[table.name]}
        return None if values["id"] is None else values

    loaded = []
    for row in connection.execute(query).mappings():
        enrollment, contact = part(row, enrollments), part(row, contacts)
        assert enrollment is not None and contact is not None
        loaded.append(Enrolled(enrollment, contact, part(row, accounts), part(row, owners)))
    return loaded


class EnrollmentWrites:
    """Changes to enrollment rows, collected during a run and written when it commits.

    Later changes to one enrollment override earlier ones column by column, so a run
    that moves an enrollment and then pauses it writes both its step and its status.
    """

    def __init__(self) -> None:
        self._changes: dict[int, dict[str, Any]] = {}

    def change(self, enrollment_id: int, values: Mapping[str, Any]) -> None:
        self._changes.setdefault(enrollment_id, {}).update(values)

    def discard(self, enrollment_id: int) -> None:
        """Forget what a failed run of this enrollment meant to write."""
        self._changes.pop(enrollment_id, None)

    def flush(self, connection: Connection) -> None:
        """One UPDATE statement per set of changed columns; then start afresh."""
        update_rows(connection, enrollments, self._changes)
        self._changes.clear()


def _midnight(now: dt.datetime) -> dt.datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)
