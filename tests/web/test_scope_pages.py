"""Every page shows only what the user's scope reaches; the rest is a 404 that
looks exactly like a record that does not exist."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import World, id_number
from tests.web.helpers import extend_world
from weldguard.welder.identity import IdentityVault
from weldguard.welder.repository import WelderRepository

SignIn = Callable[[str], TestClient]
NAMES = {
    "A": "长宁华阳机电维修有限公司",
    "B": "新泾钢结构工程有限公司",
    "C": "虹桥商场管理有限公司",
    "Z": "郑州中原重工机械有限公司",
}


def _certificate_ids(db: Session, world: World) -> dict[str, int]:
    repo = WelderRepository(db)
    return {
        key: certificates[-1].id
        for key, w in world.welders.items()
        if (certificates := repo.certificates_of(w.id))
    }


def _detail_urls(db: Session, world: World, key: str) -> list[str]:
    return [
        f"/enterprises/{world.enterprises[key].id}",
        f"/machines/{world.machines[key].id}",
        f"/welders/{world.welders[key].id}",
        f"/certificates/{_certificate_ids(db, world)[key]}",
    ]


def _assert_not_found(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404, url
    assert "找不到该页面或记录" in response.text or "不存在" in response.text
    # Same page whether the record is out of scope or missing altogether.
    assert "不在您的管辖范围内" in response.text


def _lists(client: TestClient) -> str:
    return "".join(
        client.get(url).text for url in ("/enterprises", "/machines", "/welders", "/certificates")
    )


VISIBLE = {
    "reg_changning": {"A", "B", "C"},
    "reg_huayang": {"A"},
    "reg_zhengzhou": {"Z"},
    "reg_changning_zj": {"B"},
    "insp_xinjing": {"B"},
    "ent_a": {"A"},
    "safety_b": {"B"},
    "admin": {"A", "B", "C", "Z"},
}


@pytest.mark.parametrize("username", sorted(VISIBLE))
def test_lists_and_details_follow_the_scope(
    sign_in: SignIn, db: Session, world: World, username: str
) -> None:
    client = sign_in(username)
    visible = VISIBLE[username]
    html = _lists(client)
    for key, name in NAMES.items():
        assert (name in html) == (key in visible), (username, key)
        assert (f"焊工{key}" in html) == (key in visible), (username, key)
    for key in NAMES:
        for url in _detail_urls(db, world, key):
            if key in visible:
                response = client.get(url)
                assert response.status_code == 200, (username, url)
            else:
                _assert_not_found(client, url)


def test_missing_records_look_like_foreign_ones(sign_in: SignIn, world: World) -> None:
    client = sign_in("reg_huayang")
    for url in (
        "/enterprises/999999",
        "/machines/999999",
        "/welders/999999",
        "/certificates/999999",
    ):
        _assert_not_found(client, url)
    foreign = client.get(f"/enterprises/{world.enterprises['Z'].id}")
    missing = client.get("/enterprises/999999")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.text == missing.text


def test_detail_pages_render_for_a_regulator(sign_in: SignIn, db: Session, world: World) -> None:
    client = sign_in("reg_changning")
    a = world.enterprises["A"]
    page = client.get(f"/enterprises/{a.id}")
    assert page.status_code == 200
    for text in (
        NAMES["A"],
        a.credit_code,
        "上海市长宁区华阳路街道",
        "张三",
        "在产",
        "是否流动作业",
        "电焊设备数量（单位：台）",
        f"/machines?enterprise_id={a.id}",
        f"/welders?enterprise_id={a.id}",
    ):
        assert text in page.text, text
    assert "上海市上海市" not in page.text
    machine = client.get(f"/machines/{world.machines['A'].id}")
    assert machine.status_code == 200
    assert "焊条电弧焊" in machine.text and "已加芯" in machine.text
    assert "WGC000001" in machine.text and "860000000000001" in machine.text
    assert "芯片绑定记录" in machine.text
    welder = client.get(f"/welders/{world.welders['A'].id}")
    assert welder.status_code == 200
    assert "特种作业操作证" in welder.text and "有效" in welder.text
    assert "139****0001" in welder.text  # regulators see a masked phone
    assert "13900000001" not in welder.text
    certificate = client.get(f"/certificates/{_certificate_ids(db, world)['A']}")
    assert certificate.status_code == 200
    for text in ("熔化焊接与热切割作业", "上海市应急管理局", "应急管理部门", "有效期至", "焊工A"):
        assert text in certificate.text, text


def test_enterprise_sees_own_phone_numbers(sign_in: SignIn, world: World) -> None:
    client = sign_in("ent_a")
    page = client.get(f"/welders/{world.welders['A'].id}")
    assert "13900000001" in page.text


def test_navigation_by_role(sign_in: SignIn, world: World) -> None:
    regulator = sign_in("reg_changning").get("/").text
    for label in ("首页", "企业", "焊机", "焊工", "证书", 'href="/imports"'):
        assert label in regulator
    inspector = sign_in("insp_xinjing").get("/").text
    assert 'href="/imports"' not in inspector and 'href="/enterprises"' in inspector
    enterprise = sign_in("ent_a").get("/").text
    assert (
        "本企业" in enterprise and f'href="/enterprises/{world.enterprises["A"].id}"' in enterprise
    )
    assert 'href="/imports"' not in enterprise
    assert NAMES["A"] in enterprise and "企业管理员" in enterprise
    welder = sign_in("welder_one").get("/").text
    assert "我的证书" in welder and 'href="/machines"' not in welder
    assert "焊工A" in welder and "特种作业操作证" in welder


def test_enterprise_user_cannot_reach_imports_or_foreign_filters(
    sign_in: SignIn, world: World
) -> None:
    client = sign_in("ent_a")
    assert client.get("/imports").status_code == 403
    assert client.get(f"/machines?enterprise_id={world.enterprises['B'].id}").status_code == 404
    assert client.get("/enterprises?area=310105001").status_code == 404


def test_welder_sees_only_own_records(sign_in: SignIn, db: Session, world: World) -> None:
    client = sign_in("welder_one")
    own = _certificate_ids(db, world)
    listing = client.get("/certificates").text
    assert f"/certificates/{own['A']}" in listing
    for key in ("B", "C", "Z"):
        assert f"/certificates/{own[key]}" not in listing
        _assert_not_found(client, f"/certificates/{own[key]}")
        _assert_not_found(client, f"/welders/{world.welders[key].id}")
    assert client.get(f"/certificates/{own['A']}").status_code == 200
    assert client.get(f"/welders/{world.welders['A'].id}").status_code == 200


def test_area_outside_the_subtree_is_not_found(sign_in: SignIn, world: World) -> None:
    client = sign_in("reg_huayang")
    assert client.get("/?area=310105102").status_code == 404
    assert client.get("/enterprises?area=310105102").status_code == 404
    assert client.get("/?area=999999").status_code == 404
    assert client.get("/?area=310105001").status_code == 200


def test_employment_outside_the_scope_stays_anonymous(
    sign_in: SignIn, db: Session, world: World, vault: IdentityVault
) -> None:
    from tests.factories import ADMIN_SCOPE, TODAY
    from weldguard.welder.service import WelderService

    WelderService(db, vault).employ(
        ADMIN_SCOPE, world.welders["A"], world.enterprises["Z"].id, TODAY
    )
    db.commit()
    page = sign_in("reg_huayang").get(f"/welders/{world.welders['A'].id}").text
    assert NAMES["A"] in page
    assert NAMES["Z"] not in page and "辖区外单位" in page


def test_id_numbers_never_appear_unmasked(
    sign_in: SignIn, db: Session, world: World, vault: IdentityVault
) -> None:
    extend_world(db, world, vault)
    raw_numbers = [id_number(n) for n in range(1, 6)]
    for username in ("admin", "reg_changning", "ent_a", "welder_one"):
        client = sign_in(username)
        urls = ["/", "/welders", "/certificates", "/enterprises", "/machines"]
        for key in world.welders:
            urls.append(f"/welders/{world.welders[key].id}")
        for welder in world.welders.values():
            for certificate in WelderRepository(db).certificates_of(welder.id):
                urls.append(f"/certificates/{certificate.id}")
        for url in urls:
            html = client.get(url).text
            for raw in raw_numbers:
                assert raw not in html, (username, url)
                assert raw[6:14] not in html, (username, url)  # nor the birth date
    page = sign_in("admin").get(f"/welders/{world.welders['A'].id}").text
    assert world.welders["A"].id_number_masked in page
    assert "310***********" in page
