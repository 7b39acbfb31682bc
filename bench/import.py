"""Import benchmark: throughput and peak memory of ``salescycle contacts import``.

Run from the repository root::

    python bench/import.py            # 100,000 and 1,000,000 rows (a few minutes)
    python bench/import.py --quick    # 20,000 and 200,000 rows

Every measurement runs in a fresh subprocess (this file with ``--worker``), so the peak memory
reported is that run's alone. Rates are compared with a baseline measured in the same run: the
raw parse floor (``csv.reader`` plus ``email_validator`` on the email column, nothing else).
The table goes to stdout and the same figures to ``bench/results/import.json``.
"""

from __future__ import annotations

import argparse
import csv
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:  # for ``_common`` when run as a script or imported
    sys.path.insert(0, str(BENCH))

import _common as common  # noqa: E402
from _common import REPO, Figure  # noqa: E402

DATA_DIR = BENCH / "data"
RESULTS_FILE = BENCH / "results" / "import.json"
GENERATOR = REPO / "examples" / "generate_crm.py"

FULL_SIZES = (100_000, 1_000_000)
QUICK_SIZES = (20_000, 200_000)
TARGET_ROWS_PER_S = 20_000.0  # SQLite, fresh database, the smaller file
TARGET_MEMORY_RATIO = 1.5  # peak MiB of the larger import / peak MiB of the smaller one
EMAIL_HEADERS = ("email", "person - email", "e-mail")  # as in config/crm.yaml, lower-cased

Run = dict[str, Any]

_log = common.logger("bench/import")


# --------------------------------------------------------------------------
# Workers: run in a fresh interpreter, print one JSON line prefixed with RESULT_MARK


def worker_import(url: str, csv_path: Path, rejects_path: Path) -> None:
    """Migrate the database at ``url`` and import ``csv_path`` into it with the starter mapping."""
    from engine.contacts import ContactImporter, load_mapping
    from engine.storage import create_database_engine, upgrade
    from engine.wiring import Runtime

    engine = create_database_engine(url)
    upgrade(engine)  # a no-op on an already migrated database (the re-import)
    runtime = Runtime.open(REPO)
    pipeline = runtime.pipeline
    mapping = load_mapping(REPO / "config" / "crm.yaml", runtime.workspace, pipeline)
    started = time.perf_counter()
    batch_size = runtime.settings.imports.batch_size  # as `salescycle contacts import` uses
    summary = ContactImporter(engine, pipeline, mapping, batch_size).run(csv_path, rejects_path)
    seconds = time.perf_counter() - started
    engine.dispose()
    common.emit(
        {
            "rows": summary.rows,
            "seconds": seconds,
            "rows_per_s": summary.rows / seconds if seconds else 0.0,
            "created": summary.created,
            "updated": summary.updated,
            "unchanged": summary.unchanged,
            "rejected": summary.rejected,
            "peak_mib": common.peak_mib(children=True),
        }
    )


def worker_parse(csv_path: Path) -> None:
    """The floor per row: read the CSV and validate the email column, nothing more."""
    from email_validator import EmailNotValidError, validate_email

    rows = invalid = 0
    started = time.perf_counter()
    with csv_path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = [name.strip().lower() for name in next(reader)]
        column = next((header.index(name) for name in EMAIL_HEADERS if name in header), None)
        if column is None:
            raise SystemExit(f"{csv_path}: no email column among {header}")
        for row in reader:
            rows += 1
            try:
                validate_email(row[column], check_deliverability=False)
            except (EmailNotValidError, IndexError):
                invalid += 1
    seconds = time.perf_counter() - started
    common.emit(
        {
            "rows": rows,
            "seconds": seconds,
            "rows_per_s": rows / seconds if seconds else 0.0,
            "invalid": invalid,
            "peak_mib": common.peak_mib(children=True),
        }
    )


def _worker_main(argv: Sequence[str]) -> int:
    kind, *args = argv
    if kind == "import":
        url, csv_path, rejects_path = args
        worker_import(url, Path(csv_path), Path(rejects_path))
    elif kind == "parse":
        (csv_path,) = args
        worker_parse(Path(csv_path))
    else:
        raise SystemExit(f"unknown worker {kind!r}")
    return 0


# --------------------------------------------------------------------------
# The parent: data files, subprocesses, PostgreSQL, the table


