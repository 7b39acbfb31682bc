"""The one schema: every table of the design, with the indexes its queries need."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from engine.storage.types import UTCDateTime, json_type

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _timestamps() -> list[Column[object]]:
    return [
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
    ]


owners = Table(
    "owners",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=True),
    Column("title", String(200), nullable=True),
    Column("phone", String(64), nullable=True),
    Column("signature", Text, nullable=True),
    *_timestamps(),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("crm_id", String(128), nullable=True, unique=True),
    Column("name", String(300), nullable=False),
    Column("name_key", String(300), nullable=False, index=True),
    Column("domain", String(253), nullable=True, index=True),
    Column("industry", String(200), nullable=True),
    Column("country", String(2), nullable=True),
    Column("employees", Integer, nullable=True),
    Column("attributes", json_type(), nullable=False),
    *_timestamps(),
    Index(None, "country", "employees"),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("crm_id", String(128), nullable=True, unique=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("first_name", String(200), nullable=True),
    Column("last_name", String(200), nullable=True),
    Column("title", String(300), nullable=True),
    Column("phone", String(64), nullable=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True, index=True),
    Column("owner_id", ForeignKey("owners.id", ondelete="SET NULL"), nullable=True, index=True),
    Column("stage", String(64), nullable=False),
    Column("stage_entered_at", UTCDateTime, nullable=False),
    Column("timezone", String(64), nullable=True),
    Column("locale", String(16), nullable=True),
    Column("attributes", json_type(), nullable=False),
    Column("referred_by_id", ForeignKey("contacts.id", ondelete="SET NULL"), nullable=True),
    *_timestamps(),
    Index(None, "stage", "owner_id"),
)

stage_history = Table(
    "stage_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("from_stage", String(64), nullable=True),
    Column("to_stage", String(64), nullable=False),
    Column("cause", String(32), nullable=False),
    Column("detail", Text, nullable=True),
    Column("changed_at", UTCDateTime, nullable=False),
    # kept by record_stage_changes for the reports: the owner when the stage was entered,
    # and the next change (NULL while the contact is still in the stage)
    Column("owner_id", ForeignKey("owners.id", ondelete="SET NULL"), nullable=True),
    Column("left_at", UTCDateTime, nullable=True),
    Column("next_stage", String(64), nullable=True),
    Index(None, "contact_id", "changed_at"),
    Index(None, "to_stage", "changed_at"),
)

enrollments = Table(
    "enrollments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("sequence", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("step_index", Integer, nullable=False, server_default=text("0")),
    Column("step_id", String(128), nullable=True),
    Column("next_run_at", UTCDateTime, nullable=True),
    Column("claimed_by", String(128), nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("exit_reason", String(64), nullable=True),
    Column("error", Text, nullable=True),
    Column("enrolled_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "status", "next_run_at"),
    Index(None, "sequence", "status"),
    Index(None, "contact_id", "sequence"),
    # one active (or paused) enrollment per contact and sequence
    Index(
        "uq_enrollments_one_open",
        "contact_id",
        "sequence",
        unique=True,
        sqlite_where=text("status IN ('active', 'paused')"),
        postgresql_where=text("status IN ('active', 'paused')"),
    ),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    # the id in the message's tokens (reply address, tracking and unsubscribe links)
    Column("public_id", String(64), nullable=True),
    Column("enrollment_id", ForeignKey("enrollments.id", ondelete="SET NULL"), nullable=True),
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("sequence", String(128), nullable=True),
    Column("step_id", String(128), nullable=True),
    Column("variant", String(64), nullable=True),
    Column("template", String(300), nullable=False),
    Column("to_email", String(320), nullable=False),
    Column("from_email", String(320), nullable=False),
    Column("subject", String(998), nullable=False),
    Column("rfc_message_id", String(300), nullable=False, unique=True),
    Column("in_reply_to", String(300), nullable=True),
    Column("status", String(16), nullable=False),
    Column("transport", String(32), nullable=True),
    Column("provider_message_id", String(300), nullable=True, index=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text, nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),
    # [{"url": ..., "tag": ...}]: a click token may only redirect to one of these
    Column("links", json_type(), nullable=True),
    # kept by record_events for the reports: what became of the message (OUTCOME_BITS) and
    # the intent of its latest reply
    Column("outcomes", Integer, nullable=False, server_default=text("0")),
    Column("reply_intent", String(32), nullable=True),
    *_timestamps(),
    Index(None, "contact_id", "created_at"),
    Index(None, "enrollment_id"),
    Index(None, "sequence", "step_id"),
    Index(None, "status", "updated_at"),
    Index(None, "public_id", unique=True),
    Index(None, "from_email", "sent_at"),  # the daily cap per owner
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("provider", String(32), nullable=False),
    Column("provider_event_id", String(300), nullable=True),
    Column("kind", String(32), nullable=False),
    Column("message_id", ForeignKey("messages.id", ondelete="SET NULL"), nullable=True),
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), nullable=True),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("url", Text, nullable=True),
    Column("link_tag", String(128), nullable=True),
    Column("machine", Boolean, nullable=False, server_default=text("false")),
    Column("reject_reason", String(64), nullable=True),
    Column("detail", json_type(), nullable=False),
    # the contact's stage when an exit (unsubscribe, complaint, bounce) was recorded
    Column("contact_stage", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("provider", "provider_event_id"),
    Index(None, "contact_id", "kind", "occurred_at"),
    Index(None, "message_id", "kind"),
    # segment event conditions: one kind in a window, counted per contact, from the index
    Index(None, "kind", "occurred_at", "contact_id", "machine"),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("reason", String(32), nullable=False),
    Column("source", String(64), nullable=False),
    Column("detail", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

webhook_inbox = Table(
    "webhook_inbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", String(64), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("headers", json_type(), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("processed_at", UTCDateTime, nullable=True),
    Column("error", Text, nullable=True),
    Index(None, "status", "id"),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

# Changes the CRM must hear of, written in the transaction that made them and POSTed by
# engine.contacts.crm_webhook. ``contact_id`` has no foreign key on purpose: the rows
# outlive an erased contact (they carry no personal data; the contact is read at sending).
crm_outbox = Table(
    "crm_outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("contact_id", Integer, nullable=False),
    Column("payload", json_type(), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    # when to try next; NULL once given up (the receiver refused it too often)
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    # the undelivered rows in id order (due or not, from the index); each contact's, in order
    Index(
        "ix_crm_outbox_undelivered",
        "id",
        "next_attempt_at",
        sqlite_where=text("delivered_at IS NULL"),
        postgresql_where=text("delivered_at IS NULL"),
    ),
    Index(
        "ix_crm_outbox_undelivered_contact",
        "contact_id",
        "id",
        sqlite_where=text("delivered_at IS NULL"),
        postgresql_where=text("delivered_at IS NULL"),
    ),
)
