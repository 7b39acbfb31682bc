"""Keys already seen in one import file, kept on disk so memory stays flat for any file size."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

_CHUNK = 500


class SeenKeys:
    """Remembers which line first used each key (an email, a CRM id) of an import file.

    A set in memory would grow with the file; a throw-away SQLite file keeps the
    footprint flat for files far larger than memory.
    """

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="salescycle-import-")
        self._db = sqlite3.connect(Path(self._dir.name) / "seen.db")
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY, line INTEGER) WITHOUT ROWID")

    def earlier_lines(self, keys: Iterable[str]) -> dict[str, int]:
        """The first line of every key among ``keys`` that was added before."""
        found: dict[str, int] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, line FROM seen WHERE key IN ({marks})"
            found.update(self._db.execute(query, chunk).fetchall())
        return found

    def add(self, entries: Sequence[tuple[str, int]]) -> None:
        """Remember ``(key, line)`` pairs; a key already present keeps its first line."""
        self._db.executemany("INSERT OR IGNORE INTO seen (key, line) VALUES (?, ?)", entries)

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()

    def __enter__(self) -> SeenKeys:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
