"""The scan page (扫码开机), phone first: what a scanned label opens.

GET /scan/{code}?sig=… (where /s/{code}.{sig} redirects) shows the machine and, by
who is looking:

- nobody signed in: a phone sign-in form (mobile number + password, 记住我);
- a welder: the 扫码开机 button (the phone's position, an idempotency key) and,
  when they already work on it, their session with 结束作业;
- an installer: on to the binding page, /install?machine=CODE;
- an inspector, a regulator, an enterprise user, an admin: the machine's status
  now (chip online, locked or in use, by whom with a masked ID number, that
  welder's certificates, the permit), within their scope.

**Out-of-scope rule.** A welder is in no enterprise's scope but their employers',
yet must be able to see what they are about to unlock, and an outside welder must
see why they may not. The *signed label* is what grants that: whoever holds a valid
signature for a code (in practice, whoever stands in front of the machine) sees the
minimal machine information printed on the label anyway: code, make and model, the
enterprise's name and the site. Nothing else is shown without a scope (no welder,
no state, no history), and a label that does not verify shows nothing at all.

POST /scan/{code} runs :class:`ScanService.scan` in a transaction of its own,
commits, hands the unlock to the command bus on the event loop, and redirects to
the record's page, whose session panel (htmx) waits for the chip's ack.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from weldguard.auth.models import Role, TokenKind, User
from weldguard.auth.service import AuthService
from weldguard.db import statement_seconds, transaction
from weldguard.deps import SESSION_COOKIE, AppState, DbSession, Now, optional_user
from weldguard.device.commands import FINAL_STATUSES, STATUS_LABELS
from weldguard.device.models import DeviceCommand
from weldguard.device.views_repository import is_online
from weldguard.domain.authorization import PhonePosition
from weldguard.domain.geo import GeoPoint
from weldguard.errors import AccountLocked, AuthenticationFailed, NotFound
from weldguard.unlock.facts import (
    MachinePlace,
    load_machine_place,
    lock_state,
    machine_place_by_code,
)
from weldguard.unlock.labels import (
    CODE_PATTERN,
    REJECTED_SCANS,
    LabelRejected,
    RejectReason,
    signer_for,
)
from weldguard.unlock.models import ScanRecord, SessionStatus, WorkSession
from weldguard.unlock.repository import ScanRepository
from weldguard.unlock.service import (
    ScanService,
    _rejection,
    complete_lock,
    complete_unlock,
)
from weldguard.web.common import local_today, render, settings_of
from weldguard.web.csrf import EXPIRED_FORM, csrf_ok, verify_csrf
from weldguard.welder.service import status_of

log = logging.getLogger(__name__)
router = APIRouter()

T = TypeVar("T")
# The session panel waits this long per request for the chip before answering
# "still starting" (htmx then asks again).
PANEL_WAIT_S = 4.0
_MAX_ACCURACY_M = 100_000.0

# Deliveries running on this process's loop, by session id: the panel awaits them
# instead of polling the database. Strong references: a task nobody holds can be
# collected before it finishes.
_deliveries: dict[str, asyncio.Task[Any]] = {}


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.weldguard
    return state


def _spawn(key: str, coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro, name=f"deliver-{key}")
    _deliveries[key] = task

    def done(finished: asyncio.Task[Any]) -> None:
        if _deliveries.get(key) is finished:
            del _deliveries[key]
        if not finished.cancelled() and finished.exception() is not None:
            log.error("delivery for session %s failed", key, exc_info=finished.exception())

    task.add_done_callback(done)


async def _in_transaction(request: Request, work: Callable[[Session], T]) -> T:
    """Runs ``work`` in a transaction of its own on a worker thread: committed
    before the endpoint goes on (the command must be in the database before the
    bus publishes it)."""
    factory = _state(request).session_factory
    submitted = time.perf_counter()
    timing = request.state.timing = {}

    def run() -> T:
        started, cpu = time.perf_counter(), time.thread_time()
        worked = started
        try:
            with transaction(factory) as session:
                result = work(session)
                timing["sql"] = statement_seconds(session)
                worked = time.perf_counter()
                return result
        finally:
            ended = time.perf_counter()
            timing["wait"] = started - submitted
            timing["tx"] = ended - started
            timing["txcpu"] = time.thread_time() - cpu
            timing["commit"] = ended - worked

    return await run_in_threadpool(run)


def _server_timing(request: Request, response: Response, since: float) -> Response:
    """Where the request's time went, for the browser's developer tools and the
    latency bench: waiting for a worker thread, the transaction (wall, that
    thread's CPU, its statements' round trips, its commit) and the whole handler,
    in ms."""
    timing: dict[str, float] = {**getattr(request.state, "timing", {})}
    timing["handler"] = time.perf_counter() - since
    response.headers["server-timing"] = ", ".join(
        f"{name};dur={seconds * 1000:.2f}" for name, seconds in timing.items()
    )
    return response


def _signed_in(session: Session, request: Request, now: datetime) -> User | None:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    return AuthService(session, settings_of(request)).user_for_token(raw, now)


def _scan_url(code: str, sig: str) -> str:
    return f"/scan/{code}?{urlencode({'sig': sig})}"


def _float(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def phone_position(lat: str | None, lon: str | None, accuracy: str | None) -> PhonePosition | None:
    """The browser's position from the form; anything malformed counts as none."""
    latitude, longitude = _float(lat), _float(lon)
    if latitude is None or longitude is None:
        return None
    try:
        point = GeoPoint(latitude, longitude)
    except ValueError:
        return None
    radius = _float(accuracy)
    if radius is not None and not 0 <= radius <= _MAX_ACCURACY_M:
        radius = None
    return PhonePosition(point, radius)


# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class SessionView:
    """A work session as the panel shows it."""

    session: WorkSession
    unlock: DeviceCommand | None
    lock: DeviceCommand | None

    @property
    def status(self) -> str:
        return self.session.status

    @property
    def waiting(self) -> bool:
        """Still to ask again: the unlock in progress, or the lock after the end."""
        if self.session.status == SessionStatus.STARTING.value:
            return True
        return (
            self.session.status == SessionStatus.ENDED.value
            and self.lock is not None
            and self.lock.status not in FINAL_STATUSES
        )

    @property
    def lock_label(self) -> str:
        if self.lock is None:
            return ""
        if self.lock.status == "acked":
            return "焊机已上锁"
        if self.lock.status in ("queued", "sent"):
            return "正在上锁…"
        return f"上锁指令：{STATUS_LABELS.get(self.lock.status, self.lock.status)}"


def _session_view(service: ScanService, work: WorkSession) -> SessionView:
    return SessionView(
        work, service.command(work.unlock_command_id), service.command(work.lock_command_id)
    )


@dataclass(frozen=True)
class WelderOnMachine:
    name: str
    id_masked: str
    certificates: list[dict[str, Any]]
    session: WorkSession


def _status_view(session: Session, place: MachinePlace, now: datetime) -> dict[str, Any]:
    """What an inspector, a regulator or the enterprise sees of a machine now."""
    repo = ScanRepository(session)
    state = place.state
    here = repo.open_session_on(place.machine.id)
    who = None
    if here is not None:
        welder = repo.welder(here.welder_id)
        if welder is not None:
            today = local_today(now)
            certificates = [
                {
                    "kind": cert.kind,
                    "item": cert.item,
                    "number_masked": cert.number_masked,
                    "expiry_date": cert.expiry_date,
                    "status": status_of(cert, today).value,
                }
                for cert in repo.certificates_of(welder.id)
            ]
            who = WelderOnMachine(welder.name, welder.id_number_masked, certificates, here)
    locked = lock_state(state)
    return {
        "online": is_online(state, now),
        "last_seen": state.last_seen_at if state is not None else None,
        "locked": locked,
        "in_use": who,
        "permit": None,  # hot-work permits come with the next issue
    }


def _machine_page(
    request: Request,
    place: MachinePlace,
    sig: str,
    *,
    user: User | None,
    context: dict[str, Any],
    status_code: int = 200,
) -> Response:
    settings = settings_of(request)
    return render(
        request,
        "scan/machine.html",
        {
            "place": place,
            "machine": place.machine,
            "enterprise": place.enterprise,
            "site": place.site,
            "sig": sig,
            "user": user,
            "role": Role(user.role) if user is not None else None,
            "scan_url": _scan_url(place.machine.code, sig),
            "max_distance_m": settings.scan_max_distance_m,
            "require_position": settings.scan_require_position,
            "remember_days": settings.phone_session_days,
            **context,
        },
        status_code=status_code,
    )


def _invalid_label(
    request: Request, session: Session, code: str, sig: str, user: User | None, now: datetime
) -> Response:
    signer = signer_for(settings_of(request))
    rejected = (
        _rejection(signer, code, sig)
        if CODE_PATTERN.fullmatch(code)
        else LabelRejected(RejectReason.MALFORMED)
    )
    if rejected.reason is RejectReason.BAD_SIGNATURE and signer.verify_label(code, sig):
        rejected = LabelRejected(RejectReason.UNKNOWN_MACHINE, code)
    REJECTED_SCANS.record(rejected, request.client.host if request.client else None)
    ScanService(session, settings_of(request), signer=signer).record_invalid_label(
        rejected, code, user, now
    )
    return render(request, "labels/invalid.html", {}, status_code=404)


