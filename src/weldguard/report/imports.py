"""Spreadsheet imports: reading an uploaded table and reporting what became of
every row.

Reading: an xlsx workbook (or, for certificate feeds, a CSV file) becomes a
``Table`` of rows keyed by field name. The header row is found among the first
rows of the first sheet that has one; columns may come in any order; blank rows
are skipped; row numbers are the ones Excel shows. Problems with the file as a
whole (not a workbook, header missing, too big…) raise ``InvalidInput`` before
any row is looked at.

The xlsx reader is our own small one (zipfile + the C XML parser) rather than
openpyxl's read-only mode: openpyxl spends about 20 µs per cell in Python, so
10,000 register rows took 3 s on the 2-core reference machine, most of the 5 s
budget of a whole import. This reader takes a third of that. openpyxl still
writes every workbook we produce.

Reporting: ``ImportReport`` holds one ``RowOutcome`` per data row, renders the
console summary and the downloadable result workbook, and is stored as an
``ImportRun``.
"""

from __future__ import annotations

import codecs
import csv
import io
import posixpath
import unicodedata
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format
from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel
from sqlalchemy.orm import Session

from weldguard.errors import ErrorDetail, InvalidInput
from weldguard.report.models import ImportRun

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_ROWS = 50_000
# A 20 MB xlsx of text inflates to 100–200 MB of XML; more than this is a zip bomb.
MAX_UNZIPPED_BYTES = 512 * 1024 * 1024
HEADER_SEARCH_ROWS = 10

ImportKind = Literal["enterprises", "certificates"]
RowAction = Literal["created", "updated", "error", "skipped"]

ACTION_LABELS: dict[str, str] = {
    "created": "新增",
    "updated": "更新",
    "error": "错误",
    "skipped": "未写入",
}
KIND_LABELS: dict[str, str] = {"enterprises": "企业底数", "certificates": "证书"}
# Column titles of the result workbook: the row key and name differ by kind.
KEY_TITLES: dict[str, tuple[str, str]] = {
    "enterprises": ("统一社会信用代码", "企业名称"),
    "certificates": ("证书编号", "姓名"),
}

NOT_XLSX = "文件不是有效的 xlsx 工作簿"


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------


@dataclass
class RowOutcome:
    row: int  # spreadsheet row number, as Excel shows it
    key: str  # credit code, or masked certificate number
    name: str
    action: RowAction
    errors: list[ErrorDetail] = field(default_factory=list)
    # For a row not written because another row failed (all or nothing): what
    # would have happened, so that the summary can say so.
    planned: Literal["created", "updated"] | None = None


