"""View models of the device pages: Chinese labels of the protocol's words,
live-state badges, and the machine timeline assembled from its sources.

Units follow docs/protocol.md: currents in deciamperes (da), voltages in
decivolts (dv), temperatures in tenths of a degree (c10), supply in millivolts,
energy in joules, positions in micro-degrees, times in Unix milliseconds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from weldguard.device.models import (
    AlarmKind,
    AlarmSeverity,
    CommandStatus,
    DeviceAlarm,
    DeviceCommand,
    DeviceState,
)
from weldguard.device.views_repository import DeviceViewRepository, MessageView, Span, is_online
from weldguard.machine.models import Chip, ChipBinding, Machine
from weldguard.web.common import SHANGHAI, local_time

ALARM_KIND_LABELS = {
    AlarmKind.OFFLINE_POWERED: "通电离线",
    AlarmKind.CHIP_REMOVED: "芯片拆除",
    AlarmKind.CURRENT_WHILE_LOCKED: "锁定状态下有焊接电流（疑似改装/旁路）",
    AlarmKind.CURRENT_WITHOUT_SESSION: "无作业会话焊接",
    AlarmKind.OVER_CURRENT: "超额定电流",
    AlarmKind.TAMPER: "外壳打开/防拆",
    AlarmKind.GAS: "气体报警",
    AlarmKind.TEMPERATURE: "温度报警",
    AlarmKind.LONG_SESSION: "连续作业超过24小时",
}
SEVERITY_LABELS = {AlarmSeverity.WARNING: "警告", AlarmSeverity.CRITICAL: "严重"}
SEVERITY_TONE = {AlarmSeverity.WARNING: "warn", AlarmSeverity.CRITICAL: "bad"}

COMMAND_LABELS = {
    "unlock": "解锁（开机）",
    "lock": "锁定（断电）",
    "config": "配置",
    "ping": "连通检测",
    "time": "校时",
}
COMMAND_STATUS_LABELS = {
    CommandStatus.QUEUED: "排队中",
    CommandStatus.SENT: "已发送，待应答",
    CommandStatus.ACKED: "已执行",
    CommandStatus.FAILED: "失败",
    CommandStatus.EXPIRED: "已过期",
}
COMMAND_STATUS_TONE = {
    CommandStatus.QUEUED: "muted",
    CommandStatus.SENT: "info",
    CommandStatus.ACKED: "ok",
    CommandStatus.FAILED: "bad",
    CommandStatus.EXPIRED: "warn",
}
# docs/protocol.md § 12.3
ACK_CODES = {
    0: "执行成功",
    1: "签名错误（密钥不符或伪造）",
    2: "指令已过期",
    3: "随机数重复（疑似重放）",
    4: "设备号不符",
    5: "不支持的指令",
    6: "参数错误",
    7: "设备忙",
    8: "设备时钟未同步",
    9: "设备内部错误（如继电器故障）",
}

EVENT_LABELS = {
    "unlocked": "已解锁（通电）",
    "locked": "已锁定（断电）",
    "tamper": "防拆报警",
    "power_loss": "断电",
    "power_restored": "来电",
    "geofence_exit": "离开电子围栏",
    "geofence_enter": "回到电子围栏",
    "gas_alarm": "气体报警",
    "temp_alarm": "温度报警",
    "arc_while_locked": "锁定状态下起弧",
    "overcurrent": "超额定电流",
}
EVENT_TONE = {
    "unlocked": "ok",
    "locked": "info",
    "tamper": "bad",
    "power_loss": "warn",
    "power_restored": "ok",
    "geofence_exit": "warn",
    "geofence_enter": "ok",
    "gas_alarm": "bad",
    "temp_alarm": "bad",
    "arc_while_locked": "bad",
    "overcurrent": "warn",
}
LOCK_REASONS = {
    "until": "授权时间到",
    "alarm": "报警断电",
    "tamper": "防拆",
    "boot": "开机自锁",
    "local": "本地操作",
}
TAMPER_WHAT = {"enclosure_open": "外壳被打开", "chip_removed": "芯片被拆离焊机"}
LOCK_LABELS = {"locked": "锁定", "unlocked": "解锁"}


def alarm_kind_label(kind: str) -> str:
    try:
        return ALARM_KIND_LABELS[AlarmKind(kind)]
    except (ValueError, KeyError):
        return kind


def severity_label(severity: str) -> str:
    try:
        return SEVERITY_LABELS[AlarmSeverity(severity)]
    except ValueError:
        return severity


def severity_tone(severity: str) -> str:
    try:
        return SEVERITY_TONE[AlarmSeverity(severity)]
    except ValueError:
        return "muted"


def ack_label(code: int | None) -> str:
    if code is None:
        return ""
    return ACK_CODES.get(code, f"未知应答码 {code}")


# --- formatting ----------------------------------------------------------------
def amps(da: Any) -> str:
    return f"{da / 10:.1f} A" if isinstance(da, int) else ""


def volts(dv: Any) -> str:
    return f"{dv / 10:.1f} V" if isinstance(dv, int) else ""


def celsius(c10: Any) -> str:
    return f"{c10 / 10:.1f} ℃" if isinstance(c10, int) else ""


def supply(mv: int | None) -> str:
    return f"{mv / 1000:.1f} V" if mv is not None else ""


def energy(joules: int) -> str:
    if joules >= 3_600_000:
        return f"{joules / 3_600_000:.2f} kWh"
    if joules >= 1000:
        return f"{joules / 1000:.1f} kJ"
    return f"{joules} J"


def duration(value: float) -> str:
    seconds = round(value)
    if seconds < 60:
        return f"{seconds} 秒"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} 分 {sec} 秒" if sec else f"{minutes} 分钟"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} 小时 {minutes} 分"


def relative_time(value: datetime | None, now: datetime) -> str:
    if value is None:
        return ""
    seconds = (now - value).total_seconds()
    if seconds < 0:
        return local_time(value)
    if seconds < 60:
        return "刚刚"
    if seconds < 3600:
        return f"{int(seconds // 60)} 分钟前"
    if seconds < 86400:
        return f"{int(seconds // 3600)} 小时前"
    if seconds < 86400 * 30:
        return f"{int(seconds // 86400)} 天前"
    return local_time(value, "%Y-%m-%d")


def signal_label(rssi: int | None) -> tuple[str, str]:
    """(label, tone) of a cellular signal in dBm."""
    if rssi is None:
        return "", "muted"
    if rssi >= -85:
        return f"强 {rssi} dBm", "ok"
    if rssi >= -100:
        return f"中 {rssi} dBm", "warn"
    return f"弱 {rssi} dBm", "bad"


def from_ms(ms: Any) -> datetime | None:
    if not isinstance(ms, int):
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


# --- live state ---------------------------------------------------------------
@dataclass(frozen=True)
class LiveView:
    """What the list row and the live panel show for one machine."""

    fitted: bool
    state: DeviceState | None
    online: bool
    now: datetime

    @property
    def reported(self) -> bool:
        return self.state is not None and self.state.last_seen_at is not None

    @property
    def online_label(self) -> str:
        if not self.fitted:
            return "未装芯片"
        if not self.reported:
            return "未上线"
        return "在线" if self.online else "离线"

    @property
    def online_tone(self) -> str:
        if not self.fitted:
            return "muted"
        return "ok" if self.online else "bad" if self.reported else "muted"

    @property
    def lock_label(self) -> str:
        lock = self.state.lock_state if self.state else None
        return LOCK_LABELS.get(lock or "", "")

    @property
    def lock_tone(self) -> str:
        lock = self.state.lock_state if self.state else None
        return "warn" if lock == "unlocked" else "info"

    @property
    def welding(self) -> bool:
        return bool(self.online and self.state is not None and self.state.arc_on)

    @property
    def last_seen(self) -> str:
        return relative_time(self.state.last_seen_at if self.state else None, self.now)

    @property
    def last_seen_exact(self) -> str:
        return local_time(self.state.last_seen_at if self.state else None, "%Y-%m-%d %H:%M:%S")

    @property
    def signal(self) -> str:
        return signal_label(self.state.rssi if self.state else None)[0]

    @property
    def signal_tone(self) -> str:
        return signal_label(self.state.rssi if self.state else None)[1]

    @property
    def supply(self) -> str:
        return supply(self.state.vin_mv if self.state else None)

    @property
    def position(self) -> tuple[float, float] | None:
        if self.state is None or self.state.lat_e6 is None or self.state.lon_e6 is None:
            return None
        return self.state.lat_e6 / 1_000_000, self.state.lon_e6 / 1_000_000


def live_view(chip: Chip | None, state: DeviceState | None, now: datetime) -> LiveView:
    return LiveView(fitted=chip is not None, state=state, online=is_online(state, now), now=now)


# --- timeline -------------------------------------------------------------------
@dataclass
class Entry:
    at: datetime
    kind: str  # event, arc, command, alarm, heartbeat, binding, state
    title: str
    tone: str = "muted"
    details: list[str] = field(default_factory=list)
    buffered: bool = False
    end: datetime | None = None  # arcs and heartbeat summaries: the span shown

    @property
    def kind_label(self) -> str:
        return TIMELINE_KINDS.get(self.kind, self.kind)


TIMELINE_KINDS = {
    "event": "事件",
    "arc": "焊接",
    "command": "指令",
    "alarm": "报警",
    "heartbeat": "心跳",
    "binding": "加芯",
    "state": "状态",
}


@dataclass(frozen=True)
class Timeline:
    entries: list[Entry]
    floor: datetime | None  # the page covers (floor, until]
    until: datetime | None
    has_more: bool

    @property
    def next_until(self) -> str:
        """The cursor of the next (older) page."""
        return format_cursor(self.floor) if self.floor else ""


def format_cursor(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def parse_cursor(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.strptime(raw.strip()[:32], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def event_entry(message: MessageView) -> Entry | None:
    p: Mapping[str, Any] = message.payload or {}
    if message.kind == "hello":
        boot = p.get("boot") is True
        hello = [f"固件 {p.get('fw', '')}"]
        if isinstance(p.get("buf_count"), int) and p["buf_count"]:
            hello.append(f"离线缓存 {p['buf_count']} 条待补传")
        return Entry(
            message.device_ts,
            "state",
            "开机上线" if boot else "重新连接上线",
            "ok",
            hello,
            message.buffered,
        )
    if message.kind != "evt":
        return None
    kind = str(p.get("type", ""))
    title = EVENT_LABELS.get(kind, f"事件 {kind}")
    details: list[str] = []
    if kind == "locked" and p.get("reason"):
        reason = str(p["reason"])
        details.append("原因：" + LOCK_REASONS.get(reason, reason))
    if kind == "tamper" and p.get("what"):
        what = str(p["what"])
        details.append(TAMPER_WHAT.get(what, what))
    if kind == "power_loss" and p.get("lwt") is True:
        title = "连接中断（可能断电）"
    if "ppm" in p:
        details.append(f"浓度 {p['ppm']} ppm")
    if "lel_pm" in p:
        details.append(f"{p['lel_pm']}‰ LEL")
    if "temp_c10" in p:
        details.append("温度 " + celsius(p["temp_c10"]))
    if "i_max_da" in p:
        details.append("峰值电流 " + amps(p["i_max_da"]))
    if p.get("sess"):
        details.append(f"作业会话 {p['sess']}")
    return Entry(
        message.device_ts, "event", title, EVENT_TONE.get(kind, "muted"), details, message.buffered
    )


def command_entry(command: DeviceCommand) -> Entry:
    status = command.status
    try:
        status_label = COMMAND_STATUS_LABELS[CommandStatus(status)]
        tone = COMMAND_STATUS_TONE[CommandStatus(status)]
    except ValueError:
        status_label, tone = status, "muted"
    details = [status_label, f"发送 {command.attempts} 次"]
    if command.ack_code is not None:
        details.append(f"应答码 {command.ack_code}：{ack_label(command.ack_code)}")
    if command.ack_state in LOCK_LABELS:
        details.append(f"应答后状态：{LOCK_LABELS[command.ack_state]}")
    if command.reason:
        details.append(f"事由：{command.reason}")
    title = "指令：" + COMMAND_LABELS.get(command.cmd, command.cmd)
    return Entry(command.created_at, "command", title, tone, details)


def alarm_detail(alarm: DeviceAlarm) -> list[str]:
    d: Mapping[str, Any] = alarm.detail or {}
    details = []
    if "ppm" in d:
        details.append(f"浓度 {d['ppm']} ppm")
    if "lel_pm" in d:
        details.append(f"{d['lel_pm']}‰ LEL")
    if "temp_c10" in d:
        details.append("温度 " + celsius(d["temp_c10"]))
    if "i_max_da" in d:
        details.append("峰值电流 " + amps(d["i_max_da"]))
    if "what" in d:
        details.append(TAMPER_WHAT.get(str(d["what"]), str(d["what"])))
    return details


def alarm_entries(raised: Sequence[DeviceAlarm], cleared: Sequence[DeviceAlarm]) -> list[Entry]:
    entries = []
    for alarm in raised:
        details = [severity_label(alarm.severity), *alarm_detail(alarm)]
        if alarm.repeats:
            details.append(f"重复 {alarm.repeats} 次")
        details.append(
            f"已于 {local_time(alarm.cleared_at)} 消除" if alarm.cleared_at else "尚未消除"
        )
        entries.append(
            Entry(
                alarm.raised_at,
                "alarm",
                "报警：" + alarm_kind_label(alarm.kind),
                severity_tone(alarm.severity),
                details,
            )
        )
    for alarm in cleared:
        assert alarm.cleared_at is not None
        entries.append(
            Entry(
                alarm.cleared_at,
                "alarm",
                "报警消除：" + alarm_kind_label(alarm.kind),
                "ok",
                [f"发生于 {local_time(alarm.raised_at)}"],
            )
        )
    return entries


def binding_entries(bindings: Sequence[tuple[ChipBinding, Chip]], span: Span) -> list[Entry]:
    entries = []
    for binding, chip in bindings:
        fitted = [f"安装人 {binding.fitted_by_name}"] if binding.fitted_by_name else []
        entries.append(
            Entry(binding.fitted_at, "binding", f"安装芯片 {chip.device_id}", "ok", fitted)
        )
        if binding.removed_at is not None:
            removed = [binding.removal_reason or ""]
            if binding.removed_by_name:
                removed.append(f"操作人 {binding.removed_by_name}")
            entries.append(
                Entry(
                    binding.removed_at,
                    "binding",
                    f"拆除芯片 {chip.device_id}",
                    "warn",
                    [d for d in removed if d],
                )
            )
    return [e for e in entries if _inside(e.at, span)]


def _inside(at: datetime, span: Span) -> bool:
    return (span.floor is None or at > span.floor) and (span.until is None or at <= span.until)


@dataclass
class _Arc:
    start_ms: int
    end_ms: int
    first_at: datetime
    last_at: datetime
    energy_j: int = 0
    weighted_i: int = 0
    weighted_u: int = 0
    peak_da: int = 0
    burning: bool = True
    windows: int = 0
    sess: str | None = None
    buffered: bool = False


def arc_entries(tel: Sequence[MessageView], complete_start: bool) -> list[Entry]:
    """Groups tel windows (oldest first) into arcs: contiguous windows up to the
    one whose arc flag is false. ``complete_start``: the oldest window shown is
    known to start its arc (otherwise the first arc may have begun earlier)."""
    arcs: list[_Arc] = []
    current: _Arc | None = None
    for message in sorted(tel, key=lambda m: (m.device_ts, m.id)):
        p = message.payload or {}
        start, dur = p.get("start_ts"), p.get("dur_ms")
        if not isinstance(start, int) or not isinstance(dur, int):
            continue
        contiguous = current is not None and current.burning and abs(start - current.end_ms) <= 2000
        if current is None or not contiguous:
            current = _Arc(start, start, message.device_ts, message.device_ts, sess=p.get("sess"))
            arcs.append(current)
        current.end_ms = max(current.end_ms, start + dur)
        current.last_at = message.device_ts
        current.energy_j += int(p.get("e_j") or 0)
        current.weighted_i += int(p.get("i_avg_da") or 0) * dur
        current.weighted_u += int(p.get("u_avg_dv") or 0) * dur
        current.peak_da = max(current.peak_da, int(p.get("i_max_da") or 0))
        current.burning = p.get("arc") is True
        current.windows += 1
        current.buffered = current.buffered or message.buffered
    entries = []
    for index, arc in enumerate(arcs):
        seconds = (arc.end_ms - arc.start_ms) / 1000
        span_ms = max(1, arc.end_ms - arc.start_ms)
        details = [
            f"时长 {duration(seconds)}",
            f"平均电流 {arc.weighted_i / span_ms / 10:.1f} A",
            f"峰值 {arc.peak_da / 10:.1f} A",
            f"平均电压 {arc.weighted_u / span_ms / 10:.1f} V",
            f"电能 {energy(arc.energy_j)}",
        ]
        if arc.sess:
            details.append(f"作业会话 {arc.sess}")
        else:
            details.append("无作业会话")
        start = from_ms(arc.start_ms) or arc.first_at
        end = from_ms(arc.end_ms) or arc.last_at
        title = "焊接中" if arc.burning else "焊接"
        if index == 0 and not complete_start:
            title += "（更早开始，见下一页）"
        entries.append(
            Entry(
                arc.last_at,
                "arc",
                title,
                "warn" if arc.burning else "info",
                details,
                arc.buffered,
                end=end,
            )
        )
        entries[-1].details.insert(
            0, f"{local_time(start, '%H:%M:%S')}–{local_time(end, '%H:%M:%S')}"
        )
    return entries


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


CHINA_OFFSET_S = 8 * 3600


def heartbeat_entries(hb: Sequence[MessageView]) -> list[Entry]:
    """A summary per hour (China time) instead of every heartbeat, plus the gaps
    where heartbeats stopped for longer than 2.5 periods."""
    ordered = sorted(hb, key=lambda m: (m.device_ts, m.id))
    buckets: dict[int, list[MessageView]] = {}
    for message in ordered:
        # China has had no daylight saving since 1991: an hour of China time is
        # an hour of UTC shifted by eight (cheaper than astimezone per message).
        key = (int(message.device_ts.timestamp()) + CHINA_OFFSET_S) // 3600
        buckets.setdefault(key, []).append(message)
    entries = []
    for messages in buckets.values():
        hour = messages[0].device_ts.astimezone(SHANGHAI)
        rssi: list[int] = [m.payload["rssi"] for m in messages if _is_int(m.payload.get("rssi"))]
        vin: list[int] = [m.payload["vin"] for m in messages if _is_int(m.payload.get("vin"))]
        locks = {str(m.payload.get("lock")) for m in messages}
        details = [f"{hour.strftime('%H:00')}–{hour.strftime('%H:59')} 共 {len(messages)} 次"]
        if rssi:
            low, high = min(rssi), max(rssi)
            details.append(f"信号 {low} dBm" if low == high else f"信号 {low}~{high} dBm")
        if vin:
            details.append(f"供电 {supply(int(sum(vin) / len(vin)))}")
        details.append(
            "、".join(LOCK_LABELS.get(lock, lock) for lock in sorted(locks) if lock in LOCK_LABELS)
        )
        last = messages[-1]
        gps = last.payload.get("gps")
        if isinstance(gps, dict) and isinstance(gps.get("lat"), int):
            details.append(f"定位 {gps['lat'] / 1e6:.5f}, {gps['lon'] / 1e6:.5f}")
        entries.append(
            Entry(
                last.device_ts,
                "heartbeat",
                "心跳",
                "muted",
                [d for d in details if d],
                any(m.buffered for m in messages),
            )
        )
    for previous, message in pairwise(ordered):
        interval = previous.payload.get("interval_s")
        interval = interval if isinstance(interval, int) and interval > 0 else 60
        gap = (message.device_ts - previous.device_ts).total_seconds()
        if gap > interval * 2.5:
            entries.append(
                Entry(
                    message.device_ts,
                    "state",
                    "通信中断后恢复",
                    "warn",
                    [
                        f"约 {duration(gap)} 无心跳"
                        f"（{local_time(previous.device_ts, '%m-%d %H:%M')} 起）"
                    ],
                )
            )
    return entries


# How far back one timeline page reaches at most, how many discrete entries it
# shows, and how many stored messages it reads at most (a day of 30 s heartbeats).
MAX_SPAN = timedelta(days=7)
PAGE_ENTRIES = 40
MESSAGE_CAP = 3000


def build_timeline(
    repo: DeviceViewRepository,
    machine: Machine,
    bindings: Sequence[tuple[ChipBinding, Chip]],
    until: datetime | None,
    now: datetime,
    limit: int = PAGE_ENTRIES,
) -> Timeline:
    """One page of the machine's history, newest first, up to ``until``.

    The chip's messages are read in one index range, newest first, at most
    MESSAGE_CAP of them (a day of heartbeats) and at most MAX_SPAN back; the
    page then ends at the ``limit``-th discrete record (event, command, alarm,
    chip change). Heartbeats and telemetry of the same period become hourly
    summaries and arcs. Reading every kind at once is what keeps it cheap: a
    kind-by-kind read would walk all the heartbeats to find a week's events."""
    top = until or now
    floor: datetime = top - MAX_SPAN
    messages = repo.messages(bindings, Span(floor, until), MESSAGE_CAP + 1)
    if len(messages) > MESSAGE_CAP:
        floor = max(floor, messages[MESSAGE_CAP].device_ts)
    window = Span(floor, until)
    fetch = limit + 1
    discrete: list[Entry] = []
    for message in messages:
        if message.kind in ("hello", "evt") and _inside(message.device_ts, window):
            entry = event_entry(message)
            if entry is not None:
                discrete.append(entry)
    discrete += [command_entry(c) for c in repo.commands(machine.id, window, fetch)]
    discrete += alarm_entries(
        repo.alarms_raised(machine.id, window, fetch),
        repo.alarms_cleared(machine.id, window, fetch),
    )
    discrete += binding_entries(bindings, window)
    discrete.sort(key=lambda e: e.at, reverse=True)
    if len(discrete) > limit:
        floor = max(floor, discrete[limit].at)
        if floor >= discrete[0].at:  # all tied: take them and step just below
            floor = discrete[0].at - timedelta(microseconds=1)
    shown = Span(floor, until)
    hb = [m for m in messages if m.kind == "hb" and _inside(m.device_ts, shown)]
    tel = [m for m in messages if m.kind == "tel" and _inside(m.device_ts, shown)]
    oldest_tel = min(tel, key=lambda m: m.device_ts, default=None)
    complete_start = oldest_tel is None or _starts_arc(oldest_tel)
    entries = [e for e in discrete if _inside(e.at, shown)]
    entries += arc_entries(tel, complete_start)
    entries += heartbeat_entries(hb)
    entries.sort(key=lambda e: e.at, reverse=True)
    has_more = any(b.fitted_at <= floor for b, _ in bindings) or repo.has_older(
        machine.id, bindings, floor
    )
    return Timeline(entries=entries, floor=floor, until=until, has_more=has_more)


