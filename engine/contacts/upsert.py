"""Set-based upsert of one batch of import rows: owners, accounts, contacts, stage history.

Every value is compared with what is stored and only real changes are written, so
re-importing the same file writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    Table,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from engine.contacts.normalise import AccountValues, ImportRow
from engine.contacts.suppressions import erased_among
from engine.stages import Pipeline, StageChange, record_stage_changes
from engine.storage.bulk import execute_many
from engine.storage.schema import accounts, contacts, owners
from engine.vocabulary import StageCause

_COMPARED_CONTACT_COLUMNS = (
    "email", "crm_id", "first_name", "last_name", "title", "phone", "timezone", "locale",
    "account_id", "owner_id", "stage", "attributes",
)  # fmt: skip
_CONTACT_COLUMNS = (*_COMPARED_CONTACT_COLUMNS, "stage_entered_at")
_ACCOUNT_COLUMNS = ("crm_id", "name", "name_key", "domain", "industry", "country", "employees")


@dataclass
class UpsertCounts:
    """What upserting did to contacts, accounts and owners."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    accounts_created: int = 0
    accounts_updated: int = 0
    owners_created: int = 0
    owners_updated: int = 0
    stage_changes: int = 0

    def add(self, other: UpsertCounts) -> None:
        """Add ``other``'s counts to these."""
        for count in fields(UpsertCounts):
            setattr(self, count.name, getattr(self, count.name) + getattr(other, count.name))


@dataclass
class BatchOutcome(UpsertCounts):
    """Counts for one batch, and the rows the database step refused."""

    rejected: list[tuple[ImportRow, str]] = field(default_factory=list)

    def merge(self, other: BatchOutcome) -> None:
        """Add ``other``'s counts and rejected rows to this one."""
        self.add(other)
        self.rejected.extend(other.rejected)


def upsert_batch(
    engine: Engine, pipeline: Pipeline, rows: list[ImportRow], now: datetime
) -> BatchOutcome:
    """Upsert one batch in one transaction; on a conflict with stored data, one
    transaction per row, so the good rows go in and each conflicting one is rejected."""

    def upsert(part: list[ImportRow]) -> BatchOutcome:
        with engine.begin() as connection:
            return BatchUpserter(connection, pipeline, now).apply(part)

    try:
        return upsert(rows)
    except IntegrityError:
        outcome = BatchOutcome()
        for row in rows:
            try:
                outcome.merge(upsert([row]))
            except IntegrityError as exc:
                outcome.rejected.append((row, f"conflicts with stored data: {exc.orig}"))
        return outcome


