"""The home page's counts, per persona, and the statistics service behind them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import TODAY, World
from tests.web.helpers import extend_world, stats_of
from weldguard.auth.repository import UserRepository
from weldguard.auth.scope import Scope
from weldguard.auth.service import AuthService
from weldguard.config import Settings
from weldguard.report.stats import AreaCounts, area_counts, counts_by_child_area, percent
from weldguard.welder.identity import IdentityVault

SignIn = Callable[[str], TestClient]


def scope_of(db: Session, settings: Settings, username: str) -> Scope:
    user = UserRepository(db).by_username(username)
    assert user is not None
    return AuthService(db, settings).scope_for(user)


def counts(
    enterprises: int,
    machines: int,
    chipped: int,
    welders: int,
    certified: int,
    expiring: int,
) -> AreaCounts:
    return AreaCounts(
        enterprises=enterprises,
        machines=machines,
        machines_with_chip=chipped,
        machine_chip_percent=percent(chipped, machines),
        welders=welders,
        welders_with_valid_certificate=certified,
        welder_certified_percent=percent(certified, welders),
        certificates_expiring_30d=expiring,
    )


# Derived from tests/factories.py plus tests/web/helpers.extend_world:
#   A (华阳路): machines A (chipped) + A2; welders A (certified) + uncertified
#   B (新泾镇, 施工工地): machine B; welder B (certified, one certificate expiring)
#   C (虹桥, 商场): machine C + a retired one (not counted); welder C (valid + expired)
#   Z (郑州中原区): machine Z; welder Z (certified)
EXPECTED = {
    "admin": counts(4, 5, 1, 5, 4, 1),
    "reg_changning": counts(3, 4, 1, 4, 3, 1),
    "reg_changning_zj": counts(1, 1, 0, 1, 1, 1),
    "reg_huayang": counts(1, 2, 1, 2, 1, 0),
    "reg_zhengzhou": counts(1, 1, 0, 1, 1, 0),
    "insp_xinjing": counts(1, 1, 0, 1, 1, 1),
    "installer_cn": counts(3, 4, 1, 4, 3, 1),
    "ent_a": counts(1, 2, 1, 2, 1, 0),
    "safety_b": counts(1, 1, 0, 1, 1, 1),
}


@pytest.fixture
def extended(db: Session, world: World, vault: IdentityVault) -> World:
    extend_world(db, world, vault)
    return world


def test_percentages() -> None:
    assert percent(1, 3) == 33.3
    assert percent(2, 3) == 66.7
    assert percent(0, 0) == 0.0
    assert percent(5, 5) == 100.0


@pytest.mark.parametrize("username", sorted(EXPECTED))
def test_area_counts_per_persona(
    db: Session, settings: Settings, extended: World, username: str
) -> None:
    assert area_counts(db, scope_of(db, settings, username), TODAY) == EXPECTED[username]


@pytest.mark.parametrize("username", sorted(EXPECTED))
def test_home_cards_show_the_counts(sign_in: SignIn, extended: World, username: str) -> None:
    html = sign_in(username).get("/").text
    expected = EXPECTED[username]
    assert stats_of(html) == {
        "enterprises": expected.enterprises,
        "machines": expected.machines,
        "machines_with_chip": expected.machines_with_chip,
        "machine_chip_percent": expected.machine_chip_percent,
        "welders": expected.welders,
        "welders_with_valid_certificate": expected.welders_with_valid_certificate,
        "welder_certified_percent": expected.welder_certified_percent,
        "certificates_expiring_30d": expected.certificates_expiring_30d,
    }
    for label in ("企业数", "焊机数", "加芯焊机", "焊工数", "持有效证焊工", "30天内到期证书"):
        assert label in html


def test_changning_counts_a_b_c_but_not_z(db: Session, settings: Settings, extended: World) -> None:
    scope = scope_of(db, settings, "reg_changning")
    whole = area_counts(db, scope, TODAY)
    assert whole.enterprises == 3
    # Z's machine and welder would make these 5; they are outside Changning.
    assert (whole.machines, whole.welders) == (4, 4)
    huayang = area_counts(db, scope, TODAY, extended.places["310105001"].path)
    assert huayang == EXPECTED["reg_huayang"]
    zhengzhou = area_counts(db, scope, TODAY, extended.places["410100"].path)
    assert zhengzhou == counts(0, 0, 0, 0, 0, 0)


def test_breakdown_by_street(db: Session, settings: Settings, extended: World) -> None:
    scope = scope_of(db, settings, "reg_changning")
    rows = counts_by_child_area(db, scope, TODAY, extended.places["310105"].path)
    by_name = {node.name: c for node, c in rows}
    assert len(rows) == 10 and next(iter(by_name)) == "华阳路街道"
    assert by_name["华阳路街道"] == counts(1, 2, 1, 2, 1, 0)
    assert by_name["新泾镇"] == counts(1, 1, 0, 1, 1, 1)
    assert by_name["虹桥街道"] == counts(1, 1, 0, 1, 1, 0)
    assert by_name["江苏路街道"] == counts(0, 0, 0, 0, 0, 0)
    # The street rows add up to the district.
    total = area_counts(db, scope, TODAY, extended.places["310105"].path)
    assert sum(c.enterprises for c in by_name.values()) == total.enterprises
    assert sum(c.machines for c in by_name.values()) == total.machines
    # The housing department counts only construction sites, street by street.
    housing = scope_of(db, settings, "reg_changning_zj")
    rows = counts_by_child_area(db, housing, TODAY, extended.places["310105"].path)
    assert {n.name: c.enterprises for n, c in rows if c.enterprises} == {"新泾镇": 1}


def test_admin_breakdown_starts_at_the_provinces(
    db: Session, settings: Settings, extended: World
) -> None:
    rows = counts_by_child_area(db, scope_of(db, settings, "admin"), TODAY, None)
    assert [(n.name, c.enterprises) for n, c in rows] == [("上海市", 3), ("河南省", 1)]


def test_home_breakdown_table_and_area_selector(sign_in: SignIn, extended: World) -> None:
    client = sign_in("reg_changning")
    html = client.get("/").text
    assert "下级区域分布" in html
    assert 'href="/enterprises?area=310105001"' in html
    assert 'href="/welders?area=310105102&amp;certified=1"' in html
    assert '<option value="310105001"' in html and '<option value="410100"' not in html
    street = client.get("/?area=310105001").text
    assert stats_of(street)["enterprises"] == 1
    assert stats_of(street)["machines"] == 2
    assert "华阳路街道没有下级区域" in street


def test_enterprise_home_has_quick_links(sign_in: SignIn, extended: World) -> None:
    html = sign_in("ent_a").get("/").text
    enterprise_id = extended.enterprises["A"].id
    assert f"/machines?status=registered&amp;enterprise_id={enterprise_id}" in html
    assert f"/certificates?status=expiring&amp;enterprise_id={enterprise_id}" in html


def test_welder_home_lists_certificates_with_status(sign_in: SignIn, extended: World) -> None:
    html = sign_in("welder_one").get("/").text
    assert "特种作业操作证" in html and "badge-ok" in html and "有效期至" in html
    assert "受雇单位" in html and "长宁华阳机电维修有限公司" in html