def _starts_arc(message: MessageView) -> bool:
    p = message.payload or {}
    return p.get("dur_ms") == 0 and p.get("arc") is True


def map_data(
    position: tuple[float, float] | None,
    state: DeviceState | None,
    site: Any,
    bindings: Sequence[tuple[ChipBinding, Chip]],
) -> dict[str, Any]:
    """What the machine map draws: the chip's last fix, the site (pin and fence
    outline) and where the current chip was fitted."""
    data: dict[str, Any] = {}
    if position is not None:
        data["device"] = {
            "lat": position[0],
            "lng": position[1],
            "at": local_time(state.gps_at if state else None, "%Y-%m-%d %H:%M"),
        }
    if site is not None:
        entry: dict[str, Any] = {"name": site.name}
        if site.latitude is not None and site.longitude is not None:
            entry["lat"], entry["lng"] = site.latitude, site.longitude
        polygon = site.polygon or []
        entry["polygon"] = [
            [float(p[0]), float(p[1])]
            for p in polygon
            if isinstance(p, list | tuple) and len(p) == 2
        ]
        if "lat" in entry or entry["polygon"]:
            data["site"] = entry
    for binding, _chip in bindings:
        if binding.removed_at is None and binding.latitude is not None:
            data["install"] = {"lat": binding.latitude, "lng": binding.longitude}
    return data
