"""The sales reps: each working morning they look at their pipeline and move the deals
that moved (a call went well, a proposal was signed, a deal died), the way a rep does in
the CRM, which calls the engine's API. Closed deals become customers, and the engine
enrolls them in post-sale nurture by itself."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from engine.demo.endpoints import Endpoints
from engine.demo.people import rng_for
from engine.storage.schema import contacts

OFFICE = ZoneInfo("Europe/Copenhagen")
REVIEW_HOUR = 9
# stage: (days before the rep acts (low, high), [(next stage or None to leave it, weight)])
_DEALS: dict[str, tuple[tuple[int, int], tuple[tuple[str | None, int], ...]]] = {
    "qualification": ((1, 4), (("pitching", 65), ("lost", 10), (None, 25))),
    "pitching": ((1, 5), (("negotiation", 50), ("objection_handling", 15), ("lost", 10),
                          (None, 25))),
    "objection_handling": ((2, 6), (("negotiation", 40), ("lost", 25), (None, 35))),
    "negotiation": ((1, 5), (("customer", 60), ("lost", 20), (None, 20))),
}  # fmt: skip
_NOTES = {
    "pitching": "Discovery call done: budget and need confirmed, proposal next.",
    "objection_handling": "Pushed back on price during the demo.",
    "negotiation": "Proposal accepted in principle; agreeing terms.",
    "customer": "Contract signed.",
    "lost": "Closed lost: no decision.",
}


class Reps:
    """The reps of every owner, reviewing the pipeline once per working day."""

    def __init__(self, seed: int, database: Engine, endpoints: Endpoints) -> None:
        self.seed, self.database, self.endpoints = seed, database, endpoints
        self.moved: Counter[str] = Counter()  # moves by target stage
        self._reviewed: dt.date | None = None

    def step(self, now: dt.datetime) -> None:
        """Review the pipeline at the first step after 09:00 on a working day."""
        local = now.astimezone(OFFICE)
        if local.weekday() >= 5 or local.hour < REVIEW_HOUR or self._reviewed == local.date():
            return
        self._reviewed = local.date()
        for email, stage, entered in self._open_deals():
            decision = self._decision(email, stage, entered)
            if decision is not None and now >= decision[0]:
                self.endpoints.move_stage(email, decision[1], _NOTES[decision[1]])
                self.moved[decision[1]] += 1

    def _open_deals(self) -> list[tuple[str, str, dt.datetime]]:
        """The rep's view of the pipeline (read only: moves go through the API)."""
        query = (
            select(contacts.c.email, contacts.c.stage, contacts.c.stage_entered_at)
            .where(contacts.c.stage.in_(list(_DEALS)))
            .order_by(contacts.c.email)
        )
        with self.database.connect() as connection:
            return [(str(e), str(s), t) for e, s, t in connection.execute(query)]

    def _decision(
        self, email: str, stage: str, entered: dt.datetime
    ) -> tuple[dt.datetime, str] | None:
        """When and where this deal moves from ``stage`` (``None``: it stays)."""
        rng: random.Random = rng_for(self.seed, "deal", email, stage, entered.isoformat())
        (low, high), outcomes = _DEALS[stage]
        after = dt.timedelta(days=rng.randint(low, high), hours=rng.uniform(0, 6))
        target = rng.choices([o for o, _ in outcomes], [w for _, w in outcomes])[0]
        return None if target is None else (entered + after, target)
