"""The demo's own corner of the workspace: ``var/demo/``, made fresh on every run.

Everything the demo writes lives there (its SQLite database, the outbox, the CRM export
it imported, ``report.html``), so a demo never touches the workspace's own database and
a second run starts from nothing. Its secrets are made here and given to the runtime as
settings, the way ``SALESCYCLE_*`` variables would give them.
"""

from __future__ import annotations

import csv
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.devtools import EventSigner

DEMO_DIR = Path("var/demo")
STARTER_EXPORT = Path("examples/crm-contacts.csv")
GENERATOR = Path("examples/generate_crm.py")
DATABASE_URL = f"sqlite:///{DEMO_DIR}/salescycle.db"


@dataclass(frozen=True)
class Secrets:
    """What the demo's web app checks, and what the simulator signs and sends with."""

    signer: EventSigner
    secret_key: str
    inbound_secret: str
    api_token: str
    sendgrid_api_key: str

    @classmethod
    def fresh(cls) -> Secrets:
        return cls(EventSigner(), *(secrets.token_urlsafe(24) for _ in range(4)))


def fresh_folder(workspace: Path) -> Path:
    """``var/demo`` emptied (a previous demo's state removed) and made again."""
    folder = workspace / DEMO_DIR
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "outbox").mkdir(parents=True)
    return folder


def overrides(keys: Secrets, transport: str, sink_url: str | None) -> dict[str, Any]:
    """The settings the demo runs with, above the workspace's own (the embedded default)."""
    sending: dict[str, Any] = {"outbox_dir": str(DEMO_DIR / "outbox")}
    if transport == "sink":
        sending |= {"transport": "sendgrid", "sendgrid_host": sink_url}
    else:
        sending |= {"transport": "outbox"}
    return {
        "database_url": DATABASE_URL,
        "sending": sending,
        "crm_webhook": {"url": None},
        "secret_key": keys.secret_key,
        "inbound_secret": keys.inbound_secret,
        "api_token": keys.api_token,
        "sendgrid_api_key": keys.sendgrid_api_key,
        "sendgrid_webhook_public_key": keys.signer.public_key_base64,
    }


def crm_export(workspace: Path, folder: Path, contacts: int | None) -> Path:
    """The export to import: the starter one, its first ``contacts`` rows, or (for more
    rows than it has) one made by ``examples/generate_crm.py``."""
    starter = workspace / STARTER_EXPORT
    if contacts is None:
        return starter
    with starter.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    target = folder / "crm-contacts.csv"
    if contacts < len(rows):
        with target.open("w", encoding="utf-8", newline="") as out:
            csv.writer(out).writerows(rows[: contacts + 1])
        return target
    command = [sys.executable, str(workspace / GENERATOR), "--contacts", str(contacts)]
    subprocess.run([*command, "--out", str(target)], check=True, timeout=600)
    return target
