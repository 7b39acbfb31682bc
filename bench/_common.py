"""Helpers shared by the benchmark scripts in ``bench/`` (not a benchmark: ``run.py`` skips it).

Worker subprocesses (:func:`emit`, :func:`peak_mib`, :func:`launch`), the log line on stderr
(:func:`logger`), a throw-away PostgreSQL database (:func:`postgres_database`) and the aligned
summary table (:func:`format_table`, :func:`format_rows`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, cast

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
POSTGRES_URL_ENV = "SALESCYCLE_BENCH_POSTGRES_URL"
RESULT_MARK = "BENCH-RESULT "  # prefix of a worker's one JSON line on stdout
TABLE_HEAD = ("figure", "value", "target", "ratio vs baseline", "pass/short")

Figure = dict[str, Any]
Log = Callable[[str], None]


class WorkerError(RuntimeError):
    """A measurement subprocess exited with an error."""


class _PostgresServer(Protocol):
    """The part of ``tests/_services.PostgresServer`` the bench uses."""

    def create_database(self, name: str) -> str: ...

    def drop_database(self, name: str) -> None: ...

    def stop(self) -> None: ...


def logger(name: str) -> Log:
    """A log function writing ``[name] message`` lines to stderr."""

    def log(message: str) -> None:
        print(f"[{name}] {message}", file=sys.stderr, flush=True)

    return log


# --------------------------------------------------------------------------
# Workers: run in a fresh interpreter, print one JSON line prefixed with RESULT_MARK


def peak_mib(*, children: bool = False) -> float:
    """Peak resident memory of this process (plus its largest finished child), in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if children:
        peak += resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak / 1024  # ru_maxrss is in KiB on Linux


def emit(result: dict[str, Any]) -> None:
    """Print a worker's result: one JSON line prefixed with :data:`RESULT_MARK`."""
    print(RESULT_MARK + json.dumps(result), flush=True)


def launch(script: str, worker_args: Sequence[str], *, stream_stderr: bool) -> dict[str, Any]:
    """Run ``script --worker ARGS...`` in a fresh interpreter and return its result line.

    ``stream_stderr``: let the worker's stderr through (the error then points to it) instead
    of capturing it for the :class:`WorkerError` message.
    """
    command = [sys.executable, str(Path(script).resolve()), "--worker", *worker_args]
    stderr = None if stream_stderr else subprocess.PIPE
    done = subprocess.run(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True, check=False
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    failed = f"worker {worker_args[0]} exited with status {done.returncode}"
    if stream_stderr:
        raise WorkerError(f"{failed} (see stderr)")
    tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
    raise WorkerError(f"{failed}:\n{tail}")


# --------------------------------------------------------------------------
# PostgreSQL


@contextlib.contextmanager
def postgres_database(workdir: Path, prefix: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database URL (its name starts with ``prefix``); raises if no
    server can be had: ``SALESCYCLE_BENCH_POSTGRES_URL``'s, else one ``tests/_services.py``
    starts."""
    sys.path.insert(0, str(REPO / "tests"))
    services = importlib.import_module("_services")
    external = os.environ.get(POSTGRES_URL_ENV)
    if external:
        server = cast(_PostgresServer, services.PostgresServer.external(external))
    else:
        server = cast(_PostgresServer, services.PostgresServer.start(workdir / "postgres"))
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    try:
        yield server.create_database(name)
    finally:
        try:
            if external:
                server.drop_database(name)
        finally:
            server.stop()  # a no-op for an external server


# --------------------------------------------------------------------------
# Figures and the table


def figure_record(
    figure: str,
    value: float | None,
    shown: str,
    target: str = "-",
    ratio: float | None = None,
    ratio_shown: str = "-",
    status: str = "-",
    *,
    unit: str,
    digits: int,
    **extra: Any,
) -> Figure:
    """One row of a benchmark's ``figures`` as written to its results JSON (``value`` rounded
    to ``digits``, ``ratio`` to 3); ``shown`` and ``ratio_shown`` are the table's text."""
    return {
        "figure": figure,
        "value": None if value is None else round(value, digits),
        "unit": unit,
        "value_display": shown,
        "target": target,
        "ratio": None if ratio is None else round(ratio, 3),
        "ratio_display": ratio_shown,
        "status": status,
        **extra,
    }


def format_rows(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``head`` and ``rows`` as aligned text columns separated by `` | ``."""
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        return " | ".join(padded).rstrip()

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join([line(head), rule, *(line(row) for row in rows)])


def format_table(figures: Sequence[Figure]) -> str:
    """figure | value | target | ratio vs baseline | pass/short, as aligned text."""
    keys = ("figure", "value_display", "target", "ratio_display", "status")
    return format_rows(TABLE_HEAD, [tuple(str(f[k]) for k in keys) for f in figures])


def write_results(
    path: Path, bench: str, quick: bool, began: datetime, **report: Any
) -> dict[str, Any]:
    """Write a benchmark's results JSON: where and when it ran, then ``report``; return it."""
    results = {
        "bench": bench,
        "quick": quick,
        "started": began.isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cpus",
        **report,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


@contextlib.contextmanager
def salescycle_serve(env: dict[str, str], root: Path, log_file: Path) -> Iterator[str]:
    """``salescycle serve`` for workspace ``root`` in its own process (``env``), on a free
    loopback port, until it answers ``/healthz``; its base URL. Stopped on the way out."""
    import httpx2  # only the benchmarks that serve the web app need it

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [sys.executable, "-m", "engine", "serve", "--workspace", str(root),
               "--port", str(port)]  # fmt: skip
    with log_file.open("ab") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out,
                                   start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx2.TransportError):
                if httpx2.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"salescycle serve did not start; see {log_file}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
