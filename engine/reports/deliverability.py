"""Bounce and complaint rates against the limits large mailbox providers set bulk senders.

Gmail and Yahoo (2024 sender requirements) ask bulk senders to keep spam complaints
under 0.3% and aim under 0.1%; bounces above about 2% get a sender throttled or blocked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine.reports.sequences import StepStats

COMPLAINT_LIMIT, COMPLAINT_AIM = 0.003, 0.001
BOUNCE_LIMIT, BOUNCE_CLOSE = 0.02, 0.015  # "close" is three quarters of the limit


@dataclass(frozen=True)
class Deliverability:
    """Messages sent and their bounces and complaints, with the warnings they call for.

    The bounce rate is per message sent; the complaint rate per message delivered (as
    Gmail's Postmaster Tools reports it), per message sent when no deliveries are recorded.
    """

    sent: int
    delivered: int
    bounced: int
    complained: int

    @property
    def bounce_rate(self) -> float | None:
        return self.bounced / self.sent if self.sent else None

    @property
    def complaint_rate(self) -> float | None:
        base = self.delivered or self.sent
        return self.complained / base if base else None

    @property
    def status(self) -> str:
        """``ok``, ``warning`` (close to a limit) or ``over`` (past one)."""
        bounce, complaint = self.bounce_rate or 0.0, self.complaint_rate or 0.0
        if bounce >= BOUNCE_LIMIT or complaint >= COMPLAINT_LIMIT:
            return "over"
        if bounce >= BOUNCE_CLOSE or complaint >= COMPLAINT_AIM:
            return "warning"
        return "ok"

    def warnings(self) -> list[str]:
        """One line for each rate at or close to its limit."""
        lines = []
        bounce, complaint = self.bounce_rate or 0.0, self.complaint_rate or 0.0
        if complaint >= COMPLAINT_LIMIT:
            lines.append(
                f"complaint rate {complaint:.2%} is over the 0.3% limit for bulk senders: "
                "pause sending and review who is being mailed"
            )
        elif complaint >= COMPLAINT_AIM:
            lines.append(
                f"complaint rate {complaint:.2%} is above the 0.1% to aim for (the limit is 0.3%)"
            )
        if bounce >= BOUNCE_LIMIT:
            lines.append(f"bounce rate {bounce:.2%} is over the 2% limit: clean the list")
        elif bounce >= BOUNCE_CLOSE:
            lines.append(f"bounce rate {bounce:.2%} is close to the 2% limit")
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "bounced": self.bounced,
            "complained": self.complained,
            "bounce_rate": self.bounce_rate,
            "complaint_rate": self.complaint_rate,
            "limits": {
                "bounce": BOUNCE_LIMIT,
                "complaint": COMPLAINT_LIMIT,
                "complaint_aim": COMPLAINT_AIM,
            },
            "status": self.status,
            "warnings": self.warnings(),
        }


def deliverability(steps: Iterable[StepStats]) -> Deliverability:
    """The rates over every step's messages."""
    rows = list(steps)
    return Deliverability(
        sum(r.sent for r in rows),
        sum(r.delivered for r in rows),
        sum(r.bounced for r in rows),
        sum(r.complained for r in rows),
    )
