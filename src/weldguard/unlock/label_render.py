"""Drawing machine labels: one layout, three outputs (SVG, PNG, A4 PDF sheets).

A label is laid out once in millimetres (:func:`layout_label`): a dark band with
扫码开机, the QR code with its quiet zone on the left, the enterprise, the machine
code, serial number and model on the right, and the one-line instruction at the
bottom. The backends only paint that layout, so the three look alike.

The QR code is segno's matrix at error correction M (raised for free when the
version has room), painted as modules by each backend: vector in SVG and PDF,
whole pixels per module in PNG.

Chinese text:
- PDF uses reportlab's built-in CID font STSong-Light (UniGB-UCS2-H): nothing is
  embedded, every PDF reader shows it with its own Chinese font.
- SVG names common Chinese fonts and lets the viewer choose.
- PNG needs a font file with Chinese glyphs: Noto Sans CJK (Debian's
  fonts-noto-cjk, which `make` installs with Chromium), WenQuanYi or Droid Sans
  Fallback. Without one the PNG carries only the Latin text (code, serial, model).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

import segno

log = logging.getLogger(__name__)

TITLE = "扫码开机"
INSTRUCTION = "请使用手机扫码，持证上岗，刷码开机"
BRAND = "电气焊安全监管"
QUIET_MODULES = 4  # the QR standard's quiet zone, kept inside the label
QR_ERROR = "m"

FontKind = Literal["cjk", "cjk_bold", "mono"]
Anchor = Literal["start", "middle", "end"]


@dataclass(frozen=True)
class LabelInfo:
    """What one label shows."""

    code: str
    url: str
    enterprise_name: str
    serial_number: str
    make: str
    model: str


def label_qr(url: str) -> segno.QRCode:
    return segno.make(url, error=QR_ERROR, micro=False)


def qr_modules(url: str) -> list[list[bool]]:
    """The dark modules of the label's QR code, without the quiet zone."""
    return [[bool(cell) for cell in row] for row in label_qr(url).matrix_iter(border=0)]


# --- layout (millimetres, origin top left, text y at the baseline) --------------------
@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float
    fill: str


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    size: float
    text: str
    font: FontKind = "cjk"
    fill: str = "#000000"
    anchor: Anchor = "start"


@dataclass(frozen=True)
class LabelLayout:
    width: float
    height: float
    qr_x: float  # top left of the first module (inside the quiet zone)
    qr_y: float
    module: float
    modules: list[list[bool]]
    boxes: list[Box] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)


def _em(text: str) -> float:
    """Estimated width in ems: Chinese characters are square, the rest narrower."""
    return sum(1.0 if ord(ch) >= 0x2E80 else 0.6 for ch in text)


def _clip(text: str, size: float, width: float) -> str:
    if _em(text) * size <= width:
        return text
    while text and _em(text + "…") * size > width:
        text = text[:-1]
    return text + "…"


def _wrap(text: str, size: float, width: float, lines: int) -> list[str]:
    out: list[str] = []
    rest = text.strip()
    while rest and len(out) < lines:
        take = len(rest)
        while take > 1 and _em(rest[:take]) * size > width:
            take -= 1
        if len(out) == lines - 1 and take < len(rest):
            out.append(_clip(rest, size, width))
            break
        out.append(rest[:take])
        rest = rest[take:].lstrip()
    return out


def _fit(text: str, size: float, width: float, smallest: float) -> float:
    """The size (≥ smallest) at which ``text`` fits ``width``."""
    estimate = _em(text) * size
    if estimate <= width:
        return size
    return max(smallest, size * width / estimate)


