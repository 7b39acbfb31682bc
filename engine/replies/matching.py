"""Which of our messages an inbound message answers, and whose it is.

Tried in this order: a signed token in a recipient address (``reply+TOKEN@`` from a
message's Reply-To, ``unsubscribe+TOKEN@`` from its ``List-Unsubscribe`` mailto), then
``In-Reply-To``, then ``References`` (newest first) against ``messages.rfc_message_id``.
A forged or altered token matches nothing. Internal mail (notes to owners, forwards)
never matches: a reply to it is not the contact's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select

from engine.replies.model import Classification
from engine.storage.schema import accounts, contacts, enrollments, messages, owners
from engine.tracking.tokens import TokenPurpose, TokenSigner

_TOKEN_ADDRESS = re.compile(r"(reply|unsubscribe)\+([^@\s]+)@", re.IGNORECASE)
_PURPOSES = {"reply": TokenPurpose.REPLY, "unsubscribe": TokenPurpose.UNSUBSCRIBE}


class MatchedBy(StrEnum):
    """How an inbound message was tied to one of ours."""

    REPLY_TOKEN = "reply_token"
    UNSUBSCRIBE_TOKEN = "unsubscribe_token"
    IN_REPLY_TO = "in_reply_to"
    REFERENCES = "references"


@dataclass(frozen=True)
class Match:
    """Our message an inbound one answers, with its contact (account, owner) and enrollment."""

    via: MatchedBy
    message: Mapping[str, Any]
    contact: Mapping[str, Any]
    account: Mapping[str, Any] | None
    owner: Mapping[str, Any] | None
    enrollment: Mapping[str, Any] | None

    @property
    def unsubscribe(self) -> bool:
        """Whether it came to the message's unsubscribe address (a request, whatever it says)."""
        return self.via is MatchedBy.UNSUBSCRIBE_TOKEN


def match_inbound(
    connection: Connection, classification: Classification, signer: TokenSigner
) -> Match | None:
    """The message ``classification`` answers, or ``None`` when nothing of ours matches."""
    for via, public_id in token_ids(classification.recipients, signer):
        message = _message(connection, messages.c.public_id == public_id)
        if message is not None:
            return _match(connection, via, message)
    threads = [(MatchedBy.IN_REPLY_TO, classification.in_reply_to)]
    threads += [(MatchedBy.REFERENCES, ref) for ref in reversed(classification.references)]
    for via, rfc_id in threads:
        if rfc_id:
            message = _message(connection, messages.c.rfc_message_id == rfc_id.strip())
            if message is not None:
                return _match(connection, via, message)
    return None


def token_ids(addresses: tuple[str, ...], signer: TokenSigner) -> Iterator[tuple[MatchedBy, str]]:
    """``(how, message public id)`` for each genuine reply or unsubscribe token among
    ``addresses``; reply tokens first."""
    found: list[tuple[MatchedBy, str]] = []
    for address in addresses:
        hit = _TOKEN_ADDRESS.match(parseaddr(address)[1] or address)
        if hit is None:
            continue
        purpose = _PURPOSES[hit[1].lower()]
        payload = signer.verify(purpose, hit[2])
        if payload is not None:
            via = (
                MatchedBy.REPLY_TOKEN
                if purpose is TokenPurpose.REPLY
                else MatchedBy.UNSUBSCRIBE_TOKEN
            )
            found.append((via, payload))
    found.sort(key=lambda item: item[0] is not MatchedBy.REPLY_TOKEN)
    yield from found


def _message(connection: Connection, condition: Any) -> dict[str, Any] | None:
    # internal mail (notes, forwards) is written with a template name in parentheses
    query = select(messages).where(condition, messages.c.template.not_like("(%"))
    row = connection.execute(query.limit(1)).mappings().first()
    return dict(row) if row is not None else None


def _match(connection: Connection, via: MatchedBy, message: dict[str, Any]) -> Match | None:
    contact = _row(connection, contacts, message["contact_id"])
    if contact is None:
        return None  # erased meanwhile: the cascade removes its messages too, but be safe
    return Match(
        via=via,
        message=message,
        contact=contact,
        account=_row(connection, accounts, contact["account_id"]),
        owner=_row(connection, owners, contact["owner_id"]),
        enrollment=_row(connection, enrollments, message["enrollment_id"]),
    )


def _row(connection: Connection, table: Any, row_id: int | None) -> dict[str, Any] | None:
    if row_id is None:
        return None
    row = connection.execute(select(table).where(table.c.id == row_id)).mappings().first()
    return dict(row) if row is not None else None
