"""ScanService: the scan-to-unlock use case against the database (both backends)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import NOW, World
from weldguard.auth.models import User
from weldguard.config import Settings
from weldguard.db import transaction, utcnow
from weldguard.device.commands import CommandRepository
from weldguard.device.models import DeviceCommand, DeviceState
from weldguard.device.registry import ChipInput, DeviceRegistry, DeviceSecrets
from weldguard.domain.authorization import PhonePosition
from weldguard.domain.geo import GeoPoint
from weldguard.errors import NotFound, PermissionDenied
from weldguard.machine.models import Machine
from weldguard.machine.service import MachineInput, MachineService
from weldguard.unlock import service as service_module
from weldguard.unlock.command_bus import CommandAck
from weldguard.unlock.facts import ScanFacts
from weldguard.unlock.labels import LabelSigner, signer_for
from weldguard.unlock.models import ScanRecord, SpecialPeriod, WorkSession
from weldguard.unlock.service import ScanResult, ScanService
from weldguard.welder.identity import IdentityVault
from weldguard.welder.models import Certificate
from weldguard.welder.service import WelderService

# The world's machines stand in 上海市长宁区; the chip reports this fix.
HERE = GeoPoint(31.2200, 121.4200)
NEAR = PhonePosition(GeoPoint(31.2201, 121.4201), 10.0)
FAR = PhonePosition(GeoPoint(31.2400, 121.4200), 10.0)  # about 2.2 km north


def user(db: Session, username: str) -> User:
    found = db.scalars(select(User).where(User.username == username)).one()
    return found


def live_machine(
    db: Session,
    settings: Settings,
    world: World,
    *,
    enterprise: str = "A",
    online: bool = True,
    lock: str | None = "locked",
    position: GeoPoint | None = HERE,
    now: datetime = NOW,
) -> tuple[Machine, str, str]:
    """A new machine of an enterprise with a registered chip (its secret issued)
    and the chip's live state. Ids are unique per call: a shared Mosquitto
    carries every parallel test's topics. Committed."""
    tag = uuid.uuid4().hex[:8].upper()
    machine = MachineService(db).register(
        _ADMIN,
        MachineInput(
            serial_number=f"SN-T-{tag}",
            make="瑞凌",
            model="ZX7-400",
            process="manual_arc",
            rated_current_a=400,
            enterprise_id=world.enterprises[enterprise].id,
        ),
        now,
    )
    n = uuid.uuid4().int % 10**13
    registry = DeviceRegistry(db, DeviceSecrets(settings.resolved_secret_key()))
    chip, secret = registry.register(
        ChipInput(f"WGT{tag}", f"86{n:013d}", f"8986{n:016d}", "1.0.0"), now
    )
    registry.bind(machine.code, chip.device_id, "测试", now)
    db.add(
        DeviceState(
            device_id=chip.device_id,
            online=online,
            last_seen_at=now - timedelta(seconds=20),
            lock_state=lock,
            lat_e6=round(position.latitude * 1e6) if position else None,
            lon_e6=round(position.longitude * 1e6) if position else None,
            offline_deadline=now + timedelta(minutes=3) if online else None,
        )
    )
    db.commit()
    return machine, chip.device_id, secret


from weldguard.auth.models import Role  # noqa: E402
from weldguard.auth.scope import Scope  # noqa: E402

_ADMIN = Scope(role=Role.ADMIN, user_id=0, everything=True)


@pytest.fixture
def service(db: Session, settings: Settings) -> ScanService:
    return ScanService(db, settings)


@pytest.fixture
def signer(settings: Settings) -> LabelSigner:
    return signer_for(settings)


def scan(
    service: ScanService,
    signer: LabelSigner,
    who: User,
    machine: Machine,
    position: PhonePosition | None = NEAR,
    key: str | None = None,
    now: datetime = NOW,
) -> ScanResult:
    return service.scan(who, machine.code, signer.sign(machine.code), position, key, now)


