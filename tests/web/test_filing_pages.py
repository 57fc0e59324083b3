"""The pages of mobile jobs (流动作业报备) and small-works filings (小型工程备案):
lists, forms and detail pages for each role that uses them, every field error
re-rendered next to its field with nothing written, the scope (404 outside it),
and CSRF on every form."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import NOW, TODAY, World, credit_code, id_number
from tests.web.conftest import csrf_of
from tests.web.test_device_pages import png_bytes
from weldguard.deps import get_clock
from weldguard.filing.models import SmallWorkCheck, SmallWorkFiling
from weldguard.permit.mobile_models import MobileJob
from weldguard.web.common import SHANGHAI

SignIn = Callable[[str], TestClient]
TOTAL = re.compile(r"共 <b>(\d+)</b>")
H = timedelta(hours=1)


def local(value: Any) -> str:
    """A datetime as a ``datetime-local`` input value (China time)."""
    return str(value.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M"))


def total(html: str) -> int:
    match = TOTAL.search(html)
    assert match, html[:500]
    return int(match.group(1))


def field_error(html: str, name: str) -> str:
    match = re.search(
        rf'<p class="field-error" id="e-{name}" data-field="{name}">([^<]*)</p>', html
    )
    assert match, f"no error for {name}"
    return match.group(1)


def error_fields(html: str) -> list[str]:
    return re.findall(r'class="field-error" id="e-[a-z_]+" data-field="([a-z_]+)"', html)


def job_count(db: Session) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).select_from(MobileJob)) or 0


def filing_counts(db: Session) -> tuple[int, int]:
    db.expire_all()
    return (
        db.scalar(select(func.count()).select_from(SmallWorkFiling)) or 0,
        db.scalar(select(func.count()).select_from(SmallWorkCheck)) or 0,
    )


def post_form(
    client: TestClient,
    url: str,
    data: dict[str, Any],
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
    csrf: bool = True,
) -> httpx.Response:
    form = dict(data)
    if csrf:
        form["csrf_token"] = csrf_of(client)
    response: httpx.Response = client.post(url, data=form, files=files, follow_redirects=False)
    return response


# --- mobile jobs ------------------------------------------------------------------------
@pytest.fixture
def mobile(world: World, db: Session) -> World:
    """Enterprise A works away from home (是否流动作业 = 是)."""
    world.enterprises["A"].mobile_work = True
    db.commit()
    return world


def job_form(world: World, **changes: Any) -> dict[str, Any]:
    """A's welder and machine at client C (a registered shopping mall)."""
    data: dict[str, Any] = {
        "starts_at": local(NOW + H),
        "ends_at": local(NOW + 9 * H),
        "client_credit_code": world.enterprises["C"].credit_code,
        "fire_watch_name": "李看火",
        "fire_watch_phone": "13912345678",
        "description": "空调支架焊接",
        "welder_ids": [str(world.welders["A"].id)],
        "machine_ids": [str(world.machines["A"].id)],
    }
    data.update(changes)
    return data


# What a browser sends for a file input left empty: one part without a name.
EMPTY_FILE_INPUT = [("photos", ("", b"", "application/octet-stream"))]


def declare(client: TestClient, world: World, **changes: Any) -> int:
    client.get("/mobile-jobs/new")
    files = changes.pop("photos", None)
    response = post_form(client, "/mobile-jobs/new", job_form(world, **changes), files=files)
    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/mobile-jobs/(\d+)\?declared=1", response.headers["location"])
    assert match, response.headers["location"]
    return int(match.group(1))


