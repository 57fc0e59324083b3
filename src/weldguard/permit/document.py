"""The hot-work permit (动火作业票) on paper, and the signed link to its live view.

The printed form carries a QR code of ``{public_base_url}/permits/{id}/live?sig=…``:
an inspector on site scans it and sees the permit as it stands now (status, the
fire watch's last check-in, the last gas sample). Paper goes stale the moment it
is printed; the link is what keeps it honest, and the signature is what tells a
printed permit from a forged one.

**Signature.** ``sig`` is one version character followed by the first 10 bytes of
HMAC-SHA256(key, "weldguard-permit-live|{version}|{id}|{number}") in RFC 4648
base32 without padding (16 characters). The key is derived from the platform
secret for this purpose only (``permit-live-v1``), never the label key: a leak
or rotation of one says nothing about the other. The number is signed with the
id so that a link cannot be moved to another database's permit of the same id.
The signature proves the paper came from the platform; it grants nothing: the
live view still needs a signed-in user whose scope covers the permit.

**Personal data.** The form shows welders' certificate numbers only masked (the
特种作业 number is "T" + the holder's ID number) and never an ID number.

**PDF.** A4, reportlab's built-in CID font STSong-Light (nothing embedded, as the
machine labels); ``invariant`` output, so two renderings of the same permit at
the same ``now`` are byte-identical.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import segno
from sqlalchemy.orm import Session

from weldguard.auth.models import Role
from weldguard.auth.scope import Scope
from weldguard.crypto import derive_key
from weldguard.domain.permits import (
    DEFAULT_PERMIT_POLICY,
    ApproverRole,
    HotWorkMethod,
    Permit,
    PermitLevel,
    PermitPolicy,
    PermitStatus,
    assess_level,
    gas_limit_percent,
    within_limit,
)
from weldguard.domain.permits.reasons import duration_text
from weldguard.enterprise.models import Site
from weldguard.machine.models import WeldingProcess
from weldguard.permit import models as m
from weldguard.permit.calendar_service import CalendarService
from weldguard.permit.service import PermitService

if TYPE_CHECKING:
    from reportlab.pdfgen.canvas import Canvas

    from weldguard.config import Settings

__all__ = [
    "EVENT_LABELS",
    "LIVE_KEY_PURPOSES",
    "PermitLinkSigner",
    "PermitSheet",
    "link_signer_for",
    "live_qr",
    "load_sheet",
    "permit_pdf",
]

# --- the signed live link ---------------------------------------------------------------
CURRENT_VERSION = "1"
#: version character -> HKDF purpose of its key (rotate as labels.py describes)
LIVE_KEY_PURPOSES: Mapping[str, bytes] = {"1": b"permit-live-v1"}
MAC_BYTES = 10
MAC_CHARS = 16  # ceil(10 * 8 / 5)
SIG_PATTERN = re.compile(rf"[0-9][A-Z2-7]{{{MAC_CHARS}}}")


class PermitLinkSigner:
    """Signs and checks the live-view links printed on permits."""

    def __init__(
        self,
        secret: str,
        public_base_url: str,
        *,
        purposes: Mapping[str, bytes] = LIVE_KEY_PURPOSES,
        current_version: str = CURRENT_VERSION,
    ) -> None:
        if current_version not in purposes:
            raise ValueError(f"no key for permit link version {current_version!r}")
        self._keys = {version: derive_key(secret, purpose) for version, purpose in purposes.items()}
        self._current = current_version
        self.public_base_url = public_base_url.rstrip("/")

    def _mac(self, version: str, permit_id: int, number: str) -> str:
        message = f"weldguard-permit-live|{version}|{permit_id}|{number}".encode()
        digest = hmac.new(self._keys[version], message, hashlib.sha256).digest()
        return base64.b32encode(digest[:MAC_BYTES]).decode().rstrip("=")

    def sign(self, permit_id: int, number: str) -> str:
        return self._current + self._mac(self._current, permit_id, number)

    def verify(self, permit_id: int, number: str, sig: str | None) -> bool:
        """True when ``sig`` is this platform's signature of the permit (constant time)."""
        if sig is None or not SIG_PATTERN.fullmatch(sig) or sig[0] not in self._keys:
            return False
        expected = sig[0] + self._mac(sig[0], permit_id, number)
        return hmac.compare_digest(expected.encode(), sig.encode())

    def live_path(self, permit_id: int, number: str) -> str:
        return f"/permits/{permit_id}/live?sig={self.sign(permit_id, number)}"

    def live_url(self, permit_id: int, number: str) -> str:
        """What the QR code on the printed permit holds."""
        return self.public_base_url + self.live_path(permit_id, number)


