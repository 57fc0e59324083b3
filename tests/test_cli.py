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
