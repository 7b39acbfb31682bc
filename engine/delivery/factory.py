"""The transport the settings ask for: ``sending.transport`` is outbox, smtp or sendgrid."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from engine.delivery.outbox import OutboxTransport
from engine.delivery.sendgrid import SendGridTransport
from engine.delivery.smtp import DkimSigner, SmtpTransport
from engine.delivery.transport import Transport
from engine.errors import ConfigurationError
from engine.settings import Settings


def make_transport(settings: Settings, workspace_root: Path) -> Transport:
    """A ready transport; raises :class:`ConfigurationError` naming a missing setting."""
    return _BUILDERS[settings.sending.transport](settings, workspace_root)


def _outbox(settings: Settings, workspace_root: Path) -> Transport:
    folder = workspace_root / settings.sending.outbox_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"sending.outbox_dir: cannot create the outbox folder {folder}: {exc}"
        ) from exc
    return OutboxTransport(folder)


def _smtp(settings: Settings, workspace_root: Path) -> Transport:
    smtp = settings.sending.smtp
    password = settings.smtp_password
    if password is not None and smtp.username is None:
        raise ConfigurationError(
            "SALESCYCLE_SMTP_PASSWORD is set but sending.smtp.username is not; set both or neither"
        )
    return SmtpTransport(
        smtp.host,
        smtp.port,
        username=smtp.username,
        password=password.get_secret_value() if password is not None else None,
        starttls=smtp.starttls,
        ssl=smtp.ssl,
        timeout=settings.sending.timeout_seconds,
        dkim=_dkim_signer(settings, workspace_root),
    )


def _dkim_signer(settings: Settings, workspace_root: Path) -> DkimSigner | None:
    smtp = settings.sending.smtp
    if smtp.dkim_selector is None or smtp.dkim_domain is None or smtp.dkim_key_file is None:
        return None  # the settings model allows all three or none
    key_file = workspace_root / smtp.dkim_key_file
    try:
        key = key_file.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"sending.smtp.dkim_key_file: cannot read the DKIM key {key_file}: {exc}"
        ) from exc
    return DkimSigner(smtp.dkim_selector, smtp.dkim_domain, key)


def _sendgrid(settings: Settings, workspace_root: Path) -> Transport:
    if settings.sendgrid_api_key is None:
        raise ConfigurationError(
            "sending.transport is sendgrid but SENDGRID_API_KEY is not set; "
            "set it to a SendGrid API key with Mail Send access"
        )
    sending = settings.sending
    return SendGridTransport(
        settings.sendgrid_api_key.get_secret_value(),
        host=sending.sendgrid_host,
        timeout=sending.timeout_seconds,
        sandbox=sending.sendgrid_sandbox,
        categories=tuple(sending.sendgrid_categories),
    )


_BUILDERS: Mapping[str, Callable[[Settings, Path], Transport]] = {
    "outbox": _outbox,
    "smtp": _smtp,
    "sendgrid": _sendgrid,
}
