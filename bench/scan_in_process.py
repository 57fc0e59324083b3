"""What one scan POST costs the web process, without the network, the broker or
the chips: ``POST /scan/{code}`` through the ASGI application (httpx's
ASGITransport) on a scratch PostgreSQL database, for --scans welders on machines
never scanned before, as bench/unlock_latency.py registers them.

    .venv/bin/python bench/unlock_latency.py ...        # the whole path, with chips
    .venv/bin/python bench/scan_in_process.py [--scans 300] [--profile]

Prints, per POST: wall time and the process's CPU (client included); the scan's
transaction on its database thread (CPU and wall); and per kind of statement the
time from send to result (round trip and server). --profile adds cProfile of the
database thread's work. Figures, not assertions; the chip's delivery is not run
(the command bus is off and the delivery is dropped), so that only the request is
measured. Use it to compare two versions of the code back to back: this machine's
speed drifts from one minute to the next.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import unlock_latency as ul
from _common import _private_database
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import event, insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from weldguard.app import create_app
from weldguard.config import Settings
from weldguard.db import make_engine, make_session_factory, transaction
from weldguard.device.models import DeviceState
from weldguard.migrate import upgrade
from weldguard.unlock.labels import signer_for
from weldguard.web import pages_scan

WARMUP = 20


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1e3


class Meter:
    """The scan's transaction timed on its thread, and every statement's round trip."""

    def __init__(self, profile: bool) -> None:
        self.work: list[tuple[float, float]] = []
        self.statements: dict[str, list[float]] = defaultdict(list)
        self.profiler = cProfile.Profile() if profile else None
        self.on = False

    def install(self) -> None:
        meter = self

        async def timed(request: Any, work: Callable[[Session], Any]) -> Any:
            factory = pages_scan._state(request).session_factory

            def run() -> Any:
                cpu, wall = time.thread_time(), time.perf_counter()
                if meter.on and meter.profiler is not None:
                    meter.profiler.enable()
                with transaction(factory) as session:
                    out = work(session)
                if meter.on and meter.profiler is not None:
                    meter.profiler.disable()
                if meter.on:
                    meter.work.append((time.thread_time() - cpu, time.perf_counter() - wall))
                return out

            return await run_in_threadpool(run)

        pages_scan._in_transaction = timed  # type: ignore[assignment]
        # The chip's side is bench/unlock_latency.py's: here the delivery is dropped.
        pages_scan._spawn = lambda key, coro: coro.close()  # type: ignore[assignment]

        def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            conn.info["bench_t"] = time.perf_counter()

        def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if meter.on:
                name = " ".join(statement[:70].split())
                meter.statements[name].append(time.perf_counter() - conn.info["bench_t"])

        event.listen(Engine, "before_cursor_execute", before)
        event.listen(Engine, "after_cursor_execute", after)


async def run(args: argparse.Namespace) -> None:
    url, drop = _private_database()
    engine = None
    try:
        upgrade(url)
        settings = Settings(
            database_url=url,
            secret_key=ul.SECRET_KEY,
            data_dir=tempfile.mkdtemp(prefix="wg-bench-scan-"),
            unlock_command_bus=False,
            gc_freeze=False,
        )
        engine = make_engine(url)
        factory = make_session_factory(engine)
        count = args.scans + WARMUP
        with factory() as session:
            # One welder per scan: nobody is busy on another machine (BUSY_ELSEWHERE).
            register = ul.build_register(session, settings, count, count, count)
            # Every chip online and locked, as ingest would have it.
            now = datetime.now(UTC)
            session.execute(
                insert(DeviceState),
                [
                    {
                        "device_id": d.device_id,
                        "online": True,
                        "lock_state": "locked",
                        "last_seen_at": now,
                        "heartbeat_interval_s": 3600,
                        "lat_e6": int(d.lat * 1e6),
                        "lon_e6": int(d.lon * 1e6),
                    }
                    for d in register.devices
                ],
            )
            session.commit()
        meter = Meter(args.profile)
        meter.install()
        app = create_app(settings)
        signer = signer_for(settings)
        walls: list[float] = []
        cpus: list[float] = []
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                for index in range(count):
                    welder = register.welders[index]
                    device = register.devices[index]
                    cookies, form = await ul.open_label(client, welder, device, signer)
                    meter.on = index >= WARMUP
                    cpu, wall = time.process_time(), time.perf_counter()
                    response = await client.post(
                        f"/scan/{device.code}", data=form, headers={"cookie": cookies}
                    )
                    if meter.on:
                        walls.append(time.perf_counter() - wall)
                        cpus.append(time.process_time() - cpu)
                    meter.on = False
                    assert response.status_code == 303, response.text[:300]
        print(
            f"{args.scans} scans (after {WARMUP} to warm up; every 20th welder's certificate "
            "has expired: those are refused), PostgreSQL, in process"
        )
        print(
            f"  POST: wall p50 {pct(walls, 50):.2f} ms, p90 {pct(walls, 90):.2f} ms; "
            f"process CPU p50 {pct(cpus, 50):.2f} ms (the in-process client included)"
        )
        thread_cpu = [w[0] for w in meter.work]
        thread_wall = [w[1] for w in meter.work]
        print(
            f"  the scan's transaction: CPU p50 {pct(thread_cpu, 50):.2f} ms, "
            f"wall p50 {pct(thread_wall, 50):.2f} ms, mean CPU "
            f"{statistics.fmean(thread_cpu) * 1e3:.2f} ms"
        )
        print("  statements (send to result):")
        for name, times in sorted(meter.statements.items(), key=lambda kv: -len(kv[1])):
            print(
                f"    {len(times):5d} x  p50 {pct(times, 50):.2f} ms  p90 {pct(times, 90):.2f} ms"
                f"  {name}"
            )
        if meter.profiler is not None:
            stats = pstats.Stats(meter.profiler)
            stats.sort_stats("cumulative").print_stats(40)
            stats.sort_stats("tottime").print_stats(30)
    finally:
        if engine is not None:
            engine.dispose()
        drop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--scans", type=int, default=300)
    parser.add_argument("--profile", action="store_true", help="cProfile the scan's work")
    asyncio.run(run(parser.parse_args()))
