"""`weldguard labels`, run in-process against the test database."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tests.factories import ADMIN_SCOPE, NOW, World, add_enterprise, enterprise_row
from weldguard.cli import app
from weldguard.machine.service import MachineInput, MachineService


def _pages(pdf: bytes) -> int:
    return max(int(c) for c in re.findall(rb"/Count (\d+)", pdf))


def _add_machines(db: Session, world: World, count: int, retire: int = 0) -> list[str]:
    service = MachineService(db)
    codes = []
    for n in range(count):
        machine = service.register(
            ADMIN_SCOPE,
            MachineInput(
                f"SN-A-1{n:02d}", "佳士", "NB-350", "mig_mag", 350, world.enterprises["A"].id
            ),
            NOW,
        )
        if n < retire:
            service.retire(ADMIN_SCOPE, machine.id, NOW)
        codes.append(machine.code)
    db.commit()
    return codes


def test_labels_writes_the_sheets_and_leaves_out_retired_machines(
    cli: CliRunner, world: World, db: Session, tmp_path: Path
) -> None:
    codes = _add_machines(db, world, 11, retire=1)  # A: 1 + 11 machines, 1 retired
    out = tmp_path / "labels.pdf"
    result = cli.invoke(
        app, ["labels", "--enterprise", world.enterprises["A"].credit_code, str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "11 张焊机标签（2 页" in result.output
    assert "已报废的 1 台焊机不打印标签" in result.output and codes[0] in result.output
    pdf = out.read_bytes()
    assert pdf.startswith(b"%PDF") and _pages(pdf) == 2


def test_labels_for_some_machines_and_another_layout(
    cli: CliRunner, world: World, db: Session, tmp_path: Path
) -> None:
    codes = _add_machines(db, world, 2)
    out = tmp_path / "two.pdf"
    credit = world.enterprises["A"].credit_code.lower()  # typed in lower case
    args = ["labels", "--enterprise", credit, str(out), "--layout", "3x8"]
    result = cli.invoke(app, [*args, "--machine", codes[0], "--machine", codes[1].lower()])
    assert result.exit_code == 0, result.output
    assert "2 张焊机标签（1 页，每页 24 张）" in result.output


def test_clear_errors(cli: CliRunner, world: World, db: Session, tmp_path: Path) -> None:
    out = tmp_path / "x.pdf"
    unknown = cli.invoke(app, ["labels", "--enterprise", "91310000MA1FL99999", str(out)])
    assert unknown.exit_code == 1
    assert "找不到统一社会信用代码为 91310000MA1FL99999 的企业" in unknown.output

    empty = add_enterprise(db, enterprise_row(60, "无焊机测试有限公司", "长宁区", "华阳路街道"))
    db.commit()
    none = cli.invoke(app, ["labels", "--enterprise", empty.credit_code, str(out)])
    assert none.exit_code == 1 and "没有登记焊机" in none.output

    other = world.machines["B"].code
    wrong = cli.invoke(
        app,
        [
            "labels",
            "--enterprise",
            world.enterprises["A"].credit_code,
            str(out),
            "--machine",
            other,
        ],
    )
    assert wrong.exit_code == 1 and other in wrong.output

    credit = world.enterprises["A"].credit_code
    missing_dir = cli.invoke(
        app, ["labels", "--enterprise", credit, str(tmp_path / "no" / "x.pdf")]
    )
    assert missing_dir.exit_code == 2 and "不存在" in missing_dir.output
    a_dir = cli.invoke(app, ["labels", "--enterprise", credit, str(tmp_path)])
    assert a_dir.exit_code == 2 and "这是一个目录" in a_dir.output
    layout = cli.invoke(app, ["labels", "--enterprise", credit, str(out), "--layout", "4x4"])
    assert layout.exit_code == 2 and "未知的版式" in layout.output
    assert not out.exists()


def test_only_retired_machines_is_said_plainly(
    cli: CliRunner, world: World, db: Session, tmp_path: Path
) -> None:
    MachineService(db).retire(ADMIN_SCOPE, world.machines["C"].id, NOW)
    db.commit()
    result = cli.invoke(
        app, ["labels", "--enterprise", world.enterprises["C"].credit_code, str(tmp_path / "c.pdf")]
    )
    assert result.exit_code == 1
    assert "均已报废（1 台）" in result.output
