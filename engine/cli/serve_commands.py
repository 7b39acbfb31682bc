"""``salescycle serve``: the web app (webhooks, tracking links, health) on uvicorn."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from engine.cli.app import WorkspaceOption, app, stderr
from engine.wiring import Runtime

if TYPE_CHECKING:
    from engine.web.context import OnStored


@app.command("serve", epilog="Example: SALESCYCLE_INBOUND_SECRET=... salescycle serve --port 8000")
def serve(
    workspace: WorkspaceOption = Path(),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
) -> None:
    """Serve the SendGrid webhooks, tracking and unsubscribe links, and /healthz.

    Secrets come from the environment: SALESCYCLE_SENDGRID_WEBHOOK_PUBLIC_KEY,
    SALESCYCLE_INBOUND_SECRET, SALESCYCLE_SECRET_KEY. The OpenAPI schema is at /docs.
    """
    import uvicorn  # the web stack loads only for this command

    from engine.web import app_from_runtime

    runtime = Runtime.open(workspace)
    try:
        web = app_from_runtime(runtime, on_stored=_nudge_workers())
        stderr.print(f"salescycle web on http://{host}:{port} (Ctrl+C stops it)")
        uvicorn.run(web, host=host, port=port, lifespan="off", log_level="info")
    finally:
        runtime.close()


def _nudge_workers() -> OnStored:
    """With SALESCYCLE_BROKER_URL, a Dramatiq worker processes each stored row at once;
    without it, the rows wait for `salescycle run`'s or the scheduler's inbox sweep."""
    from engine.web.context import no_nudge
    from workers.broker import BROKER_URL_ENV

    if not os.environ.get(BROKER_URL_ENV):
        return no_nudge
    from workers.embedded import nudge_inbox

    return nudge_inbox
