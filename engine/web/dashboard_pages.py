"""The work behind each dashboard page: queries in, template variables out (run in threads)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from engine.contacts import find_contact
from engine.contacts.suppressions import suppressed_among
from engine.contacts.timeline import contact_events
from engine.delivery import OutboundMessage, new_message_id
from engine.segments import FieldSpec, SegmentSet
from engine.segments.compiler import SegmentCompiler
from engine.sequences import SequenceSet
from engine.sequences.control import Control, control_enrollments
from engine.stages import Pipeline
from engine.templating import (
    BASE_VARIANT,
    MessageBuilder,
    MessageFormat,
    MessageIdentity,
    Recipient,
    SendRequest,
    TemplateCatalog,
    TemplateRenderError,
)
from engine.vocabulary import EnrollmentStatus
from engine.web.context import WebContext
from engine.web.dashboard_numbers import pipeline_numbers, sequence_numbers
from engine.web.dashboard_queries import (
    LIST_LIMIT,
    enrollment_counts,
    find_contacts,
    latest_suppressions,
    recent_enrollments,
    segment_rows,
    send_steps,
)

STATUSES = [s.value for s in EnrollmentStatus]
OUTCOMES = ["delivered", "opened", "bot_opened", "clicked", "replied", "bounced",
            "unsubscribed", "complained"]  # fmt: skip
PERIODS = {"all": None, "7": 7, "30": 30, "90": 90}  # days back for funnel entries
ACTIONS = {
    EnrollmentStatus.ACTIVE.value: [Control.PAUSE.value, Control.STOP.value],
    EnrollmentStatus.PAUSED.value: [Control.RESUME.value, Control.STOP.value],
}
_DONE = {Control.PAUSE: "Paused", Control.RESUME: "Resumed", Control.STOP: "Stopped"}


class NotFound(Exception):
    """Nothing by that name (answered 404 with the message)."""


@dataclass(frozen=True)
class DashboardSetup:
    """What the dashboard needs from the workspace (built by ``dashboard_setup``)."""

    pipeline: Pipeline
    sequences: SequenceSet
    segments: SegmentSet
    fields: dict[str, FieldSpec]
    templates: TemplateCatalog
    builder: MessageBuilder
    default_locale: str
    secret_key: bytes


@dataclass(frozen=True)
class Preview:
    """A template rendered for a contact, or why it could not be."""

    message: OutboundMessage | None
    error: str | None = None


class DashboardPages:
    """One method per page; each returns the variables of its template."""

    def __init__(self, context: WebContext, setup: DashboardSetup) -> None:
        self.context = context
        self.setup = setup

    def pipeline(self, period: str) -> dict[str, Any]:
        now = self.context.clock()
        period = period if period in PERIODS else "all"
        days = PERIODS[period]
        since = now - dt.timedelta(days=days) if days else None
        names = list(self.setup.sequences.sequences)
        with self.context.engine.connect() as connection:
            numbers = pipeline_numbers(connection, self.setup.pipeline, names, now, since)
            counts = enrollment_counts(connection)
        return {
            "numbers": numbers,
            "total": sum(row.contacts for row in numbers.stages),
            "widest": max((row.contacts for row in numbers.stages), default=0),
            "now": now,
            "period": period,
            "periods": list(PERIODS),
            "sequences": list(self.setup.sequences),
            "counts": counts,
            "statuses": STATUSES,
        }

    def sequences(self) -> dict[str, Any]:
        with self.context.engine.connect() as connection:
            counts = enrollment_counts(connection)
        sequences = list(self.setup.sequences)
        steps = {s.name: sum(1 for _ in send_steps(s.steps)) for s in sequences}
        return {"sequences": sequences, "counts": counts, "statuses": STATUSES, "steps": steps}

    def sequence(self, name: str) -> dict[str, Any]:
        try:
            sequence = self.setup.sequences.get(name)
        except KeyError as exc:
            raise NotFound(str(exc.args[0])) from None
        with self.context.engine.connect() as connection:
            numbers = sequence_numbers(
                connection, self.setup.pipeline, sequence, self.context.clock()
            )
            counts = enrollment_counts(connection).get(name, {})
            enrolled = recent_enrollments(connection, name)
        return {
            "sequence": sequence,
            "numbers": numbers,
            "outcomes": OUTCOMES,
            "counts": counts,
            "statuses": STATUSES,
            "enrolled": enrolled,
        }

    def segments(self) -> dict[str, Any]:
        now = self.context.clock()
        compiler = SegmentCompiler(self.setup.segments, self.setup.fields, now)
        with self.context.engine.connect() as connection:
            rows = segment_rows(connection, compiler, self.setup.segments)
        return {"segments": rows, "now": now}

    def contacts(self, text: str, stage: str) -> dict[str, Any]:
        with self.context.engine.connect() as connection:
            found = find_contacts(connection, text, stage or None)
        return {
            "found": found,
            "q": text,
            "stage": stage,
            "stage_ids": self.setup.pipeline.ids,
            "limit": LIST_LIMIT,
        }

    def contact_exists(self, email: str) -> bool:
        with self.context.engine.connect() as connection:
            return find_contact(connection, email) is not None

    def contact(self, email: str) -> dict[str, Any]:
        with self.context.engine.connect() as connection:
            view = find_contact(connection, email)
            if view is None:
                raise NotFound(f"no contact with email {email.strip().lower()}")
            found = contact_events(connection, int(view.contact["id"]))
            suppressed = suppressed_among(connection, [view.contact["email"]])
        by_message: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
        for event in found:
            by_message[event.pop("message")].append(event)
        messages = [{**m, "events": by_message.get(m["public_id"], [])} for m in view.messages]
        return {
            "contact": view.contact,
            "account": view.account,
            "owner": view.owner,
            "history": [e for e in view.timeline if e.kind == "stage"],
            "messages": messages,
            "other_events": by_message.get(None, []),
            "enrollments": view.enrollments,
            "actions": defaultdict(list, ACTIONS),
            "suppressed": "yes: never emailed" if suppressed else "",
        }

    def control(self, action: Control, email: str, sequence: str) -> str:
        """Pause, resume or stop the contact's enrollment in ``sequence``, as the API does;
        the sentence saying what changed."""
        with self.context.engine.begin() as connection:
            view = find_contact(connection, email)
            if view is None:
                raise NotFound(f"no contact with email {email.strip().lower()}")
            changed = control_enrollments(
                connection, action, self.context.clock(), sequence, int(view.contact["id"])
            )
        if not changed:
            return f"Nothing to {action.value} in {sequence}: it had already changed."
        return f"{_DONE[action]} {changed} enrollment in {sequence}."

    def suppressions(self) -> tuple[int, list[dict[str, Any]]]:
        with self.context.engine.connect() as connection:
            return latest_suppressions(connection)

    def templates(self, contact: str) -> dict[str, Any]:
        catalog = self.setup.templates
        rows = []
        for name in catalog.names():
            base = catalog.pick(name, BASE_VARIANT, None)
            locales = [loc or self.setup.default_locale for loc in catalog.locales(name)]
            rows.append({"name": name, "subject": base.subject, "file": base.shown,
                         "locales": locales, "variants": catalog.variants(name)})  # fmt: skip
        variants = sorted({v for row in rows for v in row["variants"]}) or [BASE_VARIANT]
        return {"rows": rows, "contact": contact, "chosen": "", "variants": variants}

    def preview(self, template: str, email: str, variant: str, fmt: str, locale: str) -> Preview:
        """The message ``salescycle templates render`` would print (nothing is sent)."""
        try:
            message_format = MessageFormat(fmt)
        except ValueError:
            return Preview(None, f"unknown format '{fmt}'; valid choices: html, text")
        with self.context.engine.connect() as connection:
            view = find_contact(connection, email)
        if view is None:
            raise NotFound(f"no contact with email {email.strip().lower()}")
        request = SendRequest(
            template,
            variant or BASE_VARIANT,
            Recipient(view.contact, view.account, view.owner),
            MessageIdentity(new_message_id(), None, "preview", "preview"),
            message_format,
            locale=locale or None,
        )
        try:
            return Preview(self.setup.builder.build(request, self.context.clock()))
        except TemplateRenderError as exc:
            return Preview(None, str(exc))
