"""What a sequence file says, after reading: the steps, triggers, window and rules.

A sequence (``config/sequences/NAME.yaml``) enrolls contacts (on entering a segment,
on entering a stage, or by hand) and runs its steps for each of them in order:

- ``send``: a template (and its weighted A/B variants), optionally in the thread of an
  earlier send (``thread: STEP``) and only ``when`` a condition holds;
- ``wait``: a duration (``4d``), business days (``3 business days``) or ``until`` a date;
- ``branch``: a condition with ``then`` and ``else`` step lists;
- ``stage``: move the contact to a stage; ``notify``: email the owner or call a webhook;
- ``exit``: end the enrollment.

Conditions are the segment language (``engine.segments``), applied to the one contact.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeAlias

from engine.segments.model import Condition
from engine.sequences.windows import SendWindow
from engine.settings import SenderSettings
from engine.templating import MessageFormat

# In ``exit_when``: the contact's stage changed for any reason but this enrollment's own
# ``stage`` steps.
STAGE_CHANGED = "stage_changed"


class SequenceKind(StrEnum):
    """Outreach counts against the per-contact limit and stops at the account; nurture not."""

    OUTREACH = "outreach"
    NURTURE = "nurture"


class TriggerKind(StrEnum):
    """How contacts enter a sequence."""

    SEGMENT = "segment"
    STAGE_ENTERED = "stage_entered"
    MANUAL = "manual"


@dataclass(frozen=True)
class Trigger:
    """``{segment: NAME}``, ``{stage_entered: STAGE}`` or ``manual``."""

    kind: TriggerKind
    target: str | None = None


@dataclass(frozen=True)
class SendStep:
    """Send a template; ``variants`` maps each A/B variant to its weight."""

    id: str
    template: str
    variants: dict[str, int]
    thread: str | None = None
    when: Condition | None = None
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class WaitStep:
    """Wait a duration, a number of business days, or until an instant."""

    id: str
    duration: timedelta | None = None
    business_days: int | None = None
    until: datetime | None = None
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class BranchStep:
    """Run ``then`` when the condition holds for the contact, else ``otherwise``."""

    id: str
    condition: Condition
    then: tuple[Step, ...]
    otherwise: tuple[Step, ...]
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class StageStep:
    """Move the contact to a stage (recorded with cause ``sequence``)."""

    id: str
    stage: str
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class NotifyStep:
    """Tell the owner by email, or call a signed outbound webhook (e.g. a CRM task)."""

    id: str
    owner: bool
    webhook: str | None = None
    message: str = ""
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class ExitStep:
    """End the enrollment here."""

    id: str
    reason: str = "exit step"
    line: int = field(default=0, compare=False)


Step: TypeAlias = SendStep | WaitStep | BranchStep | StageStep | NotifyStep | ExitStep


@dataclass(frozen=True)
class OnReply:
    """What a human reply does besides ending the enrollment: a stage, a notification."""

    stage: str | None = None
    notify_owner: bool = False


@dataclass(frozen=True)
class Sequence:
    """One sequence file, read and checked."""

    name: str
    description: str
    kind: SequenceKind
    format: MessageFormat
    trigger: Trigger
    reenroll_after: timedelta | None  # None: never re-enroll
    sender: SenderSettings | None  # None: the contact's owner
    window: SendWindow
    timezone: str | None  # None: the contact's own timezone
    exit_when: frozenset[str]
    account_stop: bool
    steps: tuple[Step, ...]
    on_reply: OnReply
    path: str
    line: int = 1

    def walk(self) -> Iterator[Step]:
        """Every step, those inside branches included, in the order they are written."""
        return walk(self.steps)

    def sends(self) -> list[SendStep]:
        """The send steps, in the order they are written."""
        return [step for step in self.walk() if isinstance(step, SendStep)]


def walk(steps: tuple[Step, ...]) -> Iterator[Step]:
    """``steps`` and, depth first, the steps of their branches."""
    for step in steps:
        yield step
        if isinstance(step, BranchStep):
            yield from walk(step.then)
            yield from walk(step.otherwise)