def size_label(rows: int) -> str:
    """100000 -> '100k', 1000000 -> '1M'."""
    if rows >= 1_000_000 and rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows >= 1000 and rows % 1000 == 0:
        return f"{rows // 1000}k"
    return str(rows)


def ensure_csv(rows: int) -> Path:
    """``bench/data/crm-N.csv`` made by the committed generator, reused when already there."""
    path = DATA_DIR / f"crm-{rows}.csv"
    if path.exists():
        _log(f"reusing {path.relative_to(REPO)}")
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".csv.partial")
    _log(f"generating {path.relative_to(REPO)} ({rows:,} contacts)")
    command = [sys.executable, str(GENERATOR), "--contacts", str(rows), "--out", str(partial)]
    subprocess.run(command, cwd=REPO, check=True)
    partial.replace(path)  # only a complete file ever gets the reusable name
    return path


def _measure(runs: list[Run], name: str, worker_args: Sequence[str]) -> Run:
    """Launch one measurement, log it and keep its record (``error`` set if it failed)."""
    _log(f"{name} ...")
    # ru_maxrss survives exec, so a launcher bigger than the worker would floor its figure
    launcher_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    run: Run = {"name": name, "launcher_peak_mib": round(launcher_mib, 1)}
    try:
        run.update(common.launch(__file__, worker_args, stream_stderr=False))
    except common.WorkerError as exc:
        run["error"] = str(exc)
        _log(f"{name} FAILED: {exc}")
    else:
        _log(_run_line(run))
    runs.append(run)
    return run


def _run_line(run: Run) -> str:
    if "error" in run:
        return f"{run['name']}: ERROR ({run['error'].splitlines()[0]})"
    if "skipped" in run:
        return f"{run['name']}: skipped ({run['skipped']})"
    counts = ", ".join(
        f"{key} {run[key]:,}"
        for key in ("created", "updated", "unchanged", "rejected", "invalid")
        if key in run
    )
    return (
        f"{run['name']}: {run['rows']:,} rows in {run['seconds']:.2f} s, {counts}, "
        f"peak {run['peak_mib']:.1f} MiB"
    )


def _rate(run: Run) -> float | None:
    if "error" in run or "skipped" in run:
        return None
    return float(run["rows_per_s"])


def _figure(
    figure: str,
    value: float | None,
    unit: str,
    target: str = "-",
    ratio: float | None = None,
    ratio_of: str = "",
    status: str = "-",
) -> Figure:
    if value is None:
        shown = "-"
    elif unit == "rows/s":
        shown = f"{value:,.0f} rows/s"
    else:
        shown = f"{value:,.1f} {unit}"
    ratio_shown = "-" if ratio is None else f"{ratio:.2f}x {ratio_of}".rstrip()
    return common.figure_record(
        figure, value, shown, target, ratio, ratio_shown, status, unit=unit, digits=2
    )


def _failed_status(run: Run) -> str:
    return "SKIPPED" if "skipped" in run else "ERROR"


def build_figures(
    small: int, large: int, parse: Run, fresh: Run, again: Run, pg: Run, big: Run
) -> list[Figure]:
    """The table rows: every rate against the parse floor, memory 1M against 100k."""
    s, g = size_label(small), size_label(large)
    floor = _rate(parse)
    figures = [
        _figure(
            f"parse floor {s} (csv + email_validator)",
            floor,
            "rows/s",
            ratio=1.0 if floor else None,
            ratio_of="(baseline)",
            status="-" if floor else "ERROR",
        )
    ]

    def vs_floor(rate: float | None) -> float | None:
        return rate / floor if rate is not None and floor else None

    rate = _rate(fresh)
    if rate is None:
        status = _failed_status(fresh)
    else:
        status = "PASS" if rate >= TARGET_ROWS_PER_S else "SHORT"
    figures.append(
        _figure(
            f"SQLite import {s}, fresh db",
            rate,
            "rows/s",
            f">= {TARGET_ROWS_PER_S:,.0f} rows/s",
            vs_floor(rate),
            "parse floor",
            status,
        )
    )

    rate = _rate(again)
    if rate is None:
        status = _failed_status(again)
    else:  # a re-import of the same file must write nothing
        status = "PASS" if again["created"] == 0 and again["updated"] == 0 else "SHORT"
    figures.append(
        _figure(
            f"SQLite re-import {s}, same db",
            rate,
            "rows/s",
            "0 created/updated",
            vs_floor(rate),
            "parse floor",
            status,
        )
    )

    rate = _rate(pg)
    figures.append(
        _figure(
            f"PostgreSQL import {s}, fresh db",
            rate,
            "rows/s",
            ratio=vs_floor(rate),
            ratio_of="parse floor",
            status="-" if rate is not None else _failed_status(pg),
        )
    )

    rate = _rate(big)
    figures.append(
        _figure(
            f"SQLite import {g}, fresh db",
            rate,
            "rows/s",
            ratio=vs_floor(rate),
            ratio_of="parse floor",
            status="-" if rate is not None else _failed_status(big),
        )
    )

    small_mib = None if _rate(fresh) is None else float(fresh["peak_mib"])
    big_mib = None if _rate(big) is None else float(big["peak_mib"])
    figures.append(
        _figure(
            f"peak memory, SQLite import {s}",
            small_mib,
            "MiB",
            ratio=1.0 if small_mib else None,
            ratio_of="(baseline)",
        )
    )
    memory_ratio = big_mib / small_mib if big_mib is not None and small_mib else None
    if memory_ratio is None:
        status = "ERROR"
    else:
        status = "PASS" if memory_ratio <= TARGET_MEMORY_RATIO else "SHORT"
    figures.append(
        _figure(
            f"peak memory, SQLite import {g}",
            big_mib,
            "MiB",
            f"<= {TARGET_MEMORY_RATIO}x the {s} peak",
            memory_ratio,
            f"{s} peak",
            status,
        )
    )
    return figures


