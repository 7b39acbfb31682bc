"""Webhook benchmark: signed SendGrid event batches accepted over HTTP, then processed.

Run from the repository root::

    python bench/webhooks.py            # 40 batches of 1,000 events per database
    python bench/webhooks.py --quick    # 10 batches

A fresh starter workspace, 2,000 contacts from ``examples/generate_crm.py`` and one sent
message each; SendGrid-shaped events about those messages (processed, delivered; an open
and a click minutes later; a bounce or unsubscribe now and then), from
``engine.devtools.events_for``, signed as SendGrid's Signed Event Webhook signs them.

(a) Accepted: ``salescycle serve`` in its own process (uvicorn), the batches POSTed over
loopback by two client threads; events/s from the first POST to the last 200 (each
batch verified and stored durably in the inbox before its answer). Baseline: verifying
the signature and parsing the JSON of the same batches in this process (no HTTP, no
database). Target: >= 10,000 events/s. (b) Processed: ``InboxProcessor.process_received``
over the stored rows (normalised events, deduplication, suppressions, settled messages,
stage transitions); events/s. Baseline: parsing the rows into normalised events only.
Target: >= 5,000 events/s on PostgreSQL. Both on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import os
import random
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _common as common  # noqa: E402
import httpx2  # noqa: E402
import orjson  # noqa: E402
from pipeline import ensure_csv  # noqa: E402
from sendgrid.helpers.eventwebhook import EventWebhook  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from engine.cli.contacts_commands import run_import  # noqa: E402
from engine.devtools.sendgrid_events import (  # noqa: E402
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    EventSigner,
    events_for,
)
from engine.devtools.sendgrid_sink import AcceptedMail  # noqa: E402
from engine.storage import upgrade  # noqa: E402
from engine.storage.bulk import execute_many  # noqa: E402
from engine.storage.schema import contacts, events, messages, webhook_inbox  # noqa: E402
from engine.tracking.replay import InboxProcessor  # noqa: E402
from engine.tracking.sendgrid import SendGridEvents  # noqa: E402
from engine.wiring import Runtime  # noqa: E402
from engine.workspace import init_workspace  # noqa: E402

RESULTS_FILE = BENCH / "results" / "webhooks.json"
CONTACTS, BATCH_EVENTS, CLIENTS = 2_000, 1_000, 2
ACCEPT_TARGET, PROCESS_TARGET = 10_000.0, 5_000.0
SECRET = "bench-webhooks-secret-key-0123456789"
PATH = "/webhooks/sendgrid/events"

log = common.logger("bench/webhooks")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def seed_messages(runtime: Runtime, csv: Path, work: Path) -> list[AcceptedMail]:
    """Import the contacts and write one sent message to each; the mails SendGrid took."""
    upgrade(runtime.database)
    run_import(runtime, csv, rejects_path=work / "rejects.csv")
    now = datetime.now(UTC)
    with runtime.database.begin() as connection:
        people = connection.execute(select(contacts.c.id, contacts.c.email)).all()
        rows = [
            {"idempotency_key": f"bench:{cid}", "public_id": f"bench-{cid}", "contact_id": cid,
             "template": "nurture/welcome", "to_email": email, "from_email": "rep@example.com",
             "subject": "Welcome", "rfc_message_id": f"<bench-{cid}@example.com>",
             "status": "sent", "transport": "sendgrid", "attempts": 1, "sent_at": now,
             "links": [{"url": "https://cal.example.com/book", "tag": "booking"}],
             "created_at": now, "updated_at": now}
            for cid, email in people
        ]  # fmt: skip
        execute_many(connection, messages.insert(), rows)
    html = '<a href="https://cal.example.com/book">Book</a>'
    return [
        AcceptedMail.from_body(
            {
                "personalizations": [
                    {
                        "to": [{"email": str(row["to_email"])}],
                        "custom_args": {"message_id": str(row["public_id"])},
                    }
                ],
                "content": [{"type": "text/html", "value": html}],
            },
            f"sg-{row['contact_id']}",
            now,
        )
        for row in rows
    ]


def batches_of_events(mails: list[AcceptedMail], count: int, seed: int) -> list[bytes]:
    """``count`` JSON bodies of BATCH_EVENTS events each, about the seeded messages."""
    rng, at = random.Random(seed), datetime.now(UTC) - dt.timedelta(minutes=5)
    stream: list[dict[str, Any]] = []
    while len(stream) < count * BATCH_EVENTS:
        mail = rng.choice(mails)
        rare = rng.random()
        stream.extend(events_for(mail, ["processed", "delivered"], at, rng))
        # a person opens and clicks minutes later (a scanner would within seconds)
        later = at + dt.timedelta(minutes=rng.randint(2, 120))
        kinds = ["open", "click"] + (["bounce"] if rare < 0.01 else [])
        kinds += ["unsubscribe"] if 0.01 <= rare < 0.02 else []
        stream.extend(events_for(mail, kinds, later, rng))
    return [orjson.dumps(stream[i * BATCH_EVENTS : (i + 1) * BATCH_EVENTS]) for i in range(count)]


def floor_accept(bodies: list[bytes], signer: EventSigner) -> float:
    """Events/s: verify each batch's signature and parse its JSON, in this process."""
    verifier = EventWebhook()
    key = verifier.convert_public_key_to_ecdsa(signer.public_key_base64)
    signed = [(b, str(int(time.time())), b"") for b in bodies]
    signed = [(b, ts, signer.sign(ts, b).encode()) for b, ts, _ in signed]
    started = time.perf_counter()
    for body, timestamp, signature in signed:
        assert verifier.verify_signature(body.decode(), signature.decode(), timestamp, key)
        orjson.loads(body)
    return len(bodies) * BATCH_EVENTS / (time.perf_counter() - started)


