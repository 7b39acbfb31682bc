"""The CRM API's request and response bodies (they make its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_ITEMS = 1000
Scalar = str | int | float | bool | None


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OwnerIn(_In):
    """The sales rep responsible for a contact."""

    email: str
    name: str | None = None


class AccountIn(_In):
    """A company; matched by ``crm_id``, else ``domain``, else ``name``. Fields left out
    keep their stored values; ``null`` blanks them."""

    crm_id: str | None = None
    name: str | None = None
    domain: str | None = None
    industry: str | None = None
    country: str | None = Field(default=None, description="ISO 3166 code or English name")
    employees: int | None = None
    attributes: dict[str, Scalar] = Field(
        default={}, description="Custom fields of config/crm.yaml `account_attributes`"
    )


class ContactIn(_In):
    """A contact; matched by ``crm_id``, else ``email``. Fields left out keep their stored
    values; ``null`` blanks them."""

    email: str
    crm_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    phone: str | None = None
    stage: str | None = Field(default=None, description="A stage id or a mapped CRM stage name")
    timezone: str | None = Field(default=None, description="IANA name, e.g. Europe/Oslo")
    locale: str | None = Field(default=None, description="e.g. en, da, sv_SE")
    owner: OwnerIn | None = None
    account: AccountIn | None = None
    attributes: dict[str, Scalar] = Field(
        default={}, description="Custom fields of config/crm.yaml `attributes`"
    )


class ContactBatch(_In):
    contacts: list[ContactIn] = Field(min_length=1, max_length=MAX_ITEMS)


class AccountBatch(_In):
    accounts: list[AccountIn] = Field(min_length=1, max_length=MAX_ITEMS)


class ItemError(BaseModel):
    """Why the item at ``index`` of the request was not stored (the others were)."""

    index: int
    error: str


class ContactsResult(BaseModel):
    received: int
    created: int
    updated: int
    unchanged: int
    accounts_created: int
    accounts_updated: int
    owners_created: int
    owners_updated: int
    stage_changes: int
    errors: list[ItemError]


class AccountsResult(BaseModel):
    received: int
    created: int
    updated: int
    errors: list[ItemError]


class StageIn(_In):
    stage: str = Field(description="A stage id of config/stages.yaml")
    note: str | None = Field(default=None, max_length=1000, description="Kept in the history")


class StageResult(BaseModel):
    email: str
    from_stage: str
    stage: str
    changed: bool


class EnrollIn(_In):
    sequence: str
    emails: list[str] = Field(min_length=1, max_length=MAX_ITEMS)


class LeftOut(BaseModel):
    email: str
    reason: str


class EnrollResult(BaseModel):
    sequence: str
    enrolled: int
    left_out: list[LeftOut]


class ControlIn(_In):
    sequence: str
    email: str | None = Field(default=None, description="Only this contact's enrollment")


class ControlResult(BaseModel):
    action: str
    sequence: str
    changed: int


class ContactOut(BaseModel):
    email: str
    crm_id: str | None
    first_name: str | None
    last_name: str | None
    title: str | None
    phone: str | None
    stage: str
    stage_entered_at: datetime
    timezone: str | None
    locale: str | None
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class AccountOut(BaseModel):
    crm_id: str | None
    name: str
    domain: str | None
    industry: str | None
    country: str | None
    employees: int | None
    attributes: dict[str, Any]


class OwnerOut(BaseModel):
    email: str
    name: str | None


class StageChangeOut(BaseModel):
    at: datetime
    from_stage: str | None
    to_stage: str
    cause: str


class EventOut(BaseModel):
    kind: str
    occurred_at: datetime
    url: str | None
    link_tag: str | None
    machine: bool = Field(description="An automated open or click (scanner, prefetch)")
    reject_reason: str | None


class MessageOut(BaseModel):
    id: str | None = Field(description="The message's public id")
    sequence: str | None
    step_id: str | None
    variant: str | None
    subject: str
    status: str
    transport: str | None
    sent_at: datetime | None
    created_at: datetime
    events: list[EventOut]


class EnrollmentOut(BaseModel):
    sequence: str
    status: str
    step_id: str | None
    next_run_at: datetime | None
    exit_reason: str | None
    error: str | None
    enrolled_at: datetime


class ContactTimeline(BaseModel):
    """A contact, their account and owner, and what happened to them."""

    contact: ContactOut
    account: AccountOut | None
    owner: OwnerOut | None
    stage_history: list[StageChangeOut]
    messages: list[MessageOut] = Field(description="The latest 50, newest first")
    other_events: list[EventOut] = Field(description="Events tied to no message")
    enrollments: list[EnrollmentOut]