def test_allowed_scan_opens_a_session_and_queues_a_signed_unlock(
    db: Session, settings: Settings, world: World, service: ScanService, signer: LabelSigner
) -> None:
    machine, device_id, _ = live_machine(db, settings, world)
    welder = user(db, "welder_one")
    result = service.scan(
        welder, machine.code, signer.sign(machine.code), NEAR, "key-00000001", NOW
    )
    db.commit()

    assert result.allowed and result.decision is not None and result.decision.allowed
    record = result.record
    assert (record.outcome, record.machine_id, record.welder_id) == (
        "allowed",
        machine.id,
        world.welders["A"].id,
    )
    assert record.reason_codes == [] and record.distance_m == pytest.approx(14, abs=2)
    assert record.area_path == world.enterprises["A"].area_path
    session = result.session
    assert session is not None and session.status == "starting"
    assert record.session_id == session.id and session.scan_id == record.id
    # No limit from the decision: the default session length.
    assert session.valid_until == NOW + timedelta(hours=settings.session_default_hours)
    assert result.unlock is not None and result.unlock.device_id == device_id

    command = db.get(DeviceCommand, session.unlock_command_id)
    assert command is not None
    assert (command.cmd, command.status, command.reason) == ("unlock", "queued", session.id)
    assert command.args["sess"] == session.id
    assert command.args["welder"] == f"wd-{world.welders['A'].id}"
    assert command.expires_at == NOW + timedelta(seconds=settings.unlock_command_ttl_s)
    # The welder reference is anonymous: the ID number is nowhere in the command.
    assert "310105" not in command.payload


def test_denied_scan_reports_every_reason_and_opens_nothing(
    db: Session, settings: Settings, world: World, service: ScanService, signer: LabelSigner
) -> None:
    machine, _, _ = live_machine(db, settings, world, online=False)
    cert = db.scalars(
        select(Certificate).where(Certificate.welder_id == world.welders["A"].id)
    ).one()
    cert.expiry_date = date(2026, 11, 1)
    db.commit()

    result = scan(service, signer, user(db, "welder_one"), machine, FAR)
    db.commit()

    assert not result.allowed  # type: ignore[attr-defined]
    record: ScanRecord = result.record  # type: ignore[attr-defined]
    assert record.outcome == "blocked"
    assert record.reason_codes == ["CERT_EXPIRED", "MACHINE_OFFLINE", "TOO_FAR"]
    messages = {r["code"]: r["message"] for r in record.reasons}
    assert "2026-11-01" in messages["CERT_EXPIRED"]
    assert "离线" in messages["MACHINE_OFFLINE"]
    assert "米" in messages["TOO_FAR"]
    assert all(r["blocking"] for r in record.reasons)
    assert record.distance_m is not None and record.distance_m > 2000
    assert {r["regulator_warning"] for r in record.reasons} >= {"证书到期", "远距离扫码作业"}
    assert db.scalar(select(func.count()).select_from(WorkSession)) == 0
    assert db.scalar(select(func.count()).select_from(DeviceCommand)) == 0


def test_double_tap_and_retry_give_one_session(
    db: Session, settings: Settings, world: World, service: ScanService, signer: LabelSigner
) -> None:
    machine, _, _ = live_machine(db, settings, world)
    welder = user(db, "welder_one")
    first = scan(service, signer, welder, machine, key="tap-000000001")
    db.commit()
    # The same form twice (a double tap): the first answer, no second record.
    again = scan(service, signer, welder, machine, key="tap-000000001")
    assert again.replayed and again.record.id == first.record.id  # type: ignore[attr-defined]
    assert again.unlock is None  # type: ignore[attr-defined]
    # A retry from a new page: a new record, the same session, no second unlock.
    retry = scan(
        service, signer, welder, machine, key="tap-000000002", now=NOW + timedelta(seconds=3)
    )
    db.commit()
    assert retry.reused and retry.unlock is None  # type: ignore[attr-defined]
    assert retry.session.id == first.session.id  # type: ignore[attr-defined]
    assert db.scalar(select(func.count()).select_from(WorkSession)) == 1
    assert db.scalar(select(func.count()).select_from(ScanRecord)) == 2
    assert db.scalar(select(func.count()).select_from(DeviceCommand)) == 1


