"""The simulated people: who each contact of the imported export is, drawn from the seed.

Every draw about a person comes from a generator seeded with the demo's seed and the
person's address (and, for a message, its sequence and step), never from one shared
generator: the same seed then gives the same people and the same answers whatever order
the engine happened to send in.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Mailbox(StrEnum):
    """What the person's mail server does with our mail."""

    OK = "ok"
    GONE = "gone"  # the address does not exist: SendGrid reports a bounce
    GONE_DSN = "gone_dsn"  # ... or the receiving server mails a delivery status notification
    SLOW = "slow"  # deferred once, delivered later


@dataclass(frozen=True)
class Person:
    """One contact as the simulator sees them."""

    email: str
    first_name: str
    last_name: str
    domain: str
    language: str  # "da" or "en": the language they answer in
    mailbox: Mailbox
    scanner: bool  # their company's mail gateway clicks every link on arrival
    proxy_opens: bool  # their mail app fetches images at once (a machine open)
    away_days: int  # > 0: on holiday from the start, for this many days
    interest: float  # 0..1: how likely they read, click and answer

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


def rng_for(seed: int, *parts: object) -> random.Random:
    """A generator for one decision, from the seed and what the decision is about."""
    return random.Random(":".join([str(seed), *(str(p) for p in parts)]))


def person(seed: int, email: str, first: str, last: str, locale: str) -> Person:
    """Draw who ``email`` is."""
    rng = rng_for(seed, "person", email)
    roll = rng.random()
    mailbox = (
        Mailbox.GONE if roll < 0.012 else Mailbox.GONE_DSN if roll < 0.022
        else Mailbox.SLOW if roll < 0.04 else Mailbox.OK
    )  # fmt: skip
    domain = email.rpartition("@")[2]
    return Person(
        email=email,
        first_name=first or email.partition("@")[0].split(".")[0].title(),
        last_name=last,
        domain=domain,
        language="da" if locale.lower().startswith("da") else "en",
        mailbox=mailbox,
        scanner=rng_for(seed, "gateway", domain).random() < 0.12,
        proxy_opens=rng.random() < 0.2,
        away_days=rng.randint(4, 12) if rng.random() < 0.05 else 0,
        interest=rng.betavariate(2, 3),
    )


def population(export: Path, seed: int) -> dict[str, Person]:
    """Everyone in the imported CRM export, by lower-case address."""
    people: dict[str, Person] = {}
    with export.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            email = (row.get("Email") or row.get("email") or "").strip().lower()
            if email:
                people[email] = person(
                    seed,
                    email,
                    (row.get("First Name") or "").strip(),
                    (row.get("Last Name") or "").strip(),
                    (row.get("Preferred language") or "").strip(),
                )
    return people