def _verified_place(request: Request, session: Session, code: str, sig: str) -> MachinePlace | None:
    if not CODE_PATTERN.fullmatch(code) or not signer_for(settings_of(request)).verify_label(
        code, sig
    ):
        return None
    return machine_place_by_code(ScanRepository(session), code)


# --------------------------------------------------------------------------- routes


@router.get("/scan/{code}")
def scan_page(request: Request, code: str, session: DbSession, now: Now) -> Response:
    sig = request.query_params.get("sig", "")[:32]
    user = optional_user(request, session, _state(request), now)
    place = _verified_place(request, session, code, sig)
    if place is None:
        return _invalid_label(request, session, code, sig, user, now)
    if user is None:
        return _machine_page(request, place, sig, user=None, context={"login": {}})
    role = Role(user.role)
    if role == Role.INSTALLER:
        return RedirectResponse(f"/install?{urlencode({'machine': code})}", status_code=303)
    if role == Role.WELDER:
        service = ScanService(session, settings_of(request))
        service.settle_stale(now, machine_id=place.machine.id, welder_id=user.welder_id)
        here = ScanRepository(session).open_session_on(place.machine.id)
        mine = here if here is not None and here.welder_id == user.welder_id else None
        return _machine_page(
            request,
            place,
            sig,
            user=user,
            context={
                "idempotency_key": secrets.token_urlsafe(16),
                "mine": _session_view(service, mine) if mine is not None else None,
            },
        )
    scope = AuthService(session, settings_of(request)).scope_for(user)
    visible = ScanRepository(session).visible_machine(scope, place.machine.id) is not None
    status = _status_view(session, place, now) if visible else None
    return _machine_page(
        request, place, sig, user=user, context={"status": status, "out_of_scope": not visible}
    )