def test_an_enterprise_declares_a_job_with_photos(
    sign_in: SignIn, mobile: World, db: Session
) -> None:
    client = sign_in("ent_a")
    listing = client.get("/mobile-jobs").text
    assert total(listing) == 0 and 'href="/mobile-jobs/new"' in listing
    form = client.get("/mobile-jobs/new")
    assert form.status_code == 200
    html = form.text
    welder = mobile.welders["A"]
    assert f'name="welder_ids" value="{welder.id}"' in html
    assert f'name="machine_ids" value="{mobile.machines["A"].id}"' in html
    assert mobile.machines["A"].code in html and "华阳路街道" in html
    assert id_number(1) not in html and welder.id_number_masked in html
    assert 'enctype="multipart/form-data"' in html and 'capture="environment"' in html
    assert 'id="geo-locate"' in html and 'name="latitude"' in html
    response = post_form(
        client,
        "/mobile-jobs/new",
        job_form(mobile, latitude="31.2201", longitude="121.3801"),
        files=[("photos", ("site.png", png_bytes(), "image/png"))],
    )
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    detail = client.get(location)
    assert detail.status_code == 200
    page = detail.text
    assert "流动作业已报备" in page and "未开始" in page
    assert mobile.enterprises["C"].name in page and "长宁华阳机电维修有限公司" in page
    assert "李看火" in page and "13912345678" in page and "31.2201" in page
    assert welder.name in page and welder.id_number_masked in page and id_number(1) not in page
    assert mobile.machines["A"].code in page and "虹桥街道" in page
    job_id = int(location.split("?")[0].rsplit("/", 1)[1])
    assert f'src="/mobile-jobs/{job_id}/photos/0"' in page
    photo = client.get(f"/mobile-jobs/{job_id}/photos/0")
    assert photo.status_code == 200 and photo.content == png_bytes()
    assert photo.headers["content-type"] == "image/png"
    assert client.get(f"/mobile-jobs/{job_id}/photos/1").status_code == 404
    assert 'id="cancel-form"' in page and "撤销报备" in page and 'id="photo-form"' in page
    listing = client.get("/mobile-jobs").text
    assert total(listing) == 1 and f'href="/mobile-jobs/{job_id}"' in listing
    assert job_count(db) == 1


def test_an_unregistered_client_with_its_own_place(sign_in: SignIn, mobile: World) -> None:
    client = sign_in("ent_a")
    job_id = declare(
        client,
        mobile,
        client_credit_code="",
        client_name="王先生（个人住宅）",
        client_contact="王先生",
        client_phone="139-0000-1111",
        address="长宁区新泾镇某小区 5 号楼",
        area="310105102",
        photos=EMPTY_FILE_INPUT,
    )
    page = client.get(f"/mobile-jobs/{job_id}").text
    assert "现场照片（0）" in page
    assert "王先生（个人住宅）" in page and "13900001111" in page and "新泾镇" in page


def test_a_welder_declares_for_themself(sign_in: SignIn, mobile: World, db: Session) -> None:
    client = sign_in("welder_one")
    html = client.get("/mobile-jobs/new").text
    assert 'name="welder_ids"' not in html and "（本人）" in html
    assert f'name="machine_ids" value="{mobile.machines["A"].id}"' in html
    job_id = declare(
        client,
        mobile,
        welder_ids=[],
        client_credit_code=mobile.enterprises["B"].credit_code,
    )
    page = client.get(f"/mobile-jobs/{job_id}").text
    assert "焊工个人报备" in page and mobile.enterprises["B"].name in page
    assert 'id="cancel-form"' in page
    assert total(client.get("/mobile-jobs").text) == 1
    # Naming someone else is refused, next to the field.
    refused = post_form(
        client, "/mobile-jobs/new", job_form(mobile, welder_ids=[str(mobile.welders["B"].id)])
    )
    assert refused.status_code == 422
    assert "本人" in field_error(refused.text, "welder_ids")
    assert job_count(db) == 1


def test_the_admin_picks_the_contractor(sign_in: SignIn, mobile: World, db: Session) -> None:
    client = sign_in("admin")
    blank = client.get("/mobile-jobs/new").text
    assert 'id="contractor-form"' in blank and "请先选择作业单位" in blank
    missing = post_form(client, "/mobile-jobs/new", job_form(mobile))
    assert missing.status_code == 422
    assert field_error(missing.text, "contractor_enterprise_id") == "请选择作业单位"
    unknown = client.get(f"/mobile-jobs/new?contractor={credit_code(999)}")
    assert unknown.status_code == 422
    assert "未在平台登记" in field_error(unknown.text, "contractor_enterprise_id")
    a = mobile.enterprises["A"]
    chosen = client.get(f"/mobile-jobs/new?contractor={a.credit_code}").text
    assert f"已选择：{a.name}" in chosen
    assert f'name="contractor_enterprise_id" value="{a.id}"' in chosen
    assert f'name="welder_ids" value="{mobile.welders["A"].id}"' in chosen
    job_id = declare(client, mobile, contractor_enterprise_id=str(a.id))
    assert a.name in client.get(f"/mobile-jobs/{job_id}").text
    assert job_count(db) == 1


