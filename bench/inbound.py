"""Inbound benchmark: classify mixed inbound messages (replies, auto-replies, bounces).

Run from the repository root::

    python bench/inbound.py            # 10,000 messages
    python bench/inbound.py --quick    # 2,000

The messages are cycled from the test corpus (``tests/data/inbound/*.eml``): replies
from Gmail, Outlook, Apple Mail, iOS and Android clients in English and Danish,
out-of-office notices, read receipts and delivery status notifications. Each one goes
through ``engine.replies.classify`` with the starter workspace's rules, on one core.

The baseline, measured in the same run over the same messages: the stdlib parser
alone, ``email.message_from_bytes(raw, policy=policy.default)`` plus ``get_body()``.
Target: at least 500 messages/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _common import Figure, figure_record, format_table, logger, write_results  # noqa: E402

from engine.replies import ReplyRules, classify, load_reply_rules  # noqa: E402
from engine.workspace import Workspace  # noqa: E402

RESULTS_FILE = BENCH / "results" / "inbound.json"
CORPUS = REPO / "tests" / "data" / "inbound"
TARGET = 500.0

log = logger("inbound")


def messages(count: int) -> list[bytes]:
    """``count`` raw messages cycled from the corpus."""
    corpus = [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))]
    return [corpus[index % len(corpus)] for index in range(count)]


def rate(label: str, count: int, work: Callable[[], None]) -> float:
    """Messages per second of ``work`` (which handles ``count`` messages)."""
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    log(f"{label}: {count:,} messages in {seconds:.2f} s")
    return count / seconds


def baseline(batch: Sequence[bytes]) -> Callable[[], None]:
    def work() -> None:
        for raw in batch:
            message = message_from_bytes(raw, policy=policy.default)
            assert isinstance(message, EmailMessage)
            message.get_body(("plain", "html"))

    return work


def classifying(
    batch: Sequence[bytes], rules: ReplyRules, kinds: Counter[str]
) -> Callable[[], None]:
    def work() -> None:
        for raw in batch:
            kinds[classify(raw, rules).kind.value] += 1

    return work


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 messages")
    parser.add_argument("--messages", type=int, default=None, help="messages to classify")
    args = parser.parse_args(argv)
    count = args.messages or (2_000 if args.quick else 10_000)
    began = dt.datetime.now(dt.UTC)
    rules = load_reply_rules(Workspace(REPO))
    batch = messages(count)
    classifying(batch[:100], rules, Counter())()  # compile the patterns first

    floor = rate("baseline: parse + get_body", count, baseline(batch))
    kinds: Counter[str] = Counter()
    ours = rate("classify", count, classifying(batch, rules, kinds))
    log("kinds: " + ", ".join(f"{kind} {n:,}" for kind, n in sorted(kinds.items())))

    ratio = ours / floor
    figures: list[Figure] = [
        figure_record("baseline: message_from_bytes(policy.default) + get_body()", floor,
                      f"{floor:,.0f} messages/s", unit="messages/s", digits=0),
        figure_record("classify (bounce, auto-reply, quotes, intent)", ours,
                      f"{ours:,.0f} messages/s", f">= {TARGET:,.0f} messages/s", ratio,
                      f"{ratio:.2f}x", "PASS" if ours >= TARGET else "SHORT",
                      unit="messages/s", digits=0),
    ]  # fmt: skip
    print(format_table(figures))
    write_results(RESULTS_FILE, "inbound", bool(args.quick), began, messages=count,
                  kinds=dict(kinds), figures=figures)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
