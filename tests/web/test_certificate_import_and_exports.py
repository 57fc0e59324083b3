"""Certificate feed uploads (admin only) and the enterprise list's exports."""

from __future__ import annotations

import io
from collections.abc import Callable

from fastapi.testclient import TestClient
from openpyxl import load_workbook

from tests.factories import World, id_number
from tests.web.conftest import csrf_of

SignIn = Callable[[str], TestClient]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HEADER = "姓名,身份证号,证书类型,证书编号,操作项目,发证日期,有效期至,发证机关\n"


def feed(*lines: str) -> bytes:
    return (HEADER + "".join(line + "\n" for line in lines)).encode("utf-8")


def upload(
    client: TestClient, content: bytes, source: str = "应急管理部门", partial: bool = False
) -> tuple[int, str]:
    page = client.get("/imports")
    data = {"csrf_token": csrf_of(client, page.text), "source": source}
    if partial:
        data["partial"] = "true"
    response = client.post(
        "/imports/certificates", data=data, files={"file": ("证书.csv", content, "text/csv")}
    )
    return response.status_code, response.text


def test_certificate_feed_is_imported_without_showing_id_numbers(
    sign_in: SignIn, world: World
) -> None:
    client = sign_in("admin")
    new_person = id_number(7)
    status, html = upload(
        client,
        feed(
            f"焊工A,{id_number(1)},特种作业操作证,T{id_number(1)},熔化焊接与热切割作业,"
            "2024-01-10,2030-01-09,上海市应急管理局",
            f"新焊工,{new_person},特种作业操作证,T{new_person},钎焊作业,"
            "2025-03-01,2031-02-28,上海市应急管理局",
        ),
    )
    assert status == 200, html
    assert "证书导入结果" in html and 'data-count="errors">0<' in html
    assert 'data-count="created">1<' in html and 'data-count="updated">1<' in html
    for n in (1, 7):
        assert id_number(n) not in html
    listing = client.get("/certificates?q=新焊工").text
    assert "钎焊作业" in listing and "应急管理部门" in listing


def test_mismatched_holder_rejects_the_feed(sign_in: SignIn, world: World) -> None:
    client = sign_in("admin")
    status, html = upload(
        client,
        feed(
            f"错号焊工,{id_number(8)},特种作业操作证,T{id_number(9)},熔化焊接与热切割作业,"
            "2024-01-10,2030-01-09,上海市应急管理局",
        ),
    )
    assert status == 200
    assert "未写入任何数据" in html and "人证不符" in html
    assert 'class="row-error"' in html
    assert id_number(8) not in html and id_number(9) not in html
    assert "错号焊工" not in client.get("/welders?q=错号").text


def test_certificate_import_needs_a_source_and_the_right(sign_in: SignIn, world: World) -> None:
    status, html = upload(sign_in("admin"), feed(), source="")
    assert status == 422 and "数据来源" in html
    client = sign_in("reg_changning")
    page = client.get("/imports")
    response = client.post(
        "/imports/certificates",
        data={"csrf_token": csrf_of(client, page.text), "source": "应急管理部门"},
        files={"file": ("证书.csv", feed(), "text/csv")},
    )
    assert response.status_code == 403


def test_exports_download_workbooks_of_the_area(sign_in: SignIn, world: World) -> None:
    client = sign_in("reg_changning")
    whole = client.get("/exports/enterprises.xlsx")
    assert whole.status_code == 200 and whole.headers["content-type"] == XLSX
    rows = list(load_workbook(io.BytesIO(whole.content)).worksheets[0].iter_rows(values_only=True))
    text = " ".join(str(v) for row in rows for v in row if v is not None)
    assert "长宁华阳机电维修有限公司" in text and "新泾钢结构工程有限公司" in text
    assert "郑州中原重工机械有限公司" not in text
    street = client.get("/exports/enterprises.xlsx?area=310105001")
    rows = list(load_workbook(io.BytesIO(street.content)).worksheets[0].iter_rows(values_only=True))
    text = " ".join(str(v) for row in rows for v in row if v is not None)
    assert "长宁华阳机电维修有限公司" in text and "新泾钢结构工程有限公司" not in text
    monthly = client.get("/exports/monthly.xlsx?month=2026-11&area=310105")
    assert monthly.status_code == 200 and monthly.headers["content-type"] == XLSX
    assert "2026-11" in monthly.headers["content-disposition"]
    assert client.get("/exports/monthly.xlsx?month=2026-13").status_code == 422
    assert client.get("/exports/enterprises.xlsx?area=410100").status_code == 404
    assert sign_in("welder_one").get("/exports/enterprises.xlsx").status_code == 403