@pytest.mark.parametrize("who", ["reg_changning", "insp_xinjing", "installer_cn"])
def test_who_may_not_declare(sign_in: SignIn, mobile: World, db: Session, who: str) -> None:
    client = sign_in(who)
    assert 'href="/mobile-jobs/new"' not in client.get("/mobile-jobs").text
    assert client.get("/mobile-jobs/new").status_code == 403
    assert post_form(client, "/mobile-jobs/new", job_form(mobile)).status_code == 403
    assert job_count(db) == 0


UNREGISTERED = {
    "client_credit_code": "",
    "client_name": "王",
    "client_contact": "王",
    "client_phone": "13900001111",
    "address": "某地",
    "area": "310105102",
}
BAD_JOBS: list[tuple[str, dict[str, Any], str]] = [
    ("no start", {"starts_at": ""}, "starts_at"),
    ("unreadable start", {"starts_at": "明天上午"}, "starts_at"),
    ("start long past", {"starts_at": local(NOW - 2 * H)}, "starts_at"),
    ("no end", {"ends_at": ""}, "ends_at"),
    ("end before start", {"ends_at": local(NOW)}, "ends_at"),
    ("too long", {"ends_at": local(NOW + 74 * H)}, "ends_at"),
    ("bad credit code", {"client_credit_code": "123"}, "client_credit_code"),
    ("unknown client", {"client_credit_code": "91310105MA1FL99997"}, "client_credit_code"),
    ("no client", {**UNREGISTERED, "client_name": ""}, "client_name"),
    ("no client contact", {**UNREGISTERED, "client_contact": ""}, "client_contact"),
    ("bad client phone", {**UNREGISTERED, "client_phone": "123"}, "client_phone"),
    ("no address", {**UNREGISTERED, "address": ""}, "address"),
    ("no area", {**UNREGISTERED, "area": ""}, "area"),
    ("unknown area", {"area": "999999999"}, "area"),
    ("city as area", {"area": "310100"}, "area"),
    ("latitude not a number", {"latitude": "北纬31", "longitude": "121.38"}, "latitude"),
    ("half a position", {"latitude": "31.2"}, "longitude"),
    ("position out of range", {"latitude": "91", "longitude": "121"}, "latitude"),
    ("no fire watch", {"fire_watch_name": " "}, "fire_watch_name"),
    ("bad fire watch phone", {"fire_watch_phone": "12345"}, "fire_watch_phone"),
    ("long description", {"description": "焊" * 513}, "description"),
    ("no welders", {"welder_ids": []}, "welder_ids"),
    ("welder of another enterprise", {"welder_ids": ["B"]}, "welder_ids"),
    ("no machines", {"machine_ids": []}, "machine_ids"),
    ("unknown machine", {"machine_ids": ["999999"]}, "machine_ids"),
    ("unknown machine code", {"machine_codes": "WGNOSUCH01"}, "machine_ids"),
    ("another enterprise's machine", {"machine_ids": ["Z"]}, "machine_ids"),
]