@dataclass
class ImportReport:
    kind: ImportKind
    filename: str
    partial: bool
    rows: list[RowOutcome] = field(default_factory=list)
    applied: bool = False
    run_id: int | None = None
    warnings: list[str] = field(default_factory=list)

    def _count(self, action: str) -> int:
        return sum(1 for r in self.rows if r.action == action)

    @property
    def created(self) -> int:
        return self._count("created")

    @property
    def updated(self) -> int:
        return self._count("updated")

    @property
    def skipped(self) -> int:
        return self._count("skipped")

    @property
    def error_count(self) -> int:
        """Rows with at least one error (not the number of errors)."""
        return self._count("error")

    @property
    def errors(self) -> list[ErrorDetail]:
        """Every error of every row, each carrying its row and column."""
        return [e for r in self.rows for e in r.errors]

    @property
    def status(self) -> str:
        """As stored in ImportRun: applied | partial | rejected."""
        if not self.applied:
            return "rejected"
        return "partial" if self.error_count else "applied"

    def summary_lines(self, max_errors: int | None = None) -> list[str]:
        """The console report: a headline, warnings, then one line per error."""
        lines = [self._headline(), *self.warnings]
        errors = self.errors
        shown = errors if max_errors is None else errors[:max_errors]
        lines.extend(error_line(e) for e in shown)
        if len(shown) < len(errors):
            lines.append(f"……另有 {len(errors) - len(shown)} 条错误，详见导入结果文件")
        return lines

    def _headline(self) -> str:
        total = len(self.rows)
        if not self.applied:
            planned_new = sum(1 for r in self.rows if r.planned == "created")
            planned_upd = sum(1 for r in self.rows if r.planned == "updated")
            return (
                f"共 {total} 行：新增 {planned_new}，更新 {planned_upd}，"
                f"错误 {self.error_count}；未写入任何数据（全部或全不）"
            )
        text = f"共 {total} 行：新增 {self.created}，更新 {self.updated}，错误 {self.error_count}"
        if self.error_count:
            return text + "；已写入正确的行，错误的行未写入"
        return text + "；已全部写入"

    def to_xlsx(self) -> bytes:
        """The downloadable result: sheet 导入结果, one line per error (a row with
        three errors gives three lines) and one line per row without errors."""
        key_title, name_title = KEY_TITLES[self.kind]
        wb = Workbook(write_only=True)
        ws = wb.create_sheet("导入结果")
        ws.freeze_panes = "A2"
        for letter, width in zip("ABCDEF", (8, 24, 36, 10, 22, 60), strict=True):
            ws.column_dimensions[letter].width = width
        ws.append(bold_row(ws, ["行号", key_title, name_title, "结果", "列", "原因"]))
        for outcome in sorted(self.rows, key=lambda r: r.row):
            label = ACTION_LABELS[outcome.action]
            base = [outcome.row, outcome.key, outcome.name, label]
            if not outcome.errors:
                ws.append([*base, "", _outcome_note(outcome)])
            for error in outcome.errors:
                ws.append([*base, error.column or "", error.reason])
        summary = wb.create_sheet("汇总")
        summary.column_dimensions["A"].width = 100
        summary.append([f"{KIND_LABELS[self.kind]}导入：{self.filename}"])
        for line in (self._headline(), *self.warnings):
            summary.append([line])
        buffer = io.BytesIO()
        wb.save(buffer)
        return buffer.getvalue()


def _outcome_note(outcome: RowOutcome) -> str:
    if outcome.action == "skipped":
        planned = ACTION_LABELS.get(outcome.planned or "", "")
        return f"本行无误（将{planned}），但文件中有错误行，全部未写入" if planned else ""
    return ""


def error_line(error: ErrorDetail) -> str:
    where = f"第 {error.row} 行" if error.row is not None else "文件"
    column = f"［{error.column}］" if error.column else ""
    return f"{where}{column}：{error.reason}"


def bold_row(ws: Any, values: Sequence[Any]) -> list[Any]:
    """Header cells for a write-only sheet (plain values carry no style)."""
    cells = []
    for value in values:
        cell = WriteOnlyCell(ws, value=value)
        cell.font = Font(bold=True)
        cells.append(cell)
    return cells


def record_run(
    session: Session, report: ImportReport, user_id: int | None, now: datetime
) -> ImportRun:
    """Stores the outcome (also for a rejected file) so that the errors can be
    downloaded again later. Flushes; the caller commits."""
    run = ImportRun(
        kind=report.kind,
        filename=report.filename[:256],
        user_id=user_id,
        partial=report.partial,
        status=report.status,
        created_count=report.created,
        updated_count=report.updated,
        error_count=report.error_count,
        # key and name too, so that the result can be downloaded again later.
        errors=[
            {"row": e.row, "column": e.column, "reason": e.reason, "key": r.key, "name": r.name}
            for r in report.rows
            for e in r.errors
        ],
        created_at=now,
    )
    session.add(run)
    session.flush()
    report.run_id = run.id
    return run


def report_from_run(run: ImportRun) -> ImportReport:
    """A report rebuilt from a stored run: only its errors are kept, which is
    what a later download of the result needs."""
    by_row: dict[int, RowOutcome] = {}
    for item in run.errors:
        row = int(item.get("row") or 0)
        key, name = str(item.get("key") or ""), str(item.get("name") or "")
        outcome = by_row.setdefault(row, RowOutcome(row, key, name, "error"))
        outcome.errors.append(
            ErrorDetail(reason=str(item.get("reason", "")), row=row, column=item.get("column"))
        )
    kind: ImportKind = "certificates" if run.kind == "certificates" else "enterprises"
    return ImportReport(
        kind=kind,
        filename=run.filename,
        partial=run.partial,
        rows=list(by_row.values()),
        applied=run.status != "rejected",
        run_id=run.id,
    )


