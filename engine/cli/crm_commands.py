"""``salescycle crm outbox|deliver``: what waits for the CRM webhook, and sending it now."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from engine.cli.app import JsonOption, WorkspaceOption, app, print_json, stdout
from engine.clock import utc_now
from engine.contacts.crm_webhook import CrmWebhookSender, DeliveryReport
from engine.crm_outbox import OutboxSummary, outbox_summary
from engine.errors import ConfigurationError, SalescycleError
from engine.wiring import Runtime

crm_app = typer.Typer(help="The outbound CRM webhook: its outbox, and delivering it now.")
app.add_typer(crm_app, name="crm")

LimitOption = Annotated[int, typer.Option("--limit", min=1, help="At most this many rows.")]


class ReceiverDownError(SalescycleError):
    """The CRM webhook's receiver did not take a change; it stays queued."""


@crm_app.command("outbox", epilog="Example: salescycle crm outbox --json")
def outbox(
    workspace: WorkspaceOption = Path(), as_json: JsonOption = False, limit: LimitOption = 50
) -> None:
    """Changes not delivered yet: pending ones (with their retries) and failed ones."""
    runtime = Runtime.open(workspace)
    try:
        url = runtime.settings.crm_webhook.url
        with runtime.ready_database().connect() as connection:
            summary = outbox_summary(connection, limit)
    finally:
        runtime.close()
    if as_json:
        print_json({"url": url, **summary.as_dict(), "rows": _plain(summary.rows)})
        return
    _print_summary(summary, url)


@crm_app.command("deliver", epilog="Example: salescycle crm deliver --limit 5000")
def deliver(
    workspace: WorkspaceOption = Path(), as_json: JsonOption = False, limit: LimitOption = 1000
) -> None:
    """POST the changes that are due now (what the scheduler does on every pass)."""
    runtime = Runtime.open(workspace)
    try:
        sender = CrmWebhookSender.from_settings(runtime.settings)
        if sender is None:
            raise ConfigurationError(
                "crm_webhook.url is not set; add crm_webhook: {url: https://...} to "
                "config/settings.yaml (and set SALESCYCLE_CRM_WEBHOOK_SECRET)"
            )
        with sender:
            report = sender.deliver_due(runtime.ready_database(), utc_now(), limit)
    finally:
        runtime.close()
    _print_report(report, as_json)
    if report.receiver_down:
        raise ReceiverDownError(
            f"{sender.url} did not take a change; it stays queued and is retried later "
            "(see `salescycle crm outbox`)"
        )


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in row.items()}
        for row in rows
    ]


def _print_summary(summary: OutboxSummary, url: str | None) -> None:
    where = url or "no crm_webhook.url configured: changes wait here"
    stdout.print(
        f"{summary.pending:,} pending, {summary.failed:,} failed, "
        f"{summary.delivered:,} delivered ({where})"
    )
    if not summary.rows:
        return
    table = Table("id", "kind", "contact", "created", "attempts", "next attempt", "last error")
    for row in summary.rows:
        next_at = row["next_attempt_at"]
        table.add_row(
            str(row["id"]), row["kind"], row["email"] or f"#{row['contact_id']}",
            f"{row['created_at']:%Y-%m-%d %H:%M:%S}", str(row["attempts"]),
            f"{next_at:%Y-%m-%d %H:%M:%S}" if next_at is not None else "failed",
            row["last_error"] or "",
        )  # fmt: skip
    stdout.print(table)


def _print_report(report: DeliveryReport, as_json: bool) -> None:
    if as_json:
        print_json(report.as_dict())
        return
    stdout.print(
        f"delivered {report.delivered:,} change(s); {report.retrying:,} to retry later, "
        f"{report.failed:,} failed (refused by the receiver)"
    )
