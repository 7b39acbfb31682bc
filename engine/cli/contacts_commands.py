"""``salescycle contacts``: import a CRM export, show one contact, erase one person."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from engine.cli.app import JsonOption, WorkspaceOption, app, print_json, stderr, stdout
from engine.clock import utc_now
from engine.contacts import CRM_FILE, ContactImporter, FileFormat, ImportSummary, find_contact
from engine.contacts import load_mapping as load_crm_mapping
from engine.contacts.erasure import erase_address
from engine.wiring import Runtime

contacts_app = typer.Typer(help="Contacts: import from your CRM, look one up, erase one.")
app.add_typer(contacts_app, name="contacts")


@contacts_app.command(
    "import",
    epilog="Example: salescycle contacts import hubspot-export.csv --rejects rejects.csv",
)
def import_contacts(
    file: Annotated[Path, typer.Argument(help="CSV (any delimiter) or JSON Lines export.")],
    workspace: WorkspaceOption = Path(),
    mapping: Annotated[
        Path | None, typer.Option(help="Column mapping [default: config/crm.yaml].")
    ] = None,
    rejects: Annotated[
        Path | None, typer.Option(help="Where rejected rows go [default: FILE.rejects.csv].")
    ] = None,
    file_format: Annotated[
        str | None, typer.Option("--format", help="csv or jsonl [default: by extension].")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Import contacts, accounts and owners; upsert by CRM id, else email."""
    runtime = Runtime.open(workspace)
    try:
        summary = run_import(runtime, file, mapping, rejects, _format(file_format))
    finally:
        runtime.close()
    if as_json:
        print_json(summary.as_dict())
    else:
        print_summary(summary)
    if summary.rejected:
        raise typer.Exit(1)


