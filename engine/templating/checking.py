"""``salescycle check`` for templates: every file rendered, in both formats, for sample contacts.

Each template file is rendered for a contact with every field filled (so any
undefined variable, bad filter or unsafe access is an error) and for a contact with
only an address (so a field printed without ``default(...)`` is an error here, not
a paused enrollment at send time).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from engine.errors import Problem
from engine.segments.model import FieldType
from engine.templating.builder import MessageBuilder, SendRequest
from engine.templating.catalog import TemplateCatalog, template_files
from engine.templating.compiler import MessageFormat
from engine.templating.compose import MessageIdentity
from engine.templating.context import AttributeTypes, Recipient

_CHECK_IDENTITY = MessageIdentity("checkmessage01", 1, "check", "check")
SAMPLE_DAY = dt.datetime(2026, 11, 28, 9, 30, tzinfo=dt.UTC)
_SAMPLE_VALUES: dict[FieldType, Any] = {
    FieldType.STRING: "Sample",
    FieldType.INT: 42,
    FieldType.FLOAT: 1234567.5,
    FieldType.BOOL: True,
    FieldType.DATE: "2026-11-03",
}


def template_problems(catalog: TemplateCatalog, builder: MessageBuilder) -> list[Problem]:
    """Every problem of every template: file names, front matter, compiling and rendering."""
    problems = list(catalog.problems)
    full, bare = full_recipient(builder.types), bare_recipient()
    for source in template_files(catalog):
        for message_format in MessageFormat:
            for recipient in (full, bare):
                request = SendRequest(
                    source.name,
                    source.variant,
                    recipient,
                    _CHECK_IDENTITY,
                    message_format,
                    locale=source.locale,
                )
                errors = builder.problems(request, SAMPLE_DAY)
                problems += [Problem(e.shown or source.shown, e.line, e.reason) for e in errors]
                if errors:
                    break  # the bare contact would repeat the full contact's mistakes
    return sorted(set(problems))


def full_recipient(types: AttributeTypes) -> Recipient:
    """A contact, account and owner with every field the workspace knows filled in."""
    contact: dict[str, Any] = {
        "email": "sample.contact@example.com",
        "first_name": "Sample",
        "last_name": "Contact",
        "title": "Head of Sales",
        "phone": "+45 12 34 56 78",
        "stage": "connecting",
        "timezone": "Europe/Copenhagen",
        "locale": "en",
        "crm_id": "1",
        "attributes": _sample_attributes(types.contact),
    }
    account = {
        "name": "Sample Company",
        "domain": "example.com",
        "industry": "Software",
        "country": "DK",
        "employees": 250,
        "crm_id": "1",
        "attributes": _sample_attributes(types.account),
    }
    owner = {
        "email": "owner@example.com",
        "name": "Sample Owner",
        "title": "Account Executive",
        "phone": "+45 87 65 43 21",
        "signature": "Sample Owner\nAccount Executive",
    }
    return Recipient(contact, account, owner)


def bare_recipient() -> Recipient:
    """A contact with nothing but an address and a stage: no name, account or owner."""
    return Recipient({"email": "bare.contact@example.com", "stage": "connecting"}, None, None)


def _sample_attributes(types: Mapping[str, FieldType]) -> dict[str, Any]:
    return {name: _SAMPLE_VALUES.get(kind, "Sample") for name, kind in types.items()}
