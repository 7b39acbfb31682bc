"""Streaming records out of CSV (any delimiter, UTF-8 with or without BOM) and JSON Lines."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from engine.contacts.mapping import header_key
from engine.errors import InputFileError

FileFormat = Literal["csv", "jsonl"]
DELIMITERS = (",", ";", "\t", "|")
_SNIFF_BYTES = 64 * 1024


@dataclass(slots=True)
class SourceRecord:
    """One record as read: its first line and its cells, laid out like ``keys``.

    A CSV record shares the file's header keys; a JSON Lines record brings its own.
    """

    line: int
    cells: list[str]
    keys: list[str]
    raw: list[str]
    error: str | None = None


class _CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read, for the progress bar."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = self.inner.readinto(buffer)  # type: ignore[attr-defined]
        self.position += count
        return int(count)


def detect_format(path: Path, given: FileFormat | None = None) -> FileFormat:
    """``jsonl`` for ``.jsonl`` / ``.ndjson`` files, else CSV, unless told."""
    if given is not None:
        return given
    return "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson") else "csv"


class RecordSource:
    """An open import file: its header (CSV) and its records, read lazily."""

    def __init__(self, path: Path, file_format: FileFormat) -> None:
        self.path = path
        self.format = file_format
        try:
            self._binary = path.open("rb")
        except OSError as exc:
            raise InputFileError(f"cannot open {path}: {exc.strerror}") from None
        self.size = path.stat().st_size
        self._counter = _CountingReader(self._binary)
        self.header: list[str] = []

    @property
    def bytes_read(self) -> int:
        return self._counter.position

    def close(self) -> None:
        self._binary.close()

    def __enter__(self) -> RecordSource:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def records(self) -> Iterator[SourceRecord]:
        """Every record in file order; a malformed record carries an ``error`` instead."""
        text = io.TextIOWrapper(
            io.BufferedReader(self._counter, buffer_size=1 << 16),
            encoding="utf-8-sig",
            errors=_UNDECODABLE_HANDLER,
            newline="",
        )
        self._errors_before = _decode_errors[0]
        records = self._jsonl(text) if self.format == "jsonl" else self._csv(text)
        for record in records:
            # Bytes that are not UTF-8 reject their own record, not the whole file.
            if _decode_errors[0] != self._errors_before and _undecodable(record.raw):
                record.error = "not valid UTF-8; export the file as UTF-8"
            yield record

    def _csv(self, text: io.TextIOWrapper) -> Iterator[SourceRecord]:
        reader = csv.reader(text, delimiter=self._sniff_delimiter(), quotechar='"', strict=False)
        try:
            self.header = next(reader)
        except StopIteration:
            raise InputFileError(f"{self.path} is empty: expected a header row") from None
        except csv.Error as exc:
            raise InputFileError(f"{self.path}:1: cannot read the header: {exc}") from None
        keys = [header_key(name) for name in self.header]
        last_line = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise InputFileError(f"{self.path}:{last_line + 1}: {exc}") from None
            line, last_line = last_line + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) > len(keys):
                error = f"row has {len(row)} fields but the header has {len(keys)}"
                yield SourceRecord(line, [], keys, row, error)
                continue
            yield SourceRecord(line, row, keys, row)

    def _sniff_delimiter(self) -> str:
        """The delimiter the header line uses most (headers rarely quote or nest them)."""
        sample = self._binary.read(_SNIFF_BYTES)
        self._binary.seek(0)
        first_line = codecs.decode(sample, "utf-8", errors="ignore").split("\n", 1)[0]
        counts = {delimiter: first_line.count(delimiter) for delimiter in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","

    def _jsonl(self, text: io.TextIOWrapper) -> Iterator[SourceRecord]:
        for line, content in enumerate(text, start=1):
            if not content.strip():
                continue
            try:
                record = json.loads(content)
            except json.JSONDecodeError as exc:
                error = f"invalid JSON: {exc.msg}"
                yield SourceRecord(line, [], [], [content.rstrip("\n")], error)
                continue
            if not isinstance(record, dict):
                error = "expected a JSON object per line"
                yield SourceRecord(line, [], [], [content.rstrip("\n")], error)
                continue
            keys = [header_key(str(k)) for k in record]
            cells = [_json_text(v) for v in record.values()]
            yield SourceRecord(line, cells, keys, [content.rstrip("\n")])


def _mark_undecodable(error: UnicodeError) -> tuple[str, int]:
    """Decode like ``surrogateescape`` and count, so only a broken file pays for checks."""
    _decode_errors[0] += 1
    replacement, position = codecs.lookup_error("surrogateescape")(error)
    return str(replacement), position


_UNDECODABLE_HANDLER = "salescycle-undecodable"
_decode_errors = [0]
codecs.register_error(_UNDECODABLE_HANDLER, _mark_undecodable)
_SURROGATE = re.compile("[\udc80-\udcff]")


def _undecodable(cells: list[str]) -> bool:
    return any(_SURROGATE.search(cell) for cell in cells)


def _json_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
