"""The prospect simulator: people answer what was sent to them, the way people do.

Each new email gets a plan the moment it is seen (from the seed, the recipient and the
step: see ``engine.demo.people``): its delivery or bounce, a security gateway's clicks,
a mail proxy's open, an out-of-office notice, and whether the person reads it, clicks
the booking link, answers (and with what intent), unsubscribes or complains. The plan's
actions wait on an agenda and happen when the simulated clock reaches them, through the
web app's real endpoints only.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.demo.endpoints import BROWSER, SCANNER, Endpoints
from engine.demo.mail import SentMail
from engine.demo.people import Mailbox, Person, person, rng_for
from engine.demo.replies import (
    OriginalMail,
    bounce_mime,
    out_of_office_mime,
    reply_mime,
    reply_text,
)
from engine.devtools import events_for

Action = Callable[[dt.datetime], None]  # called with the instant it was planned for
# Intents of an outreach reply, with their weights.
_INTENTS = (("interested", 32), ("objection", 22), ("not_interested", 20), ("referral", 8),
            ("unsubscribe_request", 6), ("other", 12))  # fmt: skip


class MailSource(Protocol):
    def new_mail(self) -> list[SentMail]: ...


@dataclass(order=True)
class _Due:
    at: dt.datetime
    order: int
    action: Action = field(compare=False)


class ProspectSimulator:
    """Plans and plays the people's side of every email the engine sends."""

    def __init__(
        self,
        seed: int,
        people: dict[str, Person],
        source: MailSource,
        endpoints: Endpoints,
        nurture: frozenset[str],
        start: dt.datetime,
    ) -> None:
        self.seed, self.people, self.source, self.endpoints = seed, people, source, endpoints
        self.nurture, self.start = nurture, start
        self.did: Counter[str] = Counter()  # what the people did, for the summary
        self._agenda: list[_Due] = []
        self._order = itertools.count()
        self._events: list[dict[str, Any]] = []
        self._away_notice_sent: set[str] = set()
        self._received: dict[str, int] = {}

    def step(self, now: dt.datetime) -> None:
        """Plan the mail that arrived since the last step, then do what is due by ``now``."""
        for mail in self.source.new_mail():
            if mail.sequence is not None:  # notes and forwards to our own reps are not theirs
                self._plan(mail)
        while self._agenda and self._agenda[0].at <= now:
            due = heapq.heappop(self._agenda)
            due.action(due.at)
        if self._events:
            batch, self._events = self._events, []
            self.endpoints.events(batch, now)

    def next_due(self) -> dt.datetime | None:
        return self._agenda[0].at if self._agenda else None

    # planning -------------------------------------------------------------------------

    def _plan(self, mail: SentMail) -> None:
        who = self.people.get(mail.to) or person(self.seed, mail.to, "", "", "en")
        # the nth mail to this address: notes to a rep share address, sequence and step,
        # and their event ids must differ as SendGrid's do (message ids are random)
        nth = self._received[mail.to] = self._received.get(mail.to, 0) + 1
        rng = rng_for(self.seed, "mail", mail.to, mail.sequence, mail.step, nth)
        self.did["received"] += 1
        if not self._delivery(mail, who, rng):
            return
        if who.scanner and mail.clicks:
            gateway = mail.sent_at + dt.timedelta(seconds=rng.uniform(2, 8))
            for url in mail.clicks:
                self._at(gateway, self._click(url, SCANNER, "scanner clicks"))
        if who.proxy_opens:
            proxy = mail.sent_at + dt.timedelta(seconds=rng.uniform(20, 120))
            self._at(proxy, self._event(mail, "open", rng, machine=True))
        if mail.sent_at < self.start + dt.timedelta(days=who.away_days):
            self._away(mail, who, rng)
            return
        if rng.random() < 0.002:
            self._at(mail.sent_at + _hours(rng, 1, 30), self._event(mail, "spamreport", rng))
            return
        if rng.random() < 0.012:
            self._unsubscribe(mail, rng)
            return
        if rng.random() < self._read_chance(mail, who):
            self._read(mail, who, rng, mail.sent_at + _reading_delay(rng))

    def _delivery(self, mail: SentMail, who: Person, rng: random.Random) -> bool:
        """Schedule what the receiving server does; whether the mail reached a person."""
        soon = mail.sent_at + dt.timedelta(seconds=rng.uniform(1, 20))
        if who.mailbox is Mailbox.GONE:
            self._at(soon, self._event(mail, "bounce", rng))
            return False
        if who.mailbox is Mailbox.GONE_DSN:
            self._at(soon, self._event(mail, "delivered", rng))
            later = mail.sent_at + dt.timedelta(minutes=rng.uniform(1, 30))
            notice = bounce_mime(who, _original(mail), later, rng)
            daemon = f"MAILER-DAEMON@mx1.{who.domain}"
            self._at(later, self._inbound(mail, notice, daemon, "bounce notices"))
            return False
        if who.mailbox is Mailbox.SLOW:
            self._at(soon, self._event(mail, "deferred", rng))
            soon += dt.timedelta(minutes=rng.uniform(20, 90))
        self._at(soon, self._event(mail, "delivered", rng))
        return True

    def _away(self, mail: SentMail, who: Person, rng: random.Random) -> None:
        if who.email in self._away_notice_sent:
            return
        self._away_notice_sent.add(who.email)
        at = mail.sent_at + dt.timedelta(minutes=rng.uniform(1, 5))
        back = (self.start + dt.timedelta(days=who.away_days)).date()
        raw = out_of_office_mime(who, _original(mail), back, at, rng)
        self._at(at, self._inbound(mail, raw, who.email, "out-of-office notices"))

    def _unsubscribe(self, mail: SentMail, rng: random.Random) -> None:
        at = mail.sent_at + _hours(rng, 0.2, 20)
        if mail.unsubscribe_url and rng.random() < 0.7:
            url = mail.unsubscribe_url
            self._at(
                at, self._done("one-click unsubscribes", lambda: self.endpoints.unsubscribe(url))
            )
        else:
            self._at(at, self._event(mail, "unsubscribe", rng))

    def _read_chance(self, mail: SentMail, who: Person) -> float:
        return 0.9 if mail.sequence in self.nurture else 0.25 + 0.6 * who.interest

    def _read(self, mail: SentMail, who: Person, rng: random.Random, at: dt.datetime) -> None:
        if mail.open_url:
            url = mail.open_url
            self._at(at, self._done("opens", lambda: self.endpoints.open_pixel(url)))
        else:
            self._at(at, self._event(mail, "open", rng))
        if mail.clicks and rng.random() < 0.06 + 0.3 * who.interest:
            self._at(at + _hours(rng, 0.01, 0.1), self._click(mail.clicks[0], BROWSER, "clicks"))
        intent = self._reply_intent(mail, who, rng)
        if intent is not None:
            later = at + _hours(rng, 0.1, 5)
            text = reply_text(intent, who, rng, customer=mail.sequence in self.nurture)
            raw = reply_mime(who, _original(mail), text, later, rng)
            self._at(later, self._inbound(mail, raw, who.email, f"replies: {intent}"))

    def _reply_intent(self, mail: SentMail, who: Person, rng: random.Random) -> str | None:
        if mail.sequence in self.nurture:
            if mail.step == "referral-request" and rng.random() < 0.5:
                return "referral"
            return "interested" if rng.random() < 0.04 else None
        chance = 0.1 + 0.3 * who.interest
        if rng.random() >= chance:
            return None
        return rng.choices([i for i, _ in _INTENTS], [w for _, w in _INTENTS])[0]

    # actions ----------------------------------------------------------------------------

    def _at(self, at: dt.datetime, action: Action) -> None:
        heapq.heappush(self._agenda, _Due(at, next(self._order), action))

    def _done(self, what: str, call: Callable[[], None]) -> Action:
        def act(at: dt.datetime) -> None:
            call()
            self.did[what] += 1

        return act

    def _click(self, url: str, agent: str, what: str) -> Action:
        return self._done(what, lambda: self.endpoints.click(url, agent))

    def _event(
        self, mail: SentMail, kind: str, rng: random.Random, machine: bool = False
    ) -> Action:
        seed = rng.getrandbits(64)

        def act(at: dt.datetime) -> None:
            [event] = events_for(mail.accepted, [kind], at, random.Random(seed))
            if machine:
                event["sg_machine_open"] = True
            self._events.append(event)
            self.did[f"sendgrid {kind}{' (machine)' if machine else ''}"] += 1

        return act

    def _inbound(self, mail: SentMail, raw: bytes, sender: str, what: str) -> Action:
        to = _original(mail).reply_to
        return self._done(what, lambda: self.endpoints.inbound(raw, to, sender))


def _original(mail: SentMail) -> OriginalMail:
    reply_to = mail.reply_to.rpartition("<")[2].rstrip(">") or mail.reply_to
    return OriginalMail(mail.sender, mail.sender_name, reply_to, mail.subject,
                        mail.rfc_message_id, mail.text)  # fmt: skip


def _hours(rng: random.Random, low: float, high: float) -> dt.timedelta:
    return dt.timedelta(hours=rng.uniform(low, high))


def _reading_delay(rng: random.Random) -> dt.timedelta:
    """Most mail is read within hours, some after days."""
    return dt.timedelta(hours=min(max(rng.expovariate(1 / 6), 0.05), 96))
