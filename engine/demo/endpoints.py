"""The web app as the outside world reaches it over HTTP: SendGrid's signed Event Webhook
and Inbound Parse, people's browsers on our tracking links, and a rep's CRM calling the API.

Links in the emails point at ``sending.tracking_url``; here they are followed on the
loopback address the demo's web app listens on, as DNS would send them there.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx2
import orjson

from engine.demo.setup import Secrets
from engine.devtools import post_events

BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15"
)
SCANNER = "Mozilla/5.0 (compatible; Mimecast URL Protect; +https://www.mimecast.com)"


class DemoFailure(RuntimeError):
    """The engine refused what a real provider, browser or CRM would have had accepted."""


class Endpoints:
    """One HTTP client for everything the simulator sends to the web app."""

    def __init__(
        self,
        base_url: str,
        tracking_url: str,
        keys: Secrets,
        settle: Callable[[], None] = lambda: None,
    ) -> None:
        self.base_url, self.tracking_url = base_url, tracking_url.rstrip("/")
        self.keys = keys
        # Called after each request: waits for the workers to process what it stored.
        # SQLite has one writer, and a worker's read-then-write transaction fails at once
        # ("database is locked") when a request commits in between; in production each
        # side would simply retry.
        self.settle = settle
        self.client = httpx2.Client(base_url=base_url, timeout=60.0)
        self.requests: Counter[str] = Counter()  # what was sent, by kind

    def close(self) -> None:
        self.client.close()

    def events(self, batch: list[dict[str, Any]], now: dt.datetime) -> None:
        """One signed SendGrid Event Webhook batch."""
        url = f"{self.base_url}/webhooks/sendgrid/events"
        status = post_events(url, batch, self.keys.signer, now=now, client=self.client)
        self._expect("sendgrid events", status, 200)

    def open_pixel(self, url: str, agent: str = BROWSER) -> None:
        self._expect("open pixel", self.client.get(self._local(url), headers=_ua(agent)), 200)

    def click(self, url: str, agent: str = BROWSER) -> None:
        self._expect("click", self.client.get(self._local(url), headers=_ua(agent)), 302)

    def unsubscribe(self, url: str) -> None:
        """The mail client's RFC 8058 one-click unsubscribe."""
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        answer = self.client.post(
            self._local(url), content=b"List-Unsubscribe=One-Click", headers=form
        )
        self._expect("one-click unsubscribe", answer, 200)

    def inbound(self, raw: bytes, to: str, sender: str) -> None:
        """A message in Inbound Parse's raw form (the ``email`` field)."""
        envelope = orjson.dumps({"to": [to], "from": sender}).decode()
        charsets = '{"to":"UTF-8"}'
        fields: dict[str, bytes | str] = {
            "email": raw, "to": to, "from": sender, "envelope": envelope, "charsets": charsets
        }  # fmt: skip
        form = {name: (None, value) for name, value in fields.items()}
        answer = self.client.post("/webhooks/sendgrid/inbound", files=form,
                                  params={"secret": self.keys.inbound_secret})  # fmt: skip
        self._expect("inbound parse", answer, 200)

    def move_stage(self, email: str, stage: str, note: str) -> None:
        """What a rep's CRM does when a deal moves: ``POST /api/contacts/{email}/stage``."""
        answer = self.client.post(
            f"/api/contacts/{email}/stage",
            json={"stage": stage, "note": note},
            headers={"Authorization": f"Bearer {self.keys.api_token}"},
        )
        self._expect("stage change", answer, 200)

    def _local(self, url: str) -> str:
        if not url.startswith(self.tracking_url):
            raise DemoFailure(f"{url} is not one of our tracking links ({self.tracking_url})")
        return url[len(self.tracking_url) :]

    def _expect(self, kind: str, answer: httpx2.Response | int, status: int) -> None:
        got = answer if isinstance(answer, int) else answer.status_code
        if got != status:
            said = "" if isinstance(answer, int) else f": {answer.text[:300]}"
            raise DemoFailure(f"{kind}: the web app answered {got}, expected {status}{said}")
        self.requests[kind] += 1
        self.settle()


def _ua(agent: str) -> dict[str, str]:
    return {"User-Agent": agent}