class BatchUpserter:
    """Applies one batch inside the caller's transaction."""

    def __init__(self, connection: Connection, pipeline: Pipeline, now: datetime) -> None:
        self.connection = connection
        self.pipeline = pipeline
        self.now = now
        self.outcome = BatchOutcome()

    def apply(self, rows: Sequence[ImportRow]) -> BatchOutcome:
        """Upsert ``rows`` (already free of duplicates within the file)."""
        owner_ids = self._owners(rows)
        account_ids = self._accounts(row.account for row in rows if row.account is not None)
        self._contacts(rows, owner_ids, account_ids)
        return self.outcome

    def apply_accounts(self, values: Iterable[AccountValues]) -> BatchOutcome:
        """Upsert accounts on their own (without contacts)."""
        self._accounts(values)
        return self.outcome

    # owners -----------------------------------------------------------------

    def _owners(self, rows: Sequence[ImportRow]) -> dict[str, int]:
        wanted: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row.owner is not None:
                wanted.setdefault(row.owner["email"], {}).update(
                    {k: v for k, v in row.owner.items() if v is not None}
                )
        stored = self._select(owners, owners.c.email, wanted)
        ids = {email: int(r["id"]) for email, r in stored.items()}
        new = [
            {"email": e, "name": v.get("name"), "created_at": self.now, "updated_at": self.now}
            for e, v in wanted.items()
            if e not in stored
        ]
        ids.update((e, i) for (e,), i in self._insert_new(owners, new, ("email",)).items())
        changed = [
            {"b_id": stored[e]["id"], "name": v["name"], "updated_at": self.now}
            for e, v in wanted.items()
            if e in stored and v.get("name") is not None and stored[e]["name"] != v["name"]
        ]
        self._update(owners, changed)
        self.outcome.owners_created += len(new)
        self.outcome.owners_updated += len(changed)
        return ids

    # accounts ---------------------------------------------------------------

    def _accounts(self, described: Iterable[AccountValues]) -> dict[tuple[str, str], int]:
        wanted: dict[tuple[str, str], AccountValues] = {}
        for account in described:
            current = wanted.setdefault(account.key, AccountValues(account.key, {}, {}))
            current.fields.update(account.fields)
            current.attributes.update(account.attributes)
        stored = self._stored_accounts(wanted)
        ids: dict[tuple[str, str], int] = {}
        new_rows, changed = [], []
        for key, values in wanted.items():
            existing = stored.get(key)
            if existing is None:
                new_rows.append(self._new_account(values))
                continue
            ids[key] = int(existing["id"])
            desired = _account_values(values, existing)
            if any(desired[c] != existing[c] for c in desired):
                changed.append({"b_id": existing["id"], **desired, "updated_at": self.now})
        inserted = self._insert_new(accounts, new_rows, ("crm_id", "domain", "name_key"))
        ids.update((_account_key(*values), i) for values, i in inserted.items())
        self._update(accounts, changed)
        self.outcome.accounts_created += len(new_rows)
        self.outcome.accounts_updated += len(changed)
        return ids

    def _stored_accounts(
        self, wanted: dict[tuple[str, str], AccountValues]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        by_kind: dict[str, list[str]] = {"crm_id": [], "domain": [], "name": []}
        for kind, value in wanted:
            by_kind[kind].append(value)
        column_of = {"crm_id": accounts.c.crm_id, "domain": accounts.c.domain,
                     "name": accounts.c.name_key}  # fmt: skip
        stored: dict[tuple[str, str], dict[str, Any]] = {}
        for kind, values in by_kind.items():
            if not values:
                continue
            column = column_of[kind]
            query = select(accounts).where(column.in_(values)).order_by(accounts.c.id.desc())
            for record in self.connection.execute(query).mappings():
                stored[(kind, record[column.name])] = dict(record)  # lowest id wins
        return stored

    def _new_account(self, values: AccountValues) -> dict[str, Any]:
        kind, key_value = values.key
        name = values.fields.get("name") or values.fields.get("domain") or key_value
        record: dict[str, Any] = dict.fromkeys(_ACCOUNT_COLUMNS)
        record.update(values.fields)
        record.update(
            name=name,
            name_key=name.casefold(),
            crm_id=key_value if kind == "crm_id" else None,
            attributes=_merge_attributes({}, values.attributes),
            created_at=self.now,
            updated_at=self.now,
        )
        return record

    # contacts ---------------------------------------------------------------

    def _contacts(
        self,
        rows: Sequence[ImportRow],
        owner_ids: dict[str, int],
        account_ids: dict[tuple[str, str], int],
    ) -> None:
        by_crm, by_email = self._stored_contacts(rows)
        erased = erased_among(self.connection, (row.email for row in rows))
        targeted: dict[int, int] = {}
        new_rows: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        stage_changes: list[StageChange] = []
        for row in rows:
            existing, conflict = _match(row, by_crm, by_email)
            if existing is not None and existing["id"] in targeted:
                conflict = f"matches the same contact as line {targeted[existing['id']]}"
            if row.email in erased:
                conflict = "the person at this address asked to be erased; not imported"
            if conflict is not None:
                self.outcome.rejected.append((row, conflict))
                continue
            links = _links(row, owner_ids, account_ids)
            if existing is None:
                new_rows.append(self._new_contact(row, links))
                continue
            targeted[existing["id"]] = row.line
            desired = self._contact_values(row, links, existing)
            if desired["stage"] != existing["stage"]:
                stage_changes.append(
                    StageChange(existing["id"], existing["stage"], desired["stage"])
                )
            if any(desired[c] != existing[c] for c in desired):
                changed.append({"b_id": existing["id"], **desired, "updated_at": self.now})
            else:
                self.outcome.unchanged += 1
        new_ids = {e: i for (e,), i in self._insert_new(contacts, new_rows, ("email",)).items()}
        stage_changes.extend(StageChange(new_ids[r["email"]], None, r["stage"]) for r in new_rows)
        self._update_contacts(changed, {c.contact_id for c in stage_changes})
        record_stage_changes(self.connection, stage_changes, StageCause.CRM, self.now)
        self.outcome.created += len(new_rows)
        self.outcome.updated += len(changed)
        self.outcome.stage_changes += len(stage_changes)

    def _stored_contacts(
        self, rows: Sequence[ImportRow]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """Stored contacts sharing a CRM id or an email with ``rows``, in one query."""
        crm_ids = [r.crm_id for r in rows if r.crm_id]
        emails = [r.email for r in rows]
        match: ColumnElement[bool] = contacts.c.email.in_(emails)
        if crm_ids:
            match = or_(contacts.c.crm_id.in_(crm_ids), match)
        columns = [contacts.c.id, *(contacts.c[name] for name in _COMPARED_CONTACT_COLUMNS)]
        by_crm, by_email = {}, {}
        for record in self.connection.execute(select(*columns).where(match)):
            stored = record._asdict()
            if stored["crm_id"]:
                by_crm[stored["crm_id"]] = stored
            by_email[stored["email"]] = stored
        return by_crm, by_email

    def _new_contact(self, row: ImportRow, links: dict[str, int | None]) -> dict[str, Any]:
        record: dict[str, Any] = dict.fromkeys(_CONTACT_COLUMNS)
        record.update(row.fields)
        record.update({k: v for k, v in links.items() if v is not None})
        record.update(
            email=row.email,
            crm_id=row.crm_id,
            stage=row.stage or self.pipeline.initial,
            stage_entered_at=self.now,
            attributes=_merge_attributes({}, row.attributes),
            created_at=self.now,
            updated_at=self.now,
        )
        return record

    def _contact_values(
        self, row: ImportRow, links: dict[str, int | None], existing: dict[str, Any]
    ) -> dict[str, Any]:
        desired = {column: existing[column] for column in _COMPARED_CONTACT_COLUMNS}
        desired.update(row.fields)
        desired.update(links)
        desired["email"] = row.email
        if row.crm_id:
            desired["crm_id"] = row.crm_id
        desired["attributes"] = _merge_attributes(existing["attributes"], row.attributes)
        if row.stage is not None:
            desired["stage"] = row.stage
        return desired

    def _update_contacts(self, changed: list[dict[str, Any]], moved: set[int]) -> None:
        """Update changed contacts; those whose stage moved also restart their stage clock."""
        self._update(contacts, [r for r in changed if r["b_id"] not in moved])
        moving = [{**r, "stage_entered_at": self.now} for r in changed if r["b_id"] in moved]
        self._update(contacts, moving)

    # statements ---------------------------------------------------------------

    def _select(
        self, table: Table, column: Column[Any], values: Iterable[str]
    ) -> dict[str, dict[str, Any]]:
        wanted = list(values)
        if not wanted:
            return {}
        query = select(table).where(column.in_(wanted))
        return {r[column.name]: dict(r) for r in self.connection.execute(query).mappings()}

    def _insert_new(
        self, table: Table, rows: list[dict[str, Any]], columns: tuple[str, ...]
    ) -> dict[tuple[Any, ...], int]:
        """Insert ``rows``; the new ids by the values of ``columns`` (unique among them).

        Ids handed out after the first read are all larger, even with concurrent
        writers, so the new rows are read back by id range, not by a long IN list.
        """
        if not rows:
            return {}
        before = self.connection.execute(select(func.max(table.c.id))).scalar() or 0
        execute_many(self.connection, insert(table), rows)
        wanted = {tuple(row[c] for c in columns) for row in rows}
        query = select(table.c.id, *(table.c[c] for c in columns)).where(table.c.id > before)
        ids = {}
        for new_id, *values in self.connection.execute(query):
            if (key := tuple(values)) in wanted:
                ids[key] = int(new_id)
        return ids

    def _update(self, table: Table, rows: list[dict[str, Any]]) -> None:
        statement = update(table).where(table.c.id == bindparam("b_id"))
        execute_many(self.connection, statement, rows)


def _match(
    row: ImportRow, by_crm: dict[str, dict[str, Any]], by_email: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any] | None, str | None]:
    """The stored contact a row updates (by CRM id, else email), or why it cannot."""
    same_crm = by_crm.get(row.crm_id) if row.crm_id else None
    same_email = by_email.get(row.email)
    if same_crm is not None:
        if same_email is not None and same_email["id"] != same_crm["id"]:
            other = same_email["crm_id"] or "none"
            return None, f"email {row.email} belongs to another contact (CRM id {other})"
        return same_crm, None
    if same_email is not None and same_email["crm_id"] and row.crm_id:
        return None, f"email {row.email} belongs to CRM id {same_email['crm_id']}"
    return same_email, None


def _links(
    row: ImportRow, owner_ids: dict[str, int], account_ids: dict[tuple[str, str], int]
) -> dict[str, int | None]:
    links: dict[str, int | None] = {}
    if row.owner is not None:
        links["owner_id"] = owner_ids[row.owner["email"]]
    if row.account is not None:
        links["account_id"] = account_ids[row.account.key]
    return links


def _account_key(crm_id: str | None, domain: str | None, name_key: str) -> tuple[str, str]:
    """The key a stored account is matched by: CRM id, else domain, else name (see normalise)."""
    if crm_id:
        return ("crm_id", crm_id)
    return ("domain", domain) if domain else ("name", name_key)


def _account_values(values: AccountValues, existing: dict[str, Any]) -> dict[str, Any]:
    desired = {column: existing[column] for column in _ACCOUNT_COLUMNS}
    desired.update(values.fields)
    desired["name_key"] = desired["name"].casefold()
    desired["attributes"] = _merge_attributes(existing["attributes"], values.attributes)
    return desired


def _merge_attributes(stored: dict[str, Any], mapped: dict[str, Any]) -> dict[str, Any]:
    """Mapped fields replace stored ones (blank removes); others, set elsewhere, stay."""
    merged = dict(stored)
    for name, value in mapped.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged
