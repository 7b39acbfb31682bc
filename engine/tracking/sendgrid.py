"""SendGrid's Event Webhook: a JSON array of event objects, normalised into ``TrackingEvent``s.

SendGrid copies a personalization's ``custom_args`` to the top level of each event, so
our message id arrives as ``message_id`` beside SendGrid's own fields. A malformed item
is reported as a problem and the good items are kept; the raw body stays in the inbox.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from engine.tracking.events import MalformedBodyError, ParsedEvents, RejectReason, TrackingEvent
from engine.vocabulary import EventKind

MAX_ID_LENGTH = 300  # events.provider_event_id


class SendGridEvents:
    """Parses Event Webhook bodies; the mappings are tables, one conversion method reads them."""

    provider: ClassVar[str] = "sendgrid"
    event_kinds: ClassVar[Mapping[str, EventKind]] = {
        "processed": EventKind.QUEUED,
        "delivered": EventKind.DELIVERED,
        "deferred": EventKind.DEFERRED,
        "bounce": EventKind.BOUNCED,
        "dropped": EventKind.DROPPED,
        "open": EventKind.OPENED,
        "click": EventKind.CLICKED,
        "spamreport": EventKind.COMPLAINED,
        "unsubscribe": EventKind.UNSUBSCRIBED,
        "group_unsubscribe": EventKind.UNSUBSCRIBED,
    }
    # a bounce's "type": "bounce" is permanent, "blocked" is SendGrid's soft bounce
    bounce_types: ClassVar[Mapping[str, RejectReason]] = {
        "bounce": RejectReason.HARD_BOUNCE,
        "blocked": RejectReason.SOFT_BOUNCE,
    }
    # a drop's "reason", lower-cased
    drop_reasons: ClassVar[Mapping[str, RejectReason]] = {
        "invalid": RejectReason.INVALID,
        "bounced address": RejectReason.HARD_BOUNCE,
        "unsubscribed address": RejectReason.UNSUBSCRIBED,
        "spam reporting address": RejectReason.COMPLAINED,
        "spam content": RejectReason.SPAM_CONTENT,
    }

    def parse(self, body: bytes) -> ParsedEvents:
        """The events of one posted body; raises ``MalformedBodyError`` if it is no array."""
        try:
            items = orjson.loads(body)
        except orjson.JSONDecodeError:
            items = _slow_json(body)  # orjson refuses numbers beyond a double (1e400)
        if not isinstance(items, list):
            raise MalformedBodyError(f"expected a JSON array of events, got {_kind_of(items)}")
        events: list[TrackingEvent] = []
        problems: list[str] = []
        for index, item in enumerate(items):
            try:
                events.append(self.event(item))
            except ValueError as exc:
                problems.append(f"item {index}: {exc}")
        return ParsedEvents(events, problems)

    def event(self, item: Any) -> TrackingEvent:
        """One event object as a ``TrackingEvent``; ``ValueError`` says what is wrong."""
        if not isinstance(item, dict):
            raise ValueError(f"expected an event object, got {_kind_of(item)}")
        name = _text(item, "event", required=True)
        assert name is not None
        kind = self.event_kinds.get(name, EventKind.UNKNOWN)
        machine = kind is EventKind.OPENED and item.get("sg_machine_open") is True
        return TrackingEvent(
            kind=kind,
            provider=self.provider,
            provider_event_id=_event_id(item),
            occurred_at=_instant(item.get("timestamp")),
            message_id=_message_id(item.get("message_id")),
            provider_message_id=_provider_message_id(item.get("sg_message_id")),
            recipient=_recipient(item),
            reject_reason=self._reject_reason(kind, item),
            description=_text(item, "reason") or _text(item, "response"),
            url=_text(item, "url") if kind is EventKind.CLICKED else None,
            machine=machine,
            machine_reason="SendGrid machine open (a mail proxy fetched it)" if machine else None,
            user_agent=_text(item, "useragent"),
            ip=_text(item, "ip"),
            raw=item,
        )

    def _reject_reason(self, kind: EventKind, item: Mapping[str, Any]) -> RejectReason | None:
        if kind is EventKind.BOUNCED:
            bounce_type = str(item.get("type") or "").lower()
            if bounce_type in self.bounce_types:
                return self.bounce_types[bounce_type]
            # no type: the enhanced status code says it (4.x.x temporary, else permanent)
            status = str(item.get("status") or "")
            return RejectReason.SOFT_BOUNCE if status.startswith("4") else RejectReason.HARD_BOUNCE
        if kind is EventKind.DROPPED:
            reason = str(item.get("reason") or "").strip().lower()
            return self.drop_reasons.get(reason, RejectReason.OTHER)
        return None


def _slow_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedBodyError(f"not JSON: {exc}") from None


def _kind_of(value: Any) -> str:
    names: dict[type, str] = {dict: "an object", list: "an array", str: "a string"}
    return names.get(type(value)) or repr(value)[:80]


def _text(item: Mapping[str, Any], key: str, required: bool = False) -> str | None:
    value = item.get(key)
    if value is None or value == "":
        if required:
            raise ValueError(f"no '{key}'")
        return None
    if isinstance(value, str):
        return value
    if required or isinstance(value, dict | list):
        raise ValueError(f"'{key}' must be a string, got {value!r}")
    return str(value)  # a number where text belongs: keep what it says


def _event_id(item: Mapping[str, Any]) -> str:
    """``sg_event_id``; without one, a digest of the item (the same item, the same id)."""
    value = item.get("sg_event_id")
    if isinstance(value, str) and value.strip() and len(value) <= MAX_ID_LENGTH:
        return value
    if value is not None and not isinstance(value, str):
        raise ValueError(f"'sg_event_id' must be a string, got {value!r}")
    try:
        canonical = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits
        canonical = json.dumps(item, sort_keys=True, default=repr).encode()
    digest = hashlib.sha256(canonical).hexdigest()
    return f"sha256:{digest}"


def _instant(value: Any) -> dt.datetime:
    """A Unix timestamp (seconds) as an aware UTC instant."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"'timestamp' must be Unix seconds, got {value!r}")
    try:
        return dt.datetime.fromtimestamp(float(value), dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"'timestamp' must be Unix seconds, got {value!r}") from None


def _message_id(value: Any) -> str | None:
    """Our public id from the custom args; anything else is not ours to look up."""
    if isinstance(value, str) and 0 < len(value.strip()) <= 64:
        return value.strip()
    return None


def _provider_message_id(value: Any) -> str | None:
    """The X-Message-Id the Mail Send answer gave: ``sg_message_id`` up to its first dot."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value.split(".", 1)[0][:MAX_ID_LENGTH]


def _recipient(item: Mapping[str, Any]) -> str:
    email = _text(item, "email", required=True)
    assert email is not None
    return email.strip().lower()
