"""Importing a CRM export: streamed, batched, upserted by CRM id else email, bad rows kept aside."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from engine.contacts.mapping import CrmMapping, header_key
from engine.contacts.normalise import Binding, ImportRow, RejectedRow, RowNormaliser
from engine.contacts.reader import FileFormat, RecordSource, SourceRecord, detect_format
from engine.contacts.rejects import RejectsWriter
from engine.contacts.seen import SeenKeys
from engine.contacts.upsert import BatchOutcome, BatchUpserter
from engine.stages import Pipeline

Clock = Callable[[], datetime]
Progress = Callable[[int, int], None]  # (bytes read, total bytes)


def utc_now() -> datetime:
    """The current instant in UTC."""
    return datetime.now(UTC)


@dataclass
class ImportSummary:
    """What one import did; ``rows`` counts data rows read (rejected ones included)."""

    file: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    accounts_created: int = 0
    accounts_updated: int = 0
    owners_created: int = 0
    owners_updated: int = 0
    stage_changes: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    rejects_file: str | None = None
    seconds: float = 0.0

    def add(self, outcome: BatchOutcome) -> None:
        """Fold one batch's counts into the summary."""
        for name in (
            "created", "updated", "unchanged", "accounts_created", "accounts_updated",
            "owners_created", "owners_updated", "stage_changes",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(outcome, name))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ContactImporter:
    """Imports one file at a time into the database with one mapping and pipeline."""

    def __init__(
        self,
        engine: Engine,
        pipeline: Pipeline,
        mapping: CrmMapping,
        batch_size: int = 2000,
        clock: Clock = utc_now,
    ) -> None:
        self.engine = engine
        self.pipeline = pipeline
        self.normaliser = RowNormaliser(mapping)
        self.mapping = mapping
        self.batch_size = batch_size
        self.clock = clock

    def run(
        self,
        path: Path,
        rejects_path: Path,
        file_format: FileFormat | None = None,
        progress: Progress | None = None,
    ) -> ImportSummary:
        """Import ``path``; bad rows go to ``rejects_path`` with their line and reason."""
        started = time.perf_counter()
        summary = ImportSummary(file=str(path))
        with (
            RecordSource(path, detect_format(path, file_format)) as source,
            RejectsWriter(rejects_path, lambda: _rejects_header(source)) as rejects,
            SeenKeys() as seen,
        ):
            for batch in self._batches(source, summary, rejects):
                summary.add(self._apply(_drop_duplicates(batch, seen, rejects), rejects))
                if progress is not None:
                    progress(source.bytes_read, source.size)
            summary.rejected = rejects.count
            summary.rejects_file = str(rejects_path) if rejects.count else None
            summary.ignored_columns = self._ignored_columns(source.header)
        summary.seconds = time.perf_counter() - started
        return summary

    def _batches(
        self, source: RecordSource, summary: ImportSummary, rejects: RejectsWriter
    ) -> Iterator[list[ImportRow]]:
        batch: list[ImportRow] = []
        bindings: dict[frozenset[str], Binding] = {}
        for record in source.records():
            summary.rows += 1
            row = self._normalise(record, bindings, rejects)
            if row is not None:
                batch.append(row)
            if len(batch) >= self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _normalise(
        self, record: SourceRecord, bindings: dict[frozenset[str], Binding], rejects: RejectsWriter
    ) -> ImportRow | None:
        if record.error is not None:
            rejects.write(record.line, record.error, record.raw)
            return None
        available = frozenset(record.values)
        binding = bindings.get(available)
        if binding is None:
            binding = bindings[available] = Binding.bind(self.mapping, available)
        if "contact.email" not in binding.columns:
            reason = "no email field (see contact.email in the mapping)"
            rejects.write(record.line, reason, record.raw)
            return None
        try:
            row = self.normaliser.normalise(record.line, record.values, binding)
        except RejectedRow as exc:
            rejects.write(record.line, str(exc), record.raw)
            return None
        row.raw = record.raw
        return row

    def _ignored_columns(self, header: list[str]) -> list[str]:
        keys = [header_key(name) for name in header]
        unused = set(Binding.bind(self.mapping, keys).unused(keys))
        return [name for name, key in zip(header, keys, strict=True) if key in unused]

    def _apply(self, rows: list[ImportRow], rejects: RejectsWriter) -> BatchOutcome:
        """Upsert one batch in one transaction; on a conflict, retry row by row."""
        try:
            with self.engine.begin() as connection:
                return self._upsert(connection, rows, rejects)
        except IntegrityError:
            pass
        total = BatchOutcome()
        for row in rows:
            try:
                with self.engine.begin() as connection:
                    total.merge(self._upsert(connection, [row], rejects))
            except IntegrityError as exc:
                rejects.write(row.line, f"conflicts with stored data: {exc.orig}", row.raw)
        return total

    def _upsert(
        self, connection: Connection, rows: list[ImportRow], rejects: RejectsWriter
    ) -> BatchOutcome:
        upserter = BatchUpserter(connection, self.pipeline, self.clock())
        outcome = upserter.apply(rows)
        for row, reason in outcome.rejected:
            rejects.write(row.line, reason, row.raw)
        return outcome


def _drop_duplicates(
    rows: list[ImportRow], seen: SeenKeys, rejects: RejectsWriter
) -> list[ImportRow]:
    """Reject rows whose email or CRM id an earlier row of the file already used."""
    earlier = seen.earlier_lines(key for row in rows for key in _row_keys(row))
    accepted, added = [], []
    for row in rows:
        keys = _row_keys(row)
        first = next((earlier[k] for k in keys if k in earlier), None)
        if first is not None:
            what = "email" if keys[0] in earlier else "CRM id"
            rejects.write(row.line, f"duplicate {what}: already on line {first}", row.raw)
            continue
        earlier.update((k, row.line) for k in keys)
        added.extend((k, row.line) for k in keys)
        accepted.append(row)
    seen.add(added)
    return accepted


def _rejects_header(source: RecordSource) -> list[str]:
    cells = source.header if source.format == "csv" else ["record"]
    return ["line", "reason", *cells]


def _row_keys(row: ImportRow) -> list[str]:
    keys = [f"e:{row.email}"]
    if row.crm_id:
        keys.append(f"c:{row.crm_id}")
    return keys
