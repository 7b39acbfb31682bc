"""Bounces: delivery status notifications and the addresses they report, hard or soft.

flufl.bounce reads the failed addresses (RFC 3464 reports and a dozen mail servers'
own formats). Its detectors are heuristics over the whole body, so they only run on
what looks like a bounce: a ``multipart/report`` of delivery status, a message from
the mailer daemon or postmaster, or a bounce subject. An address is hard when it
failed permanently and its report's ``Status`` is not a 4.x.x (temporary) one.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email.message import Message
from email.utils import parseaddr

from flufl.bounce import all_failures

from engine.replies.model import BouncedAddress

log = logging.getLogger("salescycle.replies")

_DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon", "maildaemon", "mdaemon")
_SUBJECT = re.compile(
    r"undeliver|undelivered mail|delivery status notification|delivery failure|"
    r"mail delivery (failed|failure|subsystem)|returned mail|failure notice|"
    r"delivery has failed|delayed mail|warning: could not send|unzustellbar|"
    r"nicht zustellbar|kan ikke leveres|ikke leveret|kunde inte levereras|olevererbart",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Bounce:
    """What a delivery status notification says: the failed addresses and how it was told."""

    addresses: tuple[BouncedAddress, ...]
    reason: str


def detect_bounce(message: Message, sender: str | None, subject: str) -> Bounce | None:
    """The bounce in ``message``, or ``None`` when it is not one (or names no address).

    A delivery report that names no failed address (``Action: delivered``) is not a
    bounce either; the caller reads it as an automatic message.
    """
    report = is_delivery_report(message)
    daemon = sender is not None and sender.split("@")[0] in _DAEMONS
    if not (report or daemon or _SUBJECT.search(subject)):
        return None
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector tripped over a malformed bounce: read no address
        log.warning("flufl.bounce could not read a bounce", exc_info=True)
        temporary, permanent = frozenset(), frozenset()
    statuses = _statuses(message) if report else {}
    found: dict[str, bool] = {}
    for raw, hard in [*((a, False) for a in temporary), *((a, True) for a in permanent)]:
        email = raw.decode("ascii", errors="replace").strip().lower()
        if email:
            soft_status = statuses.get(email, "").startswith("4")
            found[email] = found.get(email, False) or (hard and not soft_status)
    if not found:
        return None
    how = "delivery status report (multipart/report)" if report else "bounce from the mail server"
    return Bounce(tuple(BouncedAddress(e, h) for e, h in sorted(found.items())), how)


def is_delivery_report(message: Message) -> bool:
    """Whether the message is an RFC 3464 delivery status notification."""
    if message.get_content_type() != "multipart/report":
        return False
    return str(message.get_param("report-type", "")).lower() == "delivery-status"


def _statuses(message: Message) -> dict[str, str]:
    """``Status`` of each recipient block of the report, by lower-cased address."""
    statuses = {}
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status" or not part.is_multipart():
            continue
        for block in part.get_payload():
            if not isinstance(block, Message):
                continue
            recipient = str(block.get("final-recipient") or block.get("original-recipient") or "")
            address = parseaddr(recipient.split(";", 1)[-1].strip())[1].lower()
            if address:
                statuses[address] = str(block.get("status") or "").strip()
    return statuses
