"""Scanner awareness: opens and clicks a machine made are recorded, flagged, and never count.

Security gateways fetch every link of an incoming mail before the person sees it, and
mail proxies fetch images. The signs, each with its reason kept on the event:

- SendGrid's own machine-open flag (set by the parser);
- a user agent of a known scanner, link checker or HTTP library (the table below);
- a click within a few seconds of the message's hand-off or delivery;
- every link of a message clicked within a few seconds of each other.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from engine.tracking.events import TrackingEvent
from engine.vocabulary import EventKind

# (pattern in the user agent, case-insensitive; who it is)
SCANNER_AGENTS: tuple[tuple[str, str], ...] = (
    (r"barracuda", "Barracuda"),
    (r"mimecast", "Mimecast"),
    (r"proofpoint", "Proofpoint"),
    (r"messagelabs|symantec", "Symantec MessageLabs"),
    (r"trend ?micro", "Trend Micro"),
    (r"fireeye|trellix", "Trellix (FireEye)"),
    (r"ironport|cisco", "Cisco IronPort"),
    (r"forcepoint", "Forcepoint"),
    (r"sophos", "Sophos"),
    (r"zscaler", "Zscaler"),
    (r"fortinet|fortiguard", "Fortinet"),
    (r"checkpoint|check point", "Check Point"),
    (r"bingpreview", "Bing preview"),
    (r"headlesschrome|phantomjs|puppeteer|playwright", "a headless browser"),
    (r"python-requests|python-urllib|python-httpx|aiohttp", "a Python HTTP library"),
    (r"^curl/|^wget/|go-http-client|okhttp|java/|libwww-perl|apache-httpclient", "an HTTP tool"),
    (r"\b(?:bot|crawler|spider|scanner|linkcheck|urlscan)\b", "a bot"),
    (r"googlebot|bingbot|slackbot|facebookexternalhit|twitterbot", "a link preview bot"),
)
_AGENTS = re.compile(
    "|".join(f"(?P<a{i}>{pattern})" for i, (pattern, _) in enumerate(SCANNER_AGENTS)),
    re.IGNORECASE,
)
_ENGAGEMENT = (EventKind.OPENED, EventKind.CLICKED)


@dataclass(frozen=True)
class BotRules:
    """How close in time counts as a machine's doing."""

    click_after_send: dt.timedelta = dt.timedelta(seconds=10)
    all_links_within: dt.timedelta = dt.timedelta(seconds=10)


@dataclass(frozen=True)
class StoredClick:
    """A click already recorded for a message (``event_id`` is its ``events`` row)."""

    event_id: int
    occurred_at: dt.datetime
    link: str


@dataclass
class MessageFacts:
    """What the database knows of one message, for telling machines from people."""

    sent_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None
    link_count: int = 0  # distinct links in the message
    clicks: list[StoredClick] = field(default_factory=list)


@dataclass(frozen=True)
class Flagged:
    """The events with machines flagged, and earlier recorded clicks to flag now."""

    events: list[TrackingEvent]
    stored: dict[int, str]  # events row id -> reason


@functools.lru_cache(maxsize=4096)  # a few agents make most of the traffic
def scanner_agent(user_agent: str | None) -> str | None:
    """Who a known scanner's user agent belongs to; ``None`` for anything else."""
    if not user_agent:
        return None
    found = _AGENTS.search(user_agent)
    if found is None or found.lastgroup is None:
        return None
    return SCANNER_AGENTS[int(found.lastgroup[1:])][1]


def flag_machines(
    events: Sequence[TrackingEvent], facts: Mapping[str, MessageFacts], rules: BotRules
) -> Flagged:
    """``events`` with machine opens and clicks flagged (``facts`` by public message id)."""
    flagged = [_by_agent_or_time(event, facts, rules) for event in events]
    stored: dict[int, str] = {}
    by_message: dict[str, list[int]] = {}
    for position, event in enumerate(flagged):
        if event.kind is EventKind.CLICKED and event.message_id and event.message_id in facts:
            by_message.setdefault(event.message_id, []).append(position)
    reason = f"every link clicked within {rules.all_links_within.total_seconds():g} s"
    for message_id, positions in by_message.items():
        fact = facts[message_id]
        fresh = [(flagged[p].occurred_at, link_key(flagged[p]), p) for p in positions]
        old = [(c.occurred_at, c.link, -1 - c.event_id) for c in fact.clicks]
        for marker in _all_links_bursts(fresh + old, fact.link_count, rules.all_links_within):
            if marker >= 0:
                flagged[marker] = flagged[marker].as_machine(reason)
            else:
                stored[-1 - marker] = reason
    return Flagged(flagged, stored)


def link_key(event: TrackingEvent) -> str:
    """Which link a click was on: its URL, else its position."""
    return event.url or f"#{event.link_index}"


def _by_agent_or_time(
    event: TrackingEvent, facts: Mapping[str, MessageFacts], rules: BotRules
) -> TrackingEvent:
    if event.kind not in _ENGAGEMENT or event.machine:
        return event
    scanner = scanner_agent(event.user_agent)
    if scanner is not None:
        return event.as_machine(f"user agent of {scanner}")
    fact = facts.get(event.message_id or "")
    if event.kind is not EventKind.CLICKED or fact is None:
        return event
    for label, at in (("hand-off", fact.sent_at), ("delivery", fact.delivered_at)):
        if at is not None and dt.timedelta(0) <= event.occurred_at - at < rules.click_after_send:
            seconds = (event.occurred_at - at).total_seconds()
            return event.as_machine(f"clicked {seconds:g} s after {label}")
    return event


def _all_links_bursts(
    clicks: list[tuple[dt.datetime, str, int]], link_count: int, within: dt.timedelta
) -> set[int]:
    """Markers of clicks in any window of ``within`` that covers every link (two or more)."""
    if link_count < 2 or len(clicks) < link_count:
        return set()
    clicks.sort(key=lambda click: click[0])
    burst: set[int] = set()
    for start, (first, _, _) in enumerate(clicks):
        window = [c for c in clicks[start:] if c[0] - first <= within]
        if len({link for _, link, _ in window}) >= link_count:
            burst.update(marker for _, _, marker in window)
    return burst
