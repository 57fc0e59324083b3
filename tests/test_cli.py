"""The weldguard command, run in-process against the test database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tests.factories import World
from weldguard.auth.repository import UserRepository
from weldguard.cli import app
from weldguard.config import Settings, get_settings


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("WELDGUARD_DATABASE_URL", settings.resolved_database_url())
    monkeypatch.setenv("WELDGUARD_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("WELDGUARD_SECRET_KEY", settings.resolved_secret_key())
    monkeypatch.setenv("WELDGUARD_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("WELDGUARD_ARGON2_MEMORY_KIB", "64")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_db_upgrade_creates_a_fresh_sqlite_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WELDGUARD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WELDGUARD_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["db", "upgrade"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "weldguard.sqlite3").exists()


def test_user_create_binds_jurisdiction_and_department(
    cli: CliRunner, world: World, db: Session
) -> None:
    result = cli.invoke(
        app,
        [
            "user",
            "create",
            "--username",
            "xinhua",
            "--password",
            "longenough1",
            "--role",
            "regulator",
            "--jurisdiction",
            "310105004",
            "--department",
            "住建",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "已创建用户 xinhua" in result.output
    user = UserRepository(db).by_username("xinhua")
    assert user is not None and user.jurisdiction_id == world.places["310105004"].id


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "regulator", "--jurisdiction", "310105"], "监管人员必须绑定部门"),
        (
            ["--role", "regulator", "--jurisdiction", "999999", "--department", "应急"],
            "未知的行政区划代码 999999",
        ),
        (
            ["--role", "regulator", "--jurisdiction", "310105", "--department", "不存在"],
            "未知的部门 不存在",
        ),
        (["--role", "boss"], "未知角色"),
        (
            ["--role", "enterprise_admin", "--enterprise", "91310105MA1FL99999"],
            "未登记的统一社会信用代码",
        ),
    ],
)
def test_user_create_rejects_bad_bindings(
    cli: CliRunner, world: World, db: Session, args: list[str], message: str
) -> None:
    result = cli.invoke(
        app, ["user", "create", "--username", "bad", "--password", "longenough1", *args]
    )
    assert result.exit_code == 1
    assert message in result.output
    assert UserRepository(db).by_username("bad") is None


def test_user_create_rejects_short_password_and_duplicates(cli: CliRunner, world: World) -> None:
    short = cli.invoke(
        app, ["user", "create", "--username", "x1", "--password", "short", "--role", "admin"]
    )
    assert short.exit_code == 1 and "密码至少 8 个字符" in short.output
    again = cli.invoke(
        app,
        ["user", "create", "--username", "admin", "--password", "longenough1", "--role", "admin"],
    )
    assert again.exit_code == 1 and "已存在" in again.output


def _register_file(path: Path, rows: list[dict[str, object]]) -> Path:
    from openpyxl import Workbook

    from weldguard.enterprise.fields import TEMPLATE_COLUMNS

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append([header for _, header in TEMPLATE_COLUMNS])
    for index, row in enumerate(rows, start=1):
        sheet.append(
            [index if key == "row_number" else row.get(key, "") for key, _ in TEMPLATE_COLUMNS]
        )
    book.save(path)
    return path


def _enterprise_count(db: Session) -> int:
    from sqlalchemy import func, select

    from weldguard.enterprise.models import Enterprise

    db.expire_all()
    return db.scalar(select(func.count(Enterprise.id))) or 0


def test_import_enterprises_all_or_nothing_then_partial(
    cli: CliRunner, world: World, db: Session, tmp_path: Path
) -> None:
    from tests.factories import enterprise_row

    good = enterprise_row(90, "命令行导入企业", "长宁区", "周家桥街道")
    bad = enterprise_row(91, "坏行企业", "长宁区", "无此街道")
    file = _register_file(tmp_path / "register.xlsx", [good, bad])
    before = _enterprise_count(db)

    rejected = cli.invoke(app, ["import", "enterprises", str(file)])
    assert rejected.exit_code == 1
    assert "第 3 行［所属镇街］" in rejected.output
    assert (tmp_path / "register.report.xlsx").exists()
    assert _enterprise_count(db) == before

    partial = cli.invoke(app, ["import", "enterprises", str(file), "--partial"])
    assert partial.exit_code == 0, partial.output
    assert "新增 1" in partial.output
    assert _enterprise_count(db) == before + 1


def test_import_rejects_missing_and_malformed_files(
    cli: CliRunner, world: World, tmp_path: Path
) -> None:
    missing = cli.invoke(app, ["import", "enterprises", str(tmp_path / "none.xlsx")])
    assert missing.exit_code == 2 and "找不到文件" in missing.output
    text = tmp_path / "text.xlsx"
    text.write_text("not a workbook")
    malformed = cli.invoke(app, ["import", "enterprises", str(text)])
    assert malformed.exit_code == 1 and "xlsx" in malformed.output


def test_exports_write_workbooks(cli: CliRunner, world: World, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    register = tmp_path / "register.xlsx"
    result = cli.invoke(
        app, ["export", "enterprises", str(register), "--jurisdiction", "310105001"]
    )
    assert result.exit_code == 0, result.output
    codes = {
        row[2] for row in load_workbook(register).active.iter_rows(min_row=2, values_only=True)
    }
    assert codes == {world.enterprises["A"].credit_code}
    monthly = tmp_path / "monthly.xlsx"
    assert cli.invoke(app, ["export", "monthly", str(monthly), "--month", "2026-11"]).exit_code == 0
    assert monthly.exists()
    bad_month = cli.invoke(app, ["export", "monthly", str(monthly), "--month", "2026-13"])
    assert bad_month.exit_code == 2 and "月份" in bad_month.output
    unknown = cli.invoke(app, ["export", "enterprises", str(register), "--jurisdiction", "999"])
    assert unknown.exit_code == 1 and "未知的行政区划代码" in unknown.output


def test_import_certificates_command(cli: CliRunner, world: World, tmp_path: Path) -> None:
    from tests.factories import id_number

    number = id_number(95)
    csv = tmp_path / "certs.csv"
    csv.write_text(
        "姓名,身份证号,证书类型,证书编号,操作项目,发证日期,发证机关\n"
        f"陈七,{number},特种作业操作证,T{number},熔化焊接与热切割作业,2025-03-01,上海市应急管理局\n",
        encoding="utf-8",
    )
    result = cli.invoke(app, ["import", "certificates", str(csv), "--source", "应急管理部门"])
    assert result.exit_code == 0, result.output
    assert "新增 1" in result.output
    assert number not in result.output


def test_serve_refuses_a_taken_mqtt_port_clearly(
    cli: CliRunner, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("WELDGUARD_MQTT_LISTEN_PORT", str(taken.getsockname()[1]))
        monkeypatch.delenv("WELDGUARD_MQTT_URL", raising=False)
        get_settings.cache_clear()
        result = cli.invoke(app, ["serve", "--port", "1"])
    assert result.exit_code == 1
    assert "已被占用" in result.output and "WELDGUARD_MQTT_URL" in result.output


def test_seed_demo_writes_the_demo_fleet_file(cli: CliRunner, settings: Settings) -> None:
    result = cli.invoke(app, ["seed", "demo"])
    assert result.exit_code == 0, result.output
    path = settings.data_dir / "demo-devices.csv"
    assert f"--fleet {path}" in result.output
    assert len(path.read_text(encoding="utf-8").splitlines()) == 121  # header + 120 chips