def with_row(errors: Iterable[ErrorDetail], row: int) -> list[ErrorDetail]:
    return [replace(e, row=row) for e in errors]


# ---------------------------------------------------------------------------
# Reading a table
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    required: bool = True
    aliases: tuple[str, ...] = ()
    # False for columns such as 序号 that templates pre-fill: a row with only
    # those filled in is still a blank row.
    significant: bool = True


@dataclass
class Table:
    sheet: str
    header_row: int
    rows: list[tuple[int, dict[str, Any]]]
    warnings: list[str] = field(default_factory=list)


Cells = dict[int, Any]  # column index (0-based) -> value
RawRow = tuple[int, Cells]  # spreadsheet row number, cells


def normalize_header(text: object) -> str:
    """Header matching ignores whitespace (also inside, e.g. line breaks),
    full-width/half-width differences (（）vs ()) and the * that templates put
    before required columns."""
    if text is None:
        return ""
    folded = unicodedata.normalize("NFKC", str(text))
    return "".join(ch for ch in folded if not ch.isspace()).strip("*")


def read_table(
    content: bytes, filename: str, columns: Sequence[Column], *, allow_csv: bool = False
) -> Table:
    """Reads the first sheet with a recognisable header. Raises InvalidInput for
    a problem with the file as a whole."""
    if not content:
        raise InvalidInput("文件为空")
    if len(content) > MAX_FILE_BYTES:
        raise InvalidInput(
            f"文件过大（{len(content) / 1024 / 1024:.1f} MB），上限为 "
            f"{MAX_FILE_BYTES // 1024 // 1024} MB，请拆分后分批导入"
        )
    lookup: dict[str, Column] = {}
    for column in columns:
        for text in (column.header, *column.aliases):
            lookup[normalize_header(text)] = column
    best: _HeaderMatch | None = None
    for sheet_name, rows in _sheets(content, filename, allow_csv):
        match = _find_header(rows, lookup, columns)
        if match is None:
            continue
        if not match.missing:
            return _build_table(sheet_name, rows, match)
        if best is None or len(match.mapping) > len(best.mapping):
            best = match
    if best is not None:
        raise _missing_headers(best)
    expected = "、".join([f"“{c.header}”" for c in columns if c.required][:3])
    raise InvalidInput(
        f"找不到表头：前 {HEADER_SEARCH_ROWS} 行中没有 {expected} 等列名，请使用导入模板"
    )


@dataclass
class _HeaderMatch:
    row: int
    mapping: dict[int, Column]  # column index -> column
    unknown: list[str]
    missing: list[str]


def _find_header(
    rows: Iterator[RawRow], lookup: Mapping[str, Column], columns: Sequence[Column]
) -> _HeaderMatch | None:
    """The first of the first non-empty rows that names every required column;
    failing that, the one naming most of them (to say what is missing)."""
    best: _HeaderMatch | None = None
    seen = 0
    for row_number, cells in rows:
        if not any(_present(v) for v in cells.values()):
            continue
        seen += 1
        match = _match_header(row_number, cells, lookup, columns)
        if match.mapping and not match.missing:
            return match
        if match.mapping and (best is None or len(match.mapping) > len(best.mapping)):
            best = match
        if seen >= HEADER_SEARCH_ROWS:
            break
    return best


