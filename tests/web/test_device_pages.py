"""Device pages: live state on the machine list (and its filter), the machine
timeline and map, the installer's 绑定芯片 page with each of its errors, the
binding photos, and the scoped device alarm list."""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from tests.factories import ADMIN_SCOPE, NOW, World
from tests.web.conftest import csrf_of
from weldguard.config import Settings
from weldguard.deps import get_clock
from weldguard.device.models import DeviceAlarm, DeviceCommand, DeviceMessage, DeviceState
from weldguard.enterprise.service import EnterpriseService
from weldguard.errors import Conflict
from weldguard.machine.models import Chip, ChipBinding, Machine, MachineStatus
from weldguard.machine.service import MachineInput, MachineService

SignIn = Callable[[str], TestClient]
LATER = NOW + timedelta(hours=2)
TOTAL = re.compile(r"共 <b>(\d+)</b>")
KIND = re.compile(r'data-kind="([a-z]+)"')


def total(html: str) -> int:
    match = TOTAL.search(html)
    assert match, html[:500]
    return int(match.group(1))


def png_bytes() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x80\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.fixture
def later(client: TestClient) -> datetime:
    """The clock two hours after the world's chip was fitted."""
    client.app.dependency_overrides[get_clock] = lambda: LATER  # type: ignore[attr-defined]
    return LATER


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def add_chip(db: Session, device_id: str, n: int) -> Chip:
    chip = Chip(
        device_id=device_id,
        imei=f"8600000000{n:05d}",
        iccid=f"898600000000000{n:05d}",
        registered_at=NOW,
    )
    db.add(chip)
    db.flush()
    return chip


def fitted_second_machine(db: Session, world: World) -> Machine:
    """A second machine of enterprise A with chip WGC000002 (offline)."""
    machine = MachineService(db).register(
        ADMIN_SCOPE,
        MachineInput("SN-A-002", "佳士", "NB-350", "mig_mag", 350, world.enterprises["A"].id),
        NOW,
    )
    MachineService(db).fit_chip(
        machine, "WGC000002", "860000000000002", "89860000000000000002", "安装员", NOW
    )
    db.add(
        DeviceState(
            device_id="WGC000002",
            online=False,
            last_seen_at=NOW - timedelta(days=1),
            lock_state="locked",
            rssi=-105,
        )
    )
    world.machines["A2"] = machine
    return machine


def live_chip_a(db: Session) -> None:
    db.add(
        DeviceState(
            device_id="WGC000001",
            online=True,
            last_seen_at=LATER - timedelta(minutes=3),
            lock_state="unlocked",
            rssi=-71,
            vin_mv=229800,
            lat_e6=31220400,
            lon_e6=121424500,
            gps_at=LATER - timedelta(minutes=3),
            arc_on=True,
            session_id="5b0e4a52-8c1e-4d7a-9a43-0f2d6c1b7e91",
            heartbeat_interval_s=30,
            offline_deadline=LATER + timedelta(minutes=2),
        )
    )


# --- machine list -----------------------------------------------------------------
def test_machine_list_shows_live_state_and_filters(
    sign_in: SignIn, db: Session, world: World, later: datetime
) -> None:
    fitted_second_machine(db, world)
    live_chip_a(db)
    db.commit()
    client = sign_in("reg_changning")
    page = client.get("/machines").text
    assert total(page) == 4
    assert "在线状态" in page and '<option value="no_chip">未装芯片</option>' in page
    row_a = page[page.index(world.machines["A"].code) :]
    row_a = row_a[: row_a.index("</tr>")]
    for text in ("在线", "解锁", "焊接中", "3 分钟前", "强 -71 dBm", "WGC000001"):
        assert text in row_a, text
    row_a2 = page[page.index(world.machines["A2"].code) :]
    row_a2 = row_a2[: row_a2.index("</tr>")]
    assert "离线" in row_a2 and "锁定" in row_a2 and "1 天前" in row_a2 and "焊接中" not in row_a2
    assert "弱 -105 dBm" in row_a2

    online = client.get("/machines?live=online").text
    assert total(online) == 1 and world.machines["A"].code in online
    offline = client.get("/machines?live=offline").text
    assert total(offline) == 1 and world.machines["A2"].code in offline
    no_chip = client.get("/machines?live=no_chip").text
    assert total(no_chip) == 2
    assert world.machines["B"].code in no_chip and world.machines["C"].code in no_chip
    # Combined with the other filters, and as an htmx partial.
    partial = client.get("/machines?live=online&area=310105102", headers={"HX-Request": "true"})
    assert "<html" not in partial.text and total(partial.text) == 0
    # An unknown choice is ignored.
    assert total(client.get("/machines?live=bogus").text) == 4