@pytest.mark.parametrize(("case", "changes", "field"), BAD_JOBS, ids=[c[0] for c in BAD_JOBS])
def test_a_bad_declaration_is_shown_next_to_the_field(
    sign_in: SignIn,
    mobile: World,
    db: Session,
    case: str,
    changes: dict[str, Any],
    field: str,
) -> None:
    if changes.get("welder_ids") == ["B"]:
        changes = {"welder_ids": [str(mobile.welders["B"].id)]}
    if changes.get("machine_ids") == ["Z"]:
        changes = {"machine_ids": [str(mobile.machines["Z"].id)]}
    client = sign_in("ent_a")
    client.get("/mobile-jobs/new")
    response = post_form(client, "/mobile-jobs/new", job_form(mobile, **changes))
    assert response.status_code == 422, case
    html = response.text
    assert error_fields(html) == [field], (case, error_fields(html))
    assert field_error(html, field)
    assert "未保存任何数据" in html and 'aria-invalid="true"' in html
    # The values typed are kept.
    assert 'value="李看火"' in html or field == "fire_watch_name"
    assert f'value="{mobile.welders["A"].id}" checked' in html or field == "welder_ids"
    assert job_count(db) == 0


def test_every_error_at_once_and_a_refused_photo(
    sign_in: SignIn, mobile: World, db: Session
) -> None:
    client = sign_in("ent_a")
    client.get("/mobile-jobs/new")
    response = post_form(
        client,
        "/mobile-jobs/new",
        job_form(mobile, starts_at="不是时间", fire_watch_phone="1"),
        files=[("photos", ("x.png", b"GIF89a....", "image/png"))],
    )
    assert response.status_code == 422
    assert set(error_fields(response.text)) == {"starts_at", "fire_watch_phone", "photos"}
    assert "格式无效" in field_error(response.text, "starts_at")
    assert "JPEG 或 PNG" in field_error(response.text, "photos")
    # A declaration otherwise in order is not written when only the photo is refused.
    refused = post_form(
        client,
        "/mobile-jobs/new",
        job_form(mobile),
        files=[("photos", ("x.png", b"GIF89a....", "image/png"))],
    )
    assert refused.status_code == 422 and error_fields(refused.text) == ["photos"]
    assert job_count(db) == 0


def test_cancel_and_photos_on_the_detail_page(sign_in: SignIn, mobile: World, db: Session) -> None:
    client = sign_in("ent_a")
    job_id = declare(client, mobile)
    url = f"/mobile-jobs/{job_id}"
    added = post_form(
        client, f"{url}/photos", {}, files=[("photo", ("a.png", png_bytes(), "image/png"))]
    )
    assert added.status_code == 303 and added.headers["location"] == f"{url}?photo=1"
    assert "现场照片（1）" in client.get(added.headers["location"]).text
    bad = post_form(
        client, f"{url}/photos", {}, files=[("photo", ("a.png", b"GIF89a", "image/png"))]
    )
    assert bad.status_code == 422 and "JPEG 或 PNG" in field_error(bad.text, "photo")
    for files in (None, [("photo", ("", b"", "application/octet-stream"))]):
        empty = post_form(client, f"{url}/photos", {}, files=files)
        assert empty.status_code == 422
        assert field_error(empty.text, "photo") == "请选择或拍摄现场照片"
    # Only the declaring side withdraws or adds photos.
    regulator = sign_in("reg_changning")
    page = regulator.get(url).text
    assert 'id="cancel-form"' not in page and 'id="photo-form"' not in page
    assert regulator.get(f"{url}/photos/0").status_code == 200
    assert post_form(regulator, f"{url}/cancel", {}).status_code == 403
    photo = [("photo", ("a.png", png_bytes(), "image/png"))]
    assert post_form(regulator, f"{url}/photos", {}, files=photo).status_code == 403
    client = sign_in("ent_a")
    cancelled = post_form(client, f"{url}/cancel", {})
    assert cancelled.status_code == 303 and cancelled.headers["location"] == f"{url}?cancelled=1"
    page = client.get(cancelled.headers["location"]).text
    assert "已撤销该流动作业报备" in page and "已取消" in page
    assert 'id="cancel-form"' not in page and 'id="photo-form"' not in page
    again = post_form(client, f"{url}/cancel", {})
    assert again.status_code == 409 and "已结束或已撤销" in again.text
    late = post_form(client, f"{url}/photos", {}, files=photo)
    assert late.status_code == 409 and "不能再上传照片" in late.text
    assert total(client.get("/mobile-jobs?state=cancelled").text) == 1


