"""All wiring in one place: from a workspace folder to settings, pipeline, segments, database."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from engine.contacts import CRM_FILE, CrmMapping, load_mapping
from engine.contacts.crm_webhook import CrmWebhookSender
from engine.contacts.owners import OwnerProfile, read_owner_profiles
from engine.durations import parse_duration
from engine.errors import WorkspaceError
from engine.replies import ReplyRules, load_reply_rules
from engine.segments import FieldSpec, SegmentSet, field_specs, read_segments
from engine.segments.parsing import SegmentParser
from engine.sequences import (
    EnrollmentRules,
    References,
    SequenceKind,
    SequenceSet,
    read_sequences,
    sequence_names,
)
from engine.sequences.limits import SendLimits
from engine.sequences.scheduler import MESSAGES_PER_BATCH
from engine.settings import Settings, load_settings
from engine.stages import Pipeline, load_pipeline
from engine.storage import create_database_engine, ensure_current, resolve_database_url
from engine.templating import (
    AttributeTypes,
    MessageBuilder,
    TemplateCatalog,
    TemplateRenderer,
    read_catalog,
)
from engine.tracking import TokenSigner, TrackingLinks
from engine.workspace import Workspace


@dataclass
class Runtime:
    """One workspace opened for work; objects are built on first use."""

    workspace: Workspace
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, root: Path, **overrides: Any) -> Runtime:
        return cls(Workspace(root.resolve()), {k: v for k, v in overrides.items() if v})

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.workspace, self.overrides)

    @cached_property
    def pipeline(self) -> Pipeline:
        return load_pipeline(self.workspace)

    @cached_property
    def crm_mapping(self) -> CrmMapping:
        """The CRM mapping of ``config/crm.yaml``; raises with every problem in it."""
        return load_mapping(self.workspace.root / CRM_FILE, self.workspace, self.pipeline)

    @cached_property
    def fields(self) -> dict[str, FieldSpec]:
        """Every field segments may test: the built-in ones and the mapping's custom ones."""
        return field_specs(self.crm_mapping)

    @cached_property
    def segments(self) -> SegmentSet:
        """Every segment of ``segments/``; raises with every problem when any file is wrong."""
        segments, problems = read_segments(
            self.workspace, self.fields, self.pipeline.ids, sequence_names(self.workspace)
        )
        if problems:
            raise WorkspaceError(problems)
        return segments

    @cached_property
    def owner_profiles(self) -> dict[str, OwnerProfile]:
        """Owner titles, phones and signatures from ``config/owners.yaml``."""
        profiles, problems = read_owner_profiles(self.workspace)
        if problems:
            raise WorkspaceError(problems)
        return profiles

    @cached_property
    def templates(self) -> TemplateCatalog:
        """Every template of ``templates/``; raises with every problem in their files."""
        catalog = read_catalog(self.workspace)
        if catalog.problems:
            raise WorkspaceError(catalog.problems)
        return catalog

    @cached_property
    def reply_rules(self) -> ReplyRules:
        """The intent rules of ``config/replies.yaml``; raises with every problem in it."""
        return load_reply_rules(self.workspace)

    @cached_property
    def tracking_links(self) -> TrackingLinks:
        """Signed reply, tracking and unsubscribe links.

        Without ``SALESCYCLE_SECRET_KEY`` the links are signed with a throw-away key:
        fine for previews and checks; sending refuses to start without the key.
        """
        sending = self.settings.sending
        return TrackingLinks(
            TokenSigner(self.secret_key), sending.tracking_url, sending.reply_domain
        )

    @cached_property
    def secret_key(self) -> bytes:
        """``SALESCYCLE_SECRET_KEY``: signs tokens and outbound webhooks (a throw-away key
        when unset: fine for previews and checks, useless to anyone verifying them)."""
        secret = self.settings.secret_key
        return secret.get_secret_value().encode() if secret else secrets.token_bytes(32)

    def message_builder(self) -> MessageBuilder:
        """Renders and composes messages from this workspace's templates."""
        settings = self.settings
        renderer = TemplateRenderer(self.templates, settings.default_locale, self.tracking_links)
        types = AttributeTypes.from_fields(self.fields)
        return MessageBuilder(renderer, types, settings, self.owner_profiles, self.tracking_links)

    @cached_property
    def sequences(self) -> SequenceSet:
        """Every sequence of ``config/sequences/``; raises with every problem in them."""
        names = sequence_names(self.workspace)
        references = References(self.templates, self.segments.segments.keys(), self.pipeline.ids)
        conditions = SegmentParser(self.fields, self.pipeline.ids, names)
        sequences, problems = read_sequences(self.workspace, references, conditions)
        if problems:
            raise WorkspaceError(problems)
        return sequences

    def enrollment_rules(self) -> EnrollmentRules:
        """The limits across sequences (concurrent outreach per contact)."""
        outreach = frozenset(s.name for s in self.sequences if s.kind is SequenceKind.OUTREACH)
        return EnrollmentRules(self.settings.sequences.max_concurrent_outreach, outreach)

    def send_limits(self) -> SendLimits:
        """The per-contact gap and per-owner daily cap of ``sequences`` in the settings."""
        sequences = self.settings.sequences
        gap = parse_duration(sequences.contact_gap)
        return SendLimits(gap or None, sequences.owner_daily_cap or None)

    def handoff_grace(self) -> timedelta:
        """How long an unfinished hand-off may still be under way: a batch posts its
        messages one after another, so a whole batch's timeouts, and two more."""
        return timedelta(seconds=(MESSAGES_PER_BATCH + 2) * self.settings.sending.timeout_seconds)

    def confirms_hand_offs(self) -> bool:
        """Whether the provider's events settle unfinished hand-offs (SendGrid with its
        signed Event Webhook), so that silence means a message was not taken."""
        settings = self.settings
        return settings.sending.transport == "sendgrid" and bool(
            settings.sendgrid_webhook_public_key
        )

    def retry_backoff(self) -> tuple[timedelta, ...]:
        """The waits before handing a refused message off again."""
        return tuple(timedelta(seconds=s) for s in self.settings.sending.retry_backoff_seconds)

    @cached_property
    def database_url(self) -> str:
        return resolve_database_url(self.settings.database_url, self.workspace.root)

    @cached_property
    def database(self) -> Engine:
        """The database engine, without any check of its revision (for ``db`` commands)."""
        return create_database_engine(self.database_url)

    def ready_database(self) -> Engine:
        """The database engine, refusing one that is not at this version's revision."""
        ensure_current(self.database)
        return self.database

    @cached_property
    def crm_webhook_sender(self) -> CrmWebhookSender | None:
        """The outbound CRM webhook's sender; ``None`` without ``crm_webhook.url``."""
        return CrmWebhookSender.from_settings(self.settings)

    def close(self) -> None:
        if "database" in self.__dict__:
            self.database.dispose()
        if (sender := self.__dict__.get("crm_webhook_sender")) is not None:
            sender.close()