def run_import(
    runtime: Runtime,
    file: Path,
    mapping_path: Path | None = None,
    rejects_path: Path | None = None,
    file_format: FileFormat | None = None,
) -> ImportSummary:
    """Import one file into the runtime's database, with a progress bar on a terminal."""
    database = runtime.ready_database()
    mapping_file = mapping_path or runtime.workspace.root / CRM_FILE
    mapping = load_crm_mapping(mapping_file, runtime.workspace, runtime.pipeline)
    importer = ContactImporter(
        database, runtime.pipeline, mapping, runtime.settings.imports.batch_size
    )
    rejects = rejects_path or file.with_name(file.name + ".rejects.csv")
    if not stderr.is_terminal:
        return importer.run(file, rejects, file_format)
    columns = (*Progress.get_default_columns()[:1], BarColumn(), DownloadColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task(f"importing {file.name}", total=None)
        return importer.run(
            file,
            rejects,
            file_format,
            lambda done, total: bar.update(task, completed=done, total=total),
        )


def print_summary(summary: ImportSummary) -> None:
    """The human summary of an import."""
    rate = summary.rows / summary.seconds if summary.seconds else 0.0
    stdout.print(
        f"{summary.file}: {summary.rows} rows in {summary.seconds:.1f}s ({rate:,.0f} rows/s)\n"
        f"  contacts: {summary.created} created, {summary.updated} updated, "
        f"{summary.unchanged} unchanged, {summary.rejected} rejected\n"
        f"  accounts: {summary.accounts_created} created, {summary.accounts_updated} updated; "
        f"owners: {summary.owners_created} created, {summary.owners_updated} updated; "
        f"stage changes: {summary.stage_changes}"
    )
    if summary.ignored_columns:
        stdout.print(f"  ignored columns: {', '.join(summary.ignored_columns)}")
    if summary.rejects_file:
        stdout.print(f"  rejected rows, with line and reason: {summary.rejects_file}")


def _format(value: str | None) -> FileFormat | None:
    if value is None:
        return None
    if value not in ("csv", "jsonl"):
        raise typer.BadParameter(f"'{value}' is not a format; valid: csv, jsonl")
    return "csv" if value == "csv" else "jsonl"


@contacts_app.command("show", epilog="Example: salescycle contacts show anna@example.com --json")
def show_contact(
    email: Annotated[str, typer.Argument(help="The contact's email address.")],
    workspace: WorkspaceOption = Path(),
    as_json: JsonOption = False,
) -> None:
    """Show a contact, their account and owner, and their timeline."""
    runtime = Runtime.open(workspace)
    try:
        with runtime.ready_database().connect() as connection:
            view = find_contact(connection, email)
    finally:
        runtime.close()
    if view is None:
        typer.echo(f"error: no contact with email {email}", err=True)
        raise typer.Exit(1)
    if as_json:
        print_json(view.as_dict())
        return
    c, account, owner = view.contact, view.account, view.owner
    name = " ".join(p for p in (c["first_name"], c["last_name"]) if p)
    stdout.print(f"[bold]{name}[/bold] <{c['email']}>  {c['title'] or ''}")
    stdout.print(f"stage: {c['stage']} since {c['stage_entered_at']}")
    stdout.print(f"crm id: {c['crm_id'] or '-'}  timezone: {c['timezone'] or '-'}  "
                 f"locale: {c['locale'] or '-'}  phone: {c['phone'] or '-'}")  # fmt: skip
    if account:
        stdout.print(f"account: {account['name']} ({account['domain'] or '-'}), "
                     f"{account['industry'] or '-'}, {account['country'] or '-'}, "
                     f"{account['employees'] or '?'} employees")  # fmt: skip
    if owner:
        stdout.print(f"owner: {owner['name'] or ''} <{owner['email']}>")
    if c["attributes"]:
        stdout.print("attributes: " + ", ".join(f"{k}={v}" for k, v in c["attributes"].items()))
    table = Table("when (UTC)", "what", title="timeline", title_justify="left")
    for entry in view.timeline:
        table.add_row(entry.at.strftime("%Y-%m-%d %H:%M"), entry.summary)
    stdout.print(table)
    if view.enrollments:
        runs = Table("sequence", "status", "step", "next run (UTC)", "why",
                     title="enrollments", title_justify="left")  # fmt: skip
        for run in view.enrollments:
            why = run["error"] or run["exit_reason"] or ""
            runs.add_row(run["sequence"], run["status"], run["step_id"] or "-",
                         run["next_run_at"] or "-", why)  # fmt: skip
        stdout.print(runs)
    if view.messages:
        sent = Table("created (UTC)", "sequence", "step", "subject", "status",
                     title="messages (newest first)", title_justify="left")  # fmt: skip
        for message in view.messages:
            sent.add_row(str(message["created_at"])[:16].replace("T", " "),
                         message["sequence"] or "-", message["step_id"] or "-",
                         message["subject"], message["status"])  # fmt: skip
        stdout.print(sent)


@contacts_app.command("erase", epilog="Example: salescycle contacts erase pat@example.org --yes")
def erase_contact(
    email: Annotated[str, typer.Argument(help="The person's email address.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    workspace: WorkspaceOption = Path(),
    as_json: JsonOption = False,
) -> None:
    """Erase a person: their contact, messages, events, enrollments and stage history.
    Only a hash of the address is kept, so they are never emailed again. Raw webhook
    bodies (the recovery log) are not touched."""
    if not yes and not typer.confirm(f"Erase {email.strip().lower()} for good?"):
        typer.echo("nothing erased", err=True)
        raise typer.Exit(1)
    runtime = Runtime.open(workspace)
    try:
        with runtime.ready_database().begin() as connection:
            erasure = erase_address(connection, email, utc_now())
    finally:
        runtime.close()
    if as_json:
        print_json(erasure.as_dict())
        return
    found = "erased the contact" if erasure.contact else "no contact had this address"
    stdout.print(f"{found}: {erasure.messages} messages, {erasure.events} events, "
                 f"{erasure.enrollments} enrollments, {erasure.stage_changes} stage changes "
                 f"removed; kept only the hashed suppression {erasure.email_hash}")  # fmt: skip