def test_ending_a_job_during_its_window(sign_in: SignIn, mobile: World, client: TestClient) -> None:
    signed = sign_in("ent_a")
    job_id = declare(signed, mobile)
    client.app.dependency_overrides[get_clock] = lambda: NOW + 2 * H  # type: ignore[attr-defined]
    page = signed.get(f"/mobile-jobs/{job_id}").text
    assert "作业中" in page and "结束作业" in page
    ended = post_form(signed, f"/mobile-jobs/{job_id}/cancel", {})
    assert ended.headers["location"] == f"/mobile-jobs/{job_id}?ended=1"
    assert "已结束" in signed.get(ended.headers["location"]).text


def test_list_filters_and_htmx(sign_in: SignIn, mobile: World) -> None:
    declare(sign_in("ent_a"), mobile)
    client = sign_in("reg_changning")
    assert total(client.get("/mobile-jobs").text) == 1
    assert total(client.get("/mobile-jobs?state=upcoming").text) == 1
    assert total(client.get("/mobile-jobs?state=active").text) == 0
    assert total(client.get("/mobile-jobs?state=soon").text) == 1  # unknown: ignored
    assert total(client.get(f"/mobile-jobs?date={TODAY.isoformat()}").text) == 1
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    assert total(client.get(f"/mobile-jobs?date={tomorrow}").text) == 0
    a, b, z = (mobile.enterprises[k].id for k in "ABZ")
    by_a = client.get(f"/mobile-jobs?enterprise_id={a}").text
    assert total(by_a) == 1 and "长宁华阳机电维修有限公司" in by_a
    assert total(client.get(f"/mobile-jobs?enterprise_id={b}").text) == 0
    assert client.get(f"/mobile-jobs?enterprise_id={z}").status_code == 404
    partial = client.get("/mobile-jobs?state=upcoming", headers={"HX-Request": "true"})
    assert "<html" not in partial.text and total(partial.text) == 1
    full = client.get("/mobile-jobs").text
    assert 'hx-get="/mobile-jobs"' in full and '<div id="results"' in full
    assert f'href="/mobile-jobs?enterprise_id={a}"' in full


@pytest.mark.parametrize("who", ["safety_b", "reg_huayang", "reg_zhengzhou", "insp_xinjing"])
def test_a_job_outside_the_scope_is_not_found(
    sign_in: SignIn, mobile: World, db: Session, who: str
) -> None:
    job_id = declare(sign_in("ent_a"), mobile)  # at C's premises, 虹桥街道
    client = sign_in(who)
    assert total(client.get("/mobile-jobs").text) == 0
    assert client.get(f"/mobile-jobs/{job_id}").status_code == 404
    assert client.get(f"/mobile-jobs/{job_id}/photos/0").status_code == 404
    assert post_form(client, f"/mobile-jobs/{job_id}/cancel", {}).status_code == 404
    db.expire_all()
    assert db.get(MobileJob, job_id).status == "declared"  # type: ignore[union-attr]


def test_mobile_job_forms_need_the_csrf_token(sign_in: SignIn, mobile: World, db: Session) -> None:
    client = sign_in("ent_a")
    job_id = declare(client, mobile)
    photo = [("photo", ("a.png", png_bytes(), "image/png"))]
    for url, files in (
        ("/mobile-jobs/new", None),
        (f"/mobile-jobs/{job_id}/cancel", None),
        (f"/mobile-jobs/{job_id}/photos", photo),
    ):
        response = post_form(client, url, job_form(mobile), files=files, csrf=False)
        assert response.status_code == 403, url
    assert job_count(db) == 1
    db.expire_all()
    job = db.get(MobileJob, job_id)
    assert job is not None and job.status == "declared" and job.photos == []


# --- small works ---------------------------------------------------------------------------
def filing_form(**changes: Any) -> dict[str, Any]:
    """Enterprise A files works for a household in 华阳路街道."""
    data: dict[str, Any] = {
        "owner_kind": "person",
        "owner_name": "赵女士",
        "owner_phone": "13600001111",
        "address": "长宁区华阳路街道某小区 3 号 201 室",
        "street": "310105001",
        "description": "阳台防盗窗拆除及焊接安装",
        "expected_start": (TODAY + timedelta(days=2)).isoformat(),
        "expected_end": (TODAY + timedelta(days=4)).isoformat(),
        "contractor_name": "某某装修队",
        "hot_work": "1",
        "hot_work_method": "电焊",
        "contact_name": "孙师傅",
        "contact_phone": "13700002222",
    }
    data.update(changes)
    return data