def _match_header(
    row_number: int, cells: Cells, lookup: Mapping[str, Column], columns: Sequence[Column]
) -> _HeaderMatch:
    mapping: dict[int, Column] = {}
    where: dict[str, int] = {}
    unknown: list[str] = []
    for index, value in sorted(cells.items()):
        text = normalize_header(value)
        if not text:
            continue
        column = lookup.get(text)
        if column is None:
            unknown.append(str(value).strip())
            continue
        if column.key in where:
            raise InvalidInput(
                f"表头重复：“{column.header}”出现在第 {column_letter(where[column.key])} 列"
                f"和第 {column_letter(index)} 列（第 {row_number} 行）",
                [ErrorDetail("表头重复", row=row_number, column=column.header)],
            )
        where[column.key] = index
        mapping[index] = column
    missing = [c.header for c in columns if c.required and c.key not in where]
    return _HeaderMatch(row_number, mapping, unknown, missing)


def _missing_headers(match: _HeaderMatch) -> InvalidInput:
    message = f"缺少表头：{'、'.join(match.missing)}"
    if match.unknown:
        message += f"（表头行第 {match.row} 行中无法识别的列：{'、'.join(match.unknown)}）"
    return InvalidInput(
        message, [ErrorDetail("缺少表头", row=match.row, column=h) for h in match.missing]
    )


def _build_table(sheet: str, rows: Iterator[RawRow], match: _HeaderMatch) -> Table:
    significant = [i for i, c in match.mapping.items() if c.significant]
    keyed = [(i, c.key) for i, c in match.mapping.items()]
    data: list[tuple[int, dict[str, Any]]] = []
    for row_number, cells in rows:
        if not any(_present(cells.get(i)) for i in significant):
            continue
        if len(data) >= MAX_ROWS:
            raise InvalidInput(f"数据超过 {MAX_ROWS} 行，请拆分后分批导入")
        data.append((row_number, {key: cells.get(i) for i, key in keyed}))
    warnings = []
    if match.unknown:
        warnings.append(f"已忽略无法识别的列：{'、'.join(match.unknown)}")
    return Table(sheet=sheet, header_row=match.row, rows=data, warnings=warnings)


def _present(value: Any) -> bool:
    return value is not None and value != ""


def column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


_INVISIBLE = "\u200b\u200c\u200d\ufeff"


def clean_value(value: Any) -> Any:
    """Strings lose surrounding whitespace (also full-width and zero-width
    spaces pasted from web pages); empty strings become None."""
    if isinstance(value, str):
        value = value.strip()
        if value and (value[0] in _INVISIBLE or value[-1] in _INVISIBLE):
            value = value.strip(_INVISIBLE).strip()
        return value or None
    return value


# ---------------------------------------------------------------------------
# File formats
# ---------------------------------------------------------------------------

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _sheets(
    content: bytes, filename: str, allow_csv: bool
) -> Iterator[tuple[str, Iterator[RawRow]]]:
    if content.startswith(b"PK"):
        yield from _xlsx_sheets(content)
        return
    if content.startswith(_OLE_MAGIC):
        raise InvalidInput(
            f"{NOT_XLSX}：这是旧版 Excel（.xls）文件，请在 Excel 中另存为 .xlsx 后再导入"
        )
    if allow_csv and not filename.lower().endswith((".xlsx", ".xlsm")):
        yield "CSV", _csv_rows(content)
        return
    hint = "，也可上传 CSV 文件" if allow_csv else ""
    raise InvalidInput(f"{NOT_XLSX}，请上传 Excel 2007 及以上版本的 .xlsx 文件{hint}")


def _decode_text(content: bytes) -> str:
    if content.startswith(codecs.BOM_UTF8):
        return content[len(codecs.BOM_UTF8) :].decode("utf-8")
    if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return content.decode("utf-16")  # Excel's "Unicode 文本" export
    if b"\x00" in content[:65536]:
        raise InvalidInput("文件含有二进制内容，不是 CSV 文本文件，也不是 xlsx 工作簿")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Files saved by Excel on Chinese Windows are GBK/GB18030.
    try:
        return content.decode("gb18030")
    except UnicodeDecodeError:
        raise InvalidInput("无法识别 CSV 文件的编码，请保存为 UTF-8 或 GB18030 编码") from None