def test_a_stale_online_flag_reads_offline(
    sign_in: SignIn, db: Session, world: World, later: datetime
) -> None:
    """A chip whose deadline passed counts as offline even if no worker reset it."""
    db.add(
        DeviceState(
            device_id="WGC000001",
            online=True,
            last_seen_at=LATER - timedelta(hours=1),
            offline_deadline=LATER - timedelta(minutes=55),
        )
    )
    db.commit()
    client = sign_in("reg_changning")
    assert total(client.get("/machines?live=online").text) == 0
    assert world.machines["A"].code in client.get("/machines?live=offline").text


def test_machine_list_is_one_query_whatever_the_rows(
    sign_in: SignIn, db: Session, world: World, client: TestClient, later: datetime
) -> None:
    """The live state comes in the page query: the statement count does not grow
    with the rows shown."""
    signed = sign_in("reg_changning")
    engine = Engine  # every engine: the app builds its own
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    def measure() -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            assert signed.get("/machines").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", count)
        # Reads only: the session token's last_used_at is written now and then.
        return sum(1 for s in statements if s.lstrip().upper().startswith("SELECT"))

    few = measure()
    machines = MachineService(db)
    for n in range(15):
        machine = machines.register(
            ADMIN_SCOPE,
            MachineInput(
                f"SN-MANY-{n}", "瑞凌", "ZX7", "manual_arc", 315, world.enterprises["B"].id
            ),
            NOW,
        )
        machines.fit_chip(
            machine, f"WGM{n:06d}", f"86100000000{n:04d}", f"8986100000000000{n:04d}", "x", NOW
        )
        db.add(DeviceState(device_id=f"WGM{n:06d}", online=True, last_seen_at=LATER))
    db.commit()
    many = measure()
    assert many == few
    page_queries = [s for s in statements if "device_state" in s]
    assert len(page_queries) == 1, page_queries


# --- machine page ---------------------------------------------------------------------
def _message(
    device_id: str, kind: str, seq: int, at: datetime, payload: dict[str, Any], buf: bool = False
) -> DeviceMessage:
    body = {"v": 1, "seq": seq, "ts": ms(at), **payload}
    if buf:
        body["buf"] = True
    return DeviceMessage(
        device_id=device_id,
        kind=kind,
        seq=seq,
        device_ts=at,
        received_at=at,
        buffered=buf,
        payload=body,
    )


