"""Upserting records that arrive one by one (the CRM API) the way an import upserts rows.

A record is a mapping of field keys (``contact.email``, ``account.name``,
``attributes.lead_score``, as ``config/crm.yaml`` names them) to text; a key left out
keeps the stored value, an empty text blanks it. Bad records are reported by index and
the good ones stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Engine

from engine.clock import Clock, utc_now
from engine.contacts.mapping import CrmMapping
from engine.contacts.normalise import AccountValues, ImportRow, RejectedRow, RowNormaliser
from engine.contacts.upsert import BatchOutcome, BatchUpserter, upsert_batch
from engine.stages import Pipeline

Record = Mapping[str, str]


@dataclass
class RecordsOutcome:
    """What upserting records did, and ``(index, reason)`` for every record not stored."""

    counts: BatchOutcome = field(default_factory=BatchOutcome)
    errors: list[tuple[int, str]] = field(default_factory=list)


class RecordUpserter:
    """Normalises and upserts batches of records with one mapping and pipeline."""

    def __init__(
        self, engine: Engine, pipeline: Pipeline, mapping: CrmMapping, clock: Clock = utc_now
    ) -> None:
        self.engine = engine
        self.pipeline = pipeline
        self.normaliser = RowNormaliser(mapping)
        self.clock = clock

    def contacts(self, records: Iterable[tuple[int, Record]]) -> RecordsOutcome:
        """Upsert ``(index, record)`` contacts (with their owners and accounts); the index
        of each bad one."""
        outcome = RecordsOutcome()
        rows: list[ImportRow] = []
        first_of: dict[str, int] = {}
        for index, record in records:
            try:
                row = self.normaliser.normalise(index, dict(record))
            except RejectedRow as exc:
                outcome.errors.append((index, str(exc)))
                continue
            keys = [f"email {row.email}"] + ([f"CRM id {row.crm_id}"] if row.crm_id else [])
            earlier = next((k for k in keys if k in first_of), None)
            if earlier is not None:
                outcome.errors.append((index, f"duplicate {earlier}: already at index "
                                              f"{first_of[earlier]}"))  # fmt: skip
                continue
            first_of.update((k, index) for k in keys)
            rows.append(row)
        outcome.counts = self._apply(rows, outcome.errors)
        outcome.errors.sort()
        return outcome

    def accounts(self, records: Iterable[tuple[int, Record]]) -> RecordsOutcome:
        """Upsert ``(index, record)`` accounts on their own; the index of each bad one."""
        outcome = RecordsOutcome()
        described: list[AccountValues] = []
        for index, record in records:
            try:
                account = self.normaliser.account(dict(record))
            except RejectedRow as exc:
                outcome.errors.append((index, str(exc)))
                continue
            if account is None:
                outcome.errors.append((index, "an account needs a crm_id, a domain or a name"))
                continue
            described.append(account)
        with self.engine.begin() as connection:
            upserter = BatchUpserter(connection, self.pipeline, self.clock())
            outcome.counts = upserter.apply_accounts(described)
        outcome.errors.sort()
        return outcome

    def _apply(self, rows: list[ImportRow], errors: list[tuple[int, str]]) -> BatchOutcome:
        """One transaction; on a conflict with stored data, one transaction per row."""
        outcome = upsert_batch(self.engine, self.pipeline, rows, self.clock())
        for row, reason in outcome.rejected:
            errors.append((row.line, reason.replace(" as line ", " as index ")))
        return outcome
