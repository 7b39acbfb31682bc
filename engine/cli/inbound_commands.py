"""``salescycle inbound``: inbound mail as the engine reads it (``inbound classify``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli.app import JsonOption, WorkspaceOption, app, print_json, stdout
from engine.errors import InputFileError
from engine.replies import Classification, InboundPostError, classify, read_post
from engine.wiring import Runtime

inbound_app = typer.Typer(help="Inbound mail: replies, auto-replies and bounces.")
app.add_typer(inbound_app, name="inbound")

_FORM_START = re.compile(rb"--([^\r\n]{1,200})\r?\nContent-Disposition: form-data", re.I)


@inbound_app.command("classify", epilog="Example: salescycle inbound classify reply.eml --json")
def classify_command(
    file: Annotated[
        Path,
        typer.Argument(
            help="A raw message (.eml), or a stored SendGrid Inbound Parse post.",
            dir_okay=False,
        ),
    ],
    to: Annotated[
        list[str] | None,
        typer.Option("--to", help="An envelope recipient (where the reply token is)."),
    ] = None,
    workspace: WorkspaceOption = Path(),
    as_json: JsonOption = False,
) -> None:
    """Show what the engine makes of one inbound message, and why."""
    raw, envelope_to = _read_message(file)
    rules = Runtime.open(workspace).reply_rules
    result = classify(raw, rules, [*envelope_to, *(to or [])])
    if as_json:
        print_json(as_dict(result))
    else:
        _print(result)


def _read_message(file: Path) -> tuple[bytes, tuple[str, ...]]:
    """The raw MIME message in ``file``, unwrapped from an Inbound Parse post when it is one."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InputFileError(f"cannot read {file}: {exc.strerror or exc}") from None
    form = _FORM_START.match(data)
    if form is None:
        return data, ()
    boundary = form.group(1).decode("ascii", "replace")
    try:
        post = read_post(data, f"multipart/form-data; boundary={boundary}")
    except InboundPostError as exc:
        raise InputFileError(f"{file}: {exc}") from None
    return post.mime, post.envelope_to


def as_dict(result: Classification) -> dict[str, Any]:
    """A classification as plain JSON values."""
    return {
        "kind": result.kind.value,
        "intent": result.intent.value if result.intent else None,
        "language": result.language,
        "reason": result.reason,
        "text": result.text,
        "bounced": [{"email": b.email, "hard": b.hard} for b in result.bounced],
        "returns_on": result.returns_on.isoformat() if result.returns_on else None,
        "referrals": list(result.referrals),
        "headers": {
            "from": result.sender,
            "recipients": list(result.recipients),
            "subject": result.subject,
            "date": result.sent_at.isoformat() if result.sent_at else None,
            "message_id": result.message_id,
            "in_reply_to": result.in_reply_to,
            "references": list(result.references),
        },
    }


def _print(result: Classification) -> None:
    data = as_dict(result)
    rows = [("kind", data["kind"]), ("intent", data["intent"]), ("language", data["language"]),
            ("reason", data["reason"])]  # fmt: skip
    if result.bounced:
        bounced = ", ".join(f"{b.email} ({'hard' if b.hard else 'soft'})" for b in result.bounced)
        rows.append(("bounced", bounced))
    if result.returns_on:
        rows.append(("returns on", data["returns_on"]))
    if result.referrals:
        rows.append(("referrals", ", ".join(result.referrals)))
    headers = data["headers"]
    rows += [("from", headers["from"]), ("to/cc", ", ".join(headers["recipients"])),
             ("subject", headers["subject"]), ("date", headers["date"]),
             ("message-id", headers["message_id"]), ("in-reply-to", headers["in_reply_to"]),
             ("references", " ".join(headers["references"]))]  # fmt: skip
    for label, value in rows:
        stdout.print(f"{label + ':':<12} {value if value not in (None, '') else '-'}", markup=False)
    stdout.print("text:", markup=False)
    for line in (result.text or "(empty)").splitlines():
        stdout.print(f"  {line}", markup=False)
