"""Turning one record into clean contact, owner and account values, or a reason to reject it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

from babel import Locale
from email_validator import EmailNotValidError, validate_email

from engine.contacts.mapping import AttributeSpec, AttributeType, CrmMapping, header_key
from engine.settings.model import LOCALE_PATTERN

_TRUE = {"true", "yes", "y", "1", "x", "ja", "sand"}
_FALSE = {"false", "no", "n", "0", "nej", "falsk"}
_DOMAIN_PREFIX = re.compile(r"^(?:https?://)?(?:www\.)?", re.IGNORECASE)


class RejectedRow(ValueError):
    """A row that cannot be imported; the message is the reason written to the rejects file."""


@dataclass(slots=True)
class AccountValues:
    """An account as one row describes it, with the key it is matched by."""

    key: tuple[str, str]  # ("crm_id" | "domain" | "name", value)
    fields: dict[str, Any]
    attributes: dict[str, Any]

    def __reduce__(self) -> tuple[type[AccountValues], tuple[Any, ...]]:
        return AccountValues, (self.key, self.fields, self.attributes)


@dataclass(slots=True)
class ImportRow:
    """One importable row."""

    line: int
    email: str
    crm_id: str | None
    fields: dict[str, Any]  # contact columns other than email, crm_id and stage
    stage: str | None
    attributes: dict[str, Any]  # mapped custom fields; None means "blank in the file"
    owner: dict[str, Any] | None = None
    account: AccountValues | None = None
    raw_text: str = ""  # the cells as read, packed (see pack_cells), for the rejects file

    @property
    def raw(self) -> list[str]:
        """The cells as read."""
        return unpack_cells(self.raw_text)

    def __reduce__(self) -> tuple[type[ImportRow], tuple[Any, ...]]:
        # Rows cross to the writing process: an argument tuple with one string for the
        # raw cells unpickles several times faster than slot-by-slot state and a list.
        return ImportRow, (
            self.line, self.email, self.crm_id, self.fields, self.stage,
            self.attributes, self.owner, self.account, self.raw_text,
        )  # fmt: skip


def pack_cells(cells: list[str]) -> str:
    """One string for a row's cells: NUL-joined, or JSON in the rare row that holds a NUL."""
    joined = "\0".join(cells)
    if joined.count("\0") == len(cells) - 1 and not joined.startswith(_JSON_MARK):
        return joined
    return _JSON_MARK + json.dumps(cells)


def unpack_cells(packed: str) -> list[str]:
    """The cells :func:`pack_cells` packed."""
    if packed.startswith(_JSON_MARK):
        cells: list[str] = json.loads(packed[len(_JSON_MARK) :])
        return cells
    return packed.split("\0")


_JSON_MARK = "\x01json:"


@dataclass(frozen=True)
class Binding:
    """Which column each mapped field reads, for one header (a CSV file, a JSON key set)."""

    columns: dict[str, str]  # field -> header key
    positions: tuple[tuple[str, int], ...]  # field -> index of its column in the header

    @classmethod
    def bind(cls, mapping: CrmMapping, keys: Sequence[str]) -> Binding:
        """The first alias of every field that is present among the header ``keys``."""
        index: dict[str, int] = {}
        for position, key in enumerate(keys):
            index.setdefault(key, position)
        columns = {}
        for field_name, aliases in mapping.field_columns().items():
            for alias in aliases:
                if header_key(alias) in index:
                    columns[field_name] = header_key(alias)
                    break
        positions = tuple((name, index[key]) for name, key in columns.items())
        return cls(columns, positions)

    def cells(self, row: Sequence[str]) -> dict[str, str]:
        """The stripped value of every bound field in a row laid out like the header."""
        width = len(row)
        return {name: row[i].strip() if i < width else "" for name, i in self.positions}

    def unused(self, keys: Sequence[str]) -> list[str]:
        """Header keys no field reads (reported to the user as ignored columns)."""
        used = set(self.columns.values())
        return [key for key in keys if key not in used]


class RowNormaliser:
    """Validates and converts records against a mapping; one instance per import."""

    def __init__(self, mapping: CrmMapping) -> None:
        self.mapping = mapping
        self._attributes = _typed_fields("attributes.", mapping.spec.attributes)
        self._account_attributes = _typed_fields(
            "account.attributes.", mapping.spec.account_attributes
        )
        self._stages: dict[str, str] = {}  # CRM stage text as written -> stage id

    def normalise(self, line: int, cells: dict[str, str]) -> ImportRow:
        """The clean row from ``cells`` (field -> stripped text), or :class:`RejectedRow`."""
        email = normalise_email(cells.get("contact.email", ""))
        stage = self._stage(cells.get("contact.stage", ""))
        contact: dict[str, Any] = {}
        for field_key, name in _PLAIN_CONTACT_FIELDS:
            if field_key in cells:
                contact[name] = cells[field_key] or None
        if "contact.timezone" in cells:
            contact["timezone"] = _timezone(cells["contact.timezone"])
        if "contact.locale" in cells:
            contact["locale"] = _locale(cells["contact.locale"])
        owner_email = cells.get("owner.email", "")
        return ImportRow(
            line=line,
            email=email,
            crm_id=cells.get("contact.crm_id") or None,
            fields=contact,
            stage=stage,
            attributes=_typed(cells, self._attributes),
            owner=_owner(owner_email, cells.get("owner.name", "")) if owner_email else None,
            account=self.account(cells),
        )

    def _stage(self, value: str) -> str | None:
        if not value:
            return None
        stage = self._stages.get(value)
        if stage is None:
            stage = self.mapping.stage_for(value)
            if stage is None:
                valid = sorted(set(self.mapping.stage_names.values()))
                raise RejectedRow(f"unknown stage '{value}'; valid: {', '.join(valid)}")
            self._stages[value] = stage
        return stage

    def account(self, cells: dict[str, str]) -> AccountValues | None:
        """The account ``cells`` describe (keyed by CRM id, else domain, else name), if any."""
        crm_id, name = cells.get("account.crm_id", ""), cells.get("account.name", "")
        domain = _domain(cells.get("account.domain", ""))
        if crm_id:
            key = ("crm_id", crm_id)
        elif domain:
            key = ("domain", domain)
        elif name:
            key = ("name", name.casefold())
        else:
            return None
        fields: dict[str, Any] = {"name": name} if name else {}
        if "account.domain" in cells:
            fields["domain"] = domain or None
        if "account.industry" in cells:
            fields["industry"] = cells["account.industry"] or None
        if "account.country" in cells:
            fields["country"] = _country(cells["account.country"])
        if "account.employees" in cells:
            fields["employees"] = _convert(cells["account.employees"], "int", "account.employees")
        return AccountValues(key, fields, _typed(cells, self._account_attributes))


