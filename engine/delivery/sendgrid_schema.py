"""SendGrid's own contract for Mail Send: its OpenAPI request schema, and its error answers.

``tsg_mail_v3.yaml`` beside this module is Twilio SendGrid's official OpenAPI
description of the v3 Mail API (twilio/sendgrid-oai, MIT licence), vendored so a wheel
carries it. The sink in ``engine.devtools`` refuses what it refuses; tests validate our
exporter's bodies with it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from ruamel.yaml import YAML

from engine.delivery.sendgrid import mail_send_problems
from engine.errors import ConfigurationError

MAIL_SEND_PATH = "/v3/mail/send"
OPENAPI_FILE = Path(__file__).with_name("tsg_mail_v3.yaml")


@dataclass(frozen=True)
class MailSendSchema:
    """The Mail Send request schema, twice: ``validator`` (jsonschema) words each error as
    the reference does; ``quick`` (jsonschema-rs, a few hundred times faster) answers
    whether a body is valid at all, so a valid body never pays for the words."""

    validator: Draft202012Validator
    quick: Any

    def errors(self, body: object) -> list[ApiError]:
        """Every reason SendGrid would refuse ``body``: its schema, then its documented limits."""
        if self.quick.is_valid(body):
            errors = []
        else:  # the reference decides, and says why
            errors = [_schema_error(error) for error in self.validator.iter_errors(body)]
        if not isinstance(body, dict):
            return errors
        # A shape the limits cannot read (a list where an object belongs): the schema said so.
        with contextlib.suppress(AttributeError, TypeError):
            errors += [ApiError(problem) for problem in mail_send_problems(body)]
        return errors


def mail_send_validator(openapi: Path | None = None) -> Draft202012Validator:
    """The validator of the POST /v3/mail/send JSON body, loaded once per file."""
    return mail_send_schema(openapi).validator


def mail_send_schema(openapi: Path | None = None) -> MailSendSchema:
    """Both validators of the POST /v3/mail/send JSON body, loaded once per file."""
    path = (openapi or OPENAPI_FILE).resolve()
    if not path.is_file():
        raise ConfigurationError(f"SendGrid's Mail Send OpenAPI file is not at {path}")
    return _load_schema(path)


@cache
def _load_schema(path: Path) -> MailSendSchema:
    # OpenAPI 3.1 schemas are JSON Schema 2020-12. The request body uses no OpenAPI-only
    # keyword (`nullable` is only in the error responses), so nothing has to be stripped.
    document: Any = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    pointer = document["paths"][MAIL_SEND_PATH]["post"]["requestBody"]["$ref"]
    name = pointer.removeprefix("#/components/requestBodies/")
    schema = document["components"]["requestBodies"][name]["content"]["application/json"]
    schema = schema["schema"]
    if b"nullable" in orjson.dumps(schema):
        raise ConfigurationError(f"{path}: the Mail Send schema now uses OpenAPI's `nullable`")
    # The document types the message-level `custom_args` as a string, but the official
    # client sends an object (as the personalization-level one is) and SendGrid takes it.
    schema["properties"]["custom_args"] = {"type": ["object", "string"]}
    Draft202012Validator.check_schema(schema)
    base = "urn:sendgrid:tsg-mail-v3"
    registry: Registry[Any] = Registry().with_resource(base, DRAFT202012.create_resource(document))
    validator = Draft202012Validator(
        {"$ref": f"{base}{pointer}/content/application~1json/schema"},
        registry=registry.crawl(),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    # the request schema's $refs point into the document's components: carry them along
    quick = jsonschema_rs.Draft202012Validator(
        {**schema, "components": document["components"]}, validate_formats=True
    )
    return MailSendSchema(validator, quick)


@dataclass(frozen=True)
class ApiError:
    """One entry of SendGrid's error answer: ``{"message": ..., "field": ..., "help": null}``."""

    message: str
    field: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"message": self.message, "field": self.field, "help": None}


def _schema_error(error: ValidationError) -> ApiError:
    path = [str(part) for part in error.absolute_path]
    if error.validator == "required" and isinstance(error.validator_value, list):
        # One error per missing property, named in the message; the field is that property.
        path += [n for n in error.validator_value if error.message.startswith(f"{n!r} ")][:1]
    message = error.message
    if len(message) > 200:  # "[{...a thousand personalizations...}] is too long"
        instance = repr(error.instance)
        message = message.replace(instance, f"{instance[:60]}...")
    return ApiError(message, ".".join(path) or None)
