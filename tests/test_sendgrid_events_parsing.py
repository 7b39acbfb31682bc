"""SendGrid Event Webhook bodies, our own tracking hits and the bot rules, normalised.

Payloads come from ``engine.devtools.sendgrid_events.events_for`` (what SendGrid posts
about a Mail Send body our transport built) and from hand-written items shaped like
SendGrid's documented examples. Every normalised field is asserted.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

import orjson
import pytest
from _support import outbound_message

from engine.delivery.sendgrid import to_mail_send
from engine.devtools import AcceptedMail, events_for
from engine.devtools.sendgrid_events import KINDS
from engine.tracking.bots import BotRules, MessageFacts, StoredClick, flag_machines, scanner_agent
from engine.tracking.events import MalformedBodyError, RejectReason, TrackingEvent
from engine.tracking.sendgrid import SendGridEvents
from engine.tracking.tracking_hits import parse_hit
from engine.vocabulary import EventKind

AT = dt.datetime(2026, 3, 3, 9, 30, 15, tzinfo=dt.UTC)
MESSAGE_ID = "q7rbm2k4ztx6wd3c"
PROVIDER_ID = "aBcDeFgHiJkLmNoPqRsTuV"
SG_MESSAGE = "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"


def parse(items: list[Any]) -> tuple[list[TrackingEvent], list[str]]:
    parsed = SendGridEvents().parse(json.dumps(items).encode())
    return parsed.events, parsed.problems


@pytest.fixture
def generated() -> dict[str, tuple[dict[str, Any], TrackingEvent]]:
    """Each kind SendGrid posts about one of our messages: (item, its event)."""
    body = to_mail_send(outbound_message(MESSAGE_ID, to=outbound_message().to))
    mail = AcceptedMail.from_body(body, PROVIDER_ID, AT)
    kinds = [*KINDS, "blocked"]
    items = events_for(mail, kinds, AT, random.Random(7))
    events, problems = parse(items)
    assert problems == [] and len(events) == len(kinds)
    return {kind: (item, event) for kind, item, event in zip(kinds, items, events, strict=True)}


def test_every_kind_maps_through_the_table(generated: dict[str, Any]) -> None:
    kinds = {name: event.kind for name, (_, event) in generated.items()}

    assert kinds == {
        "processed": EventKind.QUEUED,
        "delivered": EventKind.DELIVERED,
        "deferred": EventKind.DEFERRED,
        "bounce": EventKind.BOUNCED,
        "blocked": EventKind.BOUNCED,
        "dropped": EventKind.DROPPED,
        "open": EventKind.OPENED,
        "click": EventKind.CLICKED,
        "spamreport": EventKind.COMPLAINED,
        "unsubscribe": EventKind.UNSUBSCRIBED,
        "group_unsubscribe": EventKind.UNSUBSCRIBED,
    }


def test_the_fields_every_event_carries(generated: dict[str, Any]) -> None:
    for name, (item, event) in generated.items():
        assert event.provider == "sendgrid", name
        assert event.provider_event_id == item["sg_event_id"], name
        assert event.occurred_at == AT and event.occurred_at.tzinfo is not None, name
        assert event.message_id == MESSAGE_ID, name  # from the custom args, at the top level
        assert event.provider_message_id == PROVIDER_ID, name  # sg_message_id up to its dot
        assert event.recipient == "pat@example.org", name
        assert event.raw == item, name  # the payload, kept as it came
        assert event.link_tag is None and event.link_index is None and event.intent is None


def test_the_fields_of_each_kind(generated: dict[str, Any]) -> None:
    bounce, blocked = generated["bounce"][1], generated["blocked"][1]
    dropped, deferred = generated["dropped"][1], generated["deferred"][1]
    opened_item, opened = generated["open"]
    click_item, click = generated["click"]

    assert (bounce.reject_reason, bounce.description) == (
        RejectReason.HARD_BOUNCE,
        "550 5.1.1 The email account that you tried to reach does not exist.",
    )
    assert blocked.reject_reason is RejectReason.SOFT_BOUNCE
    assert blocked.description is not None and blocked.description.startswith("554 5.7.1")
    assert (dropped.reject_reason, dropped.description) == (
        RejectReason.HARD_BOUNCE,
        "Bounced Address",
    )
    assert (
        deferred.reject_reason is None
        and deferred.description == "451 4.7.1 Please try again later"
    )
    assert (opened.user_agent, opened.ip) == (opened_item["useragent"], opened_item["ip"])
    assert opened.machine is False and opened.machine_reason is None and opened.url is None
    assert click.url == click_item["url"] == "https://example.com/"
    assert (click.user_agent, click.ip) == (click_item["useragent"], click_item["ip"])
    assert generated["delivered"][1].description == "250 2.0.0 OK"
    assert generated["processed"][1].user_agent is None


def test_which_events_suppress_the_address(generated: dict[str, Any]) -> None:
    suppressing = {name for name, (_, event) in generated.items() if event.suppresses}

    assert suppressing == {"bounce", "dropped", "spamreport", "unsubscribe", "group_unsubscribe"}


def test_captured_style_items_with_their_quirks() -> None:
    base = {"email": " Example@Test.COM ", "timestamp": 1513299569, "sg_message_id": SG_MESSAGE}
    items = [
        {**base, "event": "open", "sg_event_id": "o1", "sg_machine_open": True,
         "useragent": "Mozilla/5.0", "ip": "192.0.2.1", "message_id": "abc123"},
        {**base, "event": "bounce", "sg_event_id": "b1", "status": "4.2.2",
         "reason": "452 mailbox full"},
        {**base, "event": "bounce", "sg_event_id": "b2", "status": "5.0.0"},
        {**base, "event": "dropped", "sg_event_id": "d1", "reason": "Invalid"},
        {**base, "event": "dropped", "sg_event_id": "d2", "reason": "Spam Content"},
        {**base, "event": "dropped", "sg_event_id": "d3", "reason": "Unsubscribed Address"},
        {**base, "event": "dropped", "sg_event_id": "d4", "reason": "Recipient List over Quota"},
        {**base, "event": "group_resubscribe", "sg_event_id": "g1", "asm_group_id": 3},
        {**base, "event": "click", "sg_event_id": "c1", "url": "https://x.example/a",
         "message_id": 42, "attempt": 5, "reason": 250},
        {**base, "event": "delivered", "timestamp": 1513299569.5, "message_id": "   "},
    ]  # fmt: skip

    events, problems = parse(items)

    assert problems == []
    o, soft, hard, invalid, spam, unsub, other, unknown, click, delivered = events
    assert (o.machine, o.machine_reason) == (
        True,
        "SendGrid machine open (a mail proxy fetched it)",
    )
    assert (o.recipient, o.message_id, o.provider_message_id) == (
        "example@test.com",
        "abc123",
        "14c5d75ce93",
    )
    assert o.occurred_at == dt.datetime(2017, 12, 15, 0, 59, 29, tzinfo=dt.UTC)
    assert (soft.reject_reason, soft.description) == (RejectReason.SOFT_BOUNCE, "452 mailbox full")
    assert hard.reject_reason is RejectReason.HARD_BOUNCE and hard.suppresses
    assert invalid.reject_reason is RejectReason.INVALID and invalid.suppresses
    assert spam.reject_reason is RejectReason.SPAM_CONTENT and not spam.suppresses
    assert unsub.reject_reason is RejectReason.UNSUBSCRIBED and unsub.suppresses
    assert other.reject_reason is RejectReason.OTHER and not other.suppresses
    assert not soft.suppresses
    assert unknown.kind is EventKind.UNKNOWN and unknown.raw["asm_group_id"] == 3
    assert click.message_id is None  # a number is not one of our ids
    assert click.description == "250"  # a number where text belongs is kept as text
    assert delivered.message_id is None
    assert delivered.occurred_at == dt.datetime(2017, 12, 15, 0, 59, 29, 500000, tzinfo=dt.UTC)
    # without sg_event_id, the id is a digest of the item: stable, and distinct per item
    assert delivered.provider_event_id.startswith("sha256:")
    assert parse([items[-1]])[0][0].provider_event_id == delivered.provider_event_id
    assert parse([{**items[-1], "timestamp": 1}])[0][0].provider_event_id != (
        delivered.provider_event_id
    )


def test_malformed_items_are_reported_and_the_good_ones_kept() -> None:
    good = {"email": "a@b.example", "timestamp": 1700000000, "event": "delivered",
            "sg_event_id": "ok"}  # fmt: skip
    items: list[Any] = [
        "delivered",
        {**good, "event": 5},
        {k: v for k, v in good.items() if k != "timestamp"},
        {**good, "timestamp": "soon"},
        {**good, "timestamp": 10**20},
        {**good, "timestamp": 10**30, "sg_event_id": None},
        {**good, "timestamp": True},
        {k: v for k, v in good.items() if k != "email"},
        {**good, "email": ["a@b.example"]},
        {**good, "sg_event_id": 17},
        {**good, "event": "click", "url": {"href": "x"}},
        good,
        None,
    ]

    events, problems = parse(items)

    assert [e.provider_event_id for e in events] == ["ok"]
    assert [p.split(":")[0] for p in problems] == [
        f"item {i}" for i in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12)
    ]
    assert problems[0] == "item 0: expected an event object, got a string"
    assert problems[2] == "item 2: 'timestamp' must be Unix seconds, got None"
    assert problems[7] == "item 7: no 'email'"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "not JSON"),
        (b"[{", "not JSON"),
        (b'{"event": "open"}', "expected a JSON array of events, got an object"),
        (b'"hello"', "got a string"),
        (b"[1e400, ", "not JSON"),
    ],
)
def test_a_body_that_is_no_array_is_refused_whole(body: bytes, says: str) -> None:
    with pytest.raises(MalformedBodyError, match=says):
        SendGridEvents().parse(body)


def test_an_empty_batch_is_no_events() -> None:
    assert parse([]) == ([], [])


# our own tracking hits ------------------------------------------------------------------


def hit(**changes: Any) -> bytes:
    data = {"kind": "clicked", "message_id": MESSAGE_ID, "link_index": 1,
            "url": "https://cal.example.com/x", "user_agent": "Mozilla/5.0", "ip": "192.0.2.9",
            "at": "2026-03-03T09:30:15Z"}  # fmt: skip
    data.update(changes)
    return orjson.dumps({k: v for k, v in data.items() if v is not ...})


def test_a_tracking_hit_is_one_event_named_by_its_inbox_row() -> None:
    [event] = parse_hit(hit(), 41).events
    [opened] = parse_hit(hit(kind="opened", link_index=None, url=None, ip=""), 42).events

    assert event == TrackingEvent(
        kind=EventKind.CLICKED, provider="tracking", provider_event_id="tracking:41",
        occurred_at=AT, message_id=MESSAGE_ID, url="https://cal.example.com/x", link_index=1,
        user_agent="Mozilla/5.0", ip="192.0.2.9",
    )  # fmt: skip
    assert event.raw["link_index"] == 1 and event.link_tag is None  # the tag comes from the row
    assert (opened.kind, opened.provider_event_id, opened.ip) == (
        EventKind.OPENED,
        "tracking:42",
        None,
    )
    assert parse_hit(hit(at="2026-03-03T10:30:15+01:00"), 1).events[0].occurred_at == AT


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a tracking hit"),
        (hit(kind="replied"), "kind"),
        (hit(message_id=""), "message_id"),
        (hit(message_id=...), "message_id"),
        (hit(link_index=-1), "link_index"),
        (hit(at="2026-03-03T09:30:15"), "at"),  # no offset: not an instant
        (hit(at="yesterday"), "at"),
        (hit(link_index=None, url=None), "a click needs its link_index or url"),
    ],
)
def test_a_malformed_hit_is_refused_naming_what_is_wrong(body: bytes, says: str) -> None:
    with pytest.raises(MalformedBodyError, match=says):
        parse_hit(body, 1)


# scanners and bots ----------------------------------------------------------------------


def test_known_scanner_agents_are_named_and_people_are_not() -> None:
    assert scanner_agent("Mozilla/5.0 (compatible; Barracuda Sentinel)") == "Barracuda"
    assert scanner_agent("python-requests/2.32.3") == "a Python HTTP library"
    assert scanner_agent("curl/8.5.0") == "an HTTP tool"
    assert scanner_agent("Mozilla/5.0 HeadlessChrome/120.0") == "a headless browser"
    assert scanner_agent("Mozilla/5.0 (compatible; Googlebot/2.1)") == "a link preview bot"
    people = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/42.0.2311.135 Safari/537.36 Edge/12.10136 (via ggpht.com GoogleImageProxy)",
        "Mozilla/5.0 (Linux; Android 13; CUBOT KingKong) Chrome/120.0",
        "",
        None,
    )
    assert [scanner_agent(agent) for agent in people] == [None] * len(people)


def click(at: dt.datetime, url: str, event_id: str, agent: str = "Mozilla/5.0") -> TrackingEvent:
    return TrackingEvent(EventKind.CLICKED, "sendgrid", event_id, at, MESSAGE_ID, url=url,
                         user_agent=agent)  # fmt: skip


def test_clicks_right_after_the_send_or_on_every_link_at_once_are_machines() -> None:
    sent = AT
    facts = {MESSAGE_ID: MessageFacts(sent_at=sent, link_count=3)}
    rules = BotRules()
    batch = [
        click(sent + dt.timedelta(seconds=3), "https://a", "c1"),
        click(sent + dt.timedelta(minutes=5), "https://a", "c2"),
        click(sent + dt.timedelta(minutes=5, seconds=2), "https://b", "c3"),
        click(sent + dt.timedelta(minutes=9), "https://b", "c4", "Proofpoint URL Defense"),
        TrackingEvent(
            EventKind.OPENED, "sendgrid", "o1", sent + dt.timedelta(seconds=1), MESSAGE_ID
        ),
    ]
    flagged = flag_machines(batch, facts, rules)

    reasons = [e.machine_reason for e in flagged.events]
    assert reasons == ["clicked 3 s after hand-off", None, None, "user agent of Proofpoint", None]
    assert flagged.stored == {}

    # a third link clicked 4 s later, with an earlier click already recorded: all three
    # links within 10 s, so all those clicks are a scanner's, the stored one too
    facts[MESSAGE_ID].clicks.append(StoredClick(77, sent + dt.timedelta(minutes=5), "https://a"))
    late = click(sent + dt.timedelta(minutes=5, seconds=4), "https://c", "c5")
    burst = flag_machines([batch[2], late], facts, rules)

    assert [e.machine_reason for e in burst.events] == ["every link clicked within 10 s"] * 2
    assert burst.stored == {77: "every link clicked within 10 s"}


def test_a_click_after_delivery_counts_from_the_delivery() -> None:
    facts = {MESSAGE_ID: MessageFacts(sent_at=AT - dt.timedelta(hours=1), delivered_at=AT)}
    flagged = flag_machines([click(AT + dt.timedelta(seconds=9), "https://a", "c")], facts,
                            BotRules())  # fmt: skip
    unknown = flag_machines([click(AT, "https://a", "c")], {}, BotRules())

    assert flagged.events[0].machine_reason == "clicked 9 s after delivery"
    assert unknown.events[0].machine is False  # nothing known of the message: a person
