"""Search, filters, pagination and htmx partial updates of the four lists."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import World
from tests.web.helpers import add_many_enterprises, extend_world
from weldguard.welder.identity import IdentityVault

SignIn = Callable[[str], TestClient]
TOTAL = re.compile(r"共 <b>(\d+)</b>")
ROW = re.compile(r'<tr>\s*<td data-label="企业名称">')


def total(html: str) -> int:
    match = TOTAL.search(html)
    assert match, html[:500]
    return int(match.group(1))


def test_enterprise_list_paginates_20_per_page(sign_in: SignIn, db: Session, world: World) -> None:
    add_many_enterprises(db, 25)
    client = sign_in("reg_changning")
    first = client.get("/enterprises").text
    assert total(first) == 28
    assert len(ROW.findall(first)) == 20
    assert "第 1 / 2 页" in first
    assert 'href="/enterprises?page=2"' in first
    second = client.get("/enterprises?page=2").text
    assert len(ROW.findall(second)) == 8
    assert 'rel="prev"' in second
    # Filters survive in the page links.
    filtered = client.get("/enterprises?area=310105001&q=批量").text
    assert total(filtered) == 25
    assert 'href="/enterprises?area=310105001&amp;q=%E6%89%B9%E9%87%8F&amp;page=2"' in filtered
    # A page past the end is simply empty, a bad page number is page 1.
    assert total(client.get("/enterprises?page=99").text) == 28
    assert len(ROW.findall(client.get("/enterprises?page=abc").text)) == 20


def test_enterprise_filters(sign_in: SignIn, db: Session, world: World) -> None:
    add_many_enterprises(db, 3, street="新泾镇")
    client = sign_in("reg_changning")
    assert total(client.get("/enterprises?q=新泾钢结构").text) == 1
    assert total(client.get(f"/enterprises?q={world.enterprises['C'].credit_code}").text) == 1
    assert total(client.get("/enterprises?area=310105102").text) == 4
    construction = client.get("/enterprises?sector=施工工地").text
    assert total(construction) == 1 and "新泾钢结构工程有限公司" in construction
    crowded = client.get("/enterprises?crowded=商场（市场）").text
    assert total(crowded) == 1 and "虹桥商场管理有限公司" in crowded
    assert total(client.get("/enterprises?mobile=1").text) == 3
    assert total(client.get("/enterprises?mobile=0").text) == 3
    assert total(client.get("/enterprises?status=停产").text) == 0
    # Unknown choices are ignored rather than failing.
    assert total(client.get("/enterprises?sector=不存在").text) == 6
    page = client.get("/enterprises").text
    for option in ("华阳路街道", "新泾镇", "人员密集场所", "商场（市场）", "半停产"):
        assert f">{option}</option>" in page or f"\u3000{option}</option>" in page


def test_htmx_gets_only_the_results(sign_in: SignIn, world: World) -> None:
    client = sign_in("reg_changning")
    partial = client.get("/enterprises?sector=施工工地", headers={"HX-Request": "true"})
    assert partial.status_code == 200
    assert "<html" not in partial.text and 'class="filters"' not in partial.text
    assert total(partial.text) == 1 and "新泾钢结构工程有限公司" in partial.text
    assert partial.headers["vary"] == "HX-Request"
    restore = client.get(
        "/enterprises",
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in restore.text
    full = client.get("/enterprises").text
    assert 'hx-get="/enterprises"' in full and 'hx-target="#results"' in full
    assert 'hx-push-url="true"' in full and 'method="get" action="/enterprises"' in full
    assert '<div id="results"' in full


def test_enterprise_list_links_and_exports(sign_in: SignIn, world: World) -> None:
    client = sign_in("reg_changning")
    a = world.enterprises["A"]
    html = client.get("/enterprises?area=310105001").text
    assert f'href="/enterprises/{a.id}"' in html
    assert f'href="/machines?enterprise_id={a.id}"' in html
    assert f'href="/welders?enterprise_id={a.id}"' in html
    assert 'href="/exports/enterprises.xlsx?area=310105001"' in html
    assert 'action="/exports/monthly.xlsx"' in html


def test_machine_list_filters_and_chips(
    sign_in: SignIn, db: Session, world: World, vault: IdentityVault
) -> None:
    extend_world(db, world, vault)
    client = sign_in("reg_changning")
    html = client.get("/machines").text
    assert total(html) == 5  # A, A2, B, C and C's retired machine
    assert "WGC000001" in html and "未加芯" in html and "已报废" in html
    chipped = client.get("/machines?status=chip_fitted").text
    assert total(chipped) == 1 and world.machines["A"].code in chipped
    assert total(client.get("/machines?process=mig_mag").text) == 1
    assert total(client.get("/machines?area=310105001").text) == 2
    by_enterprise = client.get(f"/machines?enterprise_id={world.enterprises['A'].id}").text
    assert total(by_enterprise) == 2 and "长宁华阳机电维修有限公司" in by_enterprise
    assert total(client.get("/machines?q=SN-B-001").text) == 1
    assert total(client.get("/machines?q=佳士").text) == 1
    assert client.get(f"/machines?enterprise_id={world.enterprises['Z'].id}").status_code == 404
    assert ">熔化极气体保护焊(MIG/MAG)</option>" in html


def test_welder_list_filters(
    sign_in: SignIn, db: Session, world: World, vault: IdentityVault
) -> None:
    extend_world(db, world, vault)
    client = sign_in("reg_changning")
    html = client.get("/welders").text
    assert total(html) == 4
    assert "139****0005" in html and "13900000005" not in html
    uncertified = client.get("/welders?certified=0").text
    assert total(uncertified) == 1 and "无证焊工" in uncertified
    assert total(client.get("/welders?certified=1").text) == 3
    assert total(client.get("/welders?area=310105001").text) == 2
    assert total(client.get(f"/welders?enterprise_id={world.enterprises['B'].id}").text) == 1
    assert total(client.get("/welders?q=焊工C").text) == 1
    # Certificates as coloured badges, with the reason as a tooltip.
    c_row = client.get("/welders?q=焊工C").text
    assert "badge-ok" in c_row and "badge-bad" in c_row and "证书已过期" in c_row


def test_certificate_list_filters(
    sign_in: SignIn, db: Session, world: World, vault: IdentityVault
) -> None:
    extend_world(db, world, vault)
    client = sign_in("reg_changning")
    html = client.get("/certificates").text
    assert total(html) == 5
    expiring = client.get("/certificates?status=expiring").text
    assert total(expiring) == 1 and "焊工B" in expiring and "badge-warn" in expiring
    assert "建筑施工特种作业操作资格证" in expiring and "10 天" in expiring
    expired = client.get("/certificates?status=expired").text
    assert total(expired) == 1 and "焊工C" in expired
    assert total(client.get("/certificates?kind=special_operation").text) == 3
    assert total(client.get("/certificates?source=住建部门").text) == 1
    assert total(client.get("/certificates?q=焊工A").text) == 1
    assert total(client.get(f"/certificates?enterprise_id={world.enterprises['B'].id}").text) == 2
    for label in ("特种设备安全管理和作业人员证", ">临期<", "应急管理部门", "市场监管部门"):
        assert label in html


def test_certificate_list_filters_by_area(sign_in: SignIn, world: World) -> None:
    client = sign_in("reg_changning")
    assert total(client.get("/certificates").text) == 3
    huayang = client.get("/certificates?area=310105001").text
    assert total(huayang) == 1
    assert "焊工A" in huayang and "焊工B" not in huayang
    # An area outside the viewer's subtree is not found, as elsewhere.
    assert client.get("/certificates?area=410100").status_code == 404