_PLAIN_CONTACT_FIELDS = tuple(
    (f"contact.{name}", name) for name in ("first_name", "last_name", "title", "phone")
)
TypedField = tuple[str, str, AttributeType]  # (name, field key, type)


def _typed_fields(prefix: str, specs: Mapping[str, AttributeSpec]) -> tuple[TypedField, ...]:
    return tuple((name, prefix + name, spec.type) for name, spec in specs.items())


def _typed(cells: dict[str, str], fields: tuple[TypedField, ...]) -> dict[str, Any]:
    return {name: _convert(cells[key], kind, key) for name, key, kind in fields if key in cells}


def normalise_email(value: str) -> str:
    """The address as stored: validated by email-validator (no DNS look-up) and lower-cased."""
    if not value:
        raise RejectedRow("missing email")
    local, at, domain = value.rpartition("@")
    if at and len(local) <= 64 and len(value) <= 254 and _PLAIN_LOCAL_PART.fullmatch(local):
        # Most addresses have a plain ASCII local part; their domain (shared by a whole
        # account) is the costly part of validation, so it is validated once per domain.
        return f"{local}@{_validated_domain(domain)}".lower()
    return _validated_address(value)


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")


@lru_cache(maxsize=4096)  # an account's contacts are usually adjacent rows
def _validated_domain(domain: str) -> str:
    try:
        checked = validate_email(f"postmaster@{domain}", check_deliverability=False)
    except EmailNotValidError as exc:
        raise RejectedRow(f"invalid email domain '{domain}': {exc}") from None
    return checked.domain


@lru_cache(maxsize=1024)
def _validated_address(value: str) -> str:
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise RejectedRow(f"invalid email '{value}': {exc}") from None
    return checked.normalized.lower()


def _owner(email: str, name: str) -> dict[str, Any]:
    return {"email": _owner_email(email), "name": name or None}


@lru_cache(maxsize=1024)  # a team has few owners
def _owner_email(email: str) -> str:
    try:
        return normalise_email(email)
    except RejectedRow as exc:
        raise RejectedRow(f"owner: {exc}") from None


def _convert(value: str, kind: AttributeType, where: str) -> Any:
    if not value:
        return None
    try:
        return _CONVERTERS[kind](value)
    except (ValueError, KeyError):
        raise RejectedRow(f"{where}: '{value}' is not a valid {kind}") from None


def _bool(value: str) -> bool:
    folded = value.casefold()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise ValueError(value)


def _int(value: str) -> int:
    cleaned = value.replace(" ", "").replace("_", "")
    number = float(cleaned) if "." in cleaned else int(cleaned)
    if isinstance(number, float) and not number.is_integer():
        raise ValueError(value)
    return int(number)


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "string": str,
    "int": _int,
    "float": float,
    "bool": _bool,
    "date": lambda v: date.fromisoformat(v[:10]).isoformat(),
}


@lru_cache(maxsize=4096)
def _domain(value: str) -> str:
    return _DOMAIN_PREFIX.sub("", value.strip()).split("/", 1)[0].lower()


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def _timezone(value: str) -> str | None:
    if not value:
        return None
    if value not in _timezones():
        raise RejectedRow(f"unknown timezone '{value}'; use an IANA name such as Europe/Oslo")
    return value


@lru_cache(maxsize=256)
def _locale(value: str) -> str | None:
    if not value:
        return None
    if not LOCALE_PATTERN.match(value):
        raise RejectedRow(f"'{value}' is not a locale; use a code such as en, da or sv_SE")
    language, _, region = value.replace("-", "_").partition("_")
    return f"{language.lower()}_{region.upper()}" if region else language.lower()


@lru_cache(maxsize=1)
def _country_codes() -> dict[str, str]:
    names = {str(code): str(name) for code, name in Locale("en").territories.items()}
    codes = {code.casefold(): code for code in names if len(code) == 2 and code.isalpha()}
    codes.update({name.casefold(): code for code, name in names.items() if code in codes.values()})
    return codes


@lru_cache(maxsize=4096)
def _country(value: str) -> str | None:
    if not value:
        return None
    code = _country_codes().get(value.strip().casefold())
    if code is None:
        raise RejectedRow(f"unknown country '{value}'; use an ISO 3166 code such as DK or SE")
    return code
