"""Shared helpers for the benchmarks: a real server process, a fresh database, timing, results.

Every benchmark runs the real service (uvicorn in its own process, production-like settings)
against a throw-away Postgres database, so figures include HTTP, validation and the database.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
PG_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL",
    os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
INGEST_KEY = "bench-ingest-key"
READ_KEY = "bench-read-key"
ADMIN_KEY = "bench-admin-key"
API_KEYS = f"{INGEST_KEY}:ingest,{READ_KEY}:read,{ADMIN_KEY}:admin"


def free_port() -> int:
    """A TCP port on the loopback interface that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine_note() -> str:
    """One line describing where a figure was measured."""
    cpus = os.cpu_count() or 0
    return (
        f"{cpus} CPU cores ({platform.machine()}), Python {platform.python_version()}, "
        "client, server and Postgres on the same machine"
    )


# --- databases ---------------------------------------------------------------------------


async def _admin_connection() -> asyncpg.Connection:
    admin = make_url(PG_ADMIN_URL)
    return await asyncpg.connect(
        host=admin.host,
        port=admin.port or 5432,
        user=admin.username,
        password=admin.password,
        database=admin.database,
    )


async def create_database(prefix: str = "brandlift_bench") -> str:
    """Create an empty Postgres database and return its `postgresql://` URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    conn = await _admin_connection()
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


async def drop_database(url: str) -> None:
    """Drop a database made by `create_database` (connections are closed by force)."""
    conn = await _admin_connection()
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await conn.close()


async def connect(url: str) -> asyncpg.Connection:
    """A plain asyncpg connection to a `postgresql://` URL."""
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )


async def postgres_pids(url: str) -> list[int]:
    """Postgres processes working for a database: its backends plus the shared WAL writer,
    checkpointer and background writer (busy mostly because of the benchmark's writes)."""
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
            "(datname = current_database() OR backend_type IN "
            "('walwriter', 'checkpointer', 'background writer'))"
        )
    finally:
        await conn.close()
    return [int(r["pid"]) for r in rows]


def migrate(url: str) -> None:
    """Bring a fresh database to the head revision with the service's own migrations."""
    from app.migrate import upgrade

    upgrade(url)


# --- the server process ------------------------------------------------------------------


@dataclass
class Server:
    """A running `brandlift serve` process."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    """Production-like settings for a benchmark server (JSON logs at WARNING, no access log)."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        BRANDLIFT_API_KEYS=API_KEYS,
        LOG_LEVEL="WARNING",
        LOG_JSON="true",
        OPENBLAS_NUM_THREADS="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra)
    return env


def wait_ready(base_url: str, timeout: float = 60.0, process: Any = None) -> None:
    """Poll /health/ready until it answers 200 (or raise with the last answer)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was ready")
        try:
            resp = httpx.get(f"{base_url}/health/ready", timeout=2.0)
            if resp.status_code == 200:
                return
            last = f"{resp.status_code} {resp.text[:200]}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise TimeoutError(f"server at {base_url} not ready after {timeout}s: {last}")


@contextlib.contextmanager
def run_server(
    database_url: str, *, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Start `brandlift serve` on a free loopback port, wait until ready, stop it afterwards."""
    port = free_port()
    full_env = server_env(database_url, **(env or {}))
    full_env["WEB_CONCURRENCY"] = str(workers)
    cmd = [
        sys.executable,
        "-c",
        "from app.cli import main; main()",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with tempfile.TemporaryDirectory(prefix="brandlift-bench-") as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log_file:
            # Own session: stop_process signals the whole group (uvicorn and its workers).
            process = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=full_env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Server(process, port, log_path, full_env)
        try:
            wait_ready(server.base_url, process=process)
            yield server
        except BaseException:
            sys.stderr.write(server.log_tail())
            raise
        finally:
            stop_process(process)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM the process group we started (uvicorn and its workers), then SIGKILL."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


# --- timing --------------------------------------------------------------------------------


class Stopwatch:
    """`with Stopwatch() as sw: ...` then `sw.seconds`; wall clock and process CPU time."""

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        return self

    def __exit__(self, *_exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.cpu_start


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def spread(values: list[float]) -> str:
    """`best (min-max over n runs)` for a list of rates."""
    return f"{max(values):,.0f} (range {min(values):,.0f}-{max(values):,.0f}, n={len(values)})"


# --- CPU accounting (Linux /proc; empty figures elsewhere) ----------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float:
    """User + system CPU seconds used so far by one process (0.0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def group_pids(pgid: int) -> list[int]:
    """Processes in one process group (a server started with start_new_session=True)."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def pids_named(name: str) -> list[int]:
    """Processes whose command name is `name` (e.g. the shared redis-server)."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if (entry / "comm").read_text().strip() == name:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores, every process)."""
    try:
        parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    idle = parts[3] + parts[4]
    return (sum(parts) - idle) / _TICK


class CpuAccount:
    """CPU seconds used during a phase by named sets of processes, and by everything else.

    `other` (busy machine time not used by the named sets) shows whether something outside
    the benchmark (other users of the shared cores) disturbed a measurement.
    """

    def start(self, groups: dict[str, list[int]]) -> None:
        self._machine = machine_busy()
        self._base = {pid: process_cpu(pid) for pids in groups.values() for pid in pids}
        self._began = time.perf_counter()

    def stop(self, groups: dict[str, list[int]]) -> dict[str, float]:
        wall = time.perf_counter() - self._began
        used = {
            name: sum(max(0.0, process_cpu(pid) - self._base.get(pid, 0.0)) for pid in set(pids))
            for name, pids in groups.items()
        }
        busy = machine_busy() - self._machine
        used["other"] = max(0.0, busy - sum(used.values()))
        used["wall"] = wall
        return used


# --- results -------------------------------------------------------------------------------

RESULTS_HEADER = """# brandlift benchmark results

Each section is written by one script under `bench/` (`make bench` runs them all; each can be
run alone, its command is in its section). Figures come from the real service: `brandlift
serve` (uvicorn, uvloop + httptools, access log off) in its own process on a loopback port,
against a fresh Postgres database migrated with the service's migrations, with Redis, and
with the load client in another process on the same machine. Rates are wall-clock over the
whole run (first request sent to last answer received); nothing is extrapolated. The machine
is small and shared, so scripts repeat a measurement and report the best consistent figure
with the spread.
"""


def write_section(title: str, body: str, path: Path = RESULTS) -> None:
    """Replace (or append) the `## title` section of RESULTS.md with `body`."""
    # Benchmarks may finish at the same time: serialise the read-modify-write.
    lock_path = Path(tempfile.gettempdir()) / "brandlift-bench-results.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _write_section(title, body, path)


def _write_section(title: str, body: str, path: Path) -> None:
    text = path.read_text() if path.exists() else RESULTS_HEADER
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = f"## {title}\n\n_Measured {stamp}; {machine_note()}._\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")
