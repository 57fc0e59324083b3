"""特殊时期: every validation error names its field and writes nothing; who may
declare, see and end a period; the API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import NOW, World
from tests.unlock.test_records import scope_of
from weldguard.auth.scope import Scope
from weldguard.config import Settings
from weldguard.deps import get_clock
from weldguard.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from weldguard.unlock.models import SpecialPeriod
from weldguard.unlock.special_periods import (
    PeriodState,
    SpecialPeriodInput,
    SpecialPeriodService,
    period_state,
    periods_for_place,
)

START = NOW + timedelta(hours=1)
END = NOW + timedelta(days=2)


def period_input(**changes: object) -> SpecialPeriodInput:
    values: dict[str, object] = {
        "title": "进博会期间禁止动火",
        "kind": "ban_hot_work",
        "area": "310105",
        "starts_at": START,
        "ends_at": END,
        "sectors": None,
    }
    values.update(changes)
    return SpecialPeriodInput(**values)  # type: ignore[arg-type]


@pytest.fixture
def scope(db: Session, settings: Settings, world: World) -> Callable[[str], Scope]:
    return lambda username: scope_of(db, settings, username)


def declare(db: Session, scope: Scope, data: SpecialPeriodInput) -> SpecialPeriod:
    return SpecialPeriodService(db).declare(scope, data, scope.user_id, NOW)


def count(db: Session) -> int:
    return db.scalar(select(func.count(SpecialPeriod.id))) or 0


def error_fields(db: Session, scope: Scope, data: SpecialPeriodInput) -> dict[str, str]:
    with pytest.raises(InvalidInput) as caught:
        declare(db, scope, data)
    assert count(db) == 0, "nothing may be written"
    return {d.field or "": d.reason for d in caught.value.details}


# --- validation ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"title": "  "}, "title", "请填写特殊时期名称"),
        ({"title": "长" * 129}, "title", "不能超过 128"),
        ({"kind": "nope"}, "kind", "类型无效"),
        ({"kind": ""}, "kind", "禁止动火"),
        ({"area": ""}, "area", "请选择区域"),
        ({"area": "999999"}, "area", "未知的区域代码"),
        ({"area": "410102"}, "area", "不在您的辖区内"),  # Zhengzhou, from Changning
        ({"area": "310100"}, "area", "不在您的辖区内"),  # the city above the district
        ({"sectors": ["造船"]}, "sectors", "未知的行业“造船”"),
        ({"starts_at": None}, "starts_at", "请填写开始时间"),
        ({"ends_at": None}, "ends_at", "请填写结束时间"),
        ({"starts_at": datetime(2026, 11, 23, 8, 0)}, "starts_at", "须带时区"),
        ({"ends_at": START}, "ends_at", "结束时间须晚于开始时间"),
        ({"ends_at": START - timedelta(hours=1)}, "ends_at", "结束时间须晚于开始时间"),
        (
            {"starts_at": NOW - timedelta(days=3), "ends_at": NOW - timedelta(days=1)},
            "ends_at",
            "结束时间已过",
        ),
        ({"ends_at": START + timedelta(days=367)}, "ends_at", "最长 366 天"),
    ],
)
def test_each_error_names_its_field(
    db: Session,
    scope: Callable[[str], Scope],
    changes: dict[str, object],
    field: str,
    words: str,
) -> None:
    errors = error_fields(db, scope("reg_changning"), period_input(**changes))
    assert list(errors) == [field]
    assert words in errors[field]


def test_every_error_is_reported_at_once(db: Session, scope: Callable[[str], Scope]) -> None:
    errors = error_fields(
        db,
        scope("reg_changning"),
        period_input(title="", kind="x", area="410102", sectors=["造船"], ends_at=START),
    )
    assert set(errors) == {"title", "kind", "area", "sectors", "ends_at"}


def test_sector_limited_department(db: Session, scope: Callable[[str], Scope]) -> None:
    housing = scope("reg_changning_zj")  # 住建: 施工工地 only
    errors = error_fields(db, housing, period_input())
    assert "请选择：施工工地" in errors["sectors"]
    errors = error_fields(db, housing, period_input(sectors=["工贸", "施工工地"]))
    assert "行业“工贸”不在您所在部门的监管范围内" in errors["sectors"]
    period = declare(db, housing, period_input(sectors=["施工工地", "施工工地"]))
    assert period.sectors == ["施工工地"]


def test_declared_period(db: Session, scope: Callable[[str], Scope], world: World) -> None:
    reg = scope("reg_changning")
    period = declare(db, reg, period_input(title="  进博会  ", sectors=["危化", "工贸"]))
    assert period.title == "进博会"
    assert period.area_path == "310000/310100/310105/"
    assert period.sectors == ["工贸", "危化"]  # canonical order
    assert period.declared_by_user_id == reg.user_id and period.declared_at == NOW
    assert period_state(period, NOW) is PeriodState.UPCOMING
    assert period_state(period, START) is PeriodState.ACTIVE
    # Empty sectors: every sector. A street of the district is fine, so is the admin anywhere.
    assert declare(db, reg, period_input(area="310105001", sectors=[])).sectors is None
    assert declare(db, scope("admin"), period_input(area="410100")).area_path.startswith("410000/")
    # The decision finds the district's periods for a place in it, not Zhengzhou's.
    found = periods_for_place(db, world.enterprises["A"].area_path, NOW)
    assert {p.title for p in found} == {"进博会", "进博会期间禁止动火"}
    assert periods_for_place(db, world.enterprises["Z"].area_path, NOW)[0].area_path == (
        "410000/410100/"
    )


@pytest.mark.parametrize(
    "username", ["ent_a", "safety_b", "insp_xinjing", "welder_one", "installer_cn"]
)
def test_only_regulators_and_admin_declare(
    db: Session, scope: Callable[[str], Scope], username: str
) -> None:
    with pytest.raises(PermissionDenied):
        declare(db, scope(username), period_input(area="310105102"))
    assert count(db) == 0


# --- reach and ending ------------------------------------------------------------------
@pytest.fixture
def periods(db: Session, scope: Callable[[str], Scope]) -> dict[str, SpecialPeriod]:
    made = {
        "district": declare(
            db, scope("reg_changning"), period_input(starts_at=NOW - timedelta(hours=1))
        ),
        "huayang": declare(db, scope("reg_huayang"), period_input(area="310105001")),
        "zhengzhou": declare(db, scope("reg_zhengzhou"), period_input(area="410102")),
        "sites": declare(
            db, scope("reg_changning_zj"), period_input(kind="require_permit", sectors=["施工工地"])
        ),
    }
    db.commit()
    return made


def test_who_sees_which_period(
    db: Session, scope: Callable[[str], Scope], periods: dict[str, SpecialPeriod]
) -> None:
    service = SpecialPeriodService(db)

    def seen(username: str) -> set[str]:
        page = service.list_page(scope(username), NOW, None, 1, 50)
        ids = {p.id for p, _ in page.items}
        return {name for name, p in periods.items() if p.id in ids}

    assert seen("admin") == {"district", "huayang", "zhengzhou", "sites"}
    assert seen("reg_changning") == {"district", "huayang", "sites"}
    assert seen("reg_huayang") == {"district", "huayang", "sites"}  # the district's cover it
    assert seen("insp_xinjing") == {"district", "sites"}  # not Huayang's
    assert seen("reg_zhengzhou") == {"zhengzhou"}
    assert seen("ent_a") == {"district", "huayang", "sites"}
    assert seen("safety_b") == {"district", "sites"}
    assert seen("welder_one") == {"district", "huayang", "sites"}  # employer A, in Huayang
    active = service.list_page(scope("reg_changning"), NOW, "active", 1, 50)
    assert [p.id for p, _ in active.items] == [periods["district"].id]
    with pytest.raises(NotFound):
        service.get(scope("reg_zhengzhou"), periods["district"].id)


def test_ending_early(
    db: Session, scope: Callable[[str], Scope], periods: dict[str, SpecialPeriod], world: World
) -> None:
    service = SpecialPeriodService(db)
    # Outside the reach: not found. Seen but not covered: forbidden.
    with pytest.raises(NotFound):
        service.end_early(scope("reg_zhengzhou"), periods["district"].id, NOW)
    for username in ("reg_huayang", "ent_a", "insp_xinjing", "reg_changning_zj"):
        with pytest.raises(PermissionDenied):
            service.end_early(scope(username), periods["district"].id, NOW)
    ended = service.end_early(scope("reg_changning"), periods["district"].id, NOW)
    assert ended.ends_at == NOW and period_state(ended, NOW) is PeriodState.ENDED
    with pytest.raises(Conflict):
        service.end_early(scope("reg_changning"), periods["district"].id, NOW)
    # Ending one that has not started cancels it: the decision no longer sees it.
    cancelled = service.end_early(scope("reg_changning_zj"), periods["sites"].id, NOW)
    assert period_state(cancelled, NOW) is PeriodState.CANCELLED
    db.commit()
    titles = {p.id for p in periods_for_place(db, world.enterprises["B"].area_path, NOW)}
    assert titles == set()
    assert service.may_manage(scope("reg_changning"), periods["huayang"])
    assert not service.may_manage(scope("reg_changning_zj"), periods["huayang"])


# --- API ------------------------------------------------------------------------------------
@pytest.fixture
def api(client: TestClient, world: World) -> TestClient:
    client.app.dependency_overrides[get_clock] = lambda: NOW  # type: ignore[attr-defined]
    return client


def test_api(api: TestClient, as_user: Callable[[str], dict[str, str]], db: Session) -> None:
    body = {
        "title": "大型活动保障",
        "kind": "ban_hot_work",
        "area": "310105001",
        "sectors": [],
        "starts_at": START.isoformat(),
        "ends_at": END.isoformat(),
    }
    created = api.post("/api/v1/special-periods", json=body, headers=as_user("reg_changning"))
    assert created.status_code == 201, created.text
    period = created.json()
    assert period["state"] == "upcoming" and period["state_label"] == "未开始"
    assert period["kind_label"] == "禁止动火" and period["area_code"] == "310105001"
    assert period["sectors"] is None

    bad = api.post(
        "/api/v1/special-periods",
        json={**body, "title": "", "area": "410102", "ends_at": START.isoformat()},
        headers=as_user("reg_changning"),
    )
    assert bad.status_code == 422
    fields = {d["field"] for d in bad.json()["error"]["details"]}
    assert fields == {"title", "area", "ends_at"}
    naive = api.post(
        "/api/v1/special-periods",
        json={**body, "starts_at": "2026-11-23T08:00:00"},
        headers=as_user("reg_changning"),
    )
    assert naive.status_code == 422
    assert naive.json()["error"]["details"][0]["field"] == "starts_at"
    forbidden = api.post("/api/v1/special-periods", json=body, headers=as_user("ent_a"))
    assert forbidden.status_code == 403

    listed = api.get("/api/v1/special-periods", headers=as_user("ent_a")).json()
    assert listed["total"] == 1 and listed["items"][0]["may_end"] is False
    assert api.get("/api/v1/special-periods", headers=as_user("reg_zhengzhou")).json()["total"] == 0
    assert api.get("/api/v1/special-periods?state=bad", headers=as_user("admin")).status_code == 422
    one = api.get(f"/api/v1/special-periods/{period['id']}", headers=as_user("reg_changning"))
    assert one.json()["may_end"] is True
    assert (
        api.get(
            f"/api/v1/special-periods/{period['id']}", headers=as_user("reg_zhengzhou")
        ).status_code
        == 404
    )

    url = f"/api/v1/special-periods/{period['id']}/end"
    assert api.post(url, headers=as_user("ent_a")).status_code == 403
    assert api.post(url, headers=as_user("reg_zhengzhou")).status_code == 404
    ended = api.post(url, headers=as_user("reg_huayang"))
    assert ended.status_code == 200 and ended.json()["state"] == "cancelled"
    assert api.post(url, headers=as_user("reg_changning")).status_code == 409