def file_works(client: TestClient, **changes: Any) -> int:
    client.get("/small-works/new")
    response = post_form(client, "/small-works/new", filing_form(**changes))
    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/small-works/(\d+)\?filed=1", response.headers["location"])
    assert match, response.headers["location"]
    return int(match.group(1))


def test_an_enterprise_files_small_works(sign_in: SignIn, world: World, db: Session) -> None:
    client = sign_in("ent_a")
    assert 'href="/small-works/new"' in client.get("/small-works").text
    form = client.get("/small-works/new")
    assert form.status_code == 200
    assert 'value="310105001"' in form.text and "长宁区 · 华阳路街道" in form.text
    assert "长宁华阳机电维修有限公司" in form.text
    filing_id = file_works(client)
    page = client.get(f"/small-works/{filing_id}?filed=1").text
    assert "已向工程所在街道（乡镇）备案" in page and "已备案" in page
    assert "赵女士" in page and "13600001111" in page and "华阳路街道" in page
    assert "电焊" in page and "孙师傅" in page and "街道尚未核查" in page
    # The filer sees the checks but does not check.
    assert 'id="check-form"' not in page and 'id="close-form"' not in page
    listing = client.get("/small-works").text
    assert total(listing) == 1 and f'href="/small-works/{filing_id}"' in listing
    assert filing_counts(db) == (1, 0)


def test_a_registered_owner_and_no_hot_work(sign_in: SignIn, world: World) -> None:
    client = sign_in("ent_a")
    filing_id = file_works(
        client,
        owner_kind="enterprise",
        owner_credit_code=world.enterprises["C"].credit_code,
        owner_name="",
        owner_phone="",
        contractor_credit_code=world.enterprises["B"].credit_code,
        contractor_name="",
        hot_work="0",
    )
    page = client.get(f"/small-works/{filing_id}").text
    assert world.enterprises["C"].name in page and world.enterprises["B"].name in page


def test_the_admin_files_for_an_enterprise(sign_in: SignIn, world: World, db: Session) -> None:
    client = sign_in("admin")
    client.get("/small-works/new")
    missing = post_form(client, "/small-works/new", filing_form())
    assert missing.status_code == 422
    assert field_error(missing.text, "enterprise_id") == "请选择备案单位"
    unknown = post_form(client, "/small-works/new", filing_form(enterprise_code=credit_code(999)))
    assert "未在平台登记" in field_error(unknown.text, "enterprise_id")
    assert filing_counts(db) == (0, 0)
    b = world.enterprises["B"]
    filing_id = file_works(client, enterprise_code=b.credit_code)
    assert b.name in client.get(f"/small-works/{filing_id}").text


@pytest.mark.parametrize("who", ["reg_huayang", "insp_xinjing", "welder_one", "installer_cn"])
def test_who_may_not_file(sign_in: SignIn, world: World, db: Session, who: str) -> None:
    client = sign_in(who)
    assert 'href="/small-works/new"' not in client.get("/small-works").text
    assert client.get("/small-works/new").status_code == 403
    assert post_form(client, "/small-works/new", filing_form()).status_code == 403
    assert filing_counts(db) == (0, 0)


