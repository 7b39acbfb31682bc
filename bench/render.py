"""Render benchmark: starter templates to complete messages, SendGrid JSON and RFC 5322 bytes.

Run from the repository root::

    python bench/render.py            # 100,000 messages per path
    python bench/render.py --quick    # 10,000

The messages come from the repository's own workspace (the starter templates, owners and
settings) for generated contacts: names with æ, ø, å and accents, English, Danish and
Swedish locales, some without a first name, title or account (their templates fall back
through ``default``). html sequences use the post-sale nurture templates (layout,
inlined CSS, pixel, tracked links); text sequences the connecting and middle-stage ones.

The baseline, measured in the same run over the same contacts: bare ``jinja2`` (not
sandboxed) rendering each message's template body as written, plus ``json.dumps`` of a
minimal payload. Our paths include everything: template context, Markdown already
compiled, layout and CSS, tracked links and signed tokens, headers, and the SendGrid
request body (``sendgrid`` mail helpers, serialised) or the RFC 5322 bytes.

Targets: the SendGrid JSON path for html sequences at least half the baseline's rate;
the RFC 5322 path at least 2,000 messages/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jinja2

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _common import Figure, figure_record, format_table, logger, write_results  # noqa: E402

from engine.delivery import mail_send_json, new_message_id, to_rfc5322  # noqa: E402
from engine.templating import (  # noqa: E402
    MessageBuilder,
    MessageFormat,
    MessageIdentity,
    Recipient,
    SendRequest,
)
from engine.wiring import Runtime  # noqa: E402

RESULTS_FILE = BENCH / "results" / "render.json"
HTML_TEMPLATES = ("nurture/welcome", "nurture/onboarding", "nurture/check-in",
                  "nurture/referral-request", "nurture/review-request")  # fmt: skip
TEXT_TEMPLATES = ("connecting/intro", "connecting/bump", "connecting/breakup",
                  "qualification/recap", "pitching/proposal", "negotiation/checkin")  # fmt: skip
FIRST = ("Anna", "Søren", "Åsa", "Jürgen", "Mette", "Bo", "Zoë", "Thomas", "Ingrid", "")
LAST = ("Østergaard", "Lindqvist", "Müller", "Hansen", "Brown", "Jæger", "Virtanen")
COMPANIES = ("Nordlys A/S", "Blåbær Logistik", "Acme Analytics", "Fjord Systems AB", "Ørsted-ish")
TITLES = ("Head of Sales", "CTO", "VP Revenue", "Salgschef", "", "Marketing Manager")
NOW = dt.datetime(2026, 11, 28, 9, 30, tzinfo=dt.UTC)

log = logger("render")


def recipients(count: int, owners: Sequence[str], seed: int = 7) -> list[Recipient]:
    """Generated contacts with accounts and owners (some fields empty, as in real exports)."""
    rng = random.Random(seed)
    people = []
    for index in range(count):
        first, title = rng.choice(FIRST), rng.choice(TITLES)
        contact: dict[str, Any] = {
            "email": f"person{index}@example{index % 97}.com",
            "first_name": first or None,
            "last_name": rng.choice(LAST),
            "title": title or None,
            "stage": "customer",
            "timezone": rng.choice(("Europe/Copenhagen", "Europe/Stockholm", "America/New_York")),
            "locale": rng.choice(("en", "da", "da_DK", "sv")),
            "attributes": {"lead_score": rng.randint(1, 100), "last_meeting": "2026-10-02"},
        }
        account = None if index % 10 == 0 else {
            "name": rng.choice(COMPANIES), "industry": "Software", "country": "DK",
            "employees": rng.randint(20, 900), "attributes": {"annual_revenue": 1.5e7},
        }  # fmt: skip
        owner = {"email": owners[index % len(owners)], "name": None}
        people.append(Recipient(contact, account, owner))
    return people


def requests(
    people: Sequence[Recipient], names: Sequence[str], fmt: MessageFormat
) -> list[SendRequest]:
    """One send request per person, cycling through ``names``."""
    return [
        SendRequest(names[i % len(names)], "a", person, _identity(i), fmt)
        for i, person in enumerate(people)
    ]


def _identity(index: int) -> MessageIdentity:
    return MessageIdentity(new_message_id(), index, "bench", "step")


def rate(label: str, count: int, work: Callable[[], None]) -> float:
    """Messages per second of ``work`` (which handles ``count`` messages)."""
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    log(f"{label}: {count:,} messages in {seconds:.2f} s")
    return count / seconds


def baseline(builder: MessageBuilder, batch: Sequence[SendRequest]) -> Callable[[], None]:
    """Bare jinja2 rendering of each message's template body, plus a minimal json.dumps."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(REPO / "templates"))
    catalog = builder.renderer.catalog
    bodies: dict[tuple[str, str | None], jinja2.Template] = {}
    contexts = []
    for request in batch:
        source = catalog.pick(
            request.template, request.variant, request.recipient.contact["locale"]
        )
        key = (source.name, source.locale)
        if key not in bodies:
            bodies[key] = env.from_string(source.body)
        variables = builder.variables(request)
        variables.update(link=lambda url, tag=None: url, today=NOW.date(), unsubscribe_url="u")
        contexts.append((bodies[key], variables, request.recipient.contact["email"]))

    def work() -> None:
        for template, variables, email in contexts:
            json.dumps({"to": email, "subject": "subject", "content": template.render(variables)})

    return work


