"""Device pages: a machine's timeline (paged), the installer's phone page that
binds a chip to a machine (绑定芯片), the binding photos, and the device alarm
list (设备报警)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, RedirectResponse, Response

from weldguard.auth.models import Role
from weldguard.deps import DbSession
from weldguard.device.registry import DeviceRegistry, DeviceSecrets
from weldguard.device.views_repository import (
    AlarmFilter,
    DeviceViewRepository,
    MachineLive,
)
from weldguard.errors import DomainError, NotFound, PermissionDenied
from weldguard.machine.models import MachineStatus
from weldguard.machine.service import DEVICE_ID_RE
from weldguard.photos import (
    MAX_PHOTO_BYTES,
    PhotoRejected,
    photo_file,
    photo_media_type,
    read_photo,
    store_photo,
)
from weldguard.web.common import (
    bool_param,
    choice_param,
    filter_enterprise,
    int_param,
    is_htmx,
    make_pager,
    render,
    settings_of,
    text_param,
)
from weldguard.web.context import OVERSIGHT_ROLES, PageViewer, Viewer, area_options, resolve_area
from weldguard.web.csrf import verify_csrf
from weldguard.web.device_views import (
    ALARM_KIND_LABELS,
    alarm_detail,
    alarm_kind_label,
    build_timeline,
    format_cursor,
    live_view,
    parse_cursor,
    severity_label,
    severity_tone,
)

router = APIRouter()

# Who may fit chips: installers in their area, enterprises on their own
# machines, the admin everywhere (each within their scope).
INSTALL_ROLES = frozenset({Role.INSTALLER, Role.ADMIN, Role.ENTERPRISE_ADMIN, Role.SAFETY_OFFICER})
ALARM_ROLES = OVERSIGHT_ROLES

# The platform's machine code (see machine.service.new_machine_code).
MACHINE_CODE = re.compile(r"WG[0-9A-HJKMNP-TV-Z]{8}")
ALARM_KIND_OPTIONS = {k.value: label for k, label in ALARM_KIND_LABELS.items()}
ALARM_STATE_OPTIONS = {"open": "未消除", "cleared": "已消除"}


def machine_code_from(text: str) -> str | None:
    """The machine code in what the installer scanned or typed: the bare code,
    or a label URL carrying it in its path or query, signed or not (/s/{code}.{sig},
    /scan/{code}?sig=…). The signature is not needed here: fitting is a signed-in
    action limited by the installer's scope."""
    text = text.strip()
    if not text or len(text) > 2048:
        return None
    candidates: list[str] = []
    if "://" in text or text.startswith("/"):
        parts = urlsplit(text)
        candidates += [value for _, value in parse_qsl(parts.query)]
        candidates += [segment for segment in parts.path.split("/") if segment]
        candidates.append(parts.fragment)
    else:
        candidates.append(text)
    for candidate in candidates:
        # A signed label's path segment is "{code}.{signature}" (/s/…).
        for part in candidate.split("."):
            match = MACHINE_CODE.fullmatch(part.strip().upper())
            if match:
                return match.group(0)
    return None


# --- machine timeline (the machine page itself is in pages_register) -------------
@router.get("/machines/{machine_id}/timeline")
def machine_timeline(
    request: Request, machine_id: int, viewer: PageViewer, session: DbSession
) -> Response:
    repo = DeviceViewRepository(session)
    live = repo.machine_live(viewer.scope, machine_id)
    if live is None:
        raise NotFound("焊机不存在")
    until = parse_cursor(request.query_params.get("until"))
    if not is_htmx(request):
        target = f"/machines/{machine_id}"
        if until is not None:
            target += f"?until={format_cursor(until)}"
        return RedirectResponse(target + "#timeline", status_code=303)
    bindings = repo.bindings_of(viewer.scope, machine_id)
    timeline = build_timeline(repo, live.machine, bindings, until, viewer.now)
    return render(
        request,
        "machines/_timeline.html",
        {"viewer": viewer, "machine": live.machine, "timeline": timeline, "paged": True},
    )


@router.get("/machines/{machine_id}/bindings/{binding_id}/photo")
def binding_photo(
    request: Request, machine_id: int, binding_id: int, viewer: PageViewer, session: DbSession
) -> Response:
    found = DeviceViewRepository(session).visible_binding(viewer.scope, binding_id)
    if found is None or found[2].id != machine_id or not found[0].photo_path:
        raise NotFound("照片不存在")
    relative = found[0].photo_path
    path = photo_file(settings_of(request).data_dir, relative)
    if path is None:
        raise NotFound("照片不存在")
    return FileResponse(
        path,
        media_type=photo_media_type(relative),
        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
    )


# --- installer: bind a chip ----------------------------------------------------------
def _require_installer(viewer: Viewer) -> None:
    if viewer.role not in INSTALL_ROLES:
        raise PermissionDenied("当前账号无权绑定芯片")


@dataclass
class InstallForm:
    machine: str = ""
    device_id: str = ""
    lat: str = ""
    lon: str = ""
    accuracy: str = ""
    replace: bool = False