BAD_FILINGS: list[tuple[str, dict[str, Any], str]] = [
    ("owner kind", {"owner_kind": "company"}, "owner_kind"),
    ("no owner name", {"owner_name": ""}, "owner_name"),
    ("no owner phone", {"owner_phone": ""}, "owner_phone"),
    ("bad owner phone", {"owner_phone": "1234"}, "owner_phone"),
    (
        "unknown owner",
        {"owner_kind": "enterprise", "owner_credit_code": "91310105MA1FL99997"},
        "owner_credit_code",
    ),
    (
        "bad owner code",
        {"owner_kind": "enterprise", "owner_credit_code": "12"},
        "owner_credit_code",
    ),
    ("no address", {"address": " "}, "address"),
    ("no street", {"street": ""}, "street"),
    ("unknown street", {"street": "310105999"}, "street"),
    ("district, not street", {"street": "310105"}, "street"),
    ("no description", {"description": ""}, "description"),
    ("long description", {"description": "工" * 513}, "description"),
    ("no start", {"expected_start": ""}, "expected_start"),
    ("unreadable start", {"expected_start": "下周一"}, "expected_start"),
    ("start past", {"expected_start": (TODAY - timedelta(days=1)).isoformat()}, "expected_start"),
    ("end before start", {"expected_end": TODAY.isoformat()}, "expected_end"),
    ("too long", {"expected_end": (TODAY + timedelta(days=200)).isoformat()}, "expected_end"),
    ("no contractor", {"contractor_name": ""}, "contractor_name"),
    (
        "unknown contractor",
        {"contractor_credit_code": "91310105MA1FL99997"},
        "contractor_credit_code",
    ),
    ("hot work unsaid", {"hot_work": ""}, "hot_work"),
    ("no method", {"hot_work_method": ""}, "hot_work_method"),
    ("unknown method", {"hot_work_method": "激光"}, "hot_work_method"),
    ("no contact", {"contact_name": ""}, "contact_name"),
    ("bad contact phone", {"contact_phone": "abc"}, "contact_phone"),
]


@pytest.mark.parametrize(("case", "changes", "field"), BAD_FILINGS, ids=[c[0] for c in BAD_FILINGS])
def test_a_bad_filing_is_shown_next_to_the_field(
    sign_in: SignIn,
    world: World,
    db: Session,
    case: str,
    changes: dict[str, Any],
    field: str,
) -> None:
    client = sign_in("ent_a")
    client.get("/small-works/new")
    response = post_form(client, "/small-works/new", filing_form(**changes))
    assert response.status_code == 422, case
    html = response.text
    assert error_fields(html) == [field], (case, error_fields(html))
    assert field_error(html, field) and "未保存任何数据" in html
    assert 'value="孙师傅"' in html or field == "contact_name"
    assert filing_counts(db) == (0, 0)


def test_the_street_checks_and_closes(sign_in: SignIn, world: World, db: Session) -> None:
    filing_id = file_works(sign_in("ent_a"))
    url = f"/small-works/{filing_id}"
    client = sign_in("reg_huayang")
    page = client.get(url).text
    assert 'id="check-form"' in page and 'id="close-form"' not in page
    # Not closable before a check in order.
    early = post_form(client, f"{url}/close", {})
    assert early.status_code == 409 and "只有核查合格的备案可以办结" in early.text
    no_notes = post_form(client, f"{url}/checks", {"result": "需整改", "notes": ""})
    assert no_notes.status_code == 422
    assert field_error(no_notes.text, "notes") == "请填写核查意见"
    assert 'value="需整改" checked' in no_notes.text
    rectify = post_form(client, f"{url}/checks", {"result": "需整改", "notes": "未配灭火器"})
    assert rectify.status_code == 303 and rectify.headers["location"].startswith(f"{url}?checked=1")
    page = client.get(url).text
    assert "未配灭火器" in page and "需整改" in page and 'id="close-form"' not in page
    passed = post_form(client, f"{url}/checks", {"result": "合格", "checked_at": local(NOW)})
    assert passed.status_code == 303
    page = client.get(url).text
    assert "已核查" in page and 'id="close-form"' in page
    closed = post_form(client, f"{url}/close", {})
    assert closed.status_code == 303 and closed.headers["location"] == f"{url}?closed=1"
    page = client.get(closed.headers["location"]).text
    assert "已办结" in page and 'id="check-form"' not in page and 'id="close-form"' not in page
    late = post_form(client, f"{url}/checks", {"result": "合格"})
    assert late.status_code == 409 and "已办结" in late.text
    assert filing_counts(db) == (1, 2)
    # The filer sees the checks.
    assert "未配灭火器" in sign_in("ent_a").get(url).text
    # The district above the street may check too.
    assert 'id="check-form"' not in sign_in("reg_changning").get(url).text  # closed