@lru_cache(maxsize=8)
def _cached_signer(secret: str, public_base_url: str) -> PermitLinkSigner:
    return PermitLinkSigner(secret, public_base_url)


def link_signer_for(settings: Settings) -> PermitLinkSigner:
    return _cached_signer(settings.resolved_secret_key(), settings.public_base_url)


# --- what the form shows ----------------------------------------------------------------
EVENT_LABELS: Mapping[str, str] = {
    "create": "创建作业票",
    "edit": "修改作业票",
    "submit": "提交审批",
    "site_survey": "现场勘查",
    "confirm_risks": "确认风险",
    "approve": "审批通过",
    "reject": "退回",
    "gas_sample": "气体分析",
    "check_in": "监护签到",
    "confirm_measure": "确认安全措施",
    "confirm_notice": "张贴公告",
    "clear": "清理可燃物",
    "start": "开始动火",
    "pause": "作业中断",
    "resume": "恢复作业",
    "suspend": "暂停作业",
    "reinstate": "恢复许可",
    "end": "作业结束",
    "dispose": "处置（余火检查）",
    "close": "关闭作业票",
    "cancel": "取消作业票",
    "expire": "到期",
}

PLATFORM = "平台"


def role_label(value: str) -> str:
    """An event's ``person_role``: an approval authority or one of our roles."""
    for kind in (ApproverRole, Role):
        try:
            return str(kind(value).label)
        except ValueError:
            continue
    return value


@dataclass(frozen=True)
class SheetCertificate:
    kind: str
    item: str
    number_masked: str
    status: str
    usable: bool


@dataclass(frozen=True)
class SheetWelder:
    name: str
    certificates: tuple[SheetCertificate, ...]


@dataclass(frozen=True)
class SheetMachine:
    code: str
    serial_number: str
    make_model: str
    process: str


@dataclass(frozen=True)
class SheetMeasure:
    text: str
    applicable: bool
    confirmed_by: str
    confirmed_at: datetime | None


@dataclass(frozen=True)
class SheetGas:
    taken_at: datetime
    gas: str
    lel_percent: float
    reading_percent: float
    limit_percent: float
    passed: bool
    analyst: str


@dataclass(frozen=True)
class SheetStep:
    """One of the five steps; ``at`` None: not done yet."""

    label: str
    at: datetime | None
    person: str
    detail: str = ""


@dataclass(frozen=True)
class SheetEvent:
    at: datetime
    label: str
    person: str
    role: str
    status: str
    detail: str


@dataclass(frozen=True)
class PermitSheet:
    """Everything the form shows, read once; the live view reads the same."""

    row: m.Permit
    permit: Permit
    enterprise_name: str
    site: str
    methods: tuple[str, ...]
    level_reasons: tuple[str, ...]
    welders: tuple[SheetWelder, ...]
    machines: tuple[SheetMachine, ...]
    measures: tuple[SheetMeasure, ...]
    gas: tuple[SheetGas, ...]
    steps: tuple[SheetStep, ...]
    events: tuple[SheetEvent, ...]
    now: datetime

    @property
    def number(self) -> str:
        return self.row.number

    @property
    def status(self) -> PermitStatus:
        return self.permit.status

    @property
    def base_level(self) -> PermitLevel:
        return self.permit.content.base_level

    @property
    def level(self) -> PermitLevel:
        return self.permit.content.level