def test_an_idempotency_key_holds_across_processes(
    db: Session,
    settings: Settings,
    world: World,
    signer: LabelSigner,
    session_factory: sessionmaker[Session],
) -> None:
    """The key lives on the record, not in one process's memory: a second web
    process (its own service, its own connection) answers a resubmitted form with
    the first record, for an allowed, a refused and a forged-label scan alike."""
    machine, _, _ = live_machine(db, settings, world)
    busy, _, _ = live_machine(db, settings, world)
    welder_id = user(db, "welder_one").id

    def scan_elsewhere(code: str, sig: str, key: str) -> Any:
        with transaction(session_factory) as other:
            welder = other.get(User, welder_id)
            assert welder is not None
            return ScanService(other, settings).scan(welder, code, sig, NEAR, key, NOW)

    sign = signer.sign
    first = scan_elsewhere(machine.code, sign(machine.code), "tap-00000001")
    again = scan_elsewhere(machine.code, sign(machine.code), "tap-00000001")
    assert first.allowed and again.replayed and again.record.id == first.record.id
    assert again.session.id == first.session.id and again.unlock is None
    # Busy on the first machine: a refusal, resubmitted, is still one record.
    refused = scan_elsewhere(busy.code, sign(busy.code), "tap-00000002")
    refused_again = scan_elsewhere(busy.code, sign(busy.code), "tap-00000002")
    assert not refused.allowed and refused_again.record.id == refused.record.id
    forged = scan_elsewhere(machine.code, "AAAAAAAAAAAAAAAA", "tap-00000003")
    forged_again = scan_elsewhere(machine.code, "AAAAAAAAAAAAAAAA", "tap-00000003")
    assert forged.record.outcome == "invalid_label"
    assert forged_again.replayed and forged_again.record.id == forged.record.id
    assert db.scalar(select(func.count()).select_from(ScanRecord)) == 3
    assert db.scalar(select(func.count()).select_from(WorkSession)) == 1


