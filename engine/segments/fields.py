"""The fields a segment can test, with their types and where their values live."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.contacts.mapping import CrmMapping
from engine.segments.model import FieldType, Op

Table = Literal["contact", "account", "owner"]

_STRING_OPS = (Op.EQ, Op.NE, Op.IN, Op.NOT_IN, Op.CONTAINS, Op.CONTAINS_ANY, Op.STARTS_WITH,
               Op.ENDS_WITH, Op.EXISTS)  # fmt: skip
_NUMBER_OPS = (Op.EQ, Op.NE, Op.IN, Op.NOT_IN, Op.GT, Op.GTE, Op.LT, Op.LTE, Op.BETWEEN, Op.EXISTS)
OPERATORS: dict[FieldType, tuple[Op, ...]] = {
    FieldType.STRING: _STRING_OPS,
    FieldType.INT: _NUMBER_OPS,
    FieldType.FLOAT: _NUMBER_OPS,
    FieldType.BOOL: (Op.EQ, Op.NE, Op.EXISTS),
    FieldType.DATE: (Op.EQ, Op.NE, Op.BEFORE, Op.AFTER, Op.BETWEEN, Op.EXISTS),
    FieldType.INSTANT: (Op.BEFORE, Op.AFTER, Op.BETWEEN, Op.EXISTS),
    FieldType.DURATION: (Op.GT, Op.GTE, Op.LT, Op.LTE, Op.BETWEEN),
}


@dataclass(frozen=True)
class FieldSpec:
    """One testable field: a column of a table, or a key of that table's JSON attributes."""

    name: str
    type: FieldType
    table: Table
    column: str = ""
    attribute: str = ""

    @property
    def operators(self) -> tuple[Op, ...]:
        return OPERATORS[self.type]


_BUILT_IN = (
    *(FieldSpec(name, FieldType.STRING, "contact", name) for name in (
        "email", "first_name", "last_name", "title", "phone", "timezone", "locale", "crm_id",
        "stage",
    )),
    FieldSpec("created_at", FieldType.INSTANT, "contact", "created_at"),
    FieldSpec("time_in_stage", FieldType.DURATION, "contact", "stage_entered_at"),
    *(FieldSpec(f"account.{name}", FieldType.STRING, "account", name)
      for name in ("name", "domain", "industry", "country", "crm_id")),
    FieldSpec("account.employees", FieldType.INT, "account", "employees"),
    *(FieldSpec(f"owner.{name}", FieldType.STRING, "owner", name)
      for name in ("email", "name", "title")),
)  # fmt: skip

_ATTRIBUTE_TYPES = {
    "string": FieldType.STRING,
    "int": FieldType.INT,
    "float": FieldType.FLOAT,
    "bool": FieldType.BOOL,
    "date": FieldType.DATE,
}


def field_specs(mapping: CrmMapping | None) -> dict[str, FieldSpec]:
    """Every field segments may test: the built-in ones and the CRM mapping's custom ones."""
    specs = {spec.name: spec for spec in _BUILT_IN}
    if mapping is not None:
        for name, attribute in mapping.spec.attributes.items():
            kind = _ATTRIBUTE_TYPES[attribute.type]
            specs[f"attributes.{name}"] = FieldSpec(f"attributes.{name}", kind, "contact", "", name)
        for name, attribute in mapping.spec.account_attributes.items():
            kind = _ATTRIBUTE_TYPES[attribute.type]
            full = f"account.attributes.{name}"
            specs[full] = FieldSpec(full, kind, "account", "", name)
    return specs
