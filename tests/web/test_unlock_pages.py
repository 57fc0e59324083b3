"""Pages of 扫码记录, 作业记录, 特殊时期 and the welder's own pages: every role, the
counts and reasons in Chinese, filters, paging, the forms, and no clear ID number
anywhere."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import NOW, World, id_number
from tests.unlock.test_records import make_scan, seed_records
from tests.web.conftest import csrf_of
from tests.web.helpers import stats_of
from weldguard.unlock.models import SpecialPeriod

SignIn = Callable[[str], TestClient]
TOTAL = re.compile(r"共 <b>(\d+)</b>")
RECORD_USERS = (
    "admin",
    "reg_changning",
    "reg_changning_zj",
    "reg_huayang",
    "reg_zhengzhou",
    "insp_xinjing",
    "ent_a",
    "safety_b",
)


def total(html: str) -> int:
    match = TOTAL.search(html)
    assert match, html[:500]
    return int(match.group(1))


@pytest.fixture
def seeded(db: Session, world: World) -> World:
    seed_records(db, world)
    return world


def clear_numbers() -> list[str]:
    numbers = [id_number(n) for n in range(1, 5)]
    return numbers + ["T" + n for n in numbers]


def assert_no_clear_id(html: str) -> None:
    for number in clear_numbers():
        assert number not in html


@pytest.mark.parametrize("username", RECORD_USERS)
def test_record_pages_render_for_each_role(sign_in: SignIn, seeded: World, username: str) -> None:
    client = sign_in(username)
    for url in ("/scans", "/work-sessions", "/special-periods", "/scans?outcome=allowed"):
        page = client.get(url)
        assert page.status_code == 200, (url, page.text[:300])
        assert 'href="/scans"' in page.text and "特殊时期" in page.text
        assert_no_clear_id(page.text)


@pytest.mark.parametrize("username", ["welder_one", "installer_cn"])
def test_record_pages_are_not_for_welders_and_installers(
    sign_in: SignIn, seeded: World, username: str
) -> None:
    client = sign_in(username)
    assert client.get("/scans").status_code == 403
    assert client.get("/work-sessions").status_code == 403


def test_scan_page_counts_and_reasons(sign_in: SignIn, seeded: World) -> None:
    html = sign_in("reg_changning").get("/scans").text
    stats = stats_of(html)
    assert stats["allowed"] == 4 and stats["blocked"] == 6 and stats["blocked_percent"] == 60.0
    # Per street, per reason, in Chinese, and the blocked list with the messages.
    assert re.search(r'data-area="310105009">.*?data-count="blocked">2<', html, re.S)
    assert 'data-reason="DURING_OPENING_HOURS"' in html and "人员密集场所营业时间" in html
    assert total(html) == 6
    assert "原因说明 CERT_EXPIRED" in html and "证书已过期" in html
    assert "/vendor/echarts/dist/echarts.min.js" in html
    assert 'id="scan-chart-data"' in html and "华阳路街道" in html
    # Sector-limited and street regulators, and an enterprise.
    assert stats_of(sign_in("reg_changning_zj").get("/scans").text)["blocked"] == 1
    assert stats_of(sign_in("reg_huayang").get("/scans").text)["blocked"] == 3
    enterprise = sign_in("ent_a").get("/scans").text
    assert stats_of(enterprise)["blocked"] == 3 and "data-area=" not in enterprise
    assert "虹桥商场" not in enterprise


def test_scan_page_filters_and_paging(sign_in: SignIn, db: Session, seeded: World) -> None:
    for _ in range(25):
        make_scan(
            db, NOW, "blocked", seeded.machines["C"], seeded.enterprises["C"], None, ("TOO_FAR",)
        )
    db.commit()
    client = sign_in("reg_changning")
    assert total(client.get("/scans?area=310105009").text) == 27
    assert total(client.get("/scans?reason=TOO_FAR").text) == 26
    assert total(client.get(f"/scans?enterprise_id={seeded.enterprises['B'].id}").text) == 1
    assert total(client.get("/scans?outcome=allowed").text) == 4
    assert total(client.get("/scans?since=2026-11-22&until=2026-11-22").text) == 27
    first = client.get("/scans").text
    assert "第 1 / 2 页" in first and 'href="/scans?page=2"' in first
    partial = client.get("/scans?page=2", headers={"HX-Request": "true"}).text
    assert "<html" not in partial and partial.count('class="scan-row"') == 11
    # Outside the reach: not found.
    huayang = sign_in("reg_huayang")
    assert huayang.get("/scans?area=310105009").status_code == 404
    assert huayang.get(f"/scans?enterprise_id={seeded.enterprises['B'].id}").status_code == 404
    assert sign_in("ent_a").get("/scans?area=310105001").status_code == 404
    # Bad input falls back rather than failing.
    assert client.get("/scans?since=bad&until=2026-13-01&reason=X&outcome=Y").status_code == 200


def test_work_sessions_page(sign_in: SignIn, seeded: World) -> None:
    client = sign_in("reg_changning")
    html = client.get("/work-sessions").text
    assert total(html) == 3
    assert "焊工A" in html and "焊工B" in html and "焊工Z" not in html
    assert seeded.machines["A"].code in html
    assert "20 分 0 秒" in html and "0.85 kWh" in html and "焊工结束作业" in html
    assert stats_of(html)["sessions"] == 3
    assert_no_clear_id(html)
    assert total(client.get(f"/work-sessions?machine_id={seeded.machines['A'].id}").text) == 2
    assert total(sign_in("safety_b").get("/work-sessions").text) == 1
    assert total(sign_in("reg_changning_zj").get("/work-sessions").text) == 1


def test_declaring_and_ending_a_special_period(sign_in: SignIn, db: Session, world: World) -> None:
    client = sign_in("reg_changning")
    page = client.get("/special-periods").text
    assert 'action="/special-periods"' in page and "发布特殊时期" in page
    form = {
        "csrf_token": csrf_of(client, page),
        "title": "进博会期间禁止动火",
        "kind": "ban_hot_work",
        "area": "310105001",
        "starts_at": "2026-11-22T13:00",
        "ends_at": "2026-11-24T18:00",
    }
    done = client.post("/special-periods", data=form, follow_redirects=False)
    assert done.status_code == 303, done.text
    listed = client.get("/special-periods").text
    assert "进博会期间禁止动火" in listed and "未开始" in listed and "提前结束" in listed
    period = db.scalars(select(SpecialPeriod)).one()
    assert period.starts_at == NOW + timedelta(hours=1)  # 13:00 in China

    # Errors: each named, nothing written.
    bad = client.post(
        "/special-periods",
        data={**form, "title": "", "ends_at": "2026-11-22T12:30", "area": "410102"},
    )
    assert bad.status_code == 422
    assert "请填写特殊时期名称" in bad.text and "结束时间须晚于开始时间" in bad.text
    assert "区域不在您的辖区内" in bad.text
    garbled = client.post("/special-periods", data={**form, "starts_at": "明天"})
    assert garbled.status_code == 422 and "开始时间格式无效" in garbled.text
    assert db.scalar(select(func.count(SpecialPeriod.id))) == 1

    # Others read it but cannot declare or end it; without the CSRF token nothing happens.
    enterprise = sign_in("ent_a")
    html = enterprise.get("/special-periods").text
    assert "进博会期间禁止动火" in html and "发布特殊时期" not in html and "提前结束" not in html
    token = csrf_of(enterprise, html)
    refused = enterprise.post("/special-periods", data={**form, "csrf_token": token})
    assert refused.status_code == 403
    assert "进博会" not in sign_in("insp_xinjing").get("/special-periods").text
    housing = sign_in("reg_changning_zj")
    html = housing.get("/special-periods").text
    assert "提前结束" not in html  # every sector: not the housing department's to end
    assert (
        housing.post(
            f"/special-periods/{period.id}/end", data={"csrf_token": csrf_of(housing, html)}
        ).status_code
        == 403
    )

    client = sign_in("reg_huayang")
    html = client.get("/special-periods").text
    assert client.post(f"/special-periods/{period.id}/end", data={}).status_code == 403  # CSRF
    ended = client.post(
        f"/special-periods/{period.id}/end",
        data={"csrf_token": csrf_of(client, html)},
        follow_redirects=False,
    )
    assert ended.status_code == 303
    assert "已取消" in client.get("/special-periods").text


def test_sector_limited_form_offers_own_sectors(sign_in: SignIn, world: World) -> None:
    html = sign_in("reg_changning_zj").get("/special-periods").text
    assert 'value="施工工地" checked' in html and 'value="工贸"' not in html


def test_welder_pages(sign_in: SignIn, seeded: World) -> None:
    client = sign_in("welder_one")
    home = client.get("/").text
    for link in ("/me/certificates", "/me/sessions", "/me/blocked"):
        assert f'href="{link}"' in home
    assert stats_of(home)["recent_blocked"] == 2
    certificates = client.get("/me/certificates").text
    assert "熔化焊接与热切割作业" in certificates and "有效期至" in certificates
    assert 'data-cert-status="valid"' in certificates
    sessions = client.get("/me/sessions").text
    assert total(sessions) == 2 and "20 分 0 秒" in sessions and "焊工B" not in sessions
    blocked = client.get("/me/blocked").text
    assert total(blocked) == 3
    assert "证书已过期" in blocked and "原因说明 NO_CERTIFICATE" in blocked
    assert "非本单位焊工" not in blocked  # welder B's attempt on A's machine is not theirs
    for html in (home, certificates, sessions, blocked, client.get("/special-periods").text):
        assert_no_clear_id(html)
    for url in ("/me/certificates", "/me/sessions", "/me/blocked"):
        assert sign_in("ent_a").get(url).status_code == 403