def main(argv: Sequence[str] | None = None) -> list[Figure]:
    """Run the benchmark, print the table, write ``bench/results/import.json``; return figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="20k and 200k rows instead of 100k and 1M"
    )
    args = parser.parse_args(argv)
    small, large = QUICK_SIZES if args.quick else FULL_SIZES
    began = datetime.now(UTC)
    small_csv, large_csv = ensure_csv(small), ensure_csv(large)
    s, g = size_label(small), size_label(large)
    runs: list[Run] = []
    notes: list[str] = []

    with tempfile.TemporaryDirectory(prefix="salescycle-bench-") as tmp:
        work = Path(tmp)
        sqlite_small = f"sqlite:///{work / f'import-{s}.db'}"
        sqlite_large = f"sqlite:///{work / f'import-{g}.db'}"
        # SQLite runs first: this process stays small until PostgreSQL needs psycopg
        parse = _measure(runs, f"parse floor {s}", ["parse", str(small_csv)])
        fresh = _measure(
            runs,
            f"SQLite import {s} fresh",
            ["import", sqlite_small, str(small_csv), str(work / "fresh.rejects.csv")],
        )
        if "error" in fresh:
            again: Run = {"name": f"SQLite re-import {s}", "skipped": "the first import failed"}
            runs.append(again)
        else:
            again = _measure(
                runs,
                f"SQLite re-import {s}",
                ["import", sqlite_small, str(small_csv), str(work / "again.rejects.csv")],
            )
        big = _measure(
            runs,
            f"SQLite import {g} fresh",
            ["import", sqlite_large, str(large_csv), str(work / "big.rejects.csv")],
        )
        pg_name = f"PostgreSQL import {s} fresh"
        pg: Run | None = None
        try:
            with common.postgres_database(work, "bench_import_") as pg_url:
                pg = _measure(
                    runs,
                    pg_name,
                    ["import", pg_url, str(small_csv), str(work / "pg.rejects.csv")],
                )
        except Exception as exc:  # no server, no permission, ...: skip, never fail the bench
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if pg is None:
                notes.append(f"PostgreSQL could not be started, its rows are skipped: {reason}")
                pg = {"name": pg_name, "skipped": reason}
                runs.append(pg)
            else:
                notes.append(f"PostgreSQL did not stop cleanly: {reason}")
            _log(notes[-1])

    figures = build_figures(small, large, parse, fresh, again, pg, big)
    print(f"import benchmark{' (--quick)' if args.quick else ''}: {s} and {g} rows")
    print(common.format_table(figures))
    print()
    for note in notes:
        print(note)
    for run in runs:
        print(_run_line(run))

    common.write_results(
        RESULTS_FILE,
        "import",
        bool(args.quick),
        began,
        sizes=[small, large],
        figures=figures,
        runs=runs,
        notes=notes,
    )
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        sys.exit(_worker_main(sys.argv[2:]))
    outcome = main(sys.argv[1:])
    sys.exit(1 if any(figure["status"] == "ERROR" for figure in outcome) else 0)