def load_sheet(
    session: Session,
    scope: Scope,
    permit_id: int,
    now: datetime,
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> PermitSheet:
    """The permit as the form shows it; NotFound (404) outside ``scope``."""
    service = PermitService(session, policy)
    loaded = service.load(scope, permit_id, now)
    row, permit = loaded.row, loaded.permit
    content = permit.content
    events = service.repo.events(row.id)
    site = session.get(Site, row.site_id) if row.site_id is not None else None
    machines = {x.id: x for x in service.repo.machines([pm.machine_id for pm in row.machines])}
    measure_texts = {x.code: x.text for x in content.measures}
    return PermitSheet(
        row=row,
        permit=permit,
        enterprise_name=loaded.enterprise.name,
        site=(site.name + (f"（{site.address}）" if site.address else "")) if site else "",
        methods=tuple(HotWorkMethod(x).label for x in sorted(row.methods)),
        level_reasons=_level_reasons(session, permit, policy),
        welders=tuple(
            SheetWelder(
                w.name,
                tuple(
                    SheetCertificate(
                        c.kind.label, c.item, c.number_masked, c.status.label, c.status.is_usable
                    )
                    for c in w.certificates
                ),
            )
            for w in content.welders
        ),
        machines=tuple(
            SheetMachine(
                x.code,
                x.serial_number,
                f"{x.make} {x.model}".strip(),
                _process_label(x.process),
            )
            for pm in row.machines
            if (x := machines.get(pm.machine_id)) is not None
        ),
        measures=_measures(permit),
        gas=tuple(
            SheetGas(
                g.taken_at,
                g.gas,
                g.lel_percent,
                g.reading_percent,
                gas_limit_percent(g.lel_percent, policy),
                within_limit(g, policy),
                g.analyst.name,
            )
            for g in sorted(permit.gas_samples, key=lambda g: g.taken_at)
        ),
        steps=_steps(events),
        events=tuple(_event(e, measure_texts) for e in events),
        now=now,
    )


def _process_label(value: str) -> str:
    try:
        return WeldingProcess(value).label
    except ValueError:
        return value


def _level_reasons(session: Session, permit: Permit, policy: PermitPolicy) -> tuple[str, ...]:
    """Why the managed level is above the base level. Not stored with the permit:
    judged again by the domain's rule over the permit's own window (a calendar
    imported later may name a holiday the applicant did not know of)."""
    content = permit.content
    if content.level is content.base_level:
        return ()
    tz = policy.timezone
    calendar = CalendarService(session).work_calendar_between(
        content.starts_at.astimezone(tz).date() - timedelta(days=1),
        content.ends_at.astimezone(tz).date() + timedelta(days=1),
    )
    assessed = assess_level(
        content.base_level, content.starts_at, content.ends_at, calendar, policy
    )
    if assessed.level is content.level and assessed.because:
        return assessed.because
    return ("按申请提级管理",)


def _measures(permit: Permit) -> tuple[SheetMeasure, ...]:
    latest = {}
    for confirmation in sorted(permit.measure_confirmations, key=lambda c: c.at):
        latest[confirmation.code] = confirmation
    out = []
    for measure in permit.content.measures:
        c = latest.get(measure.code)
        out.append(
            SheetMeasure(
                measure.text,
                measure.applicable,
                c.by.name if c is not None else "",
                c.at if c is not None else None,
            )
        )
    return tuple(out)


def _person(event: m.PermitEventRow) -> str:
    return event.person_name or PLATFORM


def _steps(events: Sequence[m.PermitEventRow]) -> tuple[SheetStep, ...]:
    """The form's five steps, each from the event that signed it."""

    def last(kind: str) -> m.PermitEventRow | None:
        found = [e for e in events if e.kind == kind]
        return found[-1] if found else None

    def first(kind: str) -> m.PermitEventRow | None:
        return next((e for e in events if e.kind == kind), None)

    def step(label: str, event: m.PermitEventRow | None, detail: str = "") -> SheetStep:
        if event is None:
            return SheetStep(label, None, "", detail)
        return SheetStep(label, event.at, _person(event), detail or _note(event))

    check_ins = [e for e in events if e.kind == "check_in"]
    ended = last("end")
    watch_detail = f"共签到 {len(check_ins)} 次" if check_ins else ""
    if ended is not None:
        watch_detail += ("，" if watch_detail else "") + f"作业结束于 {_local(ended.at)}"
    disposed = last("dispose")
    dispose_detail = ""
    if disposed is not None:
        no_embers = disposed.payload.get("no_embers")
        dispose_detail = "现场无余火" if no_embers is True else _note(disposed)
    return (
        step("审批", last("approve")),
        step("清理", last("clear")),
        step("动火", first("start")),
        step("监护", check_ins[-1] if check_ins else None, watch_detail),
        step("处置", disposed, dispose_detail),
    )


def _note(event: m.PermitEventRow) -> str:
    note = event.payload.get("note")
    return note if isinstance(note, str) else ""


def _event(event: m.PermitEventRow, measure_texts: Mapping[str, str]) -> SheetEvent:
    p = event.payload
    detail = ""
    if event.kind == "confirm_measure":
        code = str(p.get("code", ""))
        detail = measure_texts.get(code, code)
    elif event.kind == "gas_sample":
        detail = f"{p.get('gas', '')} {p.get('reading_percent', '')}%".strip()
    elif event.kind == "dispose" and p.get("no_embers") is True:
        detail = "现场无余火"
    note = _note(event)
    if note:
        detail = f"{detail}；{note}" if detail else note
    try:
        status = PermitStatus(event.status_after).label
    except ValueError:
        status = event.status_after
    return SheetEvent(
        at=event.at,
        label=EVENT_LABELS.get(event.kind, event.kind),
        person=_person(event),
        role=role_label(event.person_role) if event.person_name else "",
        status=status,
        detail=detail,
    )


def _local(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return ""
    return value.astimezone(DEFAULT_PERMIT_POLICY.timezone).strftime(fmt)


# --- PDF ------------------------------------------------------------------------------
FONT = "STSong-Light"
QR_ERROR = "m"
INK = "#1f2933"
MUTED = "#66788a"
HEAD_BG = "#e8edf3"


def _register_font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))


