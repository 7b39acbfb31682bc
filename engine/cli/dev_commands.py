"""``salescycle dev``: tools for development, tests and demos (a SendGrid look-alike)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli.app import app, stderr

dev_app = typer.Typer(help="Development tools: a SendGrid-compatible sink on loopback.")
app.add_typer(dev_app, name="dev")


@dev_app.command(
    "sendgrid-sink",
    epilog="Example: salescycle dev sendgrid-sink --port 8025 --rate-429 0.05 --record sent.jsonl",
)
def sendgrid_sink(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8025,
    api_key: Annotated[
        str | None, typer.Option(help="Accept only this key [default: any bearer key].")
    ] = None,
    record: Annotated[
        Path | None, typer.Option(help="Append each accepted request body here (JSON lines).")
    ] = None,
    rate_429: Annotated[float, typer.Option(help="Share of requests answered 429.")] = 0.0,
    rate_500: Annotated[float, typer.Option(help="Share answered 500.")] = 0.0,
    rate_503: Annotated[float, typer.Option(help="Share answered 503.")] = 0.0,
    rate_slow: Annotated[float, typer.Option(help="Share answered slowly.")] = 0.0,
    slow_seconds: Annotated[float, typer.Option(help="How slowly.")] = 2.0,
    seed: Annotated[int, typer.Option(help="Seed of the fault draws.")] = 0,
) -> None:
    """Serve POST /v3/mail/send as SendGrid does (schema, limits, 202 + X-Message-Id).

    Point the engine at it with SALESCYCLE_SENDING__SENDGRID_HOST=http://HOST:PORT;
    nothing leaves the machine. GET /_sink/messages lists what it accepted.
    """
    from engine.devtools import serve  # the web stack loads only for this command

    stderr.print(f"SendGrid sink on http://{host}:{port} (Ctrl+C stops it)")
    serve(host, port, api_key=api_key, record_file=record, rate_429=rate_429,
          rate_500=rate_500, rate_503=rate_503, rate_slow=rate_slow,
          slow_seconds=slow_seconds, seed=seed)  # fmt: skip
