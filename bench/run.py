"""Run every benchmark in ``bench/`` and print one summary table (``make bench``).

Each ``bench/NAME.py`` (except this file and ``_``-prefixed helpers) runs as
``python bench/NAME.py ARGS...`` with this script's arguments passed through (e.g. ``--quick``),
then its ``bench/results/NAME.json`` is read. That file holds ``figures``: a list of objects with
``figure``, ``value_display``, ``target``, ``ratio_display`` and ``status`` (``PASS``, ``SHORT``,
``-`` for a figure without a target, ``SKIPPED`` or ``ERROR``).

The exit status is 1 if a benchmark crashed or wrote no fresh results, else 0; a ``SHORT``
figure is reported, not treated as a failure.
"""

from __future__ import annotations

import json
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
    data: dict[str, Any] = json.loads(results.read_text(encoding="utf-8"))
    rows: list[Row] = [
        (
            f"{name}: {figure['figure']}",
            str(figure.get("value_display", figure.get("value", "-"))),
            str(figure.get("target", "-")),
            str(figure.get("ratio_display", figure.get("ratio", "-"))),
            str(figure.get("status", "-")),
        )
        for figure in data.get("figures", [])
    ]
    if status.returncode != 0:
        rows.append((f"{name}: (exit status)", "-", "-", "-", f"ERROR ({status.returncode})"))
    return rows


def format_table(rows: Sequence[Row]) -> str:
    return format_rows(TABLE_HEAD, rows)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    rows: list[Row] = []
    for script in scripts():
        rows.extend(run_one(script, args))
    print("=== summary")
    print(format_table(rows))
    statuses = [row[4] for row in rows]
    passed, short = statuses.count("PASS"), statuses.count("SHORT")
    errors = sum(status.startswith("ERROR") for status in statuses)
    print(f"\n{passed} pass, {short} short, {errors} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
