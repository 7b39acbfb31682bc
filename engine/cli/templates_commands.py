"""``salescycle templates``: list the workspace's templates, render one for a real contact."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.parser import BytesParser
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from engine.cli.app import JsonOption, WorkspaceOption, app, print_json, stdout
from engine.clock import utc_now
from engine.contacts import find_contact
from engine.delivery import OutboundMessage, new_message_id, to_mail_send, to_rfc5322
from engine.errors import InputFileError
from engine.templating import (
    BASE_VARIANT,
    MessageFormat,
    MessageIdentity,
    Recipient,
    SendRequest,
    TemplateCatalog,
)
from engine.wiring import Runtime

templates_app = typer.Typer(help="Email templates: list them, render one for a contact.")
app.add_typer(templates_app, name="templates")


@templates_app.command("list", epilog="Example: salescycle templates list --json")
def list_templates(workspace: WorkspaceOption = Path(), as_json: JsonOption = False) -> None:
    """List templates by the name a sequence's `send:` uses, with locales and variants."""
    runtime = Runtime.open(workspace)
    rows = template_rows(runtime.templates, runtime.settings.default_locale)
    if as_json:
        print_json(rows)
        return
    table = Table("template", "locales", "variants", "file")
    for row in rows:
        table.add_row(
            row["name"], ", ".join(row["locales"]), ", ".join(row["variants"]), row["file"]
        )
    stdout.print(table)


def template_rows(catalog: TemplateCatalog, default_locale: str) -> list[dict[str, Any]]:
    """One row per template: name, locales (the default language first), variants, subject."""
    rows = []
    for name in catalog.names():
        locales = [loc or default_locale for loc in catalog.locales(name)]
        base = catalog.pick(name, BASE_VARIANT, None)
        rows.append(
            {
                "name": name,
                "locales": locales,
                "variants": catalog.variants(name),
                "subject": base.subject,
                "file": base.shown,
            }
        )
    return rows


@templates_app.command(
    "render",
    epilog="Example: salescycle templates render nurture/welcome --contact anna@acme.dk "
    "--format html --html welcome.html --eml welcome.eml",
)
def render_template(
    name: Annotated[str, typer.Argument(help="Template name, e.g. connecting/intro.")],
    contact: Annotated[str, typer.Option("--contact", help="The contact's email address.")],
    workspace: WorkspaceOption = Path(),
    locale: Annotated[
        str | None, typer.Option(help="Render in this locale [default: the contact's].")
    ] = None,
    variant: Annotated[str, typer.Option(help="The variant (a, b, ...).")] = BASE_VARIANT,
    message_format: Annotated[
        MessageFormat, typer.Option("--format", help="text (plain) or html (layout, tracking).")
    ] = MessageFormat.TEXT,
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML part here.")] = None,
    eml: Annotated[
        Path | None, typer.Option("--eml", help="Write the RFC 5322 message here.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Render one message for one contact exactly as it would be sent (nothing is sent)."""
    runtime = Runtime.open(workspace)
    try:
        with runtime.ready_database().connect() as connection:
            view = find_contact(connection, contact)
    finally:
        runtime.close()
    if view is None:
        raise InputFileError(f"no contact with email {contact.strip().lower()}")
    request = SendRequest(
        name,
        variant,
        Recipient(view.contact, view.account, view.owner),
        MessageIdentity(new_message_id(), None, "preview", "preview"),
        message_format,
        locale=locale,
    )
    message = runtime.message_builder().build(request, utc_now())
    raw = to_rfc5322(message)
    _write(html, (message.html or "").encode("utf-8"), "HTML part")
    _write(eml, raw, "message")
    if as_json:
        print_json(message_dict(message, raw))
    else:
        _print_message(message, raw)


def message_dict(message: OutboundMessage, raw: bytes) -> dict[str, Any]:
    """A message as JSON: every header as sent, the parts, and the SendGrid request body."""
    parsed = message_from_bytes(raw)
    return {
        "message_id": message.message_id,
        "headers": _decoded_headers(raw),
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
        "custom_args": dict(message.custom_args),
        "parts": [part.get_content_type() for part in parsed.walk() if not part.is_multipart()],
        "sendgrid": to_mail_send(message),
    }


def _decoded_headers(raw: bytes) -> dict[str, str]:
    parsed = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
    return {name: str(value).strip() for name, value in parsed.items()}


def _print_message(message: OutboundMessage, raw: bytes) -> None:
    for name, value in _decoded_headers(raw).items():
        if name.lower() not in ("content-type", "mime-version", "content-transfer-encoding"):
            stdout.print(f"[bold]{name}:[/bold] {value}", markup=True, highlight=False)
    stdout.print()
    stdout.print(message.text, markup=False)
    if message.html is not None:
        stdout.print(
            f"[dim](and an HTML part of {len(message.html):,} characters; "
            "--html FILE writes it)[/dim]"
        )


def _write(path: Path | None, data: bytes, what: str) -> None:
    if path is None:
        return
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise InputFileError(f"cannot write the {what} to {path}: {exc}") from exc
