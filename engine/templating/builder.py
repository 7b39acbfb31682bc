"""One call from a template and a contact to the message a transport sends."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.contacts.owners import OwnerProfile
from engine.delivery.message import Address, OutboundMessage, new_message_id
from engine.settings import SenderSettings, Settings
from engine.templating.compiler import CompiledTemplate, MessageFormat, one_line
from engine.templating.compose import MessageIdentity, ThreadParent, compose_message
from engine.templating.context import (
    OWNER_FIELDS,
    AttributeTypes,
    Recipient,
    company_context,
    owner_context,
    template_context,
)
from engine.templating.environment import FieldMap
from engine.templating.render import (
    RenderedMessage,
    TemplateRenderer,
    TemplateRenderError,
)
from engine.tracking import TrackingLinks


@dataclass(frozen=True)
class SendRequest:
    """What to send to whom: the step's template and variant, and who it belongs to."""

    template: str
    variant: str
    recipient: Recipient
    identity: MessageIdentity
    format: MessageFormat = MessageFormat.TEXT
    thread: ThreadParent | None = None
    locale: str | None = None  # overrides the contact's own locale


class MessageBuilder:
    """Renders and composes messages for one workspace."""

    def __init__(
        self,
        renderer: TemplateRenderer,
        types: AttributeTypes,
        settings: Settings,
        profiles: Mapping[str, OwnerProfile],
        links: TrackingLinks,
    ) -> None:
        self.renderer = renderer
        self.types = types
        self._settings = settings
        self._profiles = profiles
        self._links = links
        self._company = company_context(settings.company)
        self._owners: dict[tuple[Any, ...], FieldMap] = {}

    def variables(self, request: SendRequest) -> dict[str, Any]:
        """The template variables for a request (without the per-message helpers)."""
        owner = self._owner(request.recipient.owner)
        variables = template_context(request.recipient, self.types, self._company, owner)
        variables["sequence"] = {"name": request.identity.sequence or ""}
        variables["step"] = {"id": request.identity.step or ""}
        return variables

    def render(self, request: SendRequest, now: dt.datetime) -> RenderedMessage:
        """The rendered parts; raises :class:`TemplateRenderError` when the template fails."""
        links = self._links.for_message(request.identity.message_id)
        today = self._today(request, now)
        return self.renderer.render(self._compiled(request), self.variables(request), links, today)

    def build(self, request: SendRequest, now: dt.datetime) -> OutboundMessage:
        """The complete message; raises :class:`TemplateRenderError` when the template fails."""
        variables = self.variables(request)
        links = self._links.for_message(request.identity.message_id)
        today = self._today(request, now)
        rendered = self.renderer.render(self._compiled(request), variables, links, today)
        owner, contact = variables["owner"], request.recipient.contact
        full_name = " ".join(p for p in (contact.get("first_name"), contact.get("last_name")) if p)
        return compose_message(
            rendered,
            request.identity,
            sender=Address(str(owner["email"]), one_line(str(owner["name"]))),
            to=Address(str(contact["email"]), one_line(full_name) or None),
            links=links,
            sending_domain=self._settings.sending.domain,
            now=now,
            thread=request.thread,
        )

    @property
    def fallback_sender(self) -> SenderSettings:
        """Who sends when a contact has no owner, and who sends notes to owners."""
        return self._settings.sending.fallback_sender

    def note(self, to: str, subject: str, text: str, now: dt.datetime) -> OutboundMessage:
        """A plain internal note (to an owner): no template, no tracking, no footer."""
        sender = self.fallback_sender
        message_id = new_message_id()
        return OutboundMessage(
            message_id=message_id,
            rfc_message_id=f"<{message_id}@{self._settings.sending.domain}>",
            date=now,
            sender=Address(sender.email, sender.name),
            to=Address(to),
            reply_to=Address(sender.email, sender.name),
            subject=one_line(subject),
            text=text,
            html=None,
            headers=(),
            custom_args={"message_id": message_id, "kind": "note"},
        )

    def problems(self, request: SendRequest, now: dt.datetime) -> list[TemplateRenderError]:
        """Every failure of the request's template for its recipient (for ``check``)."""
        try:
            compiled = self._compiled(request)
        except TemplateRenderError as exc:
            return [exc]
        return self.renderer.problems(compiled, self.variables(request), self._today(request, now))

    def _compiled(self, request: SendRequest) -> CompiledTemplate:
        contact = request.recipient.contact
        locale = request.locale or contact.get("locale") or self._settings.default_locale
        return self.renderer.compiled(request.template, request.variant, locale, request.format)

    def _today(self, request: SendRequest, now: dt.datetime) -> dt.date:
        return now.astimezone(self._timezone(request.recipient.contact.get("timezone"))).date()

    def _owner(self, row: Mapping[str, Any] | None) -> FieldMap:
        """The owner's fields; one owner signs many messages, so they are built once."""
        key = tuple(row.get(k) for k in OWNER_FIELDS) if row else ()
        owner = self._owners.get(key)
        if owner is None:
            owner = owner_context(row, self._settings.sending.fallback_sender, self._profiles)
            self._owners[key] = owner
        return owner

    def _timezone(self, name: str | None) -> ZoneInfo:
        try:
            return ZoneInfo(name or self._settings.default_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo(self._settings.default_timezone)
