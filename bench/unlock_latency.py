"""Scan-to-unlock latency (扫码开机, issue 4 "Measured, in bench/"): from the
welder's HTTP request to the chip's acknowledgement, with 10,000 simulated
machines online and sending telemetry, on PostgreSQL and Mosquitto.

    .venv/bin/python bench/unlock_latency.py [--scans 500] [--concurrency 8]
        [--machines 10000] [--no-load] [--tel-s 10]

Prints figures, asserts nothing. Everything is its own and is stopped at the end:
a scratch PostgreSQL database next to WELDGUARD_BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/test; migrated, dropped at the end), a
Mosquitto on a free port with the configuration docs/architecture.md recommends
(``set_tcp_nodelay true``; ``allow_anonymous`` for the bench), and these
processes, so that each one's CPU is visible (the machine has 2 cores):

  web      ``uvicorn --factory weldguard.app:create_app``, one worker, with the
           unlock command bus (WELDGUARD_UNLOCK_COMMAND_BUS=true): the scan page;
  ingest   ``weldguard ingest`` (IngestWorker with device/runtime.ingest_sinks:
           commands, work sessions, alarms): makes the chips online;
  dispatch ``weldguard dispatch`` (answers the chips' hellos with ``time``, retries);
  targets  a sim Fleet of the chips that are scanned (locked, heartbeats; they weld
           and send telemetry once unlocked), logging how long each command took;
  load     a sim Fleet of the rest up to --machines chips, each unlocking itself
           (as the demo does) so that it welds and sends telemetry (tel every
           --tel-s seconds while the arc burns, hb every 30 s). It runs at nice 10:
           it stands for the chips' own CPUs, which are not the platform's; the
           platform's side of that load (Mosquitto, ingest, PostgreSQL) runs at
           normal priority, and so does the targets fleet, whose delays count
           against the platform.

The register: 20 enterprises (工贸, 上海市长宁区), --machines machines with chips
registered and bound (rows inserted in batches, the secrets sealed with the
platform's DeviceSecrets exactly as the registry does), --scans welders with a
fitting 特种作业 certificate and employment, and a phone sign-in session each
(cookie reused for all that welder's scans). Every 20th welder's certificate
expired yesterday: those scans are denied (CERT_EXPIRED), 5 %.

Phases, each on machines never scanned before (distinct machines per scan):
idle (targets fleet only) sequential, then --concurrency in flight; load (all
--machines chips online) sequential, then concurrent. Between phases the open
sessions are ended in the database, so that no welder is busy elsewhere.

What is measured, per scan (wall clock of this one machine, CLOCK_REALTIME):

  t0        this client starts writing ``POST /scan/{code}`` to the socket
            (httpcore's trace; the request is built by then) (form: signature, phone
            position next to the machine, idempotency key, CSRF token): the
            welder's tap on 扫码开机, on the page the label's URL opened (that
            ``GET /scan/{code}?sig=…`` comes first and is not timed);
  decided   the POST's answer arrives (303 to the record; the decision and the
            scan record are committed; for an allowed scan the unlock is claimed
            in the same transaction and published by the bus right after). For a
            denied scan this is the end: its latency is t0 → decided.
  acked     the moment the web process's command bus hears the chip's ack: the
            session's ``unlocked_at`` (the bus stamps the ack when it arrives, and
            the session becomes ``active`` with that time). **Total** = acked - t0.
  chip      how long the simulated chip held the command: from its MQTT client
            handing the unlock to the chip (on_message) to its ack handed to the
            socket, logged by the targets fleet per command.
  visible   the welder's page shows "已开机" (the record page, then its htmx
            panel, which waits for the delivery): t0 → the panel's answer. Taken
            in the sequential phases only (it adds two requests per scan).

**Platform time** = total - chip: everything between the welder's request and
the ack arriving back, except the chip's own processing: HTTP and the web
process, the decision and its SQL, the commit, the bus's publish, Mosquitto both
ways, the TCP hops, and the event-loop delay of the sim process before the chip
sees the command (a real chip has a CPU of its own; here that delay is counted
against the platform, the stricter side). Target: p99 ≤ 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import logging
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _common import (
    ProcessCpu,
    _private_database,
    cpu_split_line,
    free_port,
    own_mosquitto,
)
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from weldguard.auth.models import Role, TokenKind, User
from weldguard.auth.passwords import Passwords
from weldguard.auth.scope import Scope
from weldguard.auth.service import AuthService
from weldguard.clock import local_today
from weldguard.config import Settings
from weldguard.db import make_engine, make_session_factory
from weldguard.device.models import DeviceState
from weldguard.device.registry import DeviceSecrets
from weldguard.domain.authorization import CONSTRUCTION_SECTOR
from weldguard.domain.ids import make_credit_code, make_id_number
from weldguard.domain.permits import HotWorkMethod, PermitLevel, mandatory_measure_codes
from weldguard.enterprise.fields import PlaceResolver, validate_enterprise
from weldguard.enterprise.service import EnterpriseService
from weldguard.machine.models import Chip, ChipBinding, Machine, MachineStatus
from weldguard.migrate import upgrade
from weldguard.permit.service import PermitInput, PermitService, PersonInput, WelderEntry
from weldguard.seed.reference import load_reference
from weldguard.sim.fleet import DEVICE_FIELDS, luhn_digit
from weldguard.unlock.labels import signer_for
from weldguard.unlock.models import WorkSession
from weldguard.welder.identity import IdentityVault
from weldguard.welder.service import CertificateInput, WelderInput, WelderService

ADMIN = Scope(role=Role.ADMIN, user_id=0, everything=True)
SECRET_KEY = "bench-unlock-latency-secret-key-0123456789"
PASSWORD = "password123"
ENTERPRISES = 20
STREETS = ("华阳路街道", "新泾镇")
# 上海市长宁区, as the demo's sites; each chip reports its own fix near here.
HOME = (31.2200, 121.4200)
WARMUP = 20
DENY_EVERY = 20  # every 20th welder's certificate has expired: 5 % of the scans
VENV_BIN = Path(sys.executable).parent
log = logging.getLogger("bench.unlock")


# ---------------------------------------------------------------- fleet process


def fleet_worker(
    devices_file: str, broker: str, self_unlock: float, tel_s: int, log_file: str
) -> None:
    """Runs in its own process: a sim Fleet, logging per command how long the chip
    took from receiving it to handing its ack to the socket."""
    import orjson

    from weldguard.sim.fleet import Fleet, FleetChip, load_devices

    out = open(log_file, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    original = FleetChip.on_message

    def timed(
        self: FleetChip, client: Any, topic: str, payload: bytes, qos: int, props: Any
    ) -> int:
        start = time.perf_counter_ns()
        received = time.time_ns()
        result = original(self, client, topic, payload, qos, props)
        took = time.perf_counter_ns() - start
        try:
            command = orjson.loads(payload)
            out.write(
                f"{self.spec.device_id} {command.get('cmd')} {command.get('id')} "
                f"{received} {took}\n"
            )
        except Exception:
            pass
        return result

    FleetChip.on_message = timed  # type: ignore[method-assign]
    fleet = Fleet(
        load_devices(Path(devices_file)),
        broker,
        misbehaving=0.0,
        self_unlock=self_unlock,
        tel_s=tel_s,
        connect_concurrency=128,
        seed=7,
    )

    async def run() -> None:
        task = asyncio.create_task(fleet.run())
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())
    out.write(f"# published {fleet.stats.published} commands {fleet.stats.commands}\n")
    out.close()


# ---------------------------------------------------------------- the register


@dataclass
class Device:
    index: int
    machine_id: int
    code: str
    device_id: str
    secret: str
    imei: str
    iccid: str
    lat: float
    lon: float


@dataclass
class WelderAccount:
    index: int
    user_id: int
    welder_id: int
    enterprise_index: int
    token: str
    expired: bool


@dataclass
class Register:
    enterprise_ids: list[int]
    devices: list[Device]
    welders: list[WelderAccount]


def _enterprise_row(n: int, sector: str) -> dict[str, object]:
    street = STREETS[n % len(STREETS)]
    return {
        "name": f"长宁测试机电{n:02d}有限公司",
        "credit_code": make_credit_code(f"91310105MA1FL{n:04d}"),
        "sector": sector,
        "city": "上海市",
        "district": "长宁区",
        "street": street,
        "address": f"长宁区{street}测试路{n}号",
        "legal_rep_name": "张三",
        "legal_rep_phone": "13800138000",
        "contact_phone": "021-62512345",
        "production_status": "在产",
        "involves_welding": "是",
        "mobile_work": "否",
        "declared_machine_count": 500,
        "declared_welder_count": 50,
    }


def _imei(n: int) -> str:
    body = f"86{n:012d}"
    return body + luhn_digit(body)


def _iccid(n: int) -> str:
    body = f"898600{n:013d}"
    return body + luhn_digit(body)


def build_register(
    session: Session,
    settings: Settings,
    machines: int,
    welders: int,
    targets: int,
    sector: str = "工贸",
) -> Register:
    """Enterprises and welders through the services; machines, chips and bindings
    as rows in batches (the chips' secrets sealed with the platform's key, as
    DeviceRegistry.register does). Machine i < targets belongs to the enterprise
    of the welder who will scan it (``scanning_welder``), so that the scan is allowed."""
    now = datetime.now(UTC)
    today = local_today(now)
    load_reference(session)
    enterprise_ids = []
    service = EnterpriseService(session)
    for n in range(ENTERPRISES):
        data, errors = validate_enterprise(_enterprise_row(n, sector), PlaceResolver(session))
        assert data is not None, errors
        enterprise, _ = service.upsert(ADMIN, data)
        enterprise_ids.append(enterprise.id)
    session.flush()

    keys = DeviceSecrets(settings.resolved_secret_key())
    rng = random.Random(11)
    run = uuid.uuid4().hex[:4].upper()
    devices: list[Device] = []
    batch = 1000
    for start in range(0, machines, batch):
        rows, chips = [], []
        for i in range(start, min(machines, start + batch)):
            # A target machine belongs to the enterprise of the welder who scans it.
            welder_index = scanning_welder(i, welders)
            enterprise = (welder_index % ENTERPRISES) if i < targets else i % ENTERPRISES
            rows.append(
                {
                    "code": f"WB{run}{i:06d}",
                    "serial_number": f"SN-B-{i:06d}",
                    "make": "瑞凌",
                    "model": "ZX7-400",
                    "process": "manual_arc",
                    "rated_current_a": 400,
                    "enterprise_id": enterprise_ids[enterprise],
                    "status": MachineStatus.CHIP_FITTED.value,
                    "registered_at": now,
                }
            )
            secret = secrets.token_hex(32)
            chips.append(
                {
                    "device_id": f"WB{run}D{i:05d}",
                    "imei": _imei(i),
                    "iccid": _iccid(i),
                    "firmware": "1.0.0",
                    "registered_at": now,
                    "secret_encrypted": keys.seal(secret),
                    "secret_issued_at": now,
                    "_secret": secret,
                }
            )
        machine_ids = session.scalars(
            insert(Machine).returning(Machine.id, sort_by_parameter_order=True), rows
        ).all()
        secrets_ = [c.pop("_secret") for c in chips]
        chip_ids = session.scalars(
            insert(Chip).returning(Chip.id, sort_by_parameter_order=True), chips
        ).all()
        bindings = []
        for k, (machine_id, chip_id) in enumerate(zip(machine_ids, chip_ids, strict=True)):
            lat = round(HOME[0] + rng.uniform(-0.04, 0.04), 6)
            lon = round(HOME[1] + rng.uniform(-0.05, 0.05), 6)
            bindings.append(
                {
                    "machine_id": machine_id,
                    "chip_id": chip_id,
                    "fitted_at": now,
                    "fitted_by_name": "基准测试",
                    "latitude": lat,
                    "longitude": lon,
                }
            )
            devices.append(
                Device(
                    start + k,
                    machine_id,
                    str(rows[k]["code"]),
                    str(chips[k]["device_id"]),
                    secrets_[k],
                    str(chips[k]["imei"]),
                    str(chips[k]["iccid"]),
                    lat,
                    lon,
                )
            )
        session.execute(insert(ChipBinding), bindings)
    session.flush()

    vault = IdentityVault(settings.resolved_secret_key())
    people = WelderService(session, vault)
    auth = AuthService(session, settings)
    password_hash = Passwords(settings).hash(PASSWORD)
    accounts: list[WelderAccount] = []
    for i in range(welders):
        number = make_id_number(f"3101051985{i // 1000 + 1:02d}{i % 28 + 1:02d}{i % 1000:03d}")
        welder = people.register(
            WelderInput(name=f"焊工{i:03d}", id_number=number, phone=f"139{i:08d}"), today
        )
        expired = i % DENY_EVERY == DENY_EVERY - 1
        people.upsert_certificate(
            welder,
            CertificateInput(
                kind="special_operation",
                number="T" + number,
                item="熔化焊接与热切割作业",
                issue_date=today - timedelta(days=400),
                expiry_date=today - timedelta(days=1) if expired else today + timedelta(days=900),
                issuing_authority="上海市应急管理局",
                source="应急管理部门",
            ),
            id_number=number,
        )
        enterprise_index = i % ENTERPRISES
        people.employ(ADMIN, welder, enterprise_ids[enterprise_index], today - timedelta(days=300))
        user = User(
            username=f"bw{run}-{i + 1}",
            display_name=f"焊工{i:03d}",
            password_hash=password_hash,
            role=Role.WELDER.value,
            welder_id=welder.id,
            phone=f"139{i:08d}",
        )
        session.add(user)
        session.flush()
        raw, _ = auth.issue_token(
            user, TokenKind.SESSION, now, name="phone", lifetime=timedelta(days=1)
        )
        accounts.append(WelderAccount(i, user.id, welder.id, enterprise_index, raw, expired))
    session.commit()
    return Register(enterprise_ids, devices, accounts)


def scanning_welder(device_index: int, welders: int) -> int:
    """Which welder scans target machine ``device_index`` (see ``scans_for``: the
    warm-up pairs from 0, each phase from its own offset)."""
    if device_index < WARMUP:
        return device_index % welders
    return (device_index - WARMUP) % welders


def start_permits(session: Session, settings: Settings, register: Register, targets: int) -> int:
    """With --permits: one started hot-work permit per welder with a valid
    certificate, naming the machines that welder will scan and a hot-spot area
    around them all, run through every step by the enterprise's people exactly as
    the pages do (PermitService). Returns how many were started."""
    now = datetime.now(UTC)
    auth = AuthService(session, settings)
    password_hash = Passwords(settings).hash(PASSWORD)
    staff: dict[int, tuple[User, User]] = {}
    for index, enterprise_id in enumerate(register.enterprise_ids):
        boss, safety = (
            User(
                username=f"bench-{role.value}-{index}",
                display_name=f"{name}{index}",
                password_hash=password_hash,
                role=role.value,
                enterprise_id=enterprise_id,
            )
            for role, name in ((Role.ENTERPRISE_ADMIN, "负责人"), (Role.SAFETY_OFFICER, "安全员"))
        )
        session.add_all([boss, safety])
        staff[index] = (boss, safety)
    session.flush()
    users = {u.id: u for u in session.scalars(select(User).where(User.role == Role.WELDER.value))}
    machines_of: dict[int, list[int]] = {}
    for device in register.devices[:targets]:
        welder = scanning_welder(device.index, len(register.welders))
        machines_of.setdefault(welder, []).append(device.machine_id)
    area = [
        [HOME[0] - 0.05, HOME[1] - 0.06],
        [HOME[0] - 0.05, HOME[1] + 0.06],
        [HOME[0] + 0.05, HOME[1] + 0.06],
        [HOME[0] + 0.05, HOME[1] - 0.06],
    ]
    service = PermitService(session, device_secrets=DeviceSecrets(settings.resolved_secret_key()))
    started = 0
    for account in register.welders:
        if account.expired:
            continue
        boss, safety = staff[account.enterprise_index]
        welder_user = users[account.user_id]
        scopes = {u.id: auth.scope_for(u) for u in (boss, safety, welder_user)}
        level = PermitLevel.SECOND
        row = service.create(
            scopes[safety.id],
            safety,
            PermitInput(
                place_description="基准测试钢结构焊接",
                hot_spot_lat=HOME[0],
                hot_spot_lon=HOME[1],
                hot_spot_polygon=area,
                methods=[HotWorkMethod.ELECTRIC_WELDING.value],
                base_level=level.value,
                starts_at=now - timedelta(minutes=5),
                ends_at=now + timedelta(hours=7, minutes=50),
                welders=[WelderEntry(account.welder_id)],
                machine_ids=machines_of.get(account.index, []),
                lead=PersonInput(welder_user.display_name, welder_user.id, account.welder_id),
                fire_watch=PersonInput(safety.display_name, safety.id),
                fire_watch_trained=True,
                hazards=["基准测试"],
            ),
            now,
        )
        managed = PermitLevel(row.level)
        photo = ("photos/" + "0" * 32 + ".jpg",)

        def step(
            who: User,
            kind: str,
            permit_id: int = row.id,
            scopes: dict[int, Scope] = scopes,
            **data: Any,
        ) -> None:
            service.apply(scopes[who.id], who, permit_id, kind, data, now)

        step(safety, "submit")
        step(boss, "site_survey", photos=list(photo))
        step(welder_user, "confirm_risks")
        step(boss, "approve")
        for code in mandatory_measure_codes(frozenset({HotWorkMethod.ELECTRIC_WELDING}), managed):
            step(safety, "confirm_measure", code=code)
        if row.gas_analysis_required or managed is not PermitLevel.SECOND:
            step(
                safety,
                "gas_sample",
                taken_at=now.isoformat(),
                gas="甲烷",
                lel_percent=5.0,
                reading_percent=0.05,
            )
        step(safety, "check_in", photos=list(photo))
        step(safety, "clear", photos=list(photo))
        step(welder_user, "start", photos=list(photo))
        started += 1
    session.commit()
    return started


def write_devices(devices: list[Device], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(DEVICE_FIELDS)
        for d in devices:
            writer.writerow([d.device_id, d.secret, d.imei, d.iccid, 400, d.lat, d.lon])


# ---------------------------------------------------------------- processes


@dataclass
class Processes:
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    extra: dict[str, list[int]] = field(default_factory=dict)

    def start(self, name: str, args: list[str], env: dict[str, str], logdir: Path) -> None:
        out = open(logdir / f"{name}.log", "wb")  # noqa: SIM115
        self.procs[name] = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)

    def pids(self) -> dict[str, list[int]]:
        alive = {name: [p.pid] for name, p in self.procs.items() if p.poll() is None}
        return {**alive, **self.extra}

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def platform_env(db_url: str, broker_url: str, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "WELDGUARD_DATABASE_URL": db_url,
            "WELDGUARD_SECRET_KEY": SECRET_KEY,
            "WELDGUARD_DATA_DIR": str(data_dir),
            "WELDGUARD_MQTT_URL": broker_url,
            "WELDGUARD_UNLOCK_COMMAND_BUS": "true",
            "WELDGUARD_LOG_LEVEL": "WARNING",
        }
    )
    return env


def wait_online(session_factory: Any, device_ids: list[str], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    online = 0
    while time.monotonic() < deadline:
        with session_factory() as session:
            online = session.scalar(
                select(func.count())
                .select_from(DeviceState)
                .where(DeviceState.online.is_(True), DeviceState.device_id.in_(device_ids))
            )
        if online >= len(device_ids):
            break
        time.sleep(1.0)
    return int(online or 0)


def wait_online_count(session_factory: Any, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    online = 0
    while time.monotonic() < deadline:
        with session_factory() as session:
            online = int(
                session.scalar(
                    select(func.count())
                    .select_from(DeviceState)
                    .where(DeviceState.online.is_(True))
                )
                or 0
            )
        if online >= expected:
            break
        time.sleep(1.0)
    return online


def end_open_sessions(session_factory: Any) -> None:
    """Between phases: no welder stays busy elsewhere (BUSY_ELSEWHERE). The
    ingest worker's session sink updates the same rows: a deadlock is retried."""
    for attempt in range(5):
        try:
            with session_factory() as session:
                session.execute(
                    update(WorkSession)
                    .where(WorkSession.status.in_(("starting", "active")))
                    .values(status="ended", ended_at=datetime.now(UTC), end_reason="admin")
                )
                session.commit()
            return
        except OperationalError:
            time.sleep(0.2 * (attempt + 1))


