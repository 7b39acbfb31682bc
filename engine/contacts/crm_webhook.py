"""The outbound CRM webhook: every queued stage change and reply POSTed, signed, in order.

Rows come from the CRM outbox (``engine.crm_outbox``, written in the transaction of the
change). Each row is one POST of JSON ``{"id", "type", "occurred_at", "contact", ...}``
signed as ``engine.signing`` describes. Delivery is at least once: a crash between the
receiver's 2xx and our commit sends that row again, so receivers dedupe on ``id``.

Order: only a contact's *head* (its oldest undelivered row that is not given up) is ever
sent, so a contact's changes arrive in the order they were made; a head that waits for
a retry holds back that contact's later rows, not anyone else's.

Concurrency: on PostgreSQL the head is locked ``FOR UPDATE SKIP LOCKED`` in the
transaction that POSTs it and records the answer. The lock lasts exactly as long as
the delivery, and dies with a crashed sender's connection, so there is no lease length
to tune against a slow receiver (a lease that expires mid-POST lets a second sender in).
A second sender skips the locked head and, because the head is still undelivered,
every later row of that contact too. SQLite ignores the lock: run one sender there
(the scheduler; SQLite mode runs one), or accept a rare duplicate the receiver drops.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import httpx2
import orjson
from sqlalchemy import Connection, Engine, Row, and_, exists, select, update

from engine.crm_outbox import CrmEventKind, enqueue, enqueue_reply
from engine.errors import ConfigurationError
from engine.settings.model import CrmWebhookSettings, Settings
from engine.signing import signed_headers
from engine.storage.schema import accounts, contacts, crm_outbox, owners

Backoff = Callable[[int], dt.timedelta]

# Answers that mean "not now" rather than "not this": retried, never given up.
RETRY_STATUSES = frozenset({408, 429})
MAX_ERROR = 500
_RESERVED = ("id", "type", "occurred_at", "contact")


def exponential_backoff(first: dt.timedelta, cap: dt.timedelta) -> Backoff:
    """``first`` after the first failed attempt, doubling with each one, at most ``cap``."""

    def backoff(attempts: int) -> dt.timedelta:
        doublings = min(max(attempts - 1, 0), 40)
        return min(cap, first * float(1 << doublings))

    return backoff


@dataclass
class DeliveryReport:
    """What one ``deliver_due`` round did."""

    delivered: int = 0
    retrying: int = 0  # refused or unreachable: due again after a backoff
    failed: int = 0  # refused too often (4xx): kept for an operator, never sent again
    receiver_down: bool = False  # the round stopped early: unreachable, 5xx, 408 or 429

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Outcome:
    delivered: bool
    error: str | None = None
    receiver_down: bool = False  # retry, and stop the round
    retry_after: dt.timedelta | None = None


class CrmWebhookSender:
    """POSTs the CRM outbox's due rows to one URL, signed with one secret."""

    def __init__(
        self,
        url: str,
        secret: bytes,
        timeout: float = 10.0,
        backoff: Backoff | None = None,
        max_refusals: int = 3,
    ) -> None:
        self.url = url
        self._secret = secret
        self._backoff = backoff or exponential_backoff(
            dt.timedelta(seconds=30), dt.timedelta(hours=1)
        )
        self._max_refusals = max_refusals
        self._client = httpx2.Client(timeout=timeout, follow_redirects=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> CrmWebhookSender | None:
        """The sender ``crm_webhook`` configures, or ``None`` when it names no url."""
        config: CrmWebhookSettings = settings.crm_webhook
        if config.url is None:
            return None
        if settings.crm_webhook_secret is None:
            raise ConfigurationError(
                "crm_webhook.url is set but SALESCYCLE_CRM_WEBHOOK_SECRET is not; set it to "
                "the secret the receiver verifies signatures with (32 random characters)"
            )
        backoff = exponential_backoff(
            dt.timedelta(seconds=config.retry_first_seconds),
            dt.timedelta(seconds=config.retry_max_seconds),
        )
        secret = settings.crm_webhook_secret.get_secret_value().encode()
        return cls(config.url, secret, config.timeout_seconds, backoff, config.max_refusals)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> CrmWebhookSender:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def deliver_due(self, database: Engine, now: dt.datetime, limit: int = 500) -> DeliveryReport:
        """POST up to ``limit`` due rows, oldest first, one transaction per row.

        Stops early when the receiver looks down (no connection, a timeout, 5xx, 408,
        429): trying every other contact would only hammer it, and hold the caller for
        ``limit`` timeouts. The next round probes again with the next contact's head.
        """
        report = DeliveryReport()
        after = 0
        for _ in range(limit):
            with database.begin() as connection:
                row = connection.execute(_next_head(connection, now, after)).first()
                if row is None:
                    break
                after = row.id
                outcome = self._post(row, _contact(connection, row.contact_id), now)
                self._record(connection, row, outcome, now, report)
            if outcome.receiver_down:
                report.receiver_down = True
                break
        return report

    def _post(self, row: Row[Any], contact: dict[str, Any], now: dt.datetime) -> _Outcome:
        body = orjson.dumps(_body(row, contact))
        try:
            answer = self._client.post(
                self.url, content=body, headers=signed_headers(self._secret, body, now)
            )
        except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
            return _Outcome(False, f"{type(exc).__name__}: {exc}", receiver_down=True)
        if 200 <= answer.status_code < 300:
            return _Outcome(True)
        error = f"HTTP {answer.status_code}: {answer.text[:300]}"
        if answer.status_code >= 500 or answer.status_code in RETRY_STATUSES:
            return _Outcome(False, error, True, _retry_after(answer.headers.get("Retry-After")))
        return _Outcome(False, error)

    def _record(
        self, connection: Connection, row: Row[Any], outcome: _Outcome, now: dt.datetime,
        report: DeliveryReport,
    ) -> None:  # fmt: skip
        attempts = int(row.attempts) + 1
        values: dict[str, Any] = {"attempts": attempts}
        if outcome.delivered:
            values["delivered_at"] = now
            report.delivered += 1
        elif not outcome.receiver_down and attempts >= self._max_refusals:
            values.update(next_attempt_at=None, last_error=outcome.error)
            report.failed += 1
        else:
            wait = max(self._backoff(attempts), outcome.retry_after or dt.timedelta(0))
            values.update(next_attempt_at=now + wait, last_error=outcome.error)
            report.retrying += 1
        if values.get("last_error"):
            values["last_error"] = str(values["last_error"])[:MAX_ERROR]
        connection.execute(update(crm_outbox).where(crm_outbox.c.id == row.id).values(values))


def _next_head(connection: Connection, now: dt.datetime, after: int) -> Any:
    """The first due row after ``after`` with no undelivered, not given-up row before it."""
    earlier = crm_outbox.alias("earlier")
    waiting_before = exists().where(
        earlier.c.contact_id == crm_outbox.c.contact_id,
        earlier.c.id < crm_outbox.c.id,
        earlier.c.delivered_at.is_(None),
        earlier.c.next_attempt_at.is_not(None),
    )
    query = (
        select(crm_outbox)
        .where(
            and_(crm_outbox.c.delivered_at.is_(None), crm_outbox.c.next_attempt_at <= now),
            crm_outbox.c.id > after,
            ~waiting_before,
        )
        .order_by(crm_outbox.c.id)
        .limit(1)
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=crm_outbox)
    return query


def _contact(connection: Connection, contact_id: int) -> dict[str, Any]:
    """The contact as the CRM sees it now; just its id once it was erased."""
    query = (
        select(
            contacts.c.id, contacts.c.crm_id, contacts.c.email, contacts.c.first_name,
            contacts.c.last_name, contacts.c.stage, owners.c.email.label("owner_email"),
            owners.c.name.label("owner_name"), accounts.c.crm_id.label("account_crm_id"),
            accounts.c.name.label("account_name"),
        )
        .outerjoin(owners, owners.c.id == contacts.c.owner_id)
        .outerjoin(accounts, accounts.c.id == contacts.c.account_id)
        .where(contacts.c.id == contact_id)
    )  # fmt: skip
    found = connection.execute(query).mappings().first()
    if found is None:
        return {"id": contact_id}
    owner = {"email": found["owner_email"], "name": found["owner_name"]}
    account = {"crm_id": found["account_crm_id"], "name": found["account_name"]}
    return {
        **{key: found[key] for key in ("id", "crm_id", "email", "first_name", "last_name")},
        "stage": found["stage"],
        "owner": owner if owner["email"] else None,
        "account": account if account["name"] else None,
    }


def _body(row: Row[Any], contact: Mapping[str, Any]) -> dict[str, Any]:
    payload = row.payload if isinstance(row.payload, dict) else {"payload": row.payload}
    body: dict[str, Any] = {
        "id": row.id,
        "type": row.kind,
        "occurred_at": row.created_at.isoformat(),
        "contact": dict(contact),
    }
    body.update({key: value for key, value in payload.items() if key not in _RESERVED})
    return body


def _retry_after(header: str | None) -> dt.timedelta | None:
    """``Retry-After`` in seconds (the HTTP-date form is rare from webhooks: ignored)."""
    if header is None or not header.strip().isdigit():
        return None
    return dt.timedelta(seconds=min(int(header.strip()), 86_400))


__all__ = [
    "CrmEventKind",
    "CrmWebhookSender",
    "DeliveryReport",
    "exponential_backoff",
    "enqueue",
    "enqueue_reply",
]