@contextlib.contextmanager
def serving(root: Path, database_url: str, public_key: str, work: Path) -> Iterator[str]:
    """``salescycle serve`` in its own process, verifying ``public_key``; its base URL."""
    env = {**os.environ, "SALESCYCLE_DATABASE_URL": database_url, "SALESCYCLE_SECRET_KEY": SECRET,
           "SALESCYCLE_SENDGRID_WEBHOOK_PUBLIC_KEY": public_key}  # fmt: skip
    env.pop("SALESCYCLE_BROKER_URL", None)
    with common.salescycle_serve(env, root, work / "serve.log") as url:
        yield url


def post_all(url: str, bodies: list[bytes], signer: EventSigner) -> float:
    """POST every batch (CLIENTS threads, each its own keep-alive client); seconds taken."""
    failures: list[str] = []

    def client(share: list[bytes]) -> None:
        with httpx2.Client(timeout=60) as http:
            for body in share:
                timestamp = str(int(time.time()))
                headers = {
                    SIGNATURE_HEADER: signer.sign(timestamp, body),
                    TIMESTAMP_HEADER: timestamp,
                    "Content-Type": "application/json",
                }
                answer = http.post(url + PATH, content=body, headers=headers)
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")

    threads = [threading.Thread(target=client, args=(bodies[i::CLIENTS],)) for i in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} batches refused, e.g. {failures[0]}")
    return seconds


def floor_process(runtime: Runtime) -> float:
    """Events/s: parse the stored rows into normalised events only."""
    parser = SendGridEvents()
    with runtime.database.connect() as connection:
        rows = connection.execute(select(webhook_inbox.c.id, webhook_inbox.c.body)).all()
    started, total = time.perf_counter(), 0
    for row_id, body in rows:
        total += len(parser.parse(bytes(body)).events)
        del row_id
    return total / (time.perf_counter() - started)