# ---------------------------------------------------------------- scanning


@dataclass
class Scan:
    welder: WelderAccount
    device: Device
    t0_ns: int = 0
    decided_ns: int = 0
    visible_ns: int | None = None
    status: int = 0
    record_id: int | None = None
    allowed: bool | None = None
    session_status: str | None = None
    acked_ns: int | None = None
    chip_ns: int | None = None
    reasons: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    server: dict[str, float] = field(default_factory=dict)


PANEL = re.compile(r'hx-get="/scan/sessions/([0-9a-f-]{36})/panel"')
RECORD = re.compile(r"/scan/records/(\d+)")
IDEMPOTENCY_KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


async def open_label(
    client: httpx.AsyncClient, welder: WelderAccount, device: Device, signer: Any
) -> tuple[str, dict[str, str]]:
    """The welder's phone opens the machine's label (GET, untimed): the cookies to
    send and the 扫码开机 form as the page fills it (its idempotency key, the phone's
    position 15 m from the machine)."""
    csrf = secrets.token_urlsafe(24)
    cookies = f"wg_session={welder.token}; wg_csrf={csrf}"
    sig = signer.sign(device.code)
    page = await client.get(
        f"/scan/{device.code}", params={"sig": sig}, headers={"cookie": cookies}
    )
    key = IDEMPOTENCY_KEY.search(page.text)
    return cookies, {
        "sig": sig,
        "idempotency_key": key.group(1) if key else secrets.token_urlsafe(12),
        "lat": f"{device.lat + 0.0001:.6f}",
        "lon": f"{device.lon + 0.0001:.6f}",
        "accuracy": "12",
        "csrf_token": csrf,
    }