def _csv_rows(content: bytes) -> Iterator[RawRow]:
    try:
        text = _decode_text(content)
    except UnicodeDecodeError:
        raise InvalidInput("CSV 文件的编码标记与内容不符，无法读取") from None
    sample = text[:4096]
    delimiter = max(",\t;", key=sample.count) if sample else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        # Row numbers count records, as Excel shows them when it opens the file.
        for number, record in enumerate(reader, start=1):
            yield number, {i: clean_value(v) for i, v in enumerate(record) if v.strip()}
    except csv.Error as exc:
        raise InvalidInput(f"CSV 文件格式错误：{exc}") from None


def _xlsx_sheets(content: bytes) -> Iterator[tuple[str, Iterator[RawRow]]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        if sum(info.file_size for info in archive.infolist()) > MAX_UNZIPPED_BYTES:
            raise InvalidInput(f"{NOT_XLSX}：解压后内容过大")
        book = _XlsxBook(archive)
    except InvalidInput:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError):
        raise InvalidInput(f"{NOT_XLSX}：文件已损坏或不完整") from None
    except (KeyError, ET.ParseError, ValueError, IndexError):
        raise InvalidInput(f"{NOT_XLSX}：缺少工作簿结构，可能不是 Excel 文件") from None
    if not book.sheets:
        raise InvalidInput(f"{NOT_XLSX}：工作簿中没有工作表")
    for name, path in book.sheets:
        yield name, book.rows(path)


