"""Importing a CRM export: streamed, batched, upserted by CRM id else email, bad rows kept aside."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from engine.clock import Clock, utc_now
from engine.contacts.batches import PARALLEL_FROM_BYTES, read_batches, read_batches_in_child
from engine.contacts.mapping import CrmMapping, header_key
from engine.contacts.normalise import Binding, ImportRow
from engine.contacts.reader import FileFormat, detect_format
from engine.contacts.rejects import RejectsWriter
from engine.contacts.upsert import BatchOutcome, UpsertCounts, upsert_batch
from engine.errors import InputFileError
from engine.stages import Pipeline

Progress = Callable[[int, int], None]  # (bytes read, total bytes)


@dataclass
class ImportSummary(UpsertCounts):
    """What one import did; ``rows`` counts data rows read (rejected ones included)."""

    file: str = ""
    rows: int = 0
    rejected: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    rejects_file: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-friendly values, file and row counts first."""
        data = asdict(self)
        return {key: data.pop(key) for key in ("file", "rows", "rejected")} | data


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
        self.mapping = mapping
        self.batch_size = batch_size
        self.clock = clock

    def run(
        self,
        path: Path,
        rejects_path: Path,
        file_format: FileFormat | None = None,
        progress: Progress | None = None,
        parallel: bool | None = None,
    ) -> ImportSummary:
        """Import ``path``; bad rows go to ``rejects_path`` with their line and reason.

        ``parallel`` reads in a child process (default: for files over 8 MiB).
        """
        started = time.perf_counter()
        summary = ImportSummary(file=str(path))
        fmt = detect_format(path, file_format)
        if not path.is_file():
            raise InputFileError(f"{path}: no such file")
        size = path.stat().st_size
        if parallel is None:
            parallel = size >= PARALLEL_FROM_BYTES
        reader = read_batches_in_child if parallel else read_batches
        header: list[str] = []
        with RejectsWriter(rejects_path, lambda: _rejects_header(fmt, header)) as rejects:
            for batch in reader(path, fmt, self.mapping, self.batch_size):
                header[:] = batch.header
                summary.rows += batch.records
                for line, reason, raw in batch.rejects:
                    rejects.write(line, reason, raw)
                summary.add(self._apply(batch.rows, rejects))
                if progress is not None:
                    progress(batch.bytes_read, size)
            summary.rejected = rejects.count
            summary.rejects_file = str(rejects_path) if rejects.count else None
        summary.ignored_columns = self._ignored_columns(header)
        summary.seconds = time.perf_counter() - started
        return summary

    def _ignored_columns(self, header: list[str]) -> list[str]:
        keys = [header_key(name) for name in header]
        unused = set(Binding.bind(self.mapping, keys).unused(keys))
        return [name for name, key in zip(header, keys, strict=True) if key in unused]

    def _apply(self, rows: list[ImportRow], rejects: RejectsWriter) -> BatchOutcome:
        """Upsert one batch in one transaction; on a conflict, retry row by row."""
        outcome = upsert_batch(self.engine, self.pipeline, rows, self.clock())
        for row, reason in outcome.rejected:
            rejects.write(row.line, reason, row.raw)
        return outcome


def _rejects_header(file_format: FileFormat, header: list[str]) -> list[str]:
    cells = header if file_format == "csv" else ["record"]
    return ["line", "reason", *cells]