async def one_scan(client: httpx.AsyncClient, scan: Scan, signer: Any, visible: bool) -> None:
    code = scan.device.code
    # The phone opens the label's URL first (the QR code), and the welder taps
    # 扫码开机 on that page: the tap is where the latency starts.
    cookies, form = await open_label(client, scan.welder, scan.device, signer)

    async def on_the_wire(event: str, info: dict[str, Any]) -> None:
        # t0 is when the request's first bytes go out, not when httpx starts
        # building it: the client's own CPU is not the platform's.
        if event == "http11.send_request_headers.started":
            scan.t0_ns = time.time_ns()

    response = await client.post(
        f"/scan/{code}",
        data=form,
        headers={"cookie": cookies},
        extensions={"trace": on_the_wire},
    )
    scan.decided_ns = time.time_ns()
    scan.status = response.status_code
    scan.server = server_timing(response.headers.get("server-timing", ""))
    found = RECORD.search(response.headers.get("location", ""))
    scan.record_id = int(found.group(1)) if found else None
    if not visible or scan.record_id is None or scan.welder.expired:
        return
    page = await client.get(f"/scan/records/{scan.record_id}", headers={"cookie": cookies})
    if 'id="unlocked"' in page.text:
        scan.visible_ns = time.time_ns()
        return
    panel = PANEL.search(page.text)
    while panel is not None:
        answer = await client.get(
            f"/scan/sessions/{panel.group(1)}/panel", headers={"cookie": cookies}
        )
        if 'id="unlocked"' in answer.text:
            scan.visible_ns = time.time_ns()
            return
        if 'data-status="starting"' not in answer.text:
            return
        panel = PANEL.search(answer.text)


