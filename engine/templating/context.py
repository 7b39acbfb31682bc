"""What a template sees: ``contact``, ``account``, ``owner``, ``company``, ``sequence``, ``step``.

Every field the workspace knows is present; a field a contact has no value for is a
:class:`MissingValue` (false in ``if``, replaced by ``default(...)``, an error when
printed), and a field the workspace does not know is an undefined-variable error.
Custom attributes are typed as ``config/crm.yaml`` declares (dates are dates).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from markupsafe import escape

from engine.contacts.owners import OwnerProfile
from engine.segments.fields import FieldSpec
from engine.segments.model import FieldType
from engine.settings import CompanySettings, SenderSettings
from engine.templating.environment import FieldMap, missing

CONTACT_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "title",
    "phone",
    "stage",
    "timezone",
    "locale",
    "crm_id",
)
ACCOUNT_FIELDS = ("name", "domain", "industry", "country", "employees", "crm_id")
OWNER_FIELDS = ("name", "first_name", "email", "title", "phone", "signature")


class MultilineText(str):
    """Text whose line breaks survive HTML: ``<br>`` in the HTML part, newlines in text."""

    __slots__ = ()

    def __html__(self) -> str:
        return str(escape(str(self))).replace("\n", "<br>\n")


@dataclass(frozen=True)
class AttributeTypes:
    """The custom attributes of contacts and accounts, and their types."""

    contact: dict[str, FieldType]
    account: dict[str, FieldType]

    @classmethod
    def from_fields(cls, fields: Mapping[str, FieldSpec]) -> AttributeTypes:
        contact = {
            s.attribute: s.type for s in fields.values() if s.attribute and s.table == "contact"
        }
        account = {
            s.attribute: s.type for s in fields.values() if s.attribute and s.table == "account"
        }
        return cls(contact, account)


@dataclass(frozen=True)
class Recipient:
    """The database rows one message is about (``account`` and ``owner`` may be absent)."""

    contact: Mapping[str, Any]
    account: Mapping[str, Any] | None
    owner: Mapping[str, Any] | None


def template_context(
    recipient: Recipient, types: AttributeTypes, company: FieldMap, owner: FieldMap
) -> dict[str, Any]:
    """The variables of one message's templates (without the per-message helpers)."""
    contact = _fields("contact", recipient.contact, CONTACT_FIELDS)
    first, last = recipient.contact.get("first_name"), recipient.contact.get("last_name")
    full = " ".join(p for p in (first, last) if p)
    contact["full_name"] = full or missing("contact.full_name")
    stored = recipient.contact.get("attributes")
    contact["attributes"] = _attributes("contact", stored, types.contact)
    account_row = recipient.account or {}
    account = _fields("account", account_row, ACCOUNT_FIELDS)
    account["attributes"] = _attributes("account", account_row.get("attributes"), types.account)
    return {"contact": contact, "account": account, "owner": owner, "company": company}


def company_context(company: CompanySettings) -> FieldMap:
    """``company``: the sender's name, website and postal address."""
    return _fields("company", company.model_dump(), tuple(CompanySettings.model_fields))


def owner_context(
    row: Mapping[str, Any] | None, sender: SenderSettings, profiles: Mapping[str, OwnerProfile]
) -> FieldMap:
    """The rep a message is sent as: the CRM's owner, completed by ``config/owners.yaml``."""
    base = dict(row) if row else {"email": sender.email, "name": sender.name}
    profile = profiles.get(str(base.get("email", "")).lower())
    if profile is not None:
        base.update({k: v for k, v in profile.model_dump().items() if v})
    name = base.get("name") or str(base["email"]).split("@")[0]
    base["name"] = name
    base["first_name"] = name.split()[0]
    if not base.get("signature"):
        base["signature"] = name
    return _fields("owner", base, OWNER_FIELDS)


def _fields(prefix: str, row: Mapping[str, Any], names: tuple[str, ...]) -> FieldMap:
    return FieldMap(prefix, {name: _value(f"{prefix}.{name}", row.get(name)) for name in names})


def _attributes(
    prefix: str, stored: Mapping[str, Any] | None, types: Mapping[str, FieldType]
) -> FieldMap:
    values = stored or {}
    return FieldMap(
        f"{prefix}.attributes",
        {
            name: _value(f"{prefix}.attributes.{name}", _typed(values.get(name), kind))
            for name, kind in types.items()
        },
    )


def _typed(value: Any, kind: FieldType) -> Any:
    if kind is FieldType.DATE and isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return value
    return value


def _value(path: str, value: Any) -> Any:
    if value is None or value == "":
        return missing(path)
    if isinstance(value, str) and "\n" in value:
        return MultilineText(value)
    return value