def layout_label(info: LabelInfo, width: float = 90.0, height: float = 50.0) -> LabelLayout:
    h = height
    pad = 0.06 * h
    band = 0.2 * h
    modules = qr_modules(info.url)
    n = len(modules)

    boxes = [Box(0, 0, width, band, "#111111")]
    texts = [
        Text(pad, band * 0.7, 0.11 * h, TITLE, "cjk_bold", "#ffffff"),
        Text(width - pad, band * 0.66, 0.055 * h, BRAND, "cjk", "#ffffff", "end"),
    ]
    footer_size = _fit(INSTRUCTION, 0.058 * h, width - 2 * pad, 0.04 * h)
    footer_base = h - pad * 0.9
    texts.append(Text(width / 2, footer_base, footer_size, INSTRUCTION, "cjk", "#000000", "middle"))

    qr_top = band + 0.01 * h
    qr_bottom = footer_base - footer_size * 1.25
    module = (qr_bottom - qr_top) / (n + 2 * QUIET_MODULES)
    qr_left = 0.01 * width
    qr_x = qr_left + QUIET_MODULES * module
    qr_y = qr_top + QUIET_MODULES * module

    x = qr_left + (n + 2 * QUIET_MODULES) * module
    column = width - x - pad
    name_size = 0.07 * h
    code_size = _fit(info.code, 0.11 * h, column, 0.06 * h)
    small = 0.055 * h
    caption = 0.045 * h
    name_lines = _wrap(info.enterprise_name, name_size, column, 2)
    rows: list[tuple[float, Text]] = []  # (advance, text at relative baseline)
    for line in name_lines:
        rows.append((name_size * 1.3, Text(x, name_size, name_size, line, "cjk_bold")))
    rows.append((caption * 1.9, Text(x, caption * 1.6, caption, "焊机编号", "cjk", "#444444")))
    rows.append((code_size * 1.2, Text(x, code_size * 0.95, code_size, info.code, "mono")))
    serial = _clip(f"出厂编号 {info.serial_number}", small, column)
    model = _clip(f"型号 {info.make} {info.model}".rstrip(), small, column)
    rows.append((small * 1.7, Text(x, small * 1.45, small, serial)))
    rows.append((small * 1.4, Text(x, small * 1.15, small, model)))

    total = sum(advance for advance, _ in rows)
    available = qr_bottom - qr_top
    scale = min(1.0, available / total)
    y = qr_top + max(0.0, (available - total * scale) / 2)
    for advance, text in rows:
        texts.append(
            Text(text.x, y + text.y * scale, text.size * scale, text.text, text.font, text.fill)
        )
        y += advance * scale
    return LabelLayout(width, height, qr_x, qr_y, module, modules, boxes, texts)