def test_who_may_check(sign_in: SignIn, world: World, db: Session) -> None:
    filing_id = file_works(sign_in("ent_a"))
    url = f"/small-works/{filing_id}"
    filer = sign_in("ent_a")
    assert post_form(filer, f"{url}/checks", {"result": "合格"}).status_code == 403
    assert post_form(filer, f"{url}/close", {}).status_code == 403
    district = sign_in("reg_changning")
    assert 'id="check-form"' in district.get(url).text
    assert post_form(district, f"{url}/checks", {"result": "合格"}).status_code == 303
    assert filing_counts(db) == (1, 1)


BAD_CHECKS: list[tuple[dict[str, Any], str]] = [
    ({"result": "好"}, "result"),
    ({"result": ""}, "result"),
    ({"result": "需整改"}, "notes"),
    ({"result": "合格", "notes": "注" * 1025}, "notes"),
    ({"result": "合格", "checked_at": "昨天"}, "checked_at"),
    ({"result": "合格", "checked_at": local(NOW + H)}, "checked_at"),
    ({"result": "合格", "checked_at": local(NOW - timedelta(days=1))}, "checked_at"),
]


@pytest.mark.parametrize(("check", "field"), BAD_CHECKS)
def test_a_bad_check_is_shown_next_to_the_field(
    sign_in: SignIn, world: World, db: Session, check: dict[str, Any], field: str
) -> None:
    filing_id = file_works(sign_in("ent_a"))
    client = sign_in("reg_huayang")
    response = post_form(client, f"/small-works/{filing_id}/checks", check)
    assert response.status_code == 422
    assert error_fields(response.text) == [field]
    assert filing_counts(db) == (1, 0)
    assert "已备案" in client.get(f"/small-works/{filing_id}").text


def test_small_works_list_filters(sign_in: SignIn, world: World) -> None:
    ent = sign_in("ent_a")
    file_works(ent)
    file_works(ent, street="310105102")
    client = sign_in("reg_changning")
    assert total(client.get("/small-works").text) == 2
    xinjing = client.get("/small-works?area=310105102").text
    assert total(xinjing) == 1 and "新泾镇" in xinjing
    assert total(client.get("/small-works?status=filed").text) == 2
    assert total(client.get("/small-works?status=closed").text) == 0
    assert client.get("/small-works?area=410100").status_code == 404
    partial = client.get("/small-works?status=filed", headers={"HX-Request": "true"})
    assert "<html" not in partial.text and total(partial.text) == 2
    assert total(sign_in("insp_xinjing").get("/small-works").text) == 1


@pytest.mark.parametrize(
    "who", ["safety_b", "reg_zhengzhou", "insp_xinjing", "welder_one", "installer_cn"]
)
def test_a_filing_outside_the_scope_is_not_found(
    sign_in: SignIn, world: World, db: Session, who: str
) -> None:
    filing_id = file_works(sign_in("ent_a"))  # 华阳路街道
    client = sign_in(who)
    assert total(client.get("/small-works").text) == 0
    assert client.get(f"/small-works/{filing_id}").status_code == 404
    check = post_form(client, f"/small-works/{filing_id}/checks", {"result": "合格"})
    assert check.status_code == 404
    assert post_form(client, f"/small-works/{filing_id}/close", {}).status_code == 404
    assert filing_counts(db) == (1, 0)


def test_small_works_forms_need_the_csrf_token(sign_in: SignIn, world: World, db: Session) -> None:
    filing_id = file_works(sign_in("ent_a"))
    ent = sign_in("ent_a")
    assert post_form(ent, "/small-works/new", filing_form(), csrf=False).status_code == 403
    street = sign_in("reg_huayang")
    for url, data in (
        (f"/small-works/{filing_id}/checks", {"result": "合格"}),
        (f"/small-works/{filing_id}/close", {}),
    ):
        assert post_form(street, url, data, csrf=False).status_code == 403, url
    assert filing_counts(db) == (1, 0)
