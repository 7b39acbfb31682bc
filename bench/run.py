"""Run every benchmark in ``bench/`` and print one summary table (``make bench``).

Each ``bench/NAME.py`` (except this file and ``_``-prefixed helpers) runs as
``python bench/NAME.py ARGS...`` with this script's arguments passed through (e.g. ``--quick``),
then its ``bench/results/NAME.json`` is read. That file holds ``figures``: a list of objects with
``figure``, ``value_display``, ``target``, ``ratio_display`` and ``status`` (``PASS``, ``SHORT``,
``-`` for a figure without a target, ``SKIPPED`` or ``ERROR``).

The table is also written to ``bench/results/SUMMARY.md``, which README.md links.
``python bench/run.py --summary-only`` tables the results already stored without running
anything.

The exit status is 1 if a benchmark crashed or wrote no fresh results, else 0; a ``SHORT``
figure is reported, not treated as a failure.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:  # for ``_common`` when run as a script or imported
    sys.path.insert(0, str(BENCH))

from _common import TABLE_HEAD, format_rows  # noqa: E402

REPO = BENCH.parent
RESULTS = BENCH / "results"

Row = tuple[str, str, str, str, str]


def scripts() -> list[Path]:
    """Every benchmark script: ``bench/*.py`` but this runner and ``_`` helpers."""
    me = Path(__file__).resolve()
    return sorted(
        path
        for path in BENCH.glob("*.py")
        if path.resolve() != me and not path.name.startswith("_")
    )


def run_one(script: Path, args: Sequence[str]) -> list[Row]:
    """Run one benchmark (its output streams through) and return its summary rows."""
    name = script.stem
    results = RESULTS / f"{name}.json"
    print(f"=== bench/{script.name} {' '.join(args)}".rstrip(), flush=True)
    started = time.time()
    status = subprocess.run([sys.executable, str(script), *args], cwd=REPO, check=False)
    print(flush=True)
    fresh = results.exists() and results.stat().st_mtime >= started
    if not fresh:
        why = f"exit status {status.returncode}, no fresh {results.relative_to(REPO)}"
        return [(f"{name}: (did not finish)", "-", "-", "-", f"ERROR ({why})")]
    rows = stored_rows(name)
    if status.returncode != 0:
        rows.append((f"{name}: (exit status)", "-", "-", "-", f"ERROR ({status.returncode})"))
    return rows


def stored_rows(name: str) -> list[Row]:
    """The summary rows of ``bench/results/NAME.json`` as its last run left it."""
    results = RESULTS / f"{name}.json"
    if not results.exists():
        return [(f"{name}: (no results)", "-", "-", "-", f"ERROR (no {results.name})")]
    data: dict[str, Any] = json.loads(results.read_text(encoding="utf-8"))
    return [
        (
            f"{name}: {figure['figure']}",
            str(figure.get("value_display", figure.get("value", "-"))),
            str(figure.get("target", "-")),
            str(figure.get("ratio_display", figure.get("ratio", "-"))),
            str(figure.get("status", "-")).upper(),
        )
        for figure in data.get("figures", [])
    ]


def format_table(rows: Sequence[Row]) -> str:
    return format_rows(TABLE_HEAD, rows)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    summary_only = "--summary-only" in args
    if summary_only:
        rows = [row for script in scripts() for row in stored_rows(script.stem)]
    else:
        rows = [row for script in scripts() for row in run_one(script, args)]
    table = format_table(rows)
    statuses = [row[4] for row in rows]
    passed = statuses.count("PASS") + statuses.count("MATCH")
    failed = statuses.count("FAIL") + statuses.count("MISMATCH")
    errors = sum(status.startswith("ERROR") for status in statuses)
    tally = f"{passed} pass, {statuses.count('SHORT')} short, {failed} failed, {errors} error(s)"
    print("=== summary")
    print(table)
    print(f"\n{tally}")
    _write_summary(table, tally, args)
    return 1 if errors else 0


def _write_summary(table: str, tally: str, args: Sequence[str]) -> None:
    """``bench/results/SUMMARY.md``: the table README.md links."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    how = f"`python bench/run.py {' '.join(args)}`".replace(" `", "`")
    if "--summary-only" in args:
        how += " (the figures each benchmark's last run stored)"
    text = (f"# Benchmark summary\n\n{how} on {platform.system()} {platform.machine()}, "
            f"{os.cpu_count()} cpus, finished {when}: {tally}. Each benchmark's own figures and "
            f"runs are in `NAME.json` beside this file; `bench/README.md` says what each "
            f"figure measures.\n\n```\n{table}\n```\n")  # fmt: skip
    (RESULTS / "SUMMARY.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