@router.post("/scan/{code}/login")
def scan_login(
    request: Request,
    code: str,
    session: DbSession,
    now: Now,
    phone: Annotated[str, Form(max_length=32)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    remember: Annotated[str, Form(max_length=8)] = "",
    sig: Annotated[str, Form(max_length=32)] = "",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    """Phone sign-in on the scan page; 记住我 keeps the phone signed in for
    ``phone_session_days`` instead of a working day."""
    place = _verified_place(request, session, code, sig)
    if place is None:
        return _invalid_label(request, session, code, sig, None, now)
    form = {"phone": phone, "remember": bool(remember)}
    if not csrf_ok(request, csrf_token):
        return _machine_page(
            request,
            place,
            sig,
            user=None,
            context={"login": form, "error": EXPIRED_FORM},
            status_code=403,
        )
    settings = settings_of(request)
    service = AuthService(session, settings)
    try:
        user = service.authenticate_phone(phone, password, now)
    except (AuthenticationFailed, AccountLocked) as exc:
        session.commit()  # the failure counter (and a lockout) must survive
        message = "手机号或密码错误" if isinstance(exc, AuthenticationFailed) else exc.message
        return _machine_page(
            request,
            place,
            sig,
            user=None,
            context={"login": form, "error": message},
            status_code=exc.status_code,
        )
    lifetime = (
        timedelta(days=settings.phone_session_days)
        if remember
        else timedelta(hours=settings.session_hours)
    )
    raw, _token = service.issue_token(user, TokenKind.SESSION, now, name="phone", lifetime=lifetime)
    response = RedirectResponse(_scan_url(code, sig), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        raw,
        max_age=int(lifetime.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )
    return response


@router.post("/scan/{code}")
async def scan_submit(
    request: Request,
    code: str,
    now: Now,
    sig: Annotated[str, Form(max_length=32)] = "",
    idempotency_key: Annotated[str, Form(max_length=64)] = "",
    lat: Annotated[str, Form(max_length=32)] = "",
    lon: Annotated[str, Form(max_length=32)] = "",
    accuracy: Annotated[str, Form(max_length=32)] = "",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    """扫码开机: decide, record, and on allow send the unlock after the commit."""
    since = time.perf_counter()
    state = _state(request)
    verify_csrf(request, csrf_token)
    position = phone_position(lat, lon, accuracy)
    raw_token = request.cookies.get(SESSION_COOKIE)

    def work(session: Session) -> tuple[Response | None, int | None, Any]:
        bus = state.command_bus
        result = (
            ScanService(
                session, state.settings, claim_for_bus=bus is not None and bus.connected
            ).scan_signed_in(raw_token, code, sig, position, idempotency_key, now)
            if raw_token
            else None
        )
        if result is None:  # nobody signed in, or not as a welder: the page says
            return RedirectResponse(_scan_url(code, sig), status_code=303), None, None
        if result.record.outcome == "invalid_label":
            return None, None, "invalid"
        unlock = (
            (result.session.id, result.unlock)
            if result.session is not None and result.unlock is not None
            else None
        )
        return None, result.record.id, unlock

    early, record_id, unlock = await _in_transaction(request, work)
    if early is not None:
        return early
    if unlock == "invalid":
        return render(request, "labels/invalid.html", {}, status_code=404)
    if unlock is not None:
        session_id, order = unlock
        _spawn(
            session_id,
            complete_unlock(
                state.command_bus,
                state.session_factory,
                state.settings,
                session_id,
                order,
                clock=_clock_from(now),
            ),
        )
        # One turn of the loop: the delivery publishes the unlock (it does not
        # wait for anything before that) ahead of this response being written.
        await asyncio.sleep(0)
    return _server_timing(
        request, RedirectResponse(f"/scan/records/{record_id}", status_code=303), since
    )


def _clock_from(now: datetime) -> Callable[[], datetime]:
    """The request's clock carried on: the settling of its unlock happens on the
    same time line as its decision (the request's clock is injectable)."""
    started = time.monotonic()
    return lambda: now + timedelta(seconds=time.monotonic() - started)


def _welder(request: Request, session: Session, now: datetime) -> User:
    user = optional_user(request, session, _state(request), now)
    if user is None:
        raise AuthenticationFailed("请先登录")
    return user


@router.get("/scan/records/{record_id}")
def scan_record_page(request: Request, record_id: int, session: DbSession, now: Now) -> Response:
    """The decision of one of the signed-in user's scans, and its session."""
    user = _welder(request, session, now)
    service = ScanService(session, settings_of(request))
    record = service.own_record(user, record_id)
    place = None
    if record.machine_id is not None:
        repo = ScanRepository(session)
        machine = repo.machine(record.machine_id)
        place = load_machine_place(repo, machine) if machine is not None else None
    work = service.repo.work_session(record.session_id) if record.session_id else None
    return render(
        request,
        "scan/result.html",
        {
            "user": user,
            "record": record,
            "place": place,
            "blocking": [r for r in record.reasons if r.get("blocking")],
            "warnings": [r for r in record.reasons if not r.get("blocking")],
            "view": _session_view(service, work) if work is not None else None,
            "rescan_url": _rescan_url(request, record),
        },
    )


def _rescan_url(request: Request, record: ScanRecord) -> str | None:
    if not record.machine_code or not CODE_PATTERN.fullmatch(record.machine_code):
        return None
    return _scan_url(
        record.machine_code, signer_for(settings_of(request)).sign(record.machine_code)
    )


@router.get("/scan/sessions/{session_id}/panel")
async def session_panel(request: Request, session_id: str, now: Now) -> Response:
    """htmx: the session's panel, answered once the chip has (or after a few
    seconds, when htmx asks again)."""
    state = _state(request)

    def read(session: Session) -> SessionView:
        user = _signed_in(session, request, now)
        if user is None:
            raise NotFound("作业记录不存在")
        service = ScanService(session, state.settings)
        work = service.own_session(user, session_id)
        if work.status == SessionStatus.STARTING.value:
            service.settle_stale(now, machine_id=work.machine_id)
        return _session_view(service, work)

    view = await _in_transaction(request, read)
    if view.waiting:
        task = _deliveries.get(session_id)
        if task is not None and not task.done():
            # Neither cancels the delivery nor raises what it raises; a cancelled
            # request (the phone went away) still ends this handler.
            await asyncio.wait({task}, timeout=PANEL_WAIT_S)
        else:
            # Delivered by another process (or done): poll the rows briefly.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + PANEL_WAIT_S
            while view.waiting and loop.time() < deadline:
                await asyncio.sleep(0.2)
                view = await _in_transaction(request, read)
        view = await _in_transaction(request, read)
    return render(request, "scan/_panel.html", {"view": view})


@router.post("/scan/sessions/{session_id}/end")
async def end_session(
    request: Request,
    session_id: str,
    now: Now,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    """结束作业: the session ends and the machine is locked."""
    state = _state(request)
    verify_csrf(request, csrf_token)

    def work(session: Session) -> tuple[int | None, Any]:
        user = _signed_in(session, request, now)
        if user is None:
            raise AuthenticationFailed("请先登录")
        ended = ScanService(session, state.settings).end_session(user, session_id, now)
        return ended.session.scan_id, ended.lock

    scan_id, lock = await _in_transaction(request, work)
    if lock is not None:
        _spawn(
            session_id,
            complete_lock(state.command_bus, state.session_factory, state.settings, lock),
        )
    return RedirectResponse(f"/scan/records/{scan_id}" if scan_id else "/", status_code=303)