def test_a_lost_race_returns_the_open_session_or_refuses(
    db: Session,
    settings: Settings,
    world: World,
    service: ScanService,
    signer: LabelSigner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two requests read "no open session" at once: the unique index decides."""
    machine, _, _ = live_machine(db, settings, world)
    welder = user(db, "welder_one")
    first = scan(service, signer, welder, machine)
    db.commit()
    monkeypatch.setattr(
        service_module, "gather_scan_facts", _blind(service_module.gather_scan_facts)
    )
    second = scan(service, signer, welder, machine, now=NOW + timedelta(seconds=1))
    db.commit()
    assert second.reused and second.session.id == first.session.id  # type: ignore[attr-defined]

    # Another welder of the enterprise racing for the same machine: 焊机使用中.
    other = world.welders["B"]
    WelderService(db, IdentityVault(settings.resolved_secret_key())).employ(
        _ADMIN, other, world.enterprises["A"].id, NOW.date() - timedelta(days=10)
    )
    welder.welder_id = other.id  # the same account standing in for that welder
    lost = scan(service, signer, welder, machine, NEAR, now=NOW + timedelta(seconds=2))
    assert lost.record.outcome == "blocked"  # type: ignore[attr-defined]
    assert lost.record.reason_codes == ["MACHINE_IN_USE"]  # type: ignore[attr-defined]
    assert lost.unlock is None and lost.session is None  # type: ignore[attr-defined]
    db.commit()
    # The refused scan's record stays; its unlock went again with its session.
    assert db.get(ScanRecord, lost.record.id).session_id is None  # type: ignore[attr-defined,union-attr]
    unlocks = db.scalars(select(DeviceCommand.id).where(DeviceCommand.cmd == "unlock")).all()
    assert unlocks == [first.unlock.command_id]  # type: ignore[attr-defined]
    assert db.scalar(select(func.count()).select_from(WorkSession)) == 1


def _blind(original: Any) -> Any:
    """gather_scan_facts as a request that read before the other's insert."""

    def blind(*args: Any, **kwargs: Any) -> ScanFacts:
        facts: ScanFacts = original(*args, **kwargs)
        machine = dataclasses.replace(facts.request.machine, session_welder_id=None)
        return dataclasses.replace(
            facts,
            request=dataclasses.replace(facts.request, machine=machine),
            open_session_here=None,
        )

    return blind


def test_busy_elsewhere_is_refused(
    db: Session, settings: Settings, world: World, service: ScanService, signer: LabelSigner
) -> None:
    first, _, _ = live_machine(db, settings, world)
    second, _, _ = live_machine(db, settings, world)
    welder = user(db, "welder_one")
    assert scan(service, signer, welder, first).allowed  # type: ignore[attr-defined]
    db.commit()
    result = scan(service, signer, welder, second)
    db.commit()
    assert result.record.reason_codes == ["BUSY_ELSEWHERE"]  # type: ignore[attr-defined]

    relaxed = ScanService(db, settings.model_copy(update={"scan_refuse_busy_elsewhere": False}))
    assert scan(relaxed, signer, welder, second).allowed  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "tamper",
    [
        "bad_signature",  # one character of the signature changed
        "other_machine",  # a genuine signature of another machine's code
        "unknown_version",  # a signature of a key version we never had
        "unknown_machine",  # a genuine signature of a code no machine has
        "garbage",
    ],
)
def test_forged_tampered_and_replayed_labels_are_recorded_invalid(
    db: Session,
    settings: Settings,
    world: World,
    service: ScanService,
    signer: LabelSigner,
    tamper: str,
) -> None:
    machine, _, _ = live_machine(db, settings, world)
    code, sig = machine.code, signer.sign(machine.code)
    if tamper == "bad_signature":
        sig = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    elif tamper == "other_machine":
        sig = signer.sign(world.machines["B"].code)
    elif tamper == "unknown_version":
        sig = "9" + sig[1:]
    elif tamper == "unknown_machine":
        code = "WGZZZZZZZZ"
        sig = signer.sign(code)
    else:
        sig = "<script>"
    result = service.scan(user(db, "welder_one"), code, sig, NEAR, None, NOW)
    db.commit()
    record = result.record
    assert record.outcome == "invalid_label" and record.machine_id is None
    assert record.reasons[0]["code"] == "INVALID_LABEL"
    assert result.session is None and result.unlock is None
    assert "<script>" not in str(record.reasons) and sig not in str(record.reasons)
    assert db.scalar(select(func.count()).select_from(WorkSession)) == 0


def test_a_replayed_label_url_still_needs_every_check(
    db: Session, settings: Settings, world: World, service: ScanService, signer: LabelSigner
) -> None:
    """A label's URL is public (it is printed on the machine): replaying it from
    afar unlocks nothing, the phone's position is checked."""
    machine, _, _ = live_machine(db, settings, world)
    result = scan(service, signer, user(db, "welder_one"), machine, FAR)
    assert result.record.reason_codes == ["TOO_FAR"]  # type: ignore[attr-defined]


def test_a_chip_that_never_answers_fails_the_session_and_expires_the_unlock(
    db: Session, settings: Settings, world: World, service: ScanService, signer: LabelSigner
) -> None:
    machine, _, _ = live_machine(db, settings, world)
    result = scan(service, signer, user(db, "welder_one"), machine)
    db.commit()
    session_id = result.session.id  # type: ignore[attr-defined]
    settled = service.unlock_settled(session_id, None, NOW + timedelta(seconds=8))
    db.commit()
    assert settled is not None and settled.status == "failed"
    assert settled.failure is not None and "芯片无响应" in settled.failure
    command = CommandRepository(db).get(settled.unlock_command_id or "")
    assert command is not None and command.status == "expired"
    # The machine is free again: the next scan opens a new session.
    retry = scan(service, signer, user(db, "welder_one"), machine, now=NOW + timedelta(seconds=20))
    assert retry.allowed and retry.session.id != session_id  # type: ignore[attr-defined]


