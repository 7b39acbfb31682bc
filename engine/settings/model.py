"""The settings model: defaults here, then ``config/settings.yaml``, then ``SALESCYCLE_*``."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.durations import parse_duration

LOCALE_PATTERN = re.compile(r"^[a-z]{2,3}(?:[_-][A-Za-z]{2})?$")
DOMAIN_PATTERN = r"^([A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}$"

# Settings that may only come from the environment, with the variable that sets each.
SECRET_SETTINGS = {
    "secret_key": "SALESCYCLE_SECRET_KEY",
    "sendgrid_api_key": "SENDGRID_API_KEY",
    "smtp_password": "SALESCYCLE_SMTP_PASSWORD",
    "sendgrid_webhook_public_key": "SALESCYCLE_SENDGRID_WEBHOOK_PUBLIC_KEY",
    "inbound_secret": "SALESCYCLE_INBOUND_SECRET",
    "api_token": "SALESCYCLE_API_TOKEN",
    "crm_webhook_secret": "SALESCYCLE_CRM_WEBHOOK_SECRET",
}


class CompanySettings(BaseModel):
    """Who sends: shown in every email's footer (the postal address is required by law)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "Your Company"
    postal_address: str = "Street 1, 1000 City, Country"
    website: str = "https://example.com"


class SenderSettings(BaseModel):
    """A name and address to send from."""

    model_config = ConfigDict(extra="forbid")

    name: str
    email: str


class SmtpSettings(BaseModel):
    """The SMTP server of ``transport: smtp``; its password is SALESCYCLE_SMTP_PASSWORD."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    # AUTH when set (the password from SALESCYCLE_SMTP_PASSWORD)
    username: str | None = None
    # STARTTLS on a plain connection (port 587), or TLS from the start (port 465)
    starttls: bool = False
    ssl: bool = False
    # DKIM-sign every message: all three or none; the key file is a PEM RSA private key,
    # relative to the workspace
    dkim_selector: str | None = None
    dkim_domain: str | None = Field(default=None, pattern=DOMAIN_PATTERN)
    dkim_key_file: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SmtpSettings:
        if self.starttls and self.ssl:
            raise ValueError("starttls and ssl exclude each other; set one of them")
        dkim = {
            "dkim_selector": self.dkim_selector,
            "dkim_domain": self.dkim_domain,
            "dkim_key_file": self.dkim_key_file,
        }
        missing = [name for name, value in dkim.items() if not value]
        if 0 < len(missing) < len(dkim):
            raise ValueError(
                f"DKIM needs dkim_selector, dkim_domain and dkim_key_file; "
                f"missing: {', '.join(missing)}"
            )
        return self


class SendingSettings(BaseModel):
    """Where messages come from and where their replies, clicks and unsubscribes go."""

    model_config = ConfigDict(extra="forbid")

    # The right-hand side of every Message-ID the engine records.
    domain: str = Field(default="mail.example.com", pattern=DOMAIN_PATTERN)
    # Replies go to reply+TOKEN@reply_domain (SendGrid Inbound Parse's domain).
    reply_domain: str = Field(default="reply.example.com", pattern=DOMAIN_PATTERN)
    # Public base URL of `salescycle serve`: tracking pixel, clicks, unsubscribe pages.
    tracking_url: str = Field(default="https://track.example.com", pattern=r"^https?://[^\s/]+")
    # Used when a contact has no owner.
    fallback_sender: SenderSettings = SenderSettings(name="Sales", email="sales@example.com")
    # The SendGrid API; point it at `salescycle dev sendgrid-sink` to send nowhere.
    sendgrid_host: str = Field(default="https://api.sendgrid.com", pattern=r"^https?://[^\s/]+")
    # How messages leave: .eml files in outbox_dir, an SMTP server, or SendGrid's API.
    transport: Literal["outbox", "smtp", "sendgrid"] = "outbox"
    # The file outbox's folder, relative to the workspace.
    outbox_dir: str = Field(default="var/outbox", min_length=1)
    # SendGrid validates but delivers nothing (mail_settings.sandbox_mode).
    sendgrid_sandbox: bool = False
    # SendGrid categories on every message (at most 10, as SendGrid allows).
    sendgrid_categories: list[str] = Field(default=[], max_length=10)
    # Seconds to wait for a provider to connect and to answer one message.
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    smtp: SmtpSettings = SmtpSettings()
    # Throttles (Dramatiq rate limiters, shared through Redis in production).
    max_per_second: int = Field(default=50, ge=1, le=10_000)
    max_per_domain_per_minute: int = Field(default=60, ge=1, le=100_000)
    # Waits before handing a refused message (429, 5xx, no connection) off again.
    retry_backoff_seconds: list[float] = Field(
        default=[60, 300, 1800, 7200, 21600], min_length=1, max_length=20
    )
    # With SendGrid and its signed Event Webhook: a hand-off no event has confirmed this
    # long after it (a killed worker, an answer after the timeout) is sent again, same ids.
    unconfirmed_resend_after_seconds: float = Field(default=1800, ge=10, le=7 * 86_400)

    @field_validator("tracking_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


class SequenceSettings(BaseModel):
    """Rules across sequences."""

    model_config = ConfigDict(extra="forbid")

    # How many outreach sequences (kind: outreach) one contact may be in at once.
    max_concurrent_outreach: int = Field(default=1, ge=1, le=100)
    # At least this long between two emails to one contact, whatever the sequence ("0m": off).
    contact_gap: str = "48h"
    # At most this many emails a day from one owner's mailbox (0: no cap).
    owner_daily_cap: int = Field(default=300, ge=0)

    @field_validator("contact_gap")
    @classmethod
    def _gap_is_a_duration(cls, value: str) -> str:
        parse_duration(value)  # raises with the valid forms
        return value


class ImportSettings(BaseModel):
    """How CRM imports run."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(default=2000, ge=1, le=100_000)


