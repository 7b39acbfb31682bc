"""The rejects file: every row that was not imported, with its source line and the reason."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


class RejectsWriter:
    """Writes rejected rows as CSV (``line``, ``reason``, then the cells as read).

    The file is created on the first reject, so a clean import leaves none behind.
    """

    def __init__(self, path: Path, header: Callable[[], list[str]]) -> None:
        self.path = path
        self.count = 0
        self._header = header
        self._file: IO[str] | None = None
        self._writer: Any = None

    def write(self, line: int, reason: str, cells: list[str]) -> None:
        """Keep one rejected row."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # surrogateescape writes undecodable input back as the bytes it came as
            self._file = self.path.open("w", encoding="utf-8", errors="surrogateescape", newline="")
            self._writer = csv.writer(self._file)
            self._writer.writerow(self._header())
        self._writer.writerow([line, reason, *cells])
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> RejectsWriter:
        if self.path.exists():
            self.path.unlink()  # a stale file from an earlier run would mislead
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
