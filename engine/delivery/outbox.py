"""The file outbox: each message as ``<message_id>.eml`` in a folder, for development and demos.

A file appears whole or not at all (written beside its final name, synced, then renamed
over it), and writing the same message again replaces it with the same bytes, so a
retried hand-off can never leave two copies or half a message.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

from engine.delivery.message import OutboundMessage
from engine.delivery.mime import to_rfc5322
from engine.delivery.transport import HandOff, PermanentError, RetryableError

# A message id that is one plain file name: no separators, no leading dot.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


class OutboxTransport:
    """Writes each message's RFC 5322 bytes to ``folder/<message_id>.eml``."""

    name = "outbox"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: OutboundMessage) -> HandOff:
        if not _SAFE_NAME.fullmatch(message.message_id):
            raise PermanentError(f"message id {message.message_id!r} cannot be a file name")
        target = self.folder / f"{message.message_id}.eml"
        try:
            _write_atomically(target, _rfc5322(message))
        except OSError as exc:
            raise RetryableError(f"cannot write {target} to the outbox: {exc}") from exc
        return HandOff(self.name, provider_message_id=message.message_id)

    def reconcile(self, message_id: str) -> bool | None:
        """The file is written atomically: it is there exactly when the hand-off happened."""
        if not _SAFE_NAME.fullmatch(message_id):
            return None
        return (self.folder / f"{message_id}.eml").is_file()

    def close(self) -> None:
        """Nothing to release: each message opens and closes its own file."""


def _rfc5322(message: OutboundMessage) -> bytes:
    """The message's bytes; a message they cannot be made of is refused for good."""
    try:
        return to_rfc5322(message)
    except UnicodeEncodeError as exc:  # a non-ASCII address: no SMTPUTF8 support yet
        raise PermanentError(
            f"message {message.message_id} cannot be written as RFC 5322 "
            f"({message.sender.email} -> {message.to.email}): {exc}"
        ) from exc


def outbox_messages(folder: Path) -> list[Path]:
    """The ``.eml`` files in the outbox, sorted by name (none when the folder is missing)."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.glob("*.eml") if not path.name.startswith("."))


def _write_atomically(target: Path, data: bytes) -> None:
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise
    _sync_folder(target.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (where the platform lets a folder be synced)."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