class WebSettings(BaseModel):
    """Limits of `salescycle serve`: request body sizes and the webhook clock skew allowed."""

    model_config = ConfigDict(extra="forbid")

    # SendGrid posts event batches of at most 768 KB; a little room above that.
    events_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # SendGrid Inbound Parse refuses mail over 30 MB.
    inbound_max_bytes: int = Field(default=30 * 1024 * 1024, ge=1024)
    # A signed event batch older (or newer) than this is refused as a replay.
    signature_tolerance_seconds: int = Field(default=600, ge=1, le=86_400)


class CrmWebhookSettings(BaseModel):
    """The outbound CRM webhook: stage changes and replies POSTed, signed, to ``url``.

    The signing secret is SALESCYCLE_CRM_WEBHOOK_SECRET; without a url nothing is sent
    and the changes wait in the outbox (``salescycle crm outbox``).
    """

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    # Seconds to wait for the receiver to connect and to answer one change.
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # A refused change waits this long, doubling with each attempt up to the maximum.
    retry_first_seconds: float = Field(default=30.0, gt=0, le=86_400)
    retry_max_seconds: float = Field(default=3600.0, gt=0, le=7 * 86_400)
    # After this many 4xx answers (other than 408 and 429) a change is marked failed.
    max_refusals: int = Field(default=3, ge=1, le=100)

    @field_validator("url")
    @classmethod
    def _https_or_loopback(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme == "https" and parts.hostname:
            return value.strip()
        if parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1"):
            return value.strip()
        raise ValueError(
            f"'{value}' is not an https URL; use https://crm.example.com/hook "
            "(plain http only for localhost or 127.0.0.1)"
        )


class Settings(BaseSettings):
    """Everything configurable about one workspace's engine."""

    model_config = SettingsConfigDict(
        env_prefix="SALESCYCLE_", env_nested_delimiter="__", extra="forbid"
    )

    database_url: str = "sqlite:///var/salescycle.db"
    default_timezone: str = "Europe/Copenhagen"
    default_locale: str = "en"
    company: CompanySettings = CompanySettings()
    sending: SendingSettings = SendingSettings()
    sequences: SequenceSettings = SequenceSettings()
    imports: ImportSettings = ImportSettings()
    web: WebSettings = WebSettings()
    crm_webhook: CrmWebhookSettings = CrmWebhookSettings()

    # env_only: never offered as a key of config/settings.yaml (see SECRET_SETTINGS)
    secret_key: SecretStr | None = Field(default=None, json_schema_extra={"env_only": True})
    sendgrid_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SENDGRID_API_KEY", "sendgrid_api_key"),
        json_schema_extra={"env_only": True},
    )
    smtp_password: SecretStr | None = Field(default=None, json_schema_extra={"env_only": True})
    # the Event Webhook's verification key, base64 as SendGrid's settings page shows it
    sendgrid_webhook_public_key: str | None = Field(
        default=None, json_schema_extra={"env_only": True}
    )
    inbound_secret: SecretStr | None = Field(default=None, json_schema_extra={"env_only": True})
    api_token: SecretStr | None = Field(default=None, json_schema_extra={"env_only": True})
    # signs the CRM webhook's requests (the receiver holds the same secret)
    crm_webhook_secret: SecretStr | None = Field(default=None, json_schema_extra={"env_only": True})

    @field_validator("secret_key", "crm_webhook_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 16:
            variable = SECRET_SETTINGS[str(info.field_name)]
            raise ValueError(f"{variable} must be at least 16 characters (use 32 random)")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone '{value}'; use an IANA name such as Europe/Copenhagen"
            ) from None
        return value

    @field_validator("default_locale")
    @classmethod
    def _locale_shape(cls, value: str) -> str:
        if not LOCALE_PATTERN.match(value):
            raise ValueError(f"'{value}' is not a locale; use a code such as en, da or da_DK")
        return value
