"""Words every concern shares: kinds of event, causes of a stage change, statuses."""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """Something that happened to a message or a contact, whatever the provider called it."""

    QUEUED = "queued"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    OPENED = "opened"
    CLICKED = "clicked"
    REPLIED = "replied"
    AUTO_REPLIED = "auto_replied"
    BOUNCED = "bounced"
    DROPPED = "dropped"
    UNSUBSCRIBED = "unsubscribed"
    COMPLAINED = "complained"
    UNKNOWN = "unknown"


class StageCause(StrEnum):
    """Why a contact's stage changed; kept in the stage history beside every change."""

    CRM = "crm"
    EVENT = "event"
    REPLY = "reply"
    SEQUENCE = "sequence"
    MANUAL = "manual"
    API = "api"


class StageKind(StrEnum):
    """Open stages form the funnel; ``won`` and ``lost`` end it."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


class EnrollmentStatus(StrEnum):
    """Where one contact's run through one sequence stands."""

    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    EXITED = "exited"
    FAILED = "failed"


class ReplyIntent(StrEnum):
    """What a human reply means, as the rules in ``config/replies.yaml`` read it."""

    INTERESTED = "interested"
    OBJECTION = "objection"
    NOT_INTERESTED = "not_interested"
    REFERRAL = "referral"
    UNSUBSCRIBE_REQUEST = "unsubscribe_request"
    OTHER = "other"