def live_qr(url: str) -> segno.QRCode:
    return segno.make(url, error=QR_ERROR, micro=False)


def permit_pdf(sheet: PermitSheet, live_url: str) -> bytes:
    """The whole permit on A4 as the standard form reads, with the QR code of
    ``live_url`` and the number under it."""
    from reportlab.lib.colors import HexColor
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        Flowable,
        KeepTogether,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    _register_font()
    row, permit = sheet.row, sheet.permit
    content = permit.content
    base = ParagraphStyle(
        "wg", fontName=FONT, fontSize=9, leading=12.5, textColor=HexColor(INK), wordWrap="CJK"
    )
    small = ParagraphStyle("wg-small", parent=base, fontSize=8, leading=11)
    muted = ParagraphStyle("wg-muted", parent=small, textColor=HexColor(MUTED))
    title = ParagraphStyle("wg-title", parent=base, fontSize=18, leading=24, alignment=1)
    subtitle = ParagraphStyle("wg-sub", parent=base, fontSize=10, leading=14, alignment=1)
    heading = ParagraphStyle(
        "wg-h", parent=base, fontSize=11, leading=15, spaceBefore=8, spaceAfter=3
    )
    centred = ParagraphStyle("wg-c", parent=small, alignment=1)

    def p(text: object, style: ParagraphStyle = base) -> Paragraph:
        return Paragraph(escape(str(text)).replace("\n", "<br/>"), style)

    width = A4[0] - 30 * mm

    def grid(
        rows: list[list[Any]],
        widths: Sequence[float],
        header: bool = True,
        label_column: bool = False,
    ) -> Table:
        table = Table(rows, colWidths=[w * width for w in widths], repeatRows=1 if header else 0)
        style: list[Any] = [
            ("GRID", (0, 0), (-1, -1), 0.5, HexColor("#8a97a6")),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ("LEFTPADDING", (0, 0), (-1, -1), 4),
            ("RIGHTPADDING", (0, 0), (-1, -1), 4),
            ("TOPPADDING", (0, 0), (-1, -1), 3),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ]
        if header:
            style.append(("BACKGROUND", (0, 0), (-1, 0), HexColor(HEAD_BG)))
        if label_column:
            for column in range(0, len(widths), 2):
                style.append(("BACKGROUND", (column, 0), (column, -1), HexColor(HEAD_BG)))
        table.setStyle(TableStyle(style))
        return table

    def head(cells: Sequence[str]) -> list[Paragraph]:
        return [p(c, small) for c in cells]

    class QrCode(Flowable):
        """The live-view QR code as vector modules, with its quiet zone."""

        def __init__(self, url: str, size: float) -> None:
            super().__init__()
            self.modules = [
                [bool(cell) for cell in line] for line in live_qr(url).matrix_iter(border=0)
            ]
            self.size = size

        def wrap(self, _aw: float, _ah: float) -> tuple[float, float]:
            return self.size, self.size

        def draw(self) -> None:
            canvas: Canvas = self.canv
            n = len(self.modules)
            module = self.size / (n + 8)
            canvas.setFillColor(HexColor("#000000"))
            path = canvas.beginPath()
            for r, line in enumerate(self.modules):
                y = self.size - (4 + r + 1) * module
                c = 0
                while c < n:
                    if not line[c]:
                        c += 1
                        continue
                    start = c
                    while c < n and line[c]:
                        c += 1
                    path.rect((4 + start) * module, y, (c - start) * module, module)
            canvas.drawPath(path, stroke=0, fill=1)

    story: list[Any] = []
    story.append(p("动火安全作业票", title))
    story.append(p(sheet.enterprise_name, subtitle))
    story.append(Spacer(1, 3 * mm))

    # The head: the identifying fields on the left, the QR code on the right.
    level_text = (
        f"{content.level.label}（基础级别 {content.base_level.label}）"
        if content.level is not content.base_level
        else content.level.label
    )
    ident = grid(
        [
            [p("作业票编号", small), p(row.number)],
            [p("动火单位", small), p(sheet.enterprise_name)],
            [p("动火级别", small), p(level_text)],
            [p("当前状态", small), p(permit.status.label)],
            [p("打印时间", small), p(_local(sheet.now))],
        ],
        (0.2, 0.5),
        header=False,
        label_column=True,
    )
    qr_size = 34 * mm
    qr = Table(
        [
            [QrCode(live_url, qr_size)],
            [p(row.number, centred)],
            [p("扫码查看实时状态", muted.clone("wg-muted-c", alignment=1))],
        ],
        colWidths=[0.3 * width],
        style=TableStyle(
            [
                ("ALIGN", (0, 0), (-1, -1), "CENTER"),
                ("TOPPADDING", (0, 0), (-1, -1), 0),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
            ]
        ),
    )
    story.append(
        Table(
            [[ident, qr]],
            colWidths=[0.7 * width, 0.3 * width],
            style=TableStyle(
                [
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LEFTPADDING", (0, 0), (-1, -1), 0),
                    ("RIGHTPADDING", (0, 0), (-1, -1), 0),
                ]
            ),
        )
    )

    # 一、the work
    hot = content.hot_spot
    hot_text = f"北纬 {hot.position.latitude:.6f}，东经 {hot.position.longitude:.6f}；{hot.label}"
    window = (
        f"{_local(content.starts_at)} 至 {_local(content.ends_at)}"
        f"（{duration_text(content.ends_at - content.starts_at)}）"
    )
    raised = "；".join(sheet.level_reasons) if sheet.level_reasons else "未提级"
    watch = content.fire_watch
    story.append(p("一、作业内容", heading))
    story.append(
        grid(
            [
                [
                    p("动火地点", small),
                    p(row.place_description),
                    p("工地/场所", small),
                    p(sheet.site or "—"),
                ],
                [
                    p("动火点", small),
                    p(hot_text),
                    p("动火方式", small),
                    p("、".join(sheet.methods)),
                ],
                [
                    p("基础级别", small),
                    p(content.base_level.label),
                    p("管理级别", small),
                    p(content.level.label),
                ],
                [p("提级原因", small), p(raised), p("有效期", small), p(window)],
                [
                    p("动火作业负责人", small),
                    p(content.lead.name),
                    p("监护人", small),
                    p(watch.person.name + ("（已培训）" if watch.trained else "（未确认培训）")),
                ],
                [
                    p("气体分析", small),
                    p("需要" if content.gas_required else "不需要"),
                    p("监护签到间隔", small),
                    p(duration_text(content.check_in_interval)),
                ],
                [
                    p("关联作业票", small),
                    p("、".join(content.linked_permits) if content.linked_permits else "无"),
                    p("特种设备作业", small),
                    p("是" if row.special_equipment else "否"),
                ],
            ],
            (0.14, 0.36, 0.14, 0.36),
            header=False,
            label_column=True,
        )
    )

    # 二、the welders
    story.append(p("二、动火人及证书", heading))
    welder_rows: list[list[Any]] = [head(["动火人", "证书类型", "准操项目", "证书编号", "状态"])]
    for w in sheet.welders:
        if not w.certificates:
            welder_rows.append([p(w.name), p("无证书", small), p(""), p(""), p("")])
        for i, c in enumerate(w.certificates):
            welder_rows.append(
                [
                    p(w.name if i == 0 else ""),
                    p(c.kind, small),
                    p(c.item, small),
                    p(c.number_masked),
                    p(c.status, small),
                ]
            )
    story.append(grid(welder_rows, (0.16, 0.24, 0.22, 0.26, 0.12)))

    # 三、the machines
    story.append(p("三、焊机", heading))
    machine_rows: list[list[Any]] = [head(["焊机编号", "出厂编号", "品牌型号", "焊接工艺"])]
    for machine in sheet.machines:
        machine_rows.append(
            [
                p(machine.code),
                p(machine.serial_number),
                p(machine.make_model),
                p(machine.process),
            ]
        )
    if not sheet.machines:
        machine_rows.append([p("未填写焊机", small), p(""), p(""), p("")])
    story.append(grid(machine_rows, (0.22, 0.3, 0.28, 0.2)))

    # 四、hazards
    story.append(p("四、危害辨识", heading))
    hazards = content.hazards or ("未填写",)
    story.append(
        grid(
            [[p(f"{i}", small), p(h)] for i, h in enumerate(hazards, start=1)],
            (0.06, 0.94),
            header=False,
        )
    )

    # 五、safety measures
    story.append(p("五、安全措施", heading))
    measure_rows: list[list[Any]] = [head(["序号", "安全措施", "是否涉及", "确认人", "确认时间"])]
    for i, x in enumerate(sheet.measures, start=1):
        measure_rows.append(
            [
                p(i, small),
                p(x.text, small),
                p("涉及" if x.applicable else "不涉及", small),
                p(x.confirmed_by or ("未确认" if x.applicable else ""), small),
                p(_local(x.confirmed_at), small),
            ]
        )
    story.append(grid(measure_rows, (0.06, 0.56, 0.1, 0.12, 0.16)))

    # 六、gas analysis
    story.append(p("六、气体分析", heading))
    gas_rows: list[list[Any]] = [
        head(["采样时间", "气体", "爆炸下限", "检测浓度", "合格标准", "结论", "分析人"])
    ]
    for g in sheet.gas:
        gas_rows.append(
            [
                p(_local(g.taken_at), small),
                p(g.gas, small),
                p(f"{g.lel_percent:g}%", small),
                p(f"{g.reading_percent:g}%", small),
                p(f"≤ {g.limit_percent:g}%", small),
                p("合格" if g.passed else "不合格", small),
                p(g.analyst, small),
            ]
        )
    if not sheet.gas:
        gas_rows.append([p("无气体分析记录", small), *[p("") for _ in range(6)]])
    story.append(grid(gas_rows, (0.2, 0.14, 0.12, 0.12, 0.12, 0.1, 0.2)))

    # 七、the five steps
    story.append(p("七、作业步骤（审批 → 清理 → 动火 → 监护 → 处置）", heading))
    step_rows: list[list[Any]] = [head(["步骤", "时间", "签字人", "说明"])]
    for s in sheet.steps:
        step_rows.append(
            [
                p(s.label),
                p(_local(s.at) if s.at else "未完成", small),
                p(s.person, small),
                p(s.detail, small),
            ]
        )
    story.append(KeepTogether(grid(step_rows, (0.12, 0.22, 0.2, 0.46))))

    # 八、the audit trail
    story.append(p("八、作业记录", heading))
    event_rows: list[list[Any]] = [head(["时间", "事项", "人员", "身份", "状态", "说明"])]
    for e in sheet.events:
        event_rows.append(
            [
                p(_local(e.at, "%m-%d %H:%M"), small),
                p(e.label, small),
                p(e.person, small),
                p(e.role, small),
                p(e.status, small),
                p(e.detail, small),
            ]
        )
    story.append(grid(event_rows, (0.13, 0.15, 0.13, 0.15, 0.12, 0.32)))
    story.append(Spacer(1, 4 * mm))
    story.append(
        p(
            "本作业票一次动火作业一张，作业内容、范围或地点变更须重新办理；"
            "纸质作业票以扫码所见实时状态为准。",
            muted,
        )
    )

    footer = f"动火安全作业票 {row.number}    打印于 {_local(sheet.now)}"

    def on_page(canvas: Canvas, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 7.5)
        canvas.setFillColor(HexColor(MUTED))
        canvas.drawString(15 * mm, 9 * mm, footer)
        canvas.drawRightString(A4[0] - 15 * mm, 9 * mm, f"第 {doc.page} 页")
        canvas.restoreState()

    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=14 * mm,
        bottomMargin=16 * mm,
        title=f"动火安全作业票 {row.number}",
        author="weldguard",
        subject="动火安全作业票",
        invariant=True,
    )
    doc.build(story, onFirstPage=on_page, onLaterPages=on_page)
    return out.getvalue()