def _runs(row: list[bool]) -> list[tuple[int, int]]:
    """(start, length) of each run of dark modules in a row."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i, dark in enumerate([*row, False]):
        if dark and start is None:
            start = i
        elif not dark and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


# --- SVG ------------------------------------------------------------------------------
_SVG_FONTS: dict[FontKind, str] = {
    "cjk": "'Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Microsoft YaHei',"
    "'WenQuanYi Micro Hei',sans-serif",
    "cjk_bold": "'Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Microsoft YaHei',"
    "'WenQuanYi Micro Hei',sans-serif",
    "mono": "'DejaVu Sans Mono',Consolas,'Courier New',monospace",
}


def _n(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def label_svg(info: LabelInfo, width: float = 90.0, height: float = 50.0) -> str:
    """One label as a standalone SVG, sized in millimetres, with a cut line."""
    lay = layout_label(info, width, height)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(width)}mm" height="{_n(height)}mm"'
        f' viewBox="0 0 {_n(width)} {_n(height)}">',
        f"<title>{escape(info.code)} · {escape(TITLE)}</title>",
        f'<rect width="{_n(width)}" height="{_n(height)}" fill="#ffffff"/>',
    ]
    for box in lay.boxes:
        parts.append(
            f'<rect x="{_n(box.x)}" y="{_n(box.y)}" width="{_n(box.w)}" height="{_n(box.h)}"'
            f' fill="{box.fill}"/>'
        )
    path = "".join(
        f"M{start} {r}h{length}v1h-{length}z"
        for r, row in enumerate(lay.modules)
        for start, length in _runs(row)
    )
    parts.append(
        f'<path transform="translate({_n(lay.qr_x)} {_n(lay.qr_y)}) scale({_n(lay.module)})"'
        f' fill="#000000" shape-rendering="crispEdges" d="{path}"/>'
    )
    for t in lay.texts:
        weight = ' font-weight="bold"' if t.font != "cjk" else ""
        parts.append(
            f'<text x="{_n(t.x)}" y="{_n(t.y)}" font-size="{_n(t.size)}"'
            f" font-family={quoteattr(_SVG_FONTS[t.font])}{weight}"
            f' fill="{t.fill}" text-anchor="{t.anchor}">{escape(t.text)}</text>'
        )
    parts.append(
        f'<rect x="0.1" y="0.1" width="{_n(width - 0.2)}" height="{_n(height - 0.2)}"'
        ' fill="none" stroke="#999999" stroke-width="0.2" stroke-dasharray="1 1"/>'
    )
    parts.append("</svg>\n")
    return "\n".join(parts)


# --- PNG ------------------------------------------------------------------------------
_PNG_FONT_FILES: dict[FontKind, tuple[tuple[str, int], ...]] = {
    "cjk": (
        ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
        ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
        ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
        ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),
    ),
    "cjk_bold": (
        ("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", 2),
        ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
        ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
        ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
        ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),
    ),
    "mono": (
        ("/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf", 0),
        ("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", 2),
    ),
}


@lru_cache(maxsize=8)
def _font_file(kind: FontKind) -> tuple[str, int] | None:
    for path, index in _PNG_FONT_FILES[kind]:
        if Path(path).is_file():
            return path, index
    if kind != "mono":
        log.warning("no Chinese font found: PNG labels carry only their Latin text")
    return None


def png_has_chinese() -> bool:
    """Whether PNG labels can show their Chinese text on this machine."""
    return _font_file("cjk") is not None


def label_png(
    info: LabelInfo, width: float = 90.0, height: float = 50.0, px_per_mm: int = 8
) -> bytes:
    """One label as a PNG (8 px/mm ≈ 203 dpi, a label printer's resolution)."""
    from PIL import Image, ImageDraw, ImageFont

    lay = layout_label(info, width, height)
    image = Image.new("L", (round(width * px_per_mm), round(height * px_per_mm)), 255)
    draw = ImageDraw.Draw(image)

    def px(value: float) -> int:
        return round(value * px_per_mm)

    for box in lay.boxes:
        shade = int(box.fill[1:3], 16)
        draw.rectangle((px(box.x), px(box.y), px(box.x + box.w) - 1, px(box.y + box.h) - 1), shade)
    # Whole pixels per module, centred on the laid-out square: modules of uneven
    # widths would make the code harder to read.
    n = len(lay.modules)
    unit = max(1, int(lay.module * px_per_mm))
    left = px(lay.qr_x + lay.module * n / 2) - unit * n // 2
    top = px(lay.qr_y + lay.module * n / 2) - unit * n // 2
    for r, row in enumerate(lay.modules):
        for start, length in _runs(row):
            x0, y0 = left + start * unit, top + r * unit
            draw.rectangle((x0, y0, x0 + length * unit - 1, y0 + unit - 1), 0)
    cjk = _font_file("cjk") is not None
    anchors = {"start": "ls", "middle": "ms", "end": "rs"}
    for t in lay.texts:
        text = t.text if cjk else "".join(ch for ch in t.text if ch.isascii()).strip()
        if not text:
            continue
        found = _font_file(t.font)
        size = max(6, px(t.size))
        font = (
            ImageFont.truetype(found[0], size, index=found[1])
            if found
            else ImageFont.load_default(size)
        )
        draw.text(
            (px(t.x), px(t.y)), text, fill=int(t.fill[1:3], 16), font=font, anchor=anchors[t.anchor]
        )
    out = io.BytesIO()
    dpi = px_per_mm * 25.4
    image.save(out, format="PNG", optimize=True, dpi=(dpi, dpi))
    return out.getvalue()


# --- PDF sheets -------------------------------------------------------------------------
@dataclass(frozen=True)
class SheetLayout:
    """Labels on an A4 page (portrait, millimetres), with cutting room between them."""

    name: str
    columns: int
    rows: int
    label_width: float
    label_height: float
    gap_x: float
    gap_y: float
    page_width: float = 210.0
    page_height: float = 297.0

    @property
    def per_page(self) -> int:
        return self.columns * self.rows

    @property
    def margin_x(self) -> float:
        used = self.columns * self.label_width + (self.columns - 1) * self.gap_x
        return (self.page_width - used) / 2

    @property
    def margin_y(self) -> float:
        used = self.rows * self.label_height + (self.rows - 1) * self.gap_y
        return (self.page_height - used) / 2

    def origin(self, slot: int) -> tuple[float, float]:
        """Top left of the label in ``slot`` (row by row)."""
        row, column = divmod(slot, self.columns)
        return (
            self.margin_x + column * (self.label_width + self.gap_x),
            self.margin_y + row * (self.label_height + self.gap_y),
        )


SHEET_LAYOUTS = {
    "2x5": SheetLayout("2x5", 2, 5, 90.0, 50.0, 8.0, 6.0),
    "3x8": SheetLayout("3x8", 3, 8, 62.0, 31.0, 4.0, 4.0),
}
DEFAULT_SHEET = SHEET_LAYOUTS["2x5"]

PDF_CJK_FONT = "STSong-Light"
_PDF_FONTS: dict[FontKind, str] = {
    "cjk": PDF_CJK_FONT,
    "cjk_bold": PDF_CJK_FONT,
    "mono": "Courier-Bold",
}


def _register_cjk_font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    if PDF_CJK_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(PDF_CJK_FONT))


