"""Suppressions: addresses that must not be emailed, and the hashed trace of erased people.

An erased person's address is kept only as a hash (``sha256:...``), so every check
looks an address up under both of its keys (:func:`suppression_keys`). The hash is
not keyed with ``SALESCYCLE_SECRET_KEY``: rotating (or never setting) that key would
silently un-erase everyone.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from engine.contacts.normalise import RejectedRow, normalise_email
from engine.contacts.rejects import RejectsWriter
from engine.errors import InputFileError, SalescycleError
from engine.storage.schema import suppressions

REASONS = ("unsubscribed", "bounced", "complained", "invalid", "manual", "erased")
ERASED = "erased"
MANUAL_REASONS = tuple(r for r in REASONS if r != ERASED)  # what a person may add by hand
HASH_PREFIX = "sha256:"
_DOMAIN = b"salescycle-erased-address\0"  # so the hashes match no generic sha256 table
_CHUNK = 1000


class SuppressionError(SalescycleError):
    """A suppression change that is not allowed (e.g. removing an erased entry)."""


def hashed_email(email: str) -> str:
    """The stored form of an erased address: a hash of the normalised address."""
    digest = hashlib.sha256(_DOMAIN + email.strip().lower().encode()).hexdigest()
    return HASH_PREFIX + digest


def suppression_keys(email: str) -> list[str]:
    """Every value ``suppressions.email`` may hold for this address: plain, then hashed."""
    plain = email.strip().lower()
    return [plain, hashed_email(plain)]


def suppressed_among(connection: Connection, emails: Iterable[str]) -> set[str]:
    """Which of ``emails`` (lower-cased) are suppressed, plainly or as erased."""
    by_key = {key: email.strip().lower() for email in emails for key in suppression_keys(email)}
    return {by_key[key] for key in _stored_keys(connection, by_key)}


def erased_among(connection: Connection, emails: Iterable[str]) -> set[str]:
    """Which of ``emails`` (lower-cased) belong to people who asked to be erased."""
    if not _any_erased(connection):  # the usual case: no hashing, no lookups
        return set()
    by_hash = {hashed_email(email): email.strip().lower() for email in emails}
    return {by_hash[key] for key in _stored_keys(connection, by_hash)}


def _any_erased(connection: Connection) -> bool:
    """Whether anyone was erased: a range of the email index (hashes share a prefix)."""
    email = suppressions.c.email
    after_prefix = HASH_PREFIX[:-1] + chr(ord(HASH_PREFIX[-1]) + 1)
    query = select(email).where(email >= HASH_PREFIX, email < after_prefix).limit(1)
    return connection.execute(query).first() is not None


def _stored_keys(connection: Connection, keys: Collection[str]) -> set[str]:
    found: set[str] = set()
    ordered = sorted(keys)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        query = select(suppressions.c.email).where(suppressions.c.email.in_(chunk))
        found.update(connection.execute(query).scalars())
    return found


def check_reason(reason: str, allowed: tuple[str, ...] = MANUAL_REASONS) -> str:
    """``reason`` when a person may use it; a :class:`SuppressionError` naming the valid ones."""
    if reason == ERASED and ERASED not in allowed:
        raise SuppressionError(
            "reason 'erased' is set only by `salescycle contacts erase EMAIL`; "
            f"valid choices: {', '.join(allowed)}"
        )
    if reason not in allowed:
        raise SuppressionError(f"unknown reason '{reason}'; valid choices: {', '.join(allowed)}")
    return reason


def add_suppressions(connection: Connection, rows: Iterable[dict[str, Any]]) -> int:
    """Insert ``{email, reason, source, detail, created_at}`` rows; already stored ones
    (plainly or as erased) are left as they are. How many were new."""
    wanted = {row["email"]: row for row in rows}
    erased = erased_among(connection, wanted)
    fresh = [row for email, row in sorted(wanted.items()) if email not in erased]
    if not fresh:
        return 0
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(suppressions)
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(suppressions.c.id)
    )
    added = 0
    for start in range(0, len(fresh), _CHUNK):
        added += len(connection.execute(statement, fresh[start : start + _CHUNK]).all())
    return added


def add_suppression(
    connection: Connection, email: str, reason: str, now: dt.datetime,
    source: str = "manual", detail: str | None = None,
) -> bool:  # fmt: skip
    """Suppress one address (validated and normalised); ``False`` when it already was."""
    row = {"email": _address(email), "reason": check_reason(reason), "source": source,
           "detail": detail, "created_at": now}  # fmt: skip
    return add_suppressions(connection, [row]) == 1


def remove_suppression(connection: Connection, email: str) -> bool:
    """Lift the suppression of ``email``; ``False`` when there was none.

    An erased person's entry is the only record that they asked to be forgotten, so
    removing it is refused.
    """
    plain = email.strip().lower()
    if erased_among(connection, [plain]):
        raise SuppressionError(
            f"{plain} was erased at the person's request; that suppression cannot be removed"
        )
    stored = connection.execute(
        select(suppressions.c.reason).where(suppressions.c.email == plain)
    ).scalar()
    if stored == ERASED:  # an erased entry stored plainly by an older version
        raise SuppressionError(f"{plain} was erased at the person's request; it stays suppressed")
    result = connection.execute(delete(suppressions).where(suppressions.c.email == plain))
    return bool(result.rowcount)


def list_suppressions(connection: Connection, reason: str | None = None) -> list[dict[str, Any]]:
    """Every suppression (optionally of one reason), oldest first; instants as ISO 8601."""
    query = select(suppressions).order_by(suppressions.c.created_at, suppressions.c.id)
    if reason is not None:
        query = query.where(suppressions.c.reason == check_reason(reason, REASONS))
    return [
        {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in row.items() if k != "id"}
        for row in connection.execute(query).mappings()
    ]


# importing a file ------------------------------------------------------------------------


@dataclass
class SuppressionImport:
    """What importing a suppression file did; ``problems`` are ``FILE:LINE: reason`` lines."""

    file: str
    rows: int = 0
    added: int = 0
    already: int = 0
    problems: list[str] = field(default_factory=list)
    rejects_file: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "rows": self.rows, "added": self.added,
                "already": self.already, "rejected": len(self.problems),
                "problems": self.problems, "rejects_file": self.rejects_file}  # fmt: skip


def import_suppressions(
    engine: Engine, path: Path, now: dt.datetime, rejects_path: Path | None = None,
    default_reason: str = "manual",
) -> SuppressionImport:  # fmt: skip
    """Import a CSV of addresses: one per row, or an ``email`` column and an optional
    ``reason`` column. Bad rows go to ``rejects_path`` (default ``FILE.rejects.csv``) and
    are reported as ``FILE:LINE: what is wrong``; the good rows are imported."""
    check_reason(default_reason)
    summary = SuppressionImport(file=str(path))
    rejects = rejects_path or path.with_name(path.name + ".rejects.csv")
    good: dict[str, dict[str, Any]] = {}
    with RejectsWriter(rejects, lambda: ["line", "reason", "cells"]) as writer:
        for line, cells, problem, row in _read_rows(path, default_reason, now):
            summary.rows += 1
            if problem is not None:
                summary.problems.append(f"{path}:{line}: {problem}")
                writer.write(line, problem, cells)
            elif row is not None:
                good.setdefault(row["email"], row)
        summary.rejects_file = str(rejects) if writer.count else None
    with engine.begin() as connection:
        summary.added = add_suppressions(connection, good.values())
    summary.already = summary.rows - len(summary.problems) - summary.added
    return summary


_Read = tuple[int, list[str], str | None, dict[str, Any] | None]


def _read_rows(path: Path, default_reason: str, now: dt.datetime) -> Iterator[_Read]:
    """(line, cells, problem or None, row or None) for every non-blank data row."""
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    reader = csv.reader(text.splitlines())
    columns: dict[str, int] | None = None
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        keys = [cell.strip().casefold() for cell in cells]
        if columns is None and "email" in keys:
            columns = {key: keys.index(key) for key in ("email", "reason", "detail") if key in keys}
            continue
        yield _parse(line, cells, columns or {"email": 0}, default_reason, now)


def _parse(
    line: int, cells: list[str], columns: dict[str, int], default_reason: str, now: dt.datetime
) -> _Read:
    def cell(name: str) -> str:
        index = columns.get(name)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    try:
        email = _address(cell("email"))
        reason = check_reason(cell("reason") or default_reason)
    except SuppressionError as exc:
        return line, cells, str(exc), None
    row = {"email": email, "reason": reason, "source": "import", "detail": cell("detail") or None,
           "created_at": now}  # fmt: skip
    return line, cells, None, row


def _address(value: str) -> str:
    try:
        return normalise_email(value.strip())
    except RejectedRow as exc:
        raise SuppressionError(str(exc)) from None
