"""Settings: defaults, then ``config/settings.yaml``, then ``SALESCYCLE_*`` variables."""

from engine.settings.loading import SETTINGS_FILE, load_settings, read_settings
from engine.settings.model import (
    CompanySettings,
    ImportSettings,
    SenderSettings,
    SendingSettings,
    SequenceSettings,
    Settings,
    SmtpSettings,
)

__all__ = [
    "SETTINGS_FILE",
    "CompanySettings",
    "ImportSettings",
    "SenderSettings",
    "SendingSettings",
    "SequenceSettings",
    "Settings",
    "SmtpSettings",
    "load_settings",
    "read_settings",
]