def sheet_pages(count: int, sheet: SheetLayout = DEFAULT_SHEET) -> int:
    return max(1, -(-count // sheet.per_page))


def label_sheet_pdf(
    labels: Sequence[LabelInfo], sheet: SheetLayout = DEFAULT_SHEET, title: str = ""
) -> bytes:
    """A4 pages of labels, with crop marks in the gaps between them."""
    from reportlab.lib.colors import HexColor
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfgen.canvas import Canvas

    _register_cjk_font()
    out = io.BytesIO()
    page_w, page_h = sheet.page_width * mm, sheet.page_height * mm
    canvas = Canvas(out, pagesize=(page_w, page_h), invariant=True)
    canvas.setTitle(title or "焊机二维码标签")
    canvas.setAuthor("weldguard")
    canvas.setSubject(TITLE)
    pages = sheet_pages(len(labels), sheet)

    def draw_label(info: LabelInfo, ox: float, oy: float) -> None:
        lay = layout_label(info, sheet.label_width, sheet.label_height)

        def page_x(value: float) -> float:
            return (ox + value) * mm

        def page_y(value: float) -> float:
            return page_h - (oy + value) * mm

        for box in lay.boxes:
            canvas.setFillColor(HexColor(box.fill))
            canvas.rect(
                page_x(box.x), page_y(box.y + box.h), box.w * mm, box.h * mm, stroke=0, fill=1
            )
        canvas.setFillColor(HexColor("#000000"))
        path = canvas.beginPath()
        for r, row in enumerate(lay.modules):
            for start, length in _runs(row):
                path.rect(
                    page_x(lay.qr_x + start * lay.module),
                    page_y(lay.qr_y + (r + 1) * lay.module),
                    length * lay.module * mm,
                    lay.module * mm,
                )
        canvas.drawPath(path, stroke=0, fill=1)
        for t in lay.texts:
            font = _PDF_FONTS[t.font]
            size = t.size * mm
            text_width = pdfmetrics.stringWidth(t.text, font, size)
            shift = {"start": 0.0, "middle": text_width / 2, "end": text_width}[t.anchor]
            color = HexColor(t.fill)
            canvas.setFillColor(color)
            canvas.setStrokeColor(color)
            # STSong-Light has no bold: fill and stroke the glyphs, inside a saved
            # graphics state (the render mode would otherwise stick to later text).
            bold = t.font == "cjk_bold"
            canvas.saveState()
            obj = canvas.beginText(page_x(t.x) - shift, page_y(t.y))
            obj.setFont(font, size)
            if bold:
                canvas.setLineWidth(size * 0.04)
                obj.setTextRenderMode(2)
            obj.textOut(t.text)
            canvas.drawText(obj)
            canvas.restoreState()

    def crop_marks() -> None:
        canvas.setStrokeColor(HexColor("#808080"))
        canvas.setLineWidth(0.25)
        reach = min(sheet.gap_x, sheet.gap_y, sheet.margin_x, sheet.margin_y) / 2 * mm
        xs = sorted(
            {sheet.origin(c)[0] for c in range(sheet.columns)}
            | {sheet.origin(c)[0] + sheet.label_width for c in range(sheet.columns)}
        )
        ys = sorted(
            {sheet.origin(r * sheet.columns)[1] for r in range(sheet.rows)}
            | {sheet.origin(r * sheet.columns)[1] + sheet.label_height for r in range(sheet.rows)}
        )
        left, right = xs[0] * mm, xs[-1] * mm
        top, bottom = page_h - ys[0] * mm, page_h - ys[-1] * mm
        for x in xs:  # ticks above and below the grid, and in each horizontal gap
            canvas.line(x * mm, top + 1, x * mm, top + reach)
            canvas.line(x * mm, bottom - 1, x * mm, bottom - reach)
        for y in ys:
            canvas.line(left - 1, page_h - y * mm, left - reach, page_h - y * mm)
            canvas.line(right + 1, page_h - y * mm, right + reach, page_h - y * mm)

    for page in range(pages):
        chunk = labels[page * sheet.per_page : (page + 1) * sheet.per_page]
        for slot, info in enumerate(chunk):
            ox, oy = sheet.origin(slot)
            draw_label(info, ox, oy)
        crop_marks()
        # (STSong-Light has no middle dot: plain spaces between the parts)
        footer = (
            f"{title or '焊机二维码标签'}    第 {page + 1}/{pages} 页    "
            f"共 {len(labels)} 张    沿裁切标记剪下"
        )
        canvas.setFillColor(HexColor("#666666"))
        canvas.setFont(PDF_CJK_FONT, 7)
        canvas.drawCentredString(page_w / 2, sheet.margin_y * mm / 2 - 3, footer)
        canvas.showPage()
    canvas.save()
    return out.getvalue()
