"""The settings model: defaults here, then ``config/settings.yaml``, then ``SALESCYCLE_*``."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCALE_PATTERN = re.compile(r"^[a-z]{2,3}(?:[_-][A-Za-z]{2})?$")

# Settings that may only come from the environment, with the variable that sets each.
SECRET_SETTINGS = {
    "secret_key": "SALESCYCLE_SECRET_KEY",
    "sendgrid_api_key": "SENDGRID_API_KEY",
}


class CompanySettings(BaseModel):
    """Who sends: shown in every email's footer (the postal address is required by law)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "Your Company"
    postal_address: str = "Street 1, 1000 City, Country"
    website: str = "https://example.com"


class ImportSettings(BaseModel):
    """How CRM imports run."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(default=2000, ge=1, le=100_000)


class Settings(BaseSettings):
    """Everything configurable about one workspace's engine."""

    model_config = SettingsConfigDict(
        env_prefix="SALESCYCLE_", env_nested_delimiter="__", extra="forbid"
    )

    database_url: str = "sqlite:///var/salescycle.db"
    default_timezone: str = "Europe/Copenhagen"
    default_locale: str = "en"
    company: CompanySettings = CompanySettings()
    imports: ImportSettings = ImportSettings()

    # env_only: never offered as a key of config/settings.yaml (see SECRET_SETTINGS)
    secret_key: SecretStr | None = Field(default=None, json_schema_extra={"env_only": True})
    sendgrid_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SENDGRID_API_KEY", "sendgrid_api_key"),
        json_schema_extra={"env_only": True},
    )

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