def history_of_chip_a(db: Session, world: World) -> None:
    """Half an hour of chip A after fitting: boot, heartbeats, an unlock, an arc,
    a gas alarm, a lock; commands and alarms as the other workers write them."""
    t0 = NOW + timedelta(minutes=10)
    dev = "WGC000001"
    sess = "5b0e4a52-8c1e-4d7a-9a43-0f2d6c1b7e91"
    rows = [
        _message(dev, "hello", 1, t0, {"fw": "wg-chip 1.4.2", "imei": "860000000000001",
                                        "iccid": "89860000000000000001", "boot": True,
                                        "buf_count": 0}),
    ]  # fmt: skip
    for i in range(20):
        rows.append(
            _message(
                dev,
                "hb",
                2 + i,
                t0 + timedelta(seconds=30 * (i + 1)),
                {
                    "interval_s": 30,
                    "lock": "unlocked" if i >= 4 else "locked",
                    "sess": sess if i >= 4 else None,
                    "rssi": -71 - (i % 3),
                    "gps": {"lat": 31220400, "lon": 121424500, "acc_m": 5, "fix_ts": ms(t0)},
                    "vin": 229800,
                },
            )
        )
    unlocked_at = t0 + timedelta(minutes=2)
    rows.append(_message(dev, "evt", 30, unlocked_at, {"type": "unlocked", "sess": sess,
                                                        "cmd_id": "c-unlock"}))  # fmt: skip
    arc_start = t0 + timedelta(minutes=3)
    tel = [
        (0, True, 0, 1650, 1650, 266, 0),
        (0, True, 10000, 1650, 1820, 266, 43890),
        (10000, False, 2500, 1650, 1700, 266, 10972),
    ]
    for n, (offset, burning, dur, i_avg, i_max, u_avg, e_j) in enumerate(tel):
        start = ms(arc_start) + offset
        rows.append(
            _message(
                dev,
                "tel",
                31 + n,
                arc_start + timedelta(milliseconds=offset + dur),
                {"arc": burning, "sess": sess, "start_ts": start, "dur_ms": dur,
                 "i_avg_da": i_avg, "i_max_da": i_max, "u_avg_dv": u_avg, "e_j": e_j},
            )
        )  # fmt: skip
    rows.append(_message(dev, "evt", 40, t0 + timedelta(minutes=5), {"type": "gas_alarm",
                                                                      "lel_pm": 120}))  # fmt: skip
    rows.append(
        _message(dev, "evt", 41, t0 + timedelta(minutes=6), {"type": "locked", "reason": "alarm"})
    )
    rows.append(
        _message(
            dev, "evt", 42, t0 + timedelta(minutes=7), {"type": "tamper", "what": "enclosure_open"},
            buf=True,
        )
    )  # fmt: skip
    # Before the chip was fitted to this machine: not this machine's history.
    rows.append(_message(dev, "evt", 1, NOW - timedelta(days=1), {"type": "power_loss"}))
    db.add_all(rows)
    machine_id = world.machines["A"].id
    db.add_all(
        [
            DeviceCommand(
                id="c-unlock",
                device_id=dev,
                machine_id=machine_id,
                cmd="unlock",
                args={"sess": sess},
                payload="{}",
                status="acked",
                created_at=unlocked_at - timedelta(seconds=1),
                expires_at=unlocked_at + timedelta(minutes=1),
                next_attempt_at=unlocked_at,
                attempts=1,
                ack_code=0,
                ack_state="unlocked",
                reason="work session",
            ),
            DeviceCommand(
                id="c-lock",
                device_id=dev,
                machine_id=machine_id,
                cmd="lock",
                args={},
                payload="{}",
                status="failed",
                created_at=t0 + timedelta(minutes=8),
                expires_at=t0 + timedelta(minutes=9),
                next_attempt_at=t0 + timedelta(minutes=8),
                attempts=3,
                ack_code=1,
            ),
            DeviceAlarm(
                device_id=dev,
                kind="gas",
                severity="critical",
                machine_id=machine_id,
                enterprise_id=world.enterprises["A"].id,
                raised_at=t0 + timedelta(minutes=5),
                last_seen_at=t0 + timedelta(minutes=6),
                repeats=1,
                detail={"lel_pm": 120},
            ),
            DeviceAlarm(
                device_id=dev,
                kind="tamper",
                severity="warning",
                machine_id=machine_id,
                enterprise_id=world.enterprises["A"].id,
                raised_at=t0 + timedelta(minutes=7),
                last_seen_at=t0 + timedelta(minutes=7),
                cleared_at=t0 + timedelta(minutes=9),
                detail={"what": "enclosure_open"},
            ),
        ]
    )


def _timeline(html: str) -> str:
    start = html.index('id="timeline"')
    return html[start : html.index("芯片绑定记录", start)]