@dataclass
class InstallProblem:
    message: str
    where: str = ""
    status: int = 422
    offer_replace: bool = False
    notes: list[str] = field(default_factory=list)


def _install_page(
    request: Request,
    viewer: Viewer,
    form: InstallForm,
    *,
    problem: InstallProblem | None = None,
    target: MachineLive | None = None,
) -> Response:
    return render(
        request,
        "install/form.html",
        {
            "viewer": viewer,
            "active": "install",
            "form": form,
            "problem": problem,
            "target": target,
            "target_live": live_view(target.chip, target.state, viewer.now) if target else None,
            "max_photo_mb": MAX_PHOTO_BYTES // 1024 // 1024,
        },
        status_code=problem.status if problem else 200,
    )


@router.get("/install")
def install_page(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    _require_installer(viewer)
    raw = text_param(request.query_params.get("machine"), 2048) or ""
    form = InstallForm(machine=raw)
    target = None
    code = machine_code_from(raw) if raw else None
    if code:
        form.machine = code
        target = DeviceViewRepository(session).visible_machine_by_code(viewer.scope, code)
    return _install_page(request, viewer, form, target=target)


@router.get("/install/machine")
def install_machine_lookup(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    """htmx: the machine card for what was scanned, so the installer sees that
    it is the right machine before fitting."""
    _require_installer(viewer)
    raw = text_param(request.query_params.get("machine"), 2048) or ""
    code = machine_code_from(raw)
    target = (
        DeviceViewRepository(session).visible_machine_by_code(viewer.scope, code) if code else None
    )
    return render(
        request,
        "install/_machine.html",
        {
            "viewer": viewer,
            "raw": raw,
            "code": code,
            "target": target,
            "target_live": live_view(target.chip, target.state, viewer.now) if target else None,
        },
    )


def _parse_position(form: InstallForm) -> tuple[tuple[float, float] | None, InstallProblem | None]:
    if not form.lat and not form.lon:
        return None, None
    try:
        lat, lon = float(form.lat), float(form.lon)
    except ValueError:
        return None, InstallProblem("手机定位数据无效，请重新获取定位或留空", "position")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None, InstallProblem("手机定位数据无效，请重新获取定位或留空", "position")
    return (round(lat, 7), round(lon, 7)), None


def _read_photo(upload: UploadFile | None) -> tuple[bytes, str] | InstallProblem:
    if upload is None or not upload.filename:
        return InstallProblem("请拍摄芯片安装照片", "photo")
    read = read_photo(upload.file)
    if isinstance(read, PhotoRejected):
        return InstallProblem(read.reason, "photo", read.status)
    return read


def _check_install(
    repo: DeviceViewRepository, viewer: Viewer, form: InstallForm
) -> tuple[MachineLive | None, InstallProblem | None]:
    """Everything that can be known before writing: the machine (in scope), the
    chip (registered), and whether either is already taken."""
    if not form.machine:
        return None, InstallProblem("请扫描焊机标签二维码或输入焊机编码", "machine")
    code = machine_code_from(form.machine)
    if code is None:
        return None, InstallProblem(
            "无法识别焊机编码：请扫描焊机上的平台标签，或输入以 WG 开头的 10 位编码", "machine"
        )
    target = repo.visible_machine_by_code(viewer.scope, code)
    if target is None:
        return None, InstallProblem(
            f"找不到焊机 {code}，或该焊机不在您的管辖范围内", "machine", 404
        )
    form.machine = code
    if target.machine.status == MachineStatus.RETIRED.value:
        return target, InstallProblem(f"焊机 {code} 已报废，不能加装芯片", "machine")
    if not form.device_id:
        return target, InstallProblem("请扫描或输入芯片设备号", "device_id")
    if not DEVICE_ID_RE.match(form.device_id):
        return target, InstallProblem(
            "芯片设备号格式不对：应为 4–32 位字母、数字、-、_", "device_id"
        )
    chip = repo.chip_by_device_id(form.device_id)
    if chip is None:
        return target, InstallProblem(
            f"芯片 {form.device_id} 未在平台登记：请核对设备号，或联系平台管理员先登记该芯片",
            "device_id",
            404,
        )
    if target.chip is not None and target.chip.id == chip.id:
        return target, InstallProblem(
            f"芯片 {chip.device_id} 已绑定在焊机 {code} 上，无需重复绑定", "device_id", 409
        )
    holder = repo.machine_holding_chip(chip.id)
    notes: list[str] = []
    if holder is not None:
        if not repo.machine_visible(viewer.scope, holder.id):
            return target, InstallProblem(
                f"芯片 {chip.device_id} 已装在另一台不在您管辖范围内的焊机上，"
                "不能在此更换；请联系平台管理员",
                "device_id",
                409,
            )
        notes.append(f"芯片 {chip.device_id} 目前装在焊机 {holder.code} 上，确认后将从该焊机拆下")
    if target.chip is not None:
        notes.append(f"焊机 {code} 目前装有芯片 {target.chip.device_id}，确认后将拆下旧芯片")
    if notes and not form.replace:
        return target, InstallProblem(
            "芯片或焊机已有绑定：如确需更换，请勾选“确认更换”后重新提交（需重新拍照）",
            "replace",
            409,
            offer_replace=True,
            notes=notes,
        )
    return target, None


@router.post("/install")
def install_submit(
    request: Request,
    viewer: PageViewer,
    session: DbSession,
    machine: Annotated[str, Form(max_length=2048)] = "",
    device_id: Annotated[str, Form(max_length=64)] = "",
    lat: Annotated[str, Form(max_length=32)] = "",
    lon: Annotated[str, Form(max_length=32)] = "",
    accuracy: Annotated[str, Form(max_length=32)] = "",
    replace: Annotated[str, Form(max_length=8)] = "",
    photo: Annotated[UploadFile | None, File()] = None,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    verify_csrf(request, csrf_token)
    _require_installer(viewer)
    form = InstallForm(
        machine=machine.strip(),
        device_id=device_id.strip(),
        lat=lat.strip(),
        lon=lon.strip(),
        accuracy=accuracy.strip(),
        replace=bool_param(replace) is True,
    )
    repo = DeviceViewRepository(session)
    target, problem = _check_install(repo, viewer, form)
    position = None
    if problem is None:
        position, problem = _parse_position(form)
    photo_read = _read_photo(photo) if problem is None else None
    if isinstance(photo_read, InstallProblem):
        problem = photo_read
    if problem is not None or target is None or not isinstance(photo_read, tuple):
        return _install_page(request, viewer, form, problem=problem, target=target)

    content, extension = photo_read
    settings = settings_of(request)
    relative = store_photo(settings.data_dir, content, extension)
    try:
        registry = DeviceRegistry(session, DeviceSecrets(settings.resolved_secret_key()))
        binding = registry.bind(
            target.machine.code,
            form.device_id,
            viewer.name,
            viewer.now,
            fitted_by_user_id=viewer.user.id,
            position=position,
        )
        binding.photo_path = relative
        session.flush()
    except DomainError as error:
        # Nothing half-written: drop what bind may have flushed and the photo.
        session.rollback()
        (settings.data_dir / relative).unlink(missing_ok=True)
        failed = InstallProblem(error.message, "", error.status_code)
        failed.notes = [d.reason for d in error.details]
        return _install_page(request, viewer, form, problem=failed, target=None)
    except BaseException:
        (settings.data_dir / relative).unlink(missing_ok=True)
        raise
    return RedirectResponse(f"/install/bindings/{binding.id}", status_code=303)


@router.get("/install/bindings/{binding_id}")
def install_done(
    request: Request, binding_id: int, viewer: PageViewer, session: DbSession
) -> Response:
    found = DeviceViewRepository(session).visible_binding(viewer.scope, binding_id)
    if found is None:
        raise NotFound("绑定记录不存在")
    binding, chip, machine, enterprise = found
    return render(
        request,
        "install/done.html",
        {
            "viewer": viewer,
            "active": "install",
            "binding": binding,
            "chip": chip,
            "machine": machine,
            "enterprise": enterprise,
            "current": binding.removed_at is None,
        },
    )


# --- device alarms ---------------------------------------------------------------------
@router.get("/alarms")
def alarm_list(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    if viewer.role not in ALARM_ROLES:
        raise PermissionDenied("当前账号无权查看设备报警")
    params = request.query_params
    node = resolve_area(session, viewer.scope, text_param(params.get("area")))
    enterprise = filter_enterprise(session, viewer.scope, params.get("enterprise_id"))
    state = choice_param(params.get("state"), ALARM_STATE_OPTIONS)
    f = AlarmFilter(
        kind=choice_param(params.get("kind"), ALARM_KIND_OPTIONS),
        open=None if state is None else state == "open",
        area_path=node.path if node else None,
        enterprise_id=enterprise.id if enterprise else None,
        machine_id=int_param(params.get("machine_id")),
    )
    page = DeviceViewRepository(session).alarm_page(
        viewer.scope, f, int_param(params.get("page")) or 1, settings_of(request).page_size
    )
    rows = [
        {
            "alarm": row.alarm,
            "machine": row.machine,
            "enterprise": row.enterprise,
            "kind": alarm_kind_label(row.alarm.kind),
            "severity": severity_label(row.alarm.severity),
            "tone": severity_tone(row.alarm.severity),
            "detail": "，".join(alarm_detail(row.alarm)),
        }
        for row in page.items
    ]
    context: dict[str, object] = {
        "viewer": viewer,
        "active": "alarms",
        "page": page,
        "rows": rows,
        "pager": make_pager("/alarms", params, page.page, page.pages, page.total),
        "params": params,
        "kinds": ALARM_KIND_OPTIONS,
        "states": ALARM_STATE_OPTIONS,
        "areas": area_options(session, viewer.scope),
        "selected_area": node.code if node else "",
        "filter_enterprise": enterprise,
    }
    template = "alarms/_results.html" if is_htmx(request) else "alarms/list.html"
    return render(request, template, context)
