"""The read side of an import: records to clean, de-duplicated batches, in this process or another.

Reading and normalising is pure CPU work that does not touch the database, so a
large file is read in a child process while this one writes: two cores, two stages.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.contacts.mapping import CrmMapping
from engine.contacts.normalise import Binding, ImportRow, RejectedRow, RowNormaliser, pack_cells
from engine.contacts.reader import FileFormat, RecordSource, SourceRecord
from engine.contacts.seen import SeenKeys
from engine.errors import InputFileError

PARALLEL_FROM_BYTES = 8 * 1024 * 1024
_QUEUE_DEPTH = 4  # batches in flight: bounds memory whatever the file size
_POLL_SECONDS = 1.0


@dataclass(slots=True)
class ReadBatch:
    """Up to ``batch_size`` clean rows, the records rejected while reading them, and progress."""

    header: list[str] = field(default_factory=list)
    records: int = 0
    rows: list[ImportRow] = field(default_factory=list)
    rejects: list[tuple[int, str, list[str]]] = field(default_factory=list)
    bytes_read: int = 0


def read_batches(
    path: Path, file_format: FileFormat, mapping: CrmMapping, batch_size: int
) -> Iterator[ReadBatch]:
    """Read, normalise and de-duplicate ``path`` batch by batch, in this process.

    When the file breaks off (an unreadable record), the rows read before it are
    still yielded, then the error is raised.
    """
    normaliser = RowNormaliser(mapping)
    bindings: dict[tuple[str, ...], Binding] = {}
    with RecordSource(path, file_format) as source, SeenKeys() as seen:
        batch = ReadBatch()
        try:
            for record in source.records():
                batch.records += 1
                binding = _binding(bindings, mapping, record.keys, source)
                _read_into(batch, record, normaliser, binding)
                if len(batch.rows) >= batch_size:
                    yield _finish(batch, seen, source)
                    batch = ReadBatch()
        except InputFileError:
            yield _finish(batch, seen, source)
            raise
        yield _finish(batch, seen, source)


def _read_into(
    batch: ReadBatch, record: SourceRecord, normaliser: RowNormaliser, binding: Binding
) -> None:
    """Add the record to the batch as a clean row or as a reject."""
    try:
        batch.rows.append(_row(record, normaliser, binding))
    except RejectedRow as exc:
        batch.rejects.append((record.line, str(exc), record.raw))


def _row(record: SourceRecord, normaliser: RowNormaliser, binding: Binding) -> ImportRow:
    if record.error is not None:
        raise RejectedRow(record.error)
    if "contact.email" not in binding.columns:  # a JSON Lines record without one
        raise RejectedRow(_missing_email(normaliser.mapping))
    row = normaliser.normalise(record.line, binding.cells(record.cells))
    row.raw_text = pack_cells(record.raw)
    return row


def _binding(
    cache: dict[tuple[str, ...], Binding],
    mapping: CrmMapping,
    keys: list[str],
    source: RecordSource,
) -> Binding:
    """The binding for a header, computed once per distinct header (once per CSV file)."""
    header = tuple(keys)
    binding = cache.get(header)
    if binding is None:
        binding = cache[header] = Binding.bind(mapping, keys)
        if source.format == "csv" and "contact.email" not in binding.columns:
            raise InputFileError(f"{source.path}:1: {_missing_email(mapping)}")
    return binding


def _missing_email(mapping: CrmMapping) -> str:
    aliases = ", ".join(mapping.field_columns()["contact.email"])
    return f"no email column; contact.email looks for: {aliases}"


def _finish(batch: ReadBatch, seen: SeenKeys, source: RecordSource) -> ReadBatch:
    """Reject rows whose email or CRM id an earlier row of the file already used."""
    earlier = seen.earlier_lines(key for row in batch.rows for key in _row_keys(row))
    accepted: list[ImportRow] = []
    added: list[tuple[str, int]] = []
    for row in batch.rows:
        keys = _row_keys(row)
        first = next((earlier[k] for k in keys if k in earlier), None)
        if first is not None:
            what = "email" if keys[0] in earlier else "CRM id"
            batch.rejects.append((row.line, f"duplicate {what}: already on line {first}", row.raw))
            continue
        earlier.update((k, row.line) for k in keys)
        added.extend((k, row.line) for k in keys)
        accepted.append(row)
    seen.add(added)
    batch.rows = accepted
    batch.rejects.sort(key=lambda reject: reject[0])
    batch.bytes_read = source.bytes_read
    batch.header = source.header
    return batch


def _row_keys(row: ImportRow) -> list[str]:
    keys = [f"e:{row.email}"]
    if row.crm_id:
        keys.append(f"c:{row.crm_id}")
    return keys


def read_batches_in_child(
    path: Path,
    file_format: FileFormat,
    mapping: CrmMapping,
    batch_size: int,
    start_method: Literal["fork", "spawn"] | None = None,
) -> Iterator[ReadBatch]:
    """Like :func:`read_batches`, but read in a child process while the caller writes.

    The child is forked when this process runs a single thread (it starts at once,
    with everything imported); otherwise, or where fork is missing, it is spawned.
    """
    method = start_method or _start_method()
    context = (
        multiprocessing.get_context("fork")
        if method == "fork"
        else multiprocessing.get_context("spawn")
    )
    channel: Any = context.Queue(maxsize=_QUEUE_DEPTH)
    child = context.Process(
        target=_child_main,
        args=(path, file_format, mapping, batch_size, channel),
        name="salescycle-import-reader",
        daemon=True,
    )
    child.start()
    try:
        while True:
            try:
                message = channel.get(timeout=_POLL_SECONDS)
            except queue_module.Empty:
                if not child.is_alive():
                    raise InputFileError(
                        f"{path}: the reader process stopped (exit code {child.exitcode})"
                    ) from None
                continue
            if isinstance(message, ReadBatch):
                yield message
            elif isinstance(message, InputFileError):
                raise message
            else:
                return
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        channel.close()
        channel.join_thread()


def _start_method() -> Literal["fork", "spawn"]:
    single_threaded = threading.active_count() == 1
    return (
        "fork" if single_threaded and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    )


def _child_main(
    path: Path, file_format: FileFormat, mapping: CrmMapping, batch_size: int, channel: Any
) -> None:
    try:
        for batch in read_batches(path, file_format, mapping, batch_size):
            channel.put(batch)
    except InputFileError as exc:
        channel.put(exc)
        return
    channel.put(None)