def test_machine_page_timeline_mixes_every_source(
    sign_in: SignIn, db: Session, world: World, later: datetime
) -> None:
    live_chip_a(db)
    history_of_chip_a(db, world)
    db.commit()
    client = sign_in("reg_changning")
    page = client.get(f"/machines/{world.machines['A'].id}")
    assert page.status_code == 200
    html = page.text
    # Live panel.
    live = html[html.index('id="live"') : html.index('id="timeline"')]
    for text in (
        "在线",
        "解锁",
        "焊接中",
        "3 分钟前",
        "强 -71 dBm",
        "229.8 V",
        "31.22040, 121.42450",
    ):
        assert text in live, text
    timeline = _timeline(html)
    kinds = KIND.findall(timeline)
    # Heartbeats are a summary (one per hour), never one row each.
    assert kinds.count("heartbeat") == 1
    assert "共 20 次" in timeline and "信号 -73~-71 dBm" in timeline
    for text in (
        "开机上线",
        "固件 wg-chip 1.4.2",
        "已解锁（通电）",
        "已锁定（断电）",
        "原因：报警断电",
        "气体报警",
        "120‰ LEL",
        "外壳被打开",
        "（补传）",
        # One arc from three tel windows, in amperes and volts.
        "时长 12 秒",
        "平均电流 165.0 A",
        "峰值 182.0 A",
        "平均电压 26.6 V",
        "电能 54.9 kJ",
        # Commands with their acks.
        "指令：解锁（开机）",
        "已执行",
        "应答码 0：执行成功",
        "指令：锁定（断电）",
        "发送 3 次",
        "应答码 1：签名错误（密钥不符或伪造）",
        # Alarms raised and cleared.
        "报警：气体报警",
        "严重",
        "尚未消除",
        "报警消除：外壳打开/防拆",
        "安装芯片 WGC000001",
    ):
        assert text in timeline, text
    assert kinds.count("arc") == 1
    assert "断电" not in timeline.split("已锁定（断电）")[0].replace("锁定（断电）", "")
    assert "连接中断" not in timeline  # the message before fitting is not shown
    # Newest first.
    order = [
        timeline.index(t) for t in ("指令：锁定（断电）", "报警：气体报警", "焊接", "开机上线")
    ]
    assert order == sorted(order)
    assert "更早的记录" not in timeline


def test_machine_page_map_data(sign_in: SignIn, db: Session, world: World, later: datetime) -> None:
    site = EnterpriseService(db).add_site(
        ADMIN_SCOPE,
        world.enterprises["A"].id,
        "一号车间",
        "华阳路1号",
        31.2210,
        121.4250,
        [[31.2205, 121.4245], [31.2215, 121.4245], [31.2215, 121.4255]],
    )
    world.machines["A"].site_id = site.id
    binding = db.scalars(select(ChipBinding)).one()
    binding.latitude, binding.longitude = 31.2203, 121.4243
    live_chip_a(db)
    db.commit()
    client = sign_in("ent_a")
    html = client.get(f"/machines/{world.machines['A'].id}").text
    match = re.search(r'id="machine-map" class="map" data-map="([^"]+)" data-tiles="([^"]+)"', html)
    assert match, "no map"
    data = json.loads(match.group(1).replace("&#34;", '"').replace("&quot;", '"'))
    assert data["device"]["lat"] == pytest.approx(31.2204)
    assert data["device"]["lng"] == pytest.approx(121.4245)
    assert data["site"]["name"] == "一号车间" and len(data["site"]["polygon"]) == 3
    assert data["install"] == {"lat": 31.2203, "lng": 121.4243}
    assert match.group(2) == "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    assert "/vendor/leaflet/dist/leaflet.js" in html and "/static/device.js" in html
    # No position at all: no map.
    plain = client.get(f"/machines/{world.machines['A'].id}")
    assert plain.status_code == 200
    b_page = sign_in("reg_changning").get(f"/machines/{world.machines['B'].id}").text
    assert 'id="machine-map"' not in b_page and "尚未加装芯片" in b_page


def test_timeline_pages_back_without_gaps_or_repeats(
    sign_in: SignIn, db: Session, world: World, later: datetime
) -> None:
    base = NOW + timedelta(minutes=1)
    db.add_all(
        _message("WGC000001", "evt", 100 + n, base + timedelta(seconds=n), {"type": "power_loss"})
        for n in range(95)
    )
    db.commit()
    client = sign_in("reg_changning")
    machine_id = world.machines["A"].id
    html = _timeline(client.get(f"/machines/{machine_id}").text)
    times = re.findall(r'<time datetime="([^"]+)"', html)
    cursor = re.search(r'hx-get="/machines/\d+/timeline\?until=([^"]+)"', html)
    seen = list(times)
    assert len(times) == 40 and cursor
    while cursor:
        partial = client.get(
            f"/machines/{machine_id}/timeline?until={cursor.group(1)}",
            headers={"HX-Request": "true"},
        )
        assert partial.status_code == 200 and "<html" not in partial.text
        times = re.findall(r'<time datetime="([^"]+)"', partial.text)
        seen += times
        cursor = re.search(r'hx-get="/machines/\d+/timeline\?until=([^"]+)"', partial.text)
    # 95 events and the fitting, each exactly once, newest first.
    assert len(seen) == 96 and len(set(seen)) == 96
    assert seen == sorted(seen, reverse=True)
    # Without htmx the cursor is a link to the full page.
    plain = client.get(f"/machines/{machine_id}/timeline?until=x", follow_redirects=False)
    assert plain.status_code == 303


