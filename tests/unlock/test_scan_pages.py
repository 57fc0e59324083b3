"""The scan page: phone sign-in, each role's view, the welder's scan and its
decision page, CSRF."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import date, timedelta
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import NOW, PASSWORD, World
from tests.unlock.test_scan_service import live_machine
from tests.web.conftest import csrf_of, login
from weldguard.app import create_app
from weldguard.auth.models import AccessToken, User
from weldguard.auth.service import AuthService
from weldguard.config import Settings
from weldguard.deps import SESSION_COOKIE, get_clock
from weldguard.errors import AccountLocked, AuthenticationFailed
from weldguard.machine.models import Machine
from weldguard.unlock.labels import LabelSigner, signer_for
from weldguard.unlock.models import ScanRecord, WorkSession
from weldguard.welder.models import Certificate

WELDER_ONE_PHONE = "13900000001"  # on welder A's record (tests/factories.py)


@pytest.fixture
def quick_settings(settings: Settings) -> Settings:
    # No chip answers in these tests: the unlock wait is cut short.
    return settings.model_copy(update={"unlock_wait_s": 0.3})


@pytest.fixture
def web(quick_settings: Settings, session_factory: sessionmaker[Session]) -> Iterator[TestClient]:
    app = create_app(quick_settings)
    app.dependency_overrides[get_clock] = lambda: NOW
    with TestClient(app) as client:
        yield client


@pytest.fixture
def signer(settings: Settings) -> LabelSigner:
    return signer_for(settings)


def scan_url(signer: LabelSigner, machine: Machine) -> str:
    return f"/scan/{machine.code}?{urlencode({'sig': signer.sign(machine.code)})}"


def signed_in(web: TestClient, username: str) -> TestClient:
    response = login(web, username)
    assert response.status_code == 303, response.text
    return web


def test_anonymous_sees_the_label_info_and_a_phone_sign_in(
    web: TestClient, world: World, signer: LabelSigner
) -> None:
    machine = world.machines["A"]
    page = web.get(scan_url(signer, machine))
    assert page.status_code == 200
    html = page.text
    assert machine.code in html and "长宁华阳机电维修有限公司" in html and "ZX7-400" in html
    assert 'name="phone"' in html and "记住我" in html
    # Nothing beyond the label: no state, no welder.
    assert "焊机当前状态" not in html and "扫码开机</button>" not in html


def test_forged_label_is_refused_and_recorded(
    web: TestClient, world: World, signer: LabelSigner, db: Session
) -> None:
    machine = world.machines["A"]
    forged = signer.sign(world.machines["B"].code)
    page = web.get(f"/scan/{machine.code}?sig={forged}")
    assert page.status_code == 404 and "标签无效" in page.text
    bad_shape = web.get("/scan/<x>?sig=1")
    assert bad_shape.status_code in (404, 422)
    records = db.scalars(select(ScanRecord)).all()
    assert [r.outcome for r in records][:1] == ["invalid_label"]
    assert records[0].machine_code == machine.code and records[0].machine_id is None


def test_phone_sign_in_remembers_the_phone(
    web: TestClient, world: World, signer: LabelSigner, db: Session
) -> None:
    machine = world.machines["A"]
    url = scan_url(signer, machine)
    page = web.get(url)
    form = {
        "phone": "139 0000 0001",
        "password": "wrong-password",
        "sig": signer.sign(machine.code),
        "csrf_token": csrf_of(web, page.text),
    }
    wrong = web.post(f"/scan/{machine.code}/login", data=form, follow_redirects=False)
    assert wrong.status_code == 401 and "手机号或密码错误" in wrong.text
    welder_user = db.scalars(select(User).where(User.username == "welder_one")).one()
    db.refresh(welder_user)
    assert welder_user.failed_logins == 1  # the counter survives the failed sign-in

    no_csrf = web.post(
        f"/scan/{machine.code}/login",
        data={**form, "password": PASSWORD, "csrf_token": ""},
        follow_redirects=False,
    )
    assert no_csrf.status_code == 403

    ok = web.post(
        f"/scan/{machine.code}/login",
        data={**form, "password": PASSWORD, "remember": "1"},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == url
    cookie = ok.headers["set-cookie"]
    assert SESSION_COOKIE in cookie and "HttpOnly" in cookie
    max_age = int(re.search(r"Max-Age=(\d+)", cookie).group(1))  # type: ignore[union-attr]
    assert max_age == 30 * 86400
    token = db.scalars(select(AccessToken).where(AccessToken.name == "phone")).one()
    assert token.expires_at - token.created_at == timedelta(days=30)
    welcome = web.get(url)
    assert "扫码开机</button>" in welcome.text and 'name="idempotency_key"' in welcome.text


def test_phone_sign_in_without_remember_is_a_working_day(
    web: TestClient, world: World, signer: LabelSigner, settings: Settings
) -> None:
    machine = world.machines["A"]
    page = web.get(scan_url(signer, machine))
    ok = web.post(
        f"/scan/{machine.code}/login",
        data={
            "phone": WELDER_ONE_PHONE,
            "password": PASSWORD,
            "sig": signer.sign(machine.code),
            "csrf_token": csrf_of(web, page.text),
        },
        follow_redirects=False,
    )
    assert ok.status_code == 303
    assert f"Max-Age={settings.session_hours * 3600}" in ok.headers["set-cookie"]


def _submit(
    web: TestClient, signer: LabelSigner, machine: Machine, **fields: str
) -> httpx.Response:
    page = web.get(scan_url(signer, machine))
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
    assert key, page.text
    data = {
        "sig": signer.sign(machine.code),
        "idempotency_key": key.group(1),
        "lat": "31.220100",
        "lon": "121.420100",
        "accuracy": "12",
        "csrf_token": csrf_of(web, page.text),
        **fields,
    }
    return web.post(f"/scan/{machine.code}", data=data, follow_redirects=False)


def _panel_until_settled(web: TestClient, session_id: str) -> str:
    deadline = time.monotonic() + 10
    while True:
        panel = web.get(f"/scan/sessions/{session_id}/panel")
        assert panel.status_code == 200
        if 'data-status="starting"' not in panel.text or time.monotonic() > deadline:
            return panel.text


def test_welder_scan_allowed_then_no_answer_is_said_plainly(
    web: TestClient, world: World, signer: LabelSigner, db: Session, settings: Settings
) -> None:
    machine, _, _ = live_machine(db, settings, world)
    signed_in(web, "welder_one")
    submitted = _submit(web, signer, machine)
    assert submitted.status_code == 303
    record_url = submitted.headers["location"]
    assert record_url.startswith("/scan/records/")
    page = web.get(record_url)
    assert page.status_code == 200
    assert "核验通过" in page.text and 'id="session-panel"' in page.text
    work = db.scalars(select(WorkSession)).one()
    # Nobody answers in this test: after the (shortened) wait, a plain failure.
    panel = _panel_until_settled(web, work.id)
    assert 'data-status="failed"' in panel and "芯片无响应" in panel
    record = db.scalars(select(ScanRecord)).one()
    assert (record.outcome, record.distance_m is not None) == ("allowed", True)


def test_scan_post_needs_a_welder_signed_in(
    web: TestClient, world: World, signer: LabelSigner, db: Session, settings: Settings
) -> None:
    """A tap on 扫码开机 with no live sign-in (none, signed out, or another role's)
    goes back to the label's page, which asks to sign in or shows the status;
    nothing is recorded, nothing unlocked."""
    machine, _, _ = live_machine(db, settings, world)
    page = web.get(scan_url(signer, machine))
    data = {
        "sig": signer.sign(machine.code),
        "idempotency_key": "k" * 16,
        "csrf_token": csrf_of(web, page.text),
    }
    anonymous = web.post(f"/scan/{machine.code}", data=data, follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == scan_url(signer, machine)
    web.cookies.set(SESSION_COOKIE, "no-such-token")
    stale = web.post(f"/scan/{machine.code}", data=data, follow_redirects=False)
    assert stale.status_code == 303 and stale.headers["location"] == scan_url(signer, machine)
    signed_in(web, "insp_xinjing")
    inspector = web.post(
        f"/scan/{machine.code}",
        data={**data, "csrf_token": csrf_of(web)},
        follow_redirects=False,
    )
    assert inspector.status_code == 303
    assert inspector.headers["location"] == scan_url(signer, machine)
    assert db.scalar(select(func.count()).select_from(ScanRecord)) == 0
    assert db.scalar(select(func.count()).select_from(WorkSession)) == 0


def test_scan_answer_says_where_its_time_went(
    web: TestClient, world: World, signer: LabelSigner, db: Session, settings: Settings
) -> None:
    """Server-Timing on the scan's answer (for the browser's developer tools and
    bench/unlock_latency.py): the wait for a worker thread, the transaction (wall,
    CPU, commit) and the whole handler, each a duration in ms, the parts within
    the whole."""
    machine, _, _ = live_machine(db, settings, world)
    signed_in(web, "welder_one")
    submitted = _submit(web, signer, machine)
    assert submitted.status_code == 303
    timing = {
        name: float(duration)
        for name, _, duration in (
            part.strip().partition(";dur=")
            for part in submitted.headers["server-timing"].split(",")
        )
    }
    assert set(timing) == {"wait", "tx", "txcpu", "sql", "commit", "handler"}
    assert all(value >= 0 for value in timing.values())
    assert timing["commit"] <= timing["tx"] <= timing["handler"]
    assert timing["sql"] + timing["commit"] <= timing["tx"]
    assert timing["txcpu"] > 0  # the decision ran on that thread
    # The statements' round trips are PostgreSQL's; SQLite has none to count.
    assert (timing["sql"] > 0) == settings.database_url.startswith("postgresql")


def test_welder_scan_denied_lists_every_reason(
    web: TestClient, world: World, signer: LabelSigner, db: Session, settings: Settings
) -> None:
    machine, _, _ = live_machine(db, settings, world, online=False)
    cert = db.scalars(
        select(Certificate).where(Certificate.welder_id == world.welders["A"].id)
    ).one()
    cert.expiry_date = date(2026, 11, 1)
    db.commit()
    signed_in(web, "welder_one")
    submitted = _submit(web, signer, machine, lat="", lon="", accuracy="")
    page = web.get(submitted.headers["location"])
    assert "不能开机" in page.text
    assert "证书已过期" in page.text and "2026-11-01" in page.text
    assert "焊机离线" in page.text
    assert "未获取手机位置" in page.text  # a warning, listed too
    assert 'id="rescan"' in page.text
    assert db.scalar(select(func.count()).select_from(WorkSession)) == 0


def test_scan_and_end_need_the_csrf_token(
    web: TestClient, world: World, signer: LabelSigner, db: Session, settings: Settings
) -> None:
    machine, _, _ = live_machine(db, settings, world)
    signed_in(web, "welder_one")
    refused = _submit(web, signer, machine, csrf_token="x" * 40)
    assert refused.status_code == 403
    assert db.scalar(select(func.count()).select_from(ScanRecord)) == 0
    submitted = _submit(web, signer, machine)
    assert submitted.status_code == 303
    work = db.scalars(select(WorkSession)).one()
    ended = web.post(f"/scan/sessions/{work.id}/end", data={}, follow_redirects=False)
    assert ended.status_code == 403


@pytest.fixture
def patient_web(settings: Settings, session_factory: sessionmaker[Session]) -> Iterator[TestClient]:
    # The unlock wait outlasts the test, so that on a slow machine the unanswered
    # unlock cannot fail the session before the welder ends it.
    app = create_app(settings.model_copy(update={"unlock_wait_s": 30.0}))
    app.dependency_overrides[get_clock] = lambda: NOW
    with TestClient(app) as client:
        yield client


def test_double_submit_gives_one_record_and_end_of_work(
    patient_web: TestClient, world: World, signer: LabelSigner, db: Session, settings: Settings
) -> None:
    web = patient_web
    machine, _, _ = live_machine(db, settings, world)
    signed_in(web, "welder_one")
    page = web.get(scan_url(signer, machine))
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    data = {
        "sig": signer.sign(machine.code),
        "idempotency_key": key,
        "csrf_token": csrf_of(web, page.text),
    }
    first = web.post(f"/scan/{machine.code}", data=data, follow_redirects=False)
    second = web.post(f"/scan/{machine.code}", data=data, follow_redirects=False)
    assert first.headers["location"] == second.headers["location"]
    assert db.scalar(select(func.count()).select_from(ScanRecord)) == 1
    work = db.scalars(select(WorkSession)).one()
    # While the unlock is pending, the welder's scan page shows the session.
    again = web.get(scan_url(signer, machine))
    assert 'id="my-session"' in again.text
    ended = web.post(
        f"/scan/sessions/{work.id}/end",
        data={"csrf_token": csrf_of(web, again.text)},
        follow_redirects=False,
    )
    assert ended.status_code == 303
    page = web.get(ended.headers["location"])
    assert "作业已结束" in page.text
    db.refresh(work)
    assert (work.status, work.end_reason) == ("ended", "welder")


def test_installer_goes_on_to_the_binding_page(
    web: TestClient, world: World, signer: LabelSigner
) -> None:
    machine = world.machines["B"]
    signed_in(web, "installer_cn")
    response = web.get(scan_url(signer, machine), follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/install?machine={machine.code}"


def test_inspector_sees_the_machine_now_within_scope(
    web: TestClient, world: World, signer: LabelSigner, db: Session, settings: Settings
) -> None:
    # A welder works on a machine of enterprise A (华阳路街道).
    machine, _, _ = live_machine(db, settings, world)
    signed_in(web, "welder_one")
    assert _submit(web, signer, machine).status_code == 303
    work = db.scalars(select(WorkSession)).one()
    work.status = "active"
    db.commit()

    signed_in(web, "reg_changning")
    page = web.get(scan_url(signer, machine))
    assert page.status_code == 200 and "焊机当前状态" in page.text
    assert "在线" in page.text and "使用中" in page.text
    welder = world.welders["A"]
    assert welder.name in page.text and welder.id_number_masked in page.text
    assert "310105198503120" not in page.text  # never the clear number
    assert "特种作业操作证" in page.text and "有效" in page.text
    assert "动火作业票" in page.text

    # 新泾镇's inspector: enterprise A is outside the town.
    signed_in(web, "insp_xinjing")
    outside = web.get(scan_url(signer, machine))
    assert 'id="out-of-scope"' in outside.text and welder.name not in outside.text
    inside = web.get(scan_url(signer, world.machines["B"]))
    assert "焊机当前状态" in inside.text and "未加芯" in inside.text

    signed_in(web, "ent_a")
    own = web.get(scan_url(signer, machine))
    assert welder.name in own.text


def test_records_and_sessions_are_the_welders_own(
    web: TestClient, world: World, signer: LabelSigner, db: Session, settings: Settings
) -> None:
    machine, _, _ = live_machine(db, settings, world)
    signed_in(web, "welder_one")
    record_url = _submit(web, signer, machine).headers["location"]
    work = db.scalars(select(WorkSession)).one()
    signed_in(web, "ent_a")
    assert web.get(record_url).status_code == 404
    assert web.get(f"/scan/sessions/{work.id}/panel").status_code == 404
    web.cookies.clear()
    assert web.get(record_url, follow_redirects=False).status_code in (303, 401)


def test_phone_sign_in_service_rules(db: Session, settings: Settings, world: World) -> None:
    """AuthService.authenticate_phone: the account's phone or its welder's; a number
    of two accounts, or no account, signs into none; failures count toward the lock."""
    service = AuthService(db, settings)
    assert service.authenticate_phone("+86 139-0000-0001", PASSWORD, NOW).username == "welder_one"
    with pytest.raises(AuthenticationFailed):
        service.authenticate_phone("13800000000", PASSWORD, NOW)
    with pytest.raises(AuthenticationFailed):
        service.authenticate_phone("not a phone", PASSWORD, NOW)
    installer = db.scalars(select(User).where(User.username == "installer_cn")).one()
    installer.phone = "13900000001"  # the same number as welder A's record
    db.flush()
    with pytest.raises(AuthenticationFailed):
        service.authenticate_phone("13900000001", PASSWORD, NOW)
    installer.phone = "13700000007"
    db.flush()
    assert service.authenticate_phone("13700000007", PASSWORD, NOW).id == installer.id
    for _ in range(settings.login_max_failures):
        with pytest.raises(AuthenticationFailed):
            service.authenticate_phone("13700000007", "wrong-password", NOW)
    with pytest.raises(AccountLocked):
        service.authenticate_phone("13700000007", PASSWORD, NOW)
    db.rollback()