def test_an_offline_machine_or_a_refusal_is_said_plainly(
    db: Session, settings: Settings, world: World, service: ScanService, signer: LabelSigner
) -> None:
    machine, device_id, _ = live_machine(db, settings, world)
    welder = user(db, "welder_one")
    result = scan(service, signer, welder, machine)
    db.commit()
    # The chip went offline right after the scan: 设备离线.
    state = db.get(DeviceState, device_id)
    assert state is not None
    state.online = False
    db.commit()
    failed = service.unlock_settled(result.session.id, None, NOW + timedelta(seconds=8))  # type: ignore[attr-defined]
    assert failed is not None and failed.failure is not None and "设备离线" in failed.failure
    db.commit()
    state.online = True
    db.commit()
    again = scan(service, signer, welder, machine, now=NOW + timedelta(seconds=30))
    db.commit()
    refusal = CommandAck(again.unlock.command_id, device_id, 9, None, NOW)  # type: ignore[attr-defined]
    refused = service.unlock_settled(again.session.id, refusal, NOW + timedelta(seconds=31))  # type: ignore[attr-defined]
    assert refused is not None and refused.failure is not None and "设备内部错误" in refused.failure


def test_an_acked_unlock_makes_the_session_active(
    db: Session, settings: Settings, world: World, service: ScanService, signer: LabelSigner
) -> None:
    machine, device_id, _ = live_machine(db, settings, world)
    result = scan(service, signer, user(db, "welder_one"), machine)
    db.commit()
    ack = CommandAck(
        result.unlock.command_id, device_id, 0, "unlocked", NOW + timedelta(milliseconds=5)
    )  # type: ignore[attr-defined]
    active = service.unlock_settled(result.session.id, ack, NOW + timedelta(milliseconds=6))  # type: ignore[attr-defined]
    assert active is not None and active.status == "active"
    assert active.unlocked_at == NOW + timedelta(milliseconds=5)


def test_stale_sessions_are_settled_by_the_next_look(
    db: Session, settings: Settings, world: World, service: ScanService, signer: LabelSigner
) -> None:
    """A web process that died while waiting leaves a session ``starting``: the
    next scan settles it from the command's row."""
    machine, _, _ = live_machine(db, settings, world)
    welder = user(db, "welder_one")
    first = scan(service, signer, welder, machine)
    db.commit()
    later = NOW + timedelta(minutes=1)
    again = scan(service, signer, welder, machine, now=later)
    db.commit()
    old = db.get(WorkSession, first.session.id)  # type: ignore[attr-defined]
    assert old is not None and old.status == "failed"
    assert again.session.id != old.id  # type: ignore[attr-defined]

    # An acked one becomes active instead; and one past its time limit ends.
    command = db.get(DeviceCommand, again.session.unlock_command_id)  # type: ignore[attr-defined]
    assert command is not None
    command.status, command.finished_at = "acked", later + timedelta(seconds=1)
    db.commit()
    service.settle_stale(later + timedelta(minutes=1), machine_id=machine.id)
    db.commit()
    current = db.get(WorkSession, again.session.id)  # type: ignore[attr-defined]
    assert current is not None and current.status == "active"
    service.settle_stale(current.valid_until + timedelta(seconds=1), machine_id=machine.id)
    db.commit()
    assert (current.status, current.end_reason) == ("ended", "time_limit")


def test_phone_without_position(
    db: Session, settings: Settings, world: World, service: ScanService, signer: LabelSigner
) -> None:
    machine, _, _ = live_machine(db, settings, world)
    welder = user(db, "welder_one")
    result = scan(service, signer, welder, machine, None)
    db.commit()
    assert result.allowed and result.record.warning_codes == ["NO_POSITION"]  # type: ignore[attr-defined]
    assert result.record.phone_lat is None and result.record.distance_m is None  # type: ignore[attr-defined]

    strict = ScanService(db, settings.model_copy(update={"scan_require_position": True}))
    other, _, _ = live_machine(db, settings, world)
    service.end_session(welder, result.session.id, NOW + timedelta(seconds=5))  # type: ignore[attr-defined]
    refused = scan(strict, signer, welder, other, None, now=NOW + timedelta(seconds=6))
    assert refused.record.reason_codes == ["NO_POSITION"]  # type: ignore[attr-defined]