def test_machine_pages_are_scoped(sign_in: SignIn, db: Session, world: World) -> None:
    history_of_chip_a(db, world)
    db.commit()
    client = sign_in("reg_zhengzhou")
    machine_id = world.machines["A"].id
    for url in (
        f"/machines/{machine_id}",
        f"/machines/{machine_id}/timeline",
        f"/machines/{machine_id}/bindings/1/photo",
    ):
        response = client.get(url, headers={"HX-Request": "true"})
        assert response.status_code == 404, url
        assert "气体报警" not in response.text


# --- installer page ----------------------------------------------------------------
def _install(
    client: TestClient,
    machine: str,
    device_id: str,
    photo: tuple[str, bytes, str] | None = ("chip.png", b"", "image/png"),
    **fields: str,
) -> Any:
    form = client.get("/install")
    assert form.status_code == 200
    data = {
        "machine": machine,
        "device_id": device_id,
        "csrf_token": csrf_of(client, form.text),
        **fields,
    }
    files = None
    if photo is not None:
        name, content, media = photo
        files = {"photo": (name, content or png_bytes(), media)}
    return client.post("/install", data=data, files=files, follow_redirects=False)


def _photos(settings: Settings) -> list[Path]:
    folder = settings.data_dir / "photos"
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.fixture
def chips(db: Session, world: World) -> Iterator[None]:
    add_chip(db, "WGC000009", 9)
    add_chip(db, "WGC000010", 10)
    db.commit()
    yield


def test_installer_binds_a_chip_with_photo_and_position(
    sign_in: SignIn, db: Session, world: World, settings: Settings, chips: None
) -> None:
    client = sign_in("installer_cn")
    home = client.get("/").text
    assert 'href="/install"' in home and 'href="/alarms"' not in home
    machine = world.machines["B"]
    # The label's URL, as the camera reads it (the next issue signs it).
    url = f"https://weldguard.example.cn/m/{machine.code}?sig=0123abcd"
    response = _install(client, url, "WGC000009", lat="31.2180123", lon="121.3760456")
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert re.fullmatch(r"/install/bindings/\d+", location)
    done = client.get(location).text
    assert "芯片绑定成功" in done and machine.code in done and "WGC000009" in done
    assert "31.21801, 121.37605" in done and "installer_cn" in done

    db.expire_all()
    binding = db.scalars(select(ChipBinding).where(ChipBinding.machine_id == machine.id)).one()
    assert binding.removed_at is None and binding.fitted_by_name == "installer_cn"
    assert binding.latitude == pytest.approx(31.2180123)
    assert binding.longitude == pytest.approx(121.3760456)
    assert binding.photo_path and re.fullmatch(r"photos/[0-9a-f]{32}\.png", binding.photo_path)
    assert (settings.data_dir / binding.photo_path).read_bytes() == png_bytes()
    assert db.get(Machine, machine.id).status == MachineStatus.CHIP_FITTED.value  # type: ignore[union-attr]

    # The machine page shows the binding with its photo and position.
    page = client.get(f"/machines/{machine.id}").text
    photo_url = f"/machines/{machine.id}/bindings/{binding.id}/photo"
    assert f'src="{photo_url}"' in page and "31.21801, 121.37605" in page
    photo = client.get(photo_url)
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/png"
    assert photo.content == png_bytes()
    # Someone outside the area sees neither the binding nor its photo.
    outsider = sign_in("reg_zhengzhou")
    assert outsider.get(photo_url).status_code == 404
    assert outsider.get(location).status_code == 404