async def run_scans(
    base_url: str, scans: list[Scan], concurrency: int, signer: Any, visible: bool
) -> float:
    limits = httpx.Limits(
        max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2
    )
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        queue: asyncio.Queue[Scan] = asyncio.Queue()
        for s in scans:
            queue.put_nowait(s)

        async def worker() -> None:
            while not queue.empty():
                s = queue.get_nowait()
                await one_scan(client, s, signer, visible)

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.monotonic() - started


def chip_times(log_file: Path) -> dict[str, int]:
    """Command id -> ns the chip held it (unlocks only)."""
    out: dict[str, int] = {}
    with contextlib.suppress(FileNotFoundError), log_file.open(encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 5 and parts[1] == "unlock":
                out[parts[2]] = int(parts[4])
    return out


def settle_results(session_factory: Any, scans: list[Scan], log_file: Path) -> None:
    """Reads what the platform recorded: outcome, session status, ack time."""
    time.sleep(1.0)  # the slowest delivery settles its session
    chips = chip_times(log_file)
    ids = [s.record_id for s in scans if s.record_id is not None]
    rows: dict[int, tuple[str, str | None, datetime | None, str | None, Any, Any]] = {}
    with session_factory() as session:
        for chunk in range(0, len(ids), 500):
            for rec_id, outcome, status, unlocked, command_id, codes, why in session.execute(
                text(
                    "SELECT r.id, r.outcome, s.status, s.unlocked_at, s.unlock_command_id, "
                    "r.reason_codes, r.reasons "
                    "FROM scan_record r LEFT JOIN work_session s ON s.id = r.session_id "
                    "WHERE r.id = ANY(:ids)"
                ),
                {"ids": ids[chunk : chunk + 500]},
            ):
                rows[rec_id] = (outcome, status, unlocked, command_id, codes, why)
    for s in scans:
        if s.record_id is None or s.record_id not in rows:
            continue
        outcome, status, unlocked, command_id, codes, why = rows[s.record_id]
        s.reasons = tuple(codes or ())
        s.messages = tuple(str(r.get("message", r)) for r in why or ())
        s.allowed = outcome == "allowed"
        s.session_status = status
        if unlocked is not None:
            s.acked_ns = int(unlocked.timestamp() * 1e9)
        if command_id is not None:
            s.chip_ns = chips.get(command_id)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def stat_line(label: str, values_ms: list[float]) -> str:
    if not values_ms:
        return f"  {label:<34} n=0"
    return (
        f"  {label:<34} n={len(values_ms):<4} p50 {pct(values_ms, 50):6.1f} ms  "
        f"p99 {pct(values_ms, 99):6.1f} ms  max {max(values_ms):6.1f} ms"
    )


def server_timing(header: str) -> dict[str, float]:
    """``Server-Timing: wait;dur=0.12, tx;dur=5.10`` -> {"wait": 0.12, "tx": 5.1} (ms)."""
    out = {}
    for part in header.split(","):
        name, _, duration = part.strip().partition(";dur=")
        with contextlib.suppress(ValueError):
            out[name] = float(duration)
    return out


def tail_line(with_chip: list[Scan]) -> str:
    """Where the slowest 2 % of the allowed scans lost their time: the POST (HTTP,
    decision, SQL, commit) or the delivery after it (publish, broker, the chip's
    loop, the ack back), chip time excluded."""
    if not with_chip:
        return "  tail: n=0"

    def platform(s: Scan) -> int:
        return s.acked_ns - s.t0_ns - s.chip_ns  # type: ignore[operator]

    slowest = sorted(with_chip, key=platform)[-max(1, len(with_chip) // 50) :]
    post = [(s.decided_ns - s.t0_ns) / 1e6 for s in slowest]
    after = [(platform(s) - (s.decided_ns - s.t0_ns)) / 1e6 for s in slowest]
    line = (
        f"  tail: slowest {len(slowest)} scans: POST p50 {pct(post, 50):.1f} max {max(post):.1f}"
        f" ms; after the POST p50 {pct(after, 50):.1f} max {max(after):.1f} ms"
    )
    # The web process's own account of the POST (its Server-Timing header), for
    # the slowest and for all: what grows in the tail.
    for label, group in (("slowest", slowest), ("all", with_chip)):
        names = sorted({name for s in group for name in s.server})
        if names:
            parts = [f"{n} {pct([s.server.get(n, 0.0) for s in group], 50):.1f}" for n in names]
            line += f"\n    server timing p50, {label} (ms): " + ", ".join(parts)
    return line


def report_phase(name: str, scans: list[Scan], elapsed: float, cpu: dict[str, Any]) -> None:
    allowed = [s for s in scans if s.allowed]
    denied = [s for s in scans if s.allowed is False]
    acked = [s for s in allowed if s.acked_ns is not None and s.session_status == "active"]
    with_chip = [s for s in acked if s.chip_ns is not None]
    print(
        f"\n== {name}: {len(scans)} scans in {elapsed:.1f} s ({len(scans) / elapsed:.0f}/s); "
        f"allowed {len(allowed)} (active {len(acked)}, chip time known {len(with_chip)}), "
        f"denied {len(denied)}, errors {sum(1 for s in scans if s.record_id is None)}"
    )
    reasons = Counter(code for s in denied for code in s.reasons)
    print(f"  denied for: {dict(reasons)}")
    unexpected = [s for s in denied if s.reasons != ("CERT_EXPIRED",)]
    if unexpected:
        # The bench means 5 % denials for expired certificates only: say what else.
        print(f"  e.g. {unexpected[0].reasons}: {'；'.join(unexpected[0].messages)[:300]}")
    failed = [s for s in allowed if s.session_status != "active"]
    if failed:
        print(
            f"  NOT ACTIVE: {len(failed)} "
            f"(statuses {sorted({str(s.session_status) for s in failed})})"
        )
    print(
        stat_line("allowed: total (request → ack)", [(s.acked_ns - s.t0_ns) / 1e6 for s in acked])
    )  # type: ignore[operator]
    print(
        stat_line(
            "allowed: platform (total - chip)",
            [(s.acked_ns - s.t0_ns - s.chip_ns) / 1e6 for s in with_chip],  # type: ignore[operator]
        )
    )
    print(stat_line("allowed: chip (command → ack)", [s.chip_ns / 1e6 for s in with_chip]))  # type: ignore[operator]
    print(tail_line(with_chip))
    print(
        stat_line(
            "allowed: POST answered (decided)", [(s.decided_ns - s.t0_ns) / 1e6 for s in allowed]
        )
    )
    visible = [s for s in acked if s.visible_ns is not None]
    if visible:
        print(
            stat_line(
                "allowed: page shows 已开机", [(s.visible_ns - s.t0_ns) / 1e6 for s in visible]
            )
        )  # type: ignore[operator]
    print(
        stat_line(
            "denied: POST answered (= platform)", [(s.decided_ns - s.t0_ns) / 1e6 for s in denied]
        )
    )
    print("  " + cpu_split_line(cpu))


async def run_phase(
    name: str,
    base_url: str,
    scans: list[Scan],
    concurrency: int,
    signer: Any,
    session_factory: Any,
    procs: Processes,
    database: str,
    log_file: Path,
    visible: bool,
) -> None:
    meter = ProcessCpu(procs.pids(), database)
    elapsed = await run_scans(base_url, scans, concurrency, signer, visible)
    cpu = meter.stop()
    await asyncio.to_thread(settle_results, session_factory, scans, log_file)
    report_phase(name, scans, elapsed, cpu)
    await asyncio.to_thread(end_open_sessions, session_factory)


# ---------------------------------------------------------------- main


async def main(args: argparse.Namespace) -> None:
    started = time.monotonic()
    url, drop = _private_database()
    database = url.rsplit("/", 1)[1]
    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="wg-bench-unlock-"))
    try:
        upgrade(url)
        settings = Settings(database_url=url, secret_key=SECRET_KEY, data_dir=tmp)
        engine = make_engine(url)
        session_factory = make_session_factory(engine)
        phases = 2 if args.no_load else 4
        targets = WARMUP + phases * args.scans
        machines = max(args.machines, targets)
        t = time.monotonic()
        with session_factory() as session:
            register = build_register(
                session,
                settings,
                machines,
                args.scans,
                targets,
                CONSTRUCTION_SECTOR if args.permits else "工贸",
            )
        print(
            f"register: {len(register.enterprise_ids)} enterprises, {machines:,} machines with "
            f"chips, {len(register.welders)} welders ({sum(w.expired for w in register.welders)} "
            f"with an expired certificate) in {time.monotonic() - t:.1f} s"
        )
        if args.permits:
            t = time.monotonic()
            with session_factory() as session:
                started = start_permits(session, settings, register, targets)
            print(
                f"permits: {ENTERPRISES} enterprises in {CONSTRUCTION_SECTOR} (a permit is "
                f"required); {started} permits started through every step in "
                f"{time.monotonic() - t:.1f} s"
            )
        target_devices = register.devices[:targets]
        load_devices = register.devices[targets:]
        write_devices(target_devices, tmp / "targets.csv")
        write_devices(load_devices, tmp / "load.csv")
        chip_log = tmp / "chip-commands.log"

        with own_mosquitto() as (host, port, broker_pid):
            broker_url = f"mqtt://{host}:{port}"
            print(f"own mosquitto on {host}:{port} (pid {broker_pid}; set_tcp_nodelay true)")
            env = platform_env(url, broker_url, tmp)
            weldguard = str(VENV_BIN / "weldguard")
            # --workers-nice: the ingest and dispatch workers are throughput work (their
            # budget is seconds); a deployment may give the web process the CPU first.
            batch = ["nice", "-n", str(args.workers_nice)] if args.workers_nice else []
            procs.start("ingest", [*batch, weldguard, "ingest", "--mqtt-url", broker_url], env, tmp)
            procs.start(
                "dispatch", [*batch, weldguard, "dispatch", "--mqtt-url", broker_url], env, tmp
            )
            web_port = free_port()
            procs.start(
                "web",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "weldguard.app:create_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(web_port),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                env,
                tmp,
            )
            fleet_cmd = [sys.executable, os.path.abspath(__file__), "--fleet-worker"]
            time.sleep(2.0)  # the ingest worker subscribes before the chips say hello
            procs.start(
                "targets",
                [
                    *fleet_cmd,
                    str(tmp / "targets.csv"),
                    broker_url,
                    "0",
                    str(args.tel_s),
                    str(chip_log),
                ],
                env,
                tmp,
            )
            base_url = f"http://127.0.0.1:{web_port}"
            async with httpx.AsyncClient(base_url=base_url) as probe:
                deadline = time.monotonic() + 30
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await probe.get("/login")).status_code < 500:
                            break
                    if time.monotonic() > deadline:
                        raise RuntimeError("the web process did not start")
                    await asyncio.sleep(0.2)
            online = await asyncio.to_thread(
                wait_online, session_factory, [d.device_id for d in target_devices], 90
            )
            print(f"targets fleet: {online}/{len(target_devices)} chips online")
            # Every chip has sent its first (staggered) heartbeat after one period:
            # from then on its offline deadline in the database is a heartbeat's.
            await asyncio.sleep(35)
            procs.extra["broker"] = [broker_pid]
            signer = signer_for(settings)
            welders = register.welders

            def scans_for(offset: int, count: int) -> list[Scan]:
                return [
                    Scan(welders[i % len(welders)], target_devices[offset + i])
                    for i in range(count)
                ]

            # Warm-up: connections, caches, the first compiled statements.
            warm = scans_for(0, WARMUP)
            await run_scans(base_url, warm, 1, signer, False)
            await asyncio.to_thread(end_open_sessions, session_factory)
            offset = WARMUP
            plan: list[tuple[str, int, bool]] = [
                ("sequential", 1, True),
                (f"{args.concurrency} in flight", args.concurrency, False),
            ]
            labels = [("idle (targets fleet only)", False)]
            if not args.no_load:
                labels.append((f"load ({machines:,} chips online)", True))
            for label, load in labels:
                if load:
                    procs.start(
                        "load",
                        [
                            # The load fleet stands for 10,000 chips' own CPUs, not
                            # the platform's: it yields to everything else here.
                            "nice",
                            "-n",
                            str(args.load_nice),
                            *fleet_cmd,
                            str(tmp / "load.csv"),
                            broker_url,
                            "1.0",
                            str(args.tel_s),
                            str(tmp / "load-commands.log"),
                        ],
                        env,
                        tmp,
                    )
                    t = time.monotonic()
                    online = await asyncio.to_thread(
                        wait_online_count, session_factory, machines, 180
                    )
                    print(
                        f"\nload fleet: {online:,}/{machines:,} chips online after "
                        f"{time.monotonic() - t:.0f} s; settling 20 s (self-unlocks, welding)"
                    )
                    await asyncio.sleep(20)
                    meter = ProcessCpu(procs.pids(), database)
                    before = _message_count(session_factory)
                    await asyncio.sleep(10)
                    rate = (_message_count(session_factory) - before) / 10
                    print(
                        f"messages stored: {rate:,.0f}/s (hb + tel + evt) over 10 s without scans"
                    )
                    print("  " + cpu_split_line(meter.stop()))
                for kind, concurrency, visible in plan:
                    phase = scans_for(offset, args.scans)
                    offset += args.scans
                    await run_phase(
                        f"{label}, {kind}",
                        base_url,
                        phase,
                        concurrency,
                        signer,
                        session_factory,
                        procs,
                        database,
                        chip_log,
                        visible,
                    )
            engine.dispose()
            procs.stop_all()
    finally:
        procs.stop_all()
        drop()
        with contextlib.suppress(OSError):
            for p in tmp.iterdir():
                if p.suffix == ".log" and p.stat().st_size and "commands" not in p.name:
                    tail = p.read_text(errors="replace").strip().splitlines()[-3:]
                    if tail:
                        print(f"[{p.name}] " + " | ".join(tail))
        # The devices files hold the chips' secrets in clear: nothing stays behind.
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ntotal {time.monotonic() - started:.0f} s")


def _message_count(session_factory: Any) -> int:
    with session_factory() as session:
        return int(session.scalar(text("SELECT count(*) FROM device_message")) or 0)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--fleet-worker":
        logging.basicConfig(level=logging.WARNING)
        devices_file, broker, self_unlock, tel_s, log_file = sys.argv[2:7]
        fleet_worker(devices_file, broker, float(self_unlock), int(tel_s), log_file)
        sys.exit(0)
    parser = argparse.ArgumentParser()
    parser.add_argument("--scans", type=int, default=500, help="scans per phase (= welders)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--machines", type=int, default=10_000, help="chips online under load")
    parser.add_argument("--tel-s", type=int, default=10, help="telemetry interval while welding")
    parser.add_argument("--no-load", action="store_true", help="idle phases only")
    parser.add_argument(
        "--workers-nice",
        type=int,
        default=0,
        help="run ingest and dispatch at this nice level (default: as the web process)",
    )
    parser.add_argument(
        "--load-nice",
        type=int,
        default=10,
        help="nice level of the load fleet (the 10,000 chips' own CPUs)",
    )
    parser.add_argument(
        "--permits",
        action="store_true",
        help="enterprises where a permit is required, each welder on a started permit",
    )
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parser.parse_args()))
