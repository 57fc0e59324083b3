"""What the labels look like to a machine: SVG with the code and the Chinese
text, PNG, A4 PDF sheets with the Chinese font and the right number of pages, and
which machines get a label at all."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy.orm import Session

from tests.factories import ADMIN_SCOPE, NOW, World, add_enterprise, enterprise_row
from weldguard.errors import Conflict, NotFound
from weldguard.machine.service import MachineInput, MachineService
from weldguard.unlock.label_render import (
    INSTRUCTION,
    SHEET_LAYOUTS,
    TITLE,
    LabelInfo,
    label_png,
    label_sheet_pdf,
    label_svg,
    png_has_chinese,
    sheet_pages,
)
from weldguard.unlock.label_service import LabelService
from weldguard.unlock.labels import LabelSigner

SIGNER = LabelSigner("test-secret-key-not-for-production", "http://127.0.0.1:8000")


def info(n: int = 0, name: str = "长宁华阳机电维修有限公司") -> LabelInfo:
    code = f"WG3K9ABC{n:02d}"
    return LabelInfo(code, SIGNER.label_url(code), name, f"SN-A-{n:03d}", "瑞凌", "ZX7-400")


def pdf_pages(pdf: bytes) -> int:
    counts = re.findall(rb"/Count (\d+)", pdf)
    assert counts
    return max(int(c) for c in counts)


def test_svg_holds_code_enterprise_and_the_instruction() -> None:
    label = info(name="A&B <焊接> 有限公司")
    svg = label_svg(label)
    root = ET.fromstring(svg.encode())  # well-formed, names escaped
    texts = "".join(el.text or "" for el in root.iter("{http://www.w3.org/2000/svg}text"))
    assert label.code in texts
    assert TITLE in texts and INSTRUCTION in texts
    assert "A&B <焊接> 有限公司" in texts
    assert "SN-A-000" in texts and "ZX7-400" in texts
    assert root.get("width") == "90mm" and root.get("height") == "50mm"
    assert "<script" not in svg


def test_png_is_a_png_of_label_size() -> None:
    png = label_png(info())
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert 2_000 < len(png) < 200_000
    image = Image.open(io.BytesIO(png))
    assert image.size == (720, 400)  # 90 × 50 mm at 8 px/mm


def test_png_without_a_chinese_font_keeps_the_latin_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from weldguard.unlock import label_render

    monkeypatch.setattr(label_render, "_font_file", lambda kind: None)
    assert not png_has_chinese()
    assert label_png(info()).startswith(b"\x89PNG")


@pytest.mark.skipif(shutil.which("zbarimg") is None, reason="zbarimg (zbar-tools) not installed")
def test_png_decodes_back_to_the_label_url(tmp_path: Path) -> None:
    label = info(7)
    path = tmp_path / "label.png"
    path.write_bytes(label_png(label))
    out = subprocess.run(
        ["zbarimg", "--quiet", "--raw", str(path)], capture_output=True, text=True, check=False
    )
    assert out.stdout.strip() == label.url


@pytest.mark.parametrize(
    ("count", "layout", "pages"),
    [(1, "2x5", 1), (10, "2x5", 1), (11, "2x5", 2), (25, "2x5", 3), (24, "3x8", 1), (25, "3x8", 2)],
)
def test_pdf_sheets_have_a_page_per_sheet_of_labels(count: int, layout: str, pages: int) -> None:
    sheet = SHEET_LAYOUTS[layout]
    pdf = label_sheet_pdf([info(n) for n in range(count)], sheet, "测试企业 焊机标签")
    assert pdf.startswith(b"%PDF-")
    assert pdf_pages(pdf) == pages == sheet_pages(count, sheet)


def test_pdf_uses_the_builtin_chinese_font() -> None:
    pdf = label_sheet_pdf([info()], title="测试")
    assert b"/BaseFont /STSong-Light" in pdf
    assert b"UniGB-UCS2-H" in pdf


def test_sheets_fit_the_page() -> None:
    for sheet in SHEET_LAYOUTS.values():
        assert sheet.margin_x >= 5 and sheet.margin_y >= 5
        assert sheet.gap_x >= 3 and sheet.gap_y >= 3


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler) not installed")
def test_pdf_text_reads_back_in_chinese(tmp_path: Path) -> None:
    path = tmp_path / "labels.pdf"
    path.write_bytes(label_sheet_pdf([info(1), info(2)], title="测试企业 焊机标签"))
    text = subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert TITLE in text
    assert "长宁华阳机电维修有限公司" in text
    assert "WG3K9ABC01" in text and "WG3K9ABC02" in text
    assert "请使用手机扫码" in text


# --- which machines get labels ---------------------------------------------------------
def _service(db: Session) -> LabelService:
    return LabelService(db, SIGNER)


def test_retired_machines_get_no_label(db: Session, world: World) -> None:
    machines = MachineService(db)
    enterprise = world.enterprises["A"]
    second = machines.register(
        ADMIN_SCOPE,
        MachineInput("SN-A-002", "佳士", "NB-350", "mig_mag", 350, enterprise.id),
        NOW,
    )
    machines.retire(ADMIN_SCOPE, second.id, NOW)
    db.commit()
    batch = _service(db).enterprise_labels(ADMIN_SCOPE, enterprise)
    assert [label.code for label in batch.labels] == [world.machines["A"].code]
    assert batch.retired == [second.code]
    assert batch.labels[0].url == SIGNER.label_url(world.machines["A"].code)
    with pytest.raises(Conflict):
        _service(db).machine_label(ADMIN_SCOPE, second.id)
    with pytest.raises(Conflict, match="均已报废"):
        _service(db).enterprise_labels(ADMIN_SCOPE, enterprise, [second.code])


def test_an_enterprise_without_machines_has_nothing_to_print(db: Session, world: World) -> None:
    empty = add_enterprise(db, enterprise_row(50, "空壳测试有限公司", "长宁区", "华阳路街道"))
    db.commit()
    with pytest.raises(Conflict, match="没有登记焊机"):
        _service(db).enterprise_labels(ADMIN_SCOPE, empty)


def test_machines_named_must_belong_to_the_enterprise(db: Session, world: World) -> None:
    with pytest.raises(NotFound, match=world.machines["B"].code):
        _service(db).enterprise_labels(
            ADMIN_SCOPE, world.enterprises["A"], [world.machines["B"].code]
        )