def test_bare_code_and_no_position_are_fine(
    sign_in: SignIn, db: Session, world: World, settings: Settings, chips: None
) -> None:
    client = sign_in("ent_a")  # enterprise staff fit their own machines
    machine = MachineService(db).register(
        ADMIN_SCOPE,
        MachineInput("SN-A-009", "佳士", "NB-350", "mig_mag", 350, world.enterprises["A"].id),
        NOW,
    )
    db.commit()
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 100
    response = _install(client, machine.code.lower(), "WGC000010", ("p.jpg", jpeg, "image/jpeg"))
    assert response.status_code == 303, response.text
    db.expire_all()
    binding = db.scalars(select(ChipBinding).where(ChipBinding.machine_id == machine.id)).one()
    assert binding.latitude is None and binding.photo_path and binding.photo_path.endswith(".jpg")


def _no_new_binding(db: Session, before: int, settings: Settings) -> None:
    db.expire_all()
    assert len(db.scalars(select(ChipBinding)).all()) == before
    assert _photos(settings) == []


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("empty_machine", 422, "请扫描焊机标签二维码或输入焊机编码"),
        ("garbage", 422, "无法识别焊机编码"),
        ("unknown_machine", 404, "找不到焊机 WG00000000，或该焊机不在您的管辖范围内"),
        ("foreign_machine", 404, "或该焊机不在您的管辖范围内"),
        ("retired", 422, "已报废，不能加装芯片"),
        ("bad_device_id", 422, "芯片设备号格式不对"),
        ("unknown_chip", 404, "芯片 WGX999999 未在平台登记"),
        ("same_machine", 409, "已绑定在焊机"),
        ("chip_elsewhere", 409, "目前装在焊机"),
        ("machine_has_chip", 409, "目前装有芯片 WGC000001"),
        ("no_photo", 422, "请拍摄芯片安装照片"),
        ("gif_photo", 415, "照片须为 JPEG 或 PNG 图片"),
        ("text_as_png", 415, "照片须为 JPEG 或 PNG 图片"),
        ("big_photo", 413, "照片超过 8 MB"),
        ("bad_position", 422, "手机定位数据无效"),
    ],
)
def test_install_errors_are_named_and_write_nothing(
    sign_in: SignIn,
    db: Session,
    world: World,
    settings: Settings,
    chips: None,
    case: str,
    status: int,
    message: str,
) -> None:
    machines = MachineService(db)
    retired = machines.register(
        ADMIN_SCOPE,
        MachineInput("SN-B-OLD", "瑞凌", "ZX7", "manual_arc", 250, world.enterprises["B"].id),
        NOW,
    )
    machines.retire(ADMIN_SCOPE, retired.id, NOW)
    db.commit()
    before = len(db.scalars(select(ChipBinding)).all())
    a, b, z = (world.machines[k].code for k in "ABZ")
    png = ("p.png", png_bytes(), "image/png")
    args: dict[str, tuple[str, str, Any, dict[str, str]]] = {
        "empty_machine": ("", "WGC000009", png, {}),
        "garbage": ("https://example.cn/label?id=12", "WGC000009", png, {}),
        "unknown_machine": ("WG00000000", "WGC000009", png, {}),
        "foreign_machine": (z, "WGC000009", png, {}),
        "retired": (retired.code, "WGC000009", png, {}),
        "bad_device_id": (b, "WG 9!", png, {}),
        "unknown_chip": (b, "WGX999999", png, {}),
        "same_machine": (a, "WGC000001", png, {}),
        "chip_elsewhere": (b, "WGC000001", png, {}),
        "machine_has_chip": (a, "WGC000009", png, {}),
        "no_photo": (b, "WGC000009", None, {}),
        "gif_photo": (b, "WGC000009", ("p.gif", b"GIF89a" + b"\x00" * 20, "image/gif"), {}),
        "text_as_png": (b, "WGC000009", ("p.png", b"not an image", "image/png"), {}),
        "big_photo": (
            b,
            "WGC000009",
            ("p.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * (8 * 1024 * 1024), "image/png"),
            {},
        ),
        "bad_position": (b, "WGC000009", png, {"lat": "north", "lon": "121.3"}),
    }
    machine, device_id, photo, extra = args[case]
    client = sign_in("installer_cn")
    response = _install(client, machine, device_id, photo, **extra)
    assert response.status_code == status, response.text[:300]
    assert message in response.text
    assert "未写入任何数据" in response.text
    # The form comes back filled in (the code normalised once it was found).
    assert 'name="device_id"' in response.text
    if case == "foreign_machine":
        assert "郑州" not in response.text
    if case in ("chip_elsewhere", "machine_has_chip"):
        assert 'name="replace"' in response.text and "确认更换" in response.text
    _no_new_binding(db, before, settings)


def test_replacing_moves_the_chip_when_confirmed(
    sign_in: SignIn, db: Session, world: World, settings: Settings, chips: None
) -> None:
    client = sign_in("installer_cn")
    machine_b = world.machines["B"]
    response = _install(client, machine_b.code, "WGC000001", replace="1")
    assert response.status_code == 303, response.text
    db.expire_all()
    old = db.scalars(
        select(ChipBinding).where(ChipBinding.machine_id == world.machines["A"].id)
    ).one()
    assert old.removed_at is not None and old.removal_reason == "更换芯片"
    assert db.get(Machine, world.machines["A"].id).status == "registered"  # type: ignore[union-attr]
    new = db.scalars(select(ChipBinding).where(ChipBinding.machine_id == machine_b.id)).one()
    assert new.removed_at is None and new.photo_path


def test_a_chip_in_a_machine_outside_the_area_cannot_be_taken(
    sign_in: SignIn, db: Session, world: World, settings: Settings, chips: None
) -> None:
    MachineService(db).fit_chip(
        world.machines["Z"], "WGZ000001", "860000000000099", "89860000000000000099", "x", NOW
    )
    db.commit()
    client = sign_in("installer_cn")
    response = _install(client, world.machines["B"].code, "WGZ000001", replace="1")
    assert response.status_code == 409
    assert "不在您管辖范围内的焊机上" in response.text
    assert world.machines["Z"].code not in response.text
    assert _photos(settings) == []


def test_a_failing_bind_leaves_no_photo(
    sign_in: SignIn,
    db: Session,
    world: World,
    settings: Settings,
    chips: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from weldguard.device.registry import DeviceRegistry

    def refuse(*args: Any, **kwargs: Any) -> ChipBinding:
        raise Conflict("芯片正在被另一名安装人员绑定")

    monkeypatch.setattr(DeviceRegistry, "bind", refuse)
    client = sign_in("installer_cn")
    response = _install(client, world.machines["B"].code, "WGC000009")
    assert response.status_code == 409
    assert "芯片正在被另一名安装人员绑定" in response.text
    _no_new_binding(db, 1, settings)


def test_install_page_needs_the_role_and_the_form_token(
    sign_in: SignIn, world: World, chips: None, settings: Settings
) -> None:
    for username in ("reg_changning", "insp_xinjing", "welder_one"):
        client = sign_in(username)
        assert client.get("/install").status_code == 403, username
        assert 'href="/install"' not in client.get("/").text
    client = sign_in("installer_cn")
    client.get("/install")
    response = client.post(
        "/install",
        data={"machine": world.machines["B"].code, "device_id": "WGC000009"},
        files={"photo": ("p.png", png_bytes(), "image/png")},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert _photos(settings) == []


def test_machine_code_from_what_was_scanned() -> None:
    from weldguard.web.pages_device import machine_code_from

    for text in (
        "WG2CF9SMXD",
        " wg2cf9smxd ",
        "https://weldguard.example.cn/s/WG2CF9SMXD.3f9a0c1b2d",
        "https://weldguard.example.cn/scan/WG2CF9SMXD?sig=3f9a0c1b2d",
        "/m/WG2CF9SMXD",
        "https://x.cn/label?code=WG2CF9SMXD",
    ):
        assert machine_code_from(text) == "WG2CF9SMXD", text
    for text in ("", "WG2CF9SMX", "WGIL000000", "https://x.cn/label?id=12", "hello"):
        assert machine_code_from(text) is None, text


def test_install_page_prefills_and_looks_up_the_scanned_machine(
    sign_in: SignIn, world: World
) -> None:
    client = sign_in("installer_cn")
    code = world.machines["A"].code
    page = client.get(f"/install?machine=https://x.cn/m/{code}").text
    assert f'value="{code}"' in page and "WGC000001" in page
    for text in ('accept="image/*"', 'capture="environment"', 'name="lat"', 'name="lon"'):
        assert text in page
    card = client.get(f"/install/machine?machine={code}", headers={"HX-Request": "true"}).text
    assert code in card and "长宁华阳机电维修有限公司" in card
    foreign = world.machines["Z"].code
    card = client.get(f"/install/machine?machine={foreign}", headers={"HX-Request": "true"}).text
    assert "不在您的管辖范围内" in card and "郑州" not in card


# --- alarms list -----------------------------------------------------------------------
def _alarms(db: Session, world: World) -> None:
    for key, kind, severity, cleared in (
        ("A", "gas", "critical", False),
        ("A", "tamper", "warning", True),
        ("B", "over_current", "warning", False),
        ("Z", "offline_powered", "warning", False),
    ):
        machine = world.machines[key]
        db.add(
            DeviceAlarm(
                device_id=f"WGA{key}0001",
                kind=kind,
                severity=severity,
                machine_id=machine.id,
                enterprise_id=machine.enterprise_id,
                raised_at=NOW + timedelta(minutes=len(kind)),
                last_seen_at=NOW + timedelta(minutes=20),
                cleared_at=NOW + timedelta(minutes=30) if cleared else None,
                repeats=2 if kind == "gas" else 0,
                detail={"lel_pm": 120} if kind == "gas" else {},
            )
        )
    db.commit()


def test_alarm_list_is_scoped_and_filtered(sign_in: SignIn, db: Session, world: World) -> None:
    _alarms(db, world)
    client = sign_in("reg_changning")
    page = client.get("/alarms").text
    assert 'href="/alarms"' in page and "设备报警" in page
    assert total(page) == 3
    for text in ("气体报警", "严重", "未消除", "已消除", "超额定电流", "120‰ LEL", "重复 2 次"):
        assert text in page, text
    assert "通电离线</td>" not in page
    assert f'href="/machines/{world.machines["A"].id}"' in page
    assert total(client.get("/alarms?kind=gas").text) == 1
    assert total(client.get("/alarms?state=open").text) == 2
    assert total(client.get("/alarms?state=cleared").text) == 1
    assert total(client.get("/alarms?area=310105102").text) == 1  # 新泾镇: B
    ent_filter = client.get(f"/alarms?enterprise_id={world.enterprises['A'].id}").text
    assert total(ent_filter) == 2
    assert total(client.get(f"/alarms?machine_id={world.machines['B'].id}").text) == 1
    partial = client.get("/alarms?kind=gas", headers={"HX-Request": "true"}).text
    assert "<html" not in partial and total(partial) == 1
    # Filters naming something out of reach are a 404.
    assert client.get(f"/alarms?enterprise_id={world.enterprises['Z'].id}").status_code == 404
    assert client.get("/alarms?area=410100").status_code == 404

    assert total(sign_in("reg_zhengzhou").get("/alarms").text) == 1
    assert total(sign_in("reg_huayang").get("/alarms").text) == 2
    assert total(sign_in("ent_a").get("/alarms").text) == 2
    assert total(sign_in("safety_b").get("/alarms").text) == 1
    assert total(sign_in("insp_xinjing").get("/alarms").text) == 1
    assert total(sign_in("admin").get("/alarms").text) == 4
    for username in ("installer_cn", "welder_one"):
        assert sign_in(username).get("/alarms").status_code == 403


def test_another_areas_regulator_sees_no_alarms(sign_in: SignIn, db: Session, world: World) -> None:
    machine = world.machines["A"]
    db.add(
        DeviceAlarm(
            device_id="WGC000001",
            kind="tamper",
            severity="critical",
            machine_id=machine.id,
            enterprise_id=machine.enterprise_id,
            raised_at=NOW,
            last_seen_at=NOW,
            detail={"what": "chip_removed"},
        )
    )
    db.commit()
    page = sign_in("reg_zhengzhou").get("/alarms").text
    assert total(page) == 0 and "没有符合条件的设备报警" in page
    assert "芯片被拆离焊机" in sign_in("reg_changning").get("/alarms").text