def measure(label: str, runtime: Runtime, root: Path, url_of_db: str, work: Path,
            mails: list[AcceptedMail], count: int) -> dict[str, Any]:  # fmt: skip
    signer = EventSigner()
    bodies = batches_of_events(mails, count, seed=7)
    floor = floor_accept(bodies, signer)
    with serving(root, url_of_db, signer.public_key_base64, work) as url:
        accept_s = post_all(url, bodies, signer)
    with runtime.database.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(webhook_inbox)).scalar_one()
    if stored != count:
        raise RuntimeError(f"{label}: {stored} inbox rows stored, {count} batches posted")
    parse_floor = floor_process(runtime)
    processor = InboxProcessor(runtime.database, runtime.pipeline)
    started = time.perf_counter()
    report = processor.process_received(datetime.now(UTC))
    process_s = time.perf_counter() - started
    with runtime.database.connect() as connection:
        recorded = connection.execute(select(func.count()).select_from(events)).scalar_one()
    total = count * BATCH_EVENTS
    log(f"{label}: accepted {total:,} events in {accept_s:.2f} s, processed in {process_s:.2f} s "
        f"({recorded:,} event rows); report {report.as_dict()}")  # fmt: skip
    return {
        "database": label, "events": total, "accept_s": accept_s, "accept_floor": floor,
        "process_s": process_s, "process_floor": parse_floor, "event_rows": recorded,
    }  # fmt: skip


def figures(results: list[dict[str, Any]]) -> list[common.Figure]:
    rows: list[common.Figure] = []
    rate = functools.partial(common.figure_record, unit="events/s", digits=0)
    for r in results:
        db = r["database"]
        accepted = r["events"] / r["accept_s"]
        processed = r["events"] / r["process_s"]
        rows.append(rate(
            f"baseline: {db} verify + parse batches in-process", r["accept_floor"],
            f"{r['accept_floor']:,.0f} events/s", ratio=1.0,
            ratio_shown="1.00x (baseline)"))  # fmt: skip
        ok = accepted >= ACCEPT_TARGET
        rows.append(rate(
            f"{db}: events accepted over HTTP (stored in the inbox)", accepted,
            f"{accepted:,.0f} events/s", f">= {ACCEPT_TARGET:,.0f} events/s",
            accepted / r["accept_floor"], f"{accepted / r['accept_floor']:.2f}x verify+parse",
            "PASS" if ok else "SHORT"))  # fmt: skip
        rows.append(rate(
            f"baseline: {db} parse stored rows into events", r["process_floor"],
            f"{r['process_floor']:,.0f} events/s", ratio=1.0,
            ratio_shown="1.00x (baseline)"))  # fmt: skip
        target = PROCESS_TARGET if db == "PostgreSQL" else None
        status = "-" if target is None else "PASS" if processed >= target else "SHORT"
        rows.append(rate(
            f"{db}: events processed (normalised, deduplicated, applied)", processed,
            f"{processed:,.0f} events/s", f">= {target:,.0f} events/s" if target else "-",
            processed / r["process_floor"], f"{processed / r['process_floor']:.2f}x parse",
            status))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 batches instead of 40")
    args = parser.parse_args(argv)
    count = 10 if args.quick else 40
    began = datetime.now(UTC)
    csv = ensure_csv(CONTACTS)
    results = []
    with tempfile.TemporaryDirectory(prefix="salescycle-bench-webhooks-") as tmp:
        work = Path(tmp)
        root = work / "workspace"
        init_workspace(root)
        sqlite_url = f"sqlite:///{work / 'bench.db'}"
        runtime = Runtime.open(root, database_url=sqlite_url)
        try:
            mails = seed_messages(runtime, csv, work)
            results.append(measure("SQLite", runtime, root, sqlite_url, work, mails, count))
        finally:
            runtime.close()
        with common.postgres_database(work, "bench_webhooks_") as pg_url:
            runtime = Runtime.open(root, database_url=pg_url)
            try:
                mails = seed_messages(runtime, csv, work)
                results.insert(0, measure("PostgreSQL", runtime, root, pg_url, work, mails, count))
            finally:
                runtime.close()
    table = figures(results)
    print(common.format_table(table))
    common.write_results(RESULTS_FILE, "webhooks", bool(args.quick), began,
                         figures=table, runs=results)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