def test_special_period_over_the_area_blocks(
    db: Session, settings: Settings, world: World, service: ScanService, signer: LabelSigner
) -> None:
    machine, _, _ = live_machine(db, settings, world)
    district = world.enterprises["A"].area_path.split("/")
    db.add(
        SpecialPeriod(
            title="进博会保障",
            kind="ban_hot_work",
            jurisdiction_id=world.enterprises["A"].jurisdiction_id,
            area_path="/".join(district[:3]) + "/",
            sectors=None,
            starts_at=NOW - timedelta(hours=1),
            ends_at=NOW + timedelta(days=1),
            declared_at=NOW - timedelta(days=2),
        )
    )
    db.commit()
    result = scan(service, signer, user(db, "welder_one"), machine)
    assert result.record.reason_codes == ["SPECIAL_PERIOD"]  # type: ignore[attr-defined]
    assert "进博会保障" in result.record.reasons[0]["message"]  # type: ignore[attr-defined]


def test_end_session_locks_and_is_idempotent(
    db: Session, settings: Settings, world: World, service: ScanService, signer: LabelSigner
) -> None:
    machine, _, _ = live_machine(db, settings, world)
    welder = user(db, "welder_one")
    started = scan(service, signer, welder, machine)
    db.commit()
    ended = service.end_session(welder, started.session.id, NOW + timedelta(hours=1))  # type: ignore[attr-defined]
    db.commit()
    session = ended.session
    assert (session.status, session.end_reason) == ("ended", "welder")
    assert session.ended_at == NOW + timedelta(hours=1)
    assert ended.lock is not None
    lock = db.get(DeviceCommand, session.lock_command_id)
    assert lock is not None and (lock.cmd, lock.status, lock.reason) == (
        "lock",
        "queued",
        session.id,
    )
    # The unlock still waiting is given up: it must not unlock after the end.
    unlock = db.get(DeviceCommand, session.unlock_command_id)
    assert unlock is not None and unlock.status == "expired"
    twice = service.end_session(welder, session.id, NOW + timedelta(hours=2))
    assert twice.lock is None and twice.session.ended_at == NOW + timedelta(hours=1)
    # Another user's session is not found.
    with pytest.raises(NotFound):
        service.end_session(user(db, "installer_cn"), session.id, NOW)


def test_ending_an_active_session_gives_up_a_re_sent_unlock(
    db: Session, settings: Settings, world: World, service: ScanService, signer: LabelSigner
) -> None:
    """After a chip's restart the platform re-sends the unlock of the active session
    (unlock/reboot.py); 结束作业 while it is still queued must give it up, or it
    would switch the machine on just before the lock."""
    machine, _, _ = live_machine(db, settings, world)
    welder = user(db, "welder_one")
    started = scan(service, signer, welder, machine)
    db.commit()
    work = db.get(WorkSession, started.session.id)  # type: ignore[attr-defined]
    assert work is not None
    first = db.get(DeviceCommand, work.unlock_command_id)
    assert first is not None
    first.status, work.status = "acked", "active"
    resent = service.commands.issue(
        machine,
        "unlock",
        dict(first.args),
        now=NOW + timedelta(minutes=5),
        ttl_s=settings.unlock_command_ttl_s,
        reason=work.id,
    )
    work.unlock_command_id = resent.id
    db.commit()
    service.end_session(welder, work.id, NOW + timedelta(minutes=6))
    db.commit()
    db.refresh(resent)
    db.refresh(first)
    assert (resent.status, first.status) == ("expired", "acked")


def test_only_welders_scan(
    db: Session, settings: Settings, world: World, service: ScanService, signer: LabelSigner
) -> None:
    machine, _, _ = live_machine(db, settings, world)
    with pytest.raises(PermissionDenied):
        scan(service, signer, user(db, "insp_xinjing"), machine)


def test_no_id_number_is_logged(
    db: Session,
    settings: Settings,
    world: World,
    service: ScanService,
    signer: LabelSigner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    machine, _, _ = live_machine(db, settings, world)
    caplog.set_level("DEBUG")
    scan(service, signer, user(db, "welder_one"), machine)
    service.scan(user(db, "welder_one"), "WGBAD", "1AAAAAAAAAAAAA", None, None, utcnow())
    assert "310105" not in caplog.text
