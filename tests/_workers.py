"""Dramatiq worker processes for the Redis tests, the fault suite and the benchmarks.

Plain helpers (no pytest import). Each worker runs in a process group of its own, so
``kill_9`` takes the whole group (Dramatiq's parent and its worker processes) at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def start_worker(
    env: dict[str, str], log: Path, modules: Sequence[str] = ("workers.actors",),
    queues: Sequence[str] = (), threads: int = 4,
) -> subprocess.Popen[bytes]:  # fmt: skip
    """``python -m dramatiq MODULES`` (one process, ``threads`` threads), output to ``log``."""
    command = [sys.executable, "-m", "dramatiq", *modules, "--processes", "1",
               "--threads", str(threads)]  # fmt: skip
    if queues:
        command += ["--queues", *queues]
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out,
                                start_new_session=True)  # fmt: skip


def kill_9(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker's whole process group, and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def stop_worker(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM (Dramatiq finishes what it holds), then SIGKILL whatever is left."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def error_lines(log: Path, limit: int = 30) -> str:
    """The distinct lines of a workers' log that mention an error (for a failing assert)."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if "Error" in line]
    return "\n".join(sorted(set(lines))[:limit])