def sendgrid_path(builder: MessageBuilder, batch: Sequence[SendRequest]) -> Callable[[], None]:
    def work() -> None:
        for request in batch:
            mail_send_json(builder.build(request, NOW))

    return work


def rfc5322_path(builder: MessageBuilder, batch: Sequence[SendRequest]) -> Callable[[], None]:
    def work() -> None:
        for request in batch:
            to_rfc5322(builder.build(request, NOW))

    return work


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 messages per path")
    parser.add_argument("--messages", type=int, default=None, help="messages per path")
    args = parser.parse_args(argv)
    count = args.messages or (10_000 if args.quick else 100_000)
    began = dt.datetime.now(dt.UTC)
    runtime = Runtime.open(REPO)
    builder = runtime.message_builder()
    people = recipients(count, sorted(runtime.owner_profiles))
    html_batch = requests(people, HTML_TEMPLATES, MessageFormat.HTML)
    text_batch = requests(people, TEXT_TEMPLATES, MessageFormat.TEXT)
    for batch in (html_batch[:50], text_batch[:50]):  # compile every template first
        for request in batch:
            builder.build(request, NOW)

    html_floor = rate("baseline, html templates", count, baseline(builder, html_batch))
    text_floor = rate("baseline, text templates", count, baseline(builder, text_batch))
    html_sendgrid = rate("SendGrid JSON, html", count, sendgrid_path(builder, html_batch))
    text_sendgrid = rate("SendGrid JSON, text", count, sendgrid_path(builder, text_batch))
    html_rfc = rate("RFC 5322, html", count, rfc5322_path(builder, html_batch))
    text_rfc = rate("RFC 5322, text", count, rfc5322_path(builder, text_batch))

    figures = [
        _figure("baseline: bare jinja2 + json.dumps, html templates", html_floor),
        _figure("baseline: bare jinja2 + json.dumps, text templates", text_floor),
        _figure("SendGrid JSON, html sequences", html_sendgrid, html_floor, 0.5),
        _figure("SendGrid JSON, text sequences", text_sendgrid, text_floor),
        _figure("RFC 5322, html sequences", html_rfc, html_floor, minimum=2000),
        _figure("RFC 5322, text sequences", text_rfc, text_floor, minimum=2000),
    ]
    print(format_table(figures))
    write_results(RESULTS_FILE, "render", bool(args.quick), began, messages=count,
                  figures=figures)  # fmt: skip
    return 0


def _figure(
    name: str,
    per_second: float,
    floor: float | None = None,
    min_ratio: float | None = None,
    minimum: float | None = None,
) -> Figure:
    ratio = per_second / floor if floor else None
    target, status = "-", "-"
    if min_ratio is not None and ratio is not None:
        target = f">= {min_ratio:g}x baseline"
        status = "PASS" if ratio >= min_ratio else "SHORT"
    elif minimum is not None:
        target = f">= {minimum:,.0f} messages/s"
        status = "PASS" if per_second >= minimum else "SHORT"
    return figure_record(
        name, per_second, f"{per_second:,.0f} messages/s", target, ratio,
        f"{ratio:.2f}x" if ratio is not None else "-", status, unit="messages/s", digits=0,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
