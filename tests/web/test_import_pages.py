"""The import page: template download, enterprise register uploads (good,
bad, partial, unreadable), the result report, and access rules."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook, load_workbook

from tests.factories import World, credit_code, enterprise_row
from tests.web.conftest import csrf_of
from weldguard.enterprise.fields import TEMPLATE_COLUMNS

SignIn = Callable[[str], TestClient]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def register_xlsx(rows: list[dict[str, object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append([header for _, header in TEMPLATE_COLUMNS])
    for number, row in enumerate(rows, start=1):
        ws.append([number if key == "row_number" else row.get(key) for key, _ in TEMPLATE_COLUMNS])
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def upload(
    client: TestClient, content: bytes, filename: str = "企业.xlsx", partial: bool = False
) -> tuple[int, str]:
    page = client.get("/imports")
    data = {"csrf_token": csrf_of(client, page.text)}
    if partial:
        data["partial"] = "true"
    response = client.post(
        "/imports/enterprises", data=data, files={"file": (filename, content, XLSX)}
    )
    return response.status_code, response.text


GOOD = [
    enterprise_row(201, "华阳新建机械厂", "长宁区", "华阳路街道"),
    enterprise_row(
        202, "虹桥新建宾馆", "长宁区", "虹桥街道", sector="人员密集场所", crowded_subtype="宾馆饭店"
    ),
]
BAD = enterprise_row(203, "错误代码企业", "长宁区", "新泾镇", credit_code="91310105MA1FL02039")


def test_import_page_by_role(sign_in: SignIn, world: World) -> None:
    regulator = sign_in("reg_changning").get("/imports")
    assert regulator.status_code == 200
    assert "导入企业底数" in regulator.text and "仅导入正确的行（部分导入）" in regulator.text
    assert 'href="/imports/template.xlsx"' in regulator.text
    assert "导入证书数据" not in regulator.text  # regulators may not import certificates
    admin = sign_in("admin").get("/imports").text
    assert "导入企业底数" in admin and "导入证书数据" in admin
    assert ">应急管理部门</option>" in admin and ">住建部门</option>" in admin
    assert sign_in("insp_xinjing").get("/imports").status_code == 403
    assert sign_in("welder_one").get("/imports").status_code == 403
    assert sign_in("ent_a").get("/imports/template.xlsx").status_code == 403


def test_template_has_the_columns_in_order(sign_in: SignIn, world: World) -> None:
    response = sign_in("reg_changning").get("/imports/template.xlsx")
    assert response.status_code == 200
    assert response.headers["content-type"] == XLSX
    assert "filename*=UTF-8''" in response.headers["content-disposition"]
    ws = load_workbook(io.BytesIO(response.content)).worksheets[0]
    headers = [cell.value for cell in next(ws.iter_rows(min_row=1, max_row=1))]
    assert headers == [header for _, header in TEMPLATE_COLUMNS]
    assert ws.max_row == 1 or all(c.value is None for row in ws.iter_rows(min_row=2) for c in row)


def test_good_file_is_imported(sign_in: SignIn, world: World) -> None:
    client = sign_in("reg_changning")
    status, html = upload(client, register_xlsx(GOOD))
    assert status == 200, html
    assert "导入结果" in html and "新增" in html
    assert 'data-count="created">2<' in html and 'data-count="errors">0<' in html
    assert "华阳新建机械厂" in html and credit_code(201) in html
    listing = client.get("/enterprises?q=新建").text
    assert "华阳新建机械厂" in listing and "虹桥新建宾馆" in listing


def test_bad_row_rejects_the_whole_file(sign_in: SignIn, world: World) -> None:
    client = sign_in("reg_changning")
    status, html = upload(client, register_xlsx([*GOOD, BAD]))
    assert status == 200
    assert 'data-count="created">0<' in html and 'data-count="errors">1<' in html
    assert "未写入任何数据" in html
    assert "统一社会信用代码" in html and "校验位" in html
    assert '<td data-label="行号" class="num">4</td>' in html
    assert "错误代码企业" in html
    assert "华阳新建机械厂" not in client.get("/enterprises?q=新建").text
    # The report can be downloaded again by the same user.
    run_link = html.split('href="/imports/')[1].split('"')[0]
    assert run_link.endswith("/report.xlsx")
    report = client.get(f"/imports/{run_link}")
    assert report.status_code == 200 and report.headers["content-type"] == XLSX
    sheet = load_workbook(io.BytesIO(report.content))["导入结果"]
    values = [str(c.value) for row in sheet.iter_rows() for c in row if c.value is not None]
    assert any("校验位" in v for v in values)
    run_id = run_link.split("/")[0]
    stored = client.get(f"/imports/{run_id}")
    assert stored.status_code == 200 and "校验位" in stored.text
    # …but not by another user, who gets the same 404 as for a missing run.
    other = sign_in("reg_huayang")
    assert other.get(f"/imports/{run_link}").status_code == 404
    assert other.get(f"/imports/{run_id}").status_code == 404
    assert other.get("/imports/999999/report.xlsx").status_code == 404
    assert sign_in("admin").get(f"/imports/{run_link}").status_code == 200


def test_partial_import_writes_the_good_rows(sign_in: SignIn, world: World) -> None:
    client = sign_in("reg_changning")
    status, html = upload(client, register_xlsx([*GOOD, BAD]), partial=True)
    assert status == 200
    assert 'data-count="created">2<' in html and 'data-count="errors">1<' in html
    assert "华阳新建机械厂" in client.get("/enterprises?q=新建").text


def test_rows_outside_the_area_are_errors(sign_in: SignIn, world: World) -> None:
    client = sign_in("reg_huayang")
    status, html = upload(client, register_xlsx(GOOD))
    assert status == 200
    assert 'data-count="errors">1<' in html and "管辖范围" in html


@pytest.mark.parametrize(
    ("content", "filename", "message"),
    [
        (b"not a workbook at all", "企业.xlsx", "xlsx"),
        (b"", "empty.xlsx", "文件为空"),
    ],
)
def test_unreadable_files_answer_422(
    sign_in: SignIn, world: World, content: bytes, filename: str, message: str
) -> None:
    status, html = upload(sign_in("reg_changning"), content, filename)
    assert status == 422
    assert "无法导入该文件" in html and message in html


def test_missing_headers_are_listed(sign_in: SignIn, world: World) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["企业名称", "统一社会信用代码"])
    ws.append(["某企业", credit_code(300)])
    buffer = io.BytesIO()
    wb.save(buffer)
    status, html = upload(sign_in("reg_changning"), buffer.getvalue())
    assert status == 422 and "缺少表头" in html and "所属区县" in html


def test_upload_needs_the_csrf_token(sign_in: SignIn, world: World) -> None:
    client = sign_in("reg_changning")
    response = client.post(
        "/imports/enterprises",
        data={"csrf_token": "forged-token-forged-token-forged"},
        files={"file": ("企业.xlsx", register_xlsx(GOOD), XLSX)},
    )
    assert response.status_code == 403
    assert "华阳新建机械厂" not in client.get("/enterprises?q=新建").text


def test_enterprise_users_cannot_import(sign_in: SignIn, world: World) -> None:
    client = sign_in("ent_a")
    home = client.get("/")
    response = client.post(
        "/imports/enterprises",
        data={"csrf_token": csrf_of(client, home.text)},
        files={"file": ("企业.xlsx", register_xlsx(GOOD), XLSX)},
    )
    assert response.status_code == 403
