"""`weldguard labels`: an enterprise's QR label sheets as an A4 PDF."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def _fail(message: str, code: int = 1) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)


def _check_writable(file: Path) -> None:
    """Fail before any work when the PDF could not be written."""
    target = file.expanduser()
    if target.is_dir():
        _fail(f"无法写入 {file}：这是一个目录", 2)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        _fail(f"无法写入 {file}：目录 {parent} 不存在", 2)
    if target.exists() and not os.access(target, os.W_OK):
        _fail(f"无法写入 {file}：没有写权限", 2)
    if not target.exists() and not os.access(parent, os.W_OK | os.X_OK):
        _fail(f"无法写入 {file}：目录 {parent} 没有写权限", 2)


def labels_command(
    file: Annotated[Path, typer.Argument(help="The PDF to write, e.g. labels.pdf")],
    enterprise: Annotated[str, typer.Option("--enterprise", help="统一社会信用代码")],
    machine: Annotated[
        list[str] | None,
        typer.Option("--machine", help="Only this machine code (repeatable)"),
    ] = None,
    layout: Annotated[
        str, typer.Option("--layout", help="Labels per A4 page: 2x5 (90×50 mm) or 3x8 (62×31 mm)")
    ] = "2x5",
) -> None:
    """Print an enterprise's machine labels (扫码开机 QR codes) as A4 PDF sheets.
    Retired machines get no label."""
    from weldguard.auth.models import Role
    from weldguard.auth.scope import Scope
    from weldguard.config import get_settings
    from weldguard.db import make_engine, make_session_factory, transaction
    from weldguard.errors import DomainError
    from weldguard.unlock.label_render import SHEET_LAYOUTS, label_sheet_pdf, sheet_pages
    from weldguard.unlock.label_service import LabelService
    from weldguard.unlock.labels import signer_for

    sheet = SHEET_LAYOUTS.get(layout)
    if sheet is None:
        _fail(f"未知的版式“{layout}”，可选：{'、'.join(SHEET_LAYOUTS)}", 2)
        return
    _check_writable(file)
    settings = get_settings()
    # The command line is the operator's tool: the whole platform is in reach.
    scope = Scope(role=Role.ADMIN, user_id=0, everything=True)
    engine = make_engine(settings.resolved_database_url())
    try:
        with transaction(make_session_factory(engine)) as session:
            service = LabelService(session, signer_for(settings))
            found = service.enterprise_by_credit_code(scope, enterprise)
            batch = service.enterprise_labels(scope, found, machine or ())
    except DomainError as exc:
        _fail(str(exc))
        return
    finally:
        engine.dispose()
    pdf = label_sheet_pdf(batch.labels, sheet, batch.title)
    try:
        file.expanduser().write_bytes(pdf)
    except OSError as exc:
        _fail(f"无法写入 {file}：{exc.strerror or exc}", 2)
    pages = sheet_pages(len(batch.labels), sheet)
    typer.echo(
        f"已生成 {batch.enterprise.name} 的 {len(batch.labels)} 张焊机标签"
        f"（{pages} 页，每页 {sheet.per_page} 张）：{file}"
    )
    if batch.retired:
        typer.echo(f"已报废的 {len(batch.retired)} 台焊机不打印标签：{'、'.join(batch.retired)}")
