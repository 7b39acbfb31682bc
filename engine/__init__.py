"""salescycle: email campaign and follow-up automation for B2B sales teams."""

__version__ = "0.1.0"
