"""Helpers shared by the benchmarks: a private Mosquitto, a scratch PostgreSQL
database and CPU accounting from /proc (not tests; Linux only)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import make_url, text

from weldguard.db import make_engine

DB_URL = os.environ.get("WELDGUARD_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# What docs/architecture.md recommends for production, minus persistence (a
# benchmark has nothing to keep) and with an unbounded queue (a lost message would
# only measure the queue limit, not the pipeline).
MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
set_tcp_nodelay true
max_inflight_messages 1000
max_queued_messages 0
max_queued_bytes 0
"""


# ---------------------------------------------------------------- broker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def own_mosquitto(conf: str = MOSQUITTO_CONF) -> Iterator[tuple[str, int, int]]:
    """A private Mosquitto on a free port: (host, port, pid). ``conf`` is the
    configuration with ``{port}`` for the listener's port."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="wg-bench-mosquitto-") as tmp:
        path = os.path.join(tmp, "mosquitto.conf")
        with open(path, "w") as f:
            f.write(conf.format(port=port))
        proc = subprocess.Popen([binary, "-c", path])
        try:
            deadline = time.monotonic() + 5
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("mosquitto did not start") from None
                    time.sleep(0.05)
            yield "127.0.0.1", port, proc.pid
        finally:
            proc.terminate()
            proc.wait(5)


# ---------------------------------------------------------------- database


def _private_database(base_url: str = DB_URL) -> tuple[str, Callable[[], None]]:
    """A scratch database next to ``base_url``: (its URL, a function dropping it)."""
    base = make_url(base_url)
    name = f"weldguard_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = make_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


# ---------------------------------------------------------------- CPU accounting


def _cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def _run_queue_wait_s(pid: int) -> float:
    """Seconds the threads of a process have spent runnable but waiting for a CPU
    (/proc/PID/task/TID/schedstat, second field): where a latency's tail goes
    when the machine's cores are all busy."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def _postgres_pids(database: str | None = None) -> list[int]:
    """PostgreSQL processes working for us: the backends of ``database`` (the
    process title names it) and the shared writers (checkpointer, background
    writer, WAL writer), whose work is mostly ours while a phase runs. Backends of
    other databases (other jobs on a shared server) are left out."""
    shared = ("checkpointer", "background writer", "walwriter")
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if not title.startswith("postgres:"):
            continue
        if (database is not None and f" {database} " in title) or any(
            title.rstrip().endswith(s) for s in shared
        ):
            out.append(int(name))
    return out


def _machine_busy_s() -> float:
    """CPU seconds all processes on the machine have used (user+nice+system+irq)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:3]) + sum(fields[5:8])) / CLK_TCK


class ProcessCpu:
    """CPU seconds per named party over a phase: fixed pids per party, plus the
    PostgreSQL processes of a database (found anew at the end: backends come and
    go), plus whatever else ran on the machine ("others")."""

    def __init__(self, parties: dict[str, list[int]], database: str | None = None) -> None:
        self.parties = parties
        self.database = database
        self.started = time.monotonic()
        self.before = {name: sum(_cpu_s(p) for p in pids) for name, pids in parties.items()}
        self.waited = {
            name: sum(_run_queue_wait_s(p) for p in pids) for name, pids in parties.items()
        }
        self.me = time.process_time()
        self.pg = {pid: _cpu_s(pid) for pid in _postgres_pids(database)}
        self.pg_waited = {pid: _run_queue_wait_s(pid) for pid in self.pg}
        self.machine = _machine_busy_s()

    def stop(self) -> dict[str, Any]:
        wall = time.monotonic() - self.started
        out: dict[str, float] = {
            name: sum(_cpu_s(p) for p in pids) - self.before[name]
            for name, pids in self.parties.items()
        }
        out["bench client"] = time.process_time() - self.me
        out["postgres"] = sum(
            _cpu_s(pid) - self.pg.get(pid, 0.0) for pid in _postgres_pids(self.database)
        )
        ours = sum(out.values())
        out["others"] = max(0.0, _machine_busy_s() - self.machine - ours)
        waited = {
            name: sum(_run_queue_wait_s(p) for p in pids) - self.waited[name]
            for name, pids in self.parties.items()
        }
        waited["postgres"] = sum(
            _run_queue_wait_s(pid) - self.pg_waited.get(pid, 0.0)
            for pid in _postgres_pids(self.database)
        )
        return {"wall": wall, "cpu": out, "waited": waited}


def cpu_split_line(measured: dict[str, Any]) -> str:
    wall = max(measured["wall"], 1e-9)
    parts = [f"{k} {v / wall * 100:.0f}%" for k, v in measured["cpu"].items()]
    total = sum(measured["cpu"].values()) / wall * 100
    line = f"CPU (% of one core over {wall:.1f} s; 2 cores = 200%, used {total:.0f}%): " + (
        ", ".join(parts)
    )
    if "waited" in measured:
        waits = [f"{k} {v / wall * 1000:.0f}" for k, v in measured["waited"].items()]
        line += "\n  waited for a CPU (ms per s of wall, all threads): " + ", ".join(waits)
    return line
