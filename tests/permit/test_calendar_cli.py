"""weldguard calendar import / export, and the calendar in weldguard seed reference."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tests.permit.conftest import ROWS_2027, csv_file, days_of
from weldguard.cli import app
from weldguard.config import Settings, get_settings
from weldguard.permit.calendar_seed import built_in_days
from weldguard.permit.calendar_service import CalendarService


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch, db: Session) -> Iterator[CliRunner]:
    monkeypatch.setenv("WELDGUARD_DATABASE_URL", settings.resolved_database_url())
    monkeypatch.setenv("WELDGUARD_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("WELDGUARD_SECRET_KEY", settings.resolved_secret_key())
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_seed_reference_loads_the_built_in_year(cli: CliRunner, db: Session) -> None:
    for _ in range(2):  # idempotent
        result = cli.invoke(app, ["seed", "reference"])
        assert result.exit_code == 0, result.output
    assert len(days_of(db, 2026)) == len(built_in_days(2026))


def test_import_then_export(cli: CliRunner, db: Session, tmp_path: Path) -> None:
    source = tmp_path / "2027.csv"
    source.write_bytes(csv_file(ROWS_2027, "gb18030"))
    result = cli.invoke(app, ["calendar", "import", str(source)])
    assert result.exit_code == 0, result.output
    assert "已导入 2027 年节假日安排" in result.output
    assert days_of(db, 2027)["2027-10-09"] == ("workday", "国庆节")
    assert {r.updated_by for r in CalendarService(db).year_days(2027)} == {"命令行"}

    out = tmp_path / "out.xlsx"
    result = cli.invoke(app, ["calendar", "export", str(out), "--year", "2027"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"PK") and "已导出到" in result.output
    text = tmp_path / "all.csv"
    assert cli.invoke(app, ["calendar", "export", str(text)]).exit_code == 0
    assert len(text.read_text("utf-8-sig").splitlines()) == 1 + len(ROWS_2027)
    bad_year = cli.invoke(app, ["calendar", "export", str(text), "--year", "99"])
    assert bad_year.exit_code == 1 and "年份须在" in bad_year.output


def test_a_bad_file_names_row_and_column_and_writes_nothing(
    cli: CliRunner, db: Session, tmp_path: Path
) -> None:
    source = tmp_path / "bad.csv"
    source.write_bytes(csv_file([*ROWS_2027, ["2027-02-03", "调休上班", "春节"]]))
    result = cli.invoke(app, ["calendar", "import", str(source)])
    assert result.exit_code == 1
    assert "未写入任何数据" in result.output
    assert f"第 {len(ROWS_2027) + 2} 行 [类型]" in result.output
    assert days_of(db, 2027) == {}
    missing = cli.invoke(app, ["calendar", "import", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2 and "找不到文件" in missing.output