class _XlsxBook:
    """Just enough of SpreadsheetML to read cell values: the sheet list, shared
    strings and which cell styles are dates.

    Untrusted XML: ElementTree never fetches external entities or DTDs, and the
    expat it uses (2.4.1 and later) refuses entity-expansion bombs; the zip's
    inflated size is capped before anything is parsed."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.names = set(archive.namelist())
        workbook_path = self._office_document()
        root = self._parse(workbook_path)
        self.ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        rels = self._relationships(workbook_path)
        self.epoch = CALENDAR_WINDOWS_1900
        for element in root.iter(self.ns + "workbookPr"):
            if element.get("date1904") in ("1", "true"):
                self.epoch = CALENDAR_MAC_1904
        self.sheets: list[tuple[str, str]] = []
        for sheet in root.iter(self.ns + "sheet"):
            rel_id = next((v for k, v in sheet.attrib.items() if k.endswith("}id")), None)
            target = rels.get(rel_id or "")
            if target and target[0].endswith("/worksheet") and target[1] in self.names:
                self.sheets.append((sheet.get("name", ""), target[1]))
        by_type = {kind.rsplit("/", 1)[-1]: path for kind, path in rels.values()}
        self.shared = self._shared_strings(by_type.get("sharedStrings"))
        self.date_styles = self._date_styles(by_type.get("styles"))

    def _parse(self, path: str) -> ET.Element:
        with self.archive.open(path) as stream:
            return ET.parse(stream).getroot()  # noqa: S314 (see _XlsxBook)

    def _office_document(self) -> str:
        if "_rels/.rels" in self.names:
            for rel in self._parse("_rels/.rels"):
                if rel.get("Type", "").endswith("/officeDocument"):
                    return rel.get("Target", "").lstrip("/")
        return "xl/workbook.xml"

    def _relationships(self, part: str) -> dict[str, tuple[str, str]]:
        folder, name = posixpath.split(part)
        rels_path = posixpath.join(folder, "_rels", name + ".rels")
        if rels_path not in self.names:
            return {}
        result = {}
        for rel in self._parse(rels_path):
            target = rel.get("Target", "")
            path = target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
            result[rel.get("Id", "")] = (rel.get("Type", ""), posixpath.normpath(path))
        return result

    def _shared_strings(self, path: str | None) -> list[str]:
        if path is None or path not in self.names:
            return []
        strings = []
        si = self.ns + "si"
        with self.archive.open(path) as stream:
            for _, element in ET.iterparse(stream):  # noqa: S314 (see _XlsxBook)
                if element.tag == si:
                    strings.append(clean_value(self._text_of(element)) or "")
                    element.clear()
        return strings

    def _text_of(self, element: ET.Element) -> str:
        """Text of a rich or plain string; phonetic runs (rPh) are not content."""
        t, r = self.ns + "t", self.ns + "r"
        parts = []
        for child in element:
            if child.tag == t:
                parts.append(child.text or "")
            elif child.tag == r:
                parts.extend(g.text or "" for g in child if g.tag == t)
        return "".join(parts)

    def _date_styles(self, path: str | None) -> frozenset[int]:
        if path is None or path not in self.names:
            return frozenset()
        root = self._parse(path)
        formats: dict[int, str] = dict(BUILTIN_FORMATS)
        for fmt in root.iter(self.ns + "numFmt"):
            formats[int(fmt.get("numFmtId", "0"))] = fmt.get("formatCode", "")
        # 27–36 and 50–58 are locale date formats (年月日 in Chinese Excel).
        locale_dates = set(range(27, 37)) | set(range(50, 59))
        dates = set()
        for xfs in root.iter(self.ns + "cellXfs"):
            for index, xf in enumerate(xfs.iter(self.ns + "xf")):
                fmt_id = int(xf.get("numFmtId", "0"))
                code = formats.get(fmt_id)
                if (code is not None and is_date_format(code)) or (
                    code is None and fmt_id in locale_dates
                ):
                    dates.add(index)
        return frozenset(dates)

    def rows(self, path: str) -> Iterator[RawRow]:
        try:
            yield from self._rows(path)
        except (zipfile.BadZipFile, zlib.error, EOFError):
            raise InvalidInput(f"{NOT_XLSX}：文件已损坏或不完整") from None
        except (ET.ParseError, ValueError, IndexError):
            raise InvalidInput(f"{NOT_XLSX}：工作表内容无法解析") from None

    def _rows(self, path: str) -> Iterator[RawRow]:
        # The hot loop of an import (170,000 cells for 10,000 register rows):
        # kept flat on purpose.
        ns = self.ns
        row_tag, v_tag, is_tag, t_tag = ns + "row", ns + "v", ns + "is", ns + "t"
        shared = self.shared
        columns: dict[str, int] = {}
        last_row = 0
        with self.archive.open(path) as stream:
            for _, element in ET.iterparse(stream):  # noqa: S314 (see _XlsxBook)
                if element.tag != row_tag:
                    continue
                number = element.get("r")
                last_row = int(number) if number else last_row + 1
                cells: Cells = {}
                col = -1
                for cell in element:
                    ref = cell.get("r")
                    if ref:
                        letters = ref.rstrip("0123456789")
                        col = columns.get(letters, -1)
                        if col < 0:
                            col = columns[letters] = _column_index(letters)
                    else:
                        col += 1
                    kind = cell.get("t")
                    value: Any
                    if kind == "inlineStr":
                        inline = cell.find(is_tag)
                        if inline is None:
                            continue
                        if len(inline) == 1 and inline[0].tag == t_tag:
                            value = inline[0].text or ""
                        else:
                            value = self._text_of(inline)
                    else:
                        v = cell.find(v_tag)
                        if v is None or v.text is None:
                            continue
                        if kind == "s":
                            value = shared[int(v.text)]  # cleaned when loaded
                        else:
                            value = self._value(kind, v.text, cell.get("s"))
                    if value.__class__ is str:
                        value = clean_value(value)
                        if value is None:
                            continue
                    cells[col] = value
                element.clear()
                yield last_row, cells

    def _value(self, kind: str | None, text: str, style: str | None) -> Any:
        if kind == "s":
            return self.shared[int(text)]
        if kind is None or kind == "n":
            number = float(text)
            if style is not None and int(style) in self.date_styles:
                return from_excel(number, self.epoch)
            if number.is_integer() and abs(number) < 2**53:
                return int(number)
            return number
        if kind == "b":
            return text == "1"
        if kind == "d":
            return datetime.fromisoformat(text.rstrip("Z"))
        return text  # str (formula result), e (error such as #N/A)


def _column_index(letters: str) -> int:
    index = 0
    for ch in letters.upper():
        index = index * 26 + (ord(ch) - 64)
    return index - 1
