"""The weldguard command. Each command is a transaction boundary: it commits when
it succeeds and rolls back when it fails, so a failed import writes nothing."""

from __future__ import annotations

import logging
import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy.orm import Session, sessionmaker

from weldguard.auth.models import Role
from weldguard.auth.scope import Scope
from weldguard.clock import local_today, parse_month
from weldguard.config import Settings, get_settings
from weldguard.db import make_engine, make_session_factory, transaction, utcnow
from weldguard.errors import DomainError

if TYPE_CHECKING:
    from weldguard.report.imports import ImportReport

app = typer.Typer(no_args_is_help=True, help="weldguard: 电气焊安全监管数字化平台")
db_app = typer.Typer(no_args_is_help=True, help="Database schema")
seed_app = typer.Typer(no_args_is_help=True, help="Demo and reference data")
user_app = typer.Typer(no_args_is_help=True, help="Accounts")
import_app = typer.Typer(no_args_is_help=True, help="Import spreadsheets")
export_app = typer.Typer(no_args_is_help=True, help="Export spreadsheets")
app.add_typer(db_app, name="db")
app.add_typer(seed_app, name="seed")
app.add_typer(user_app, name="user")
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
device_app = typer.Typer(no_args_is_help=True, help="Chips (加芯)")
app.add_typer(device_app, name="device")
scans_app = typer.Typer(no_args_is_help=True, help="Scan records (扫码记录)")
app.add_typer(scans_app, name="scans")
calendar_app = typer.Typer(no_args_is_help=True, help="Holiday calendar (节假日安排)")
app.add_typer(calendar_app, name="calendar")
permits_app = typer.Typer(no_args_is_help=True, help="Hot-work permits (动火作业票)")
app.add_typer(permits_app, name="permits")


def _mount_device_commands() -> None:
    from weldguard.device.mosquitto import broker_app

    app.add_typer(broker_app, name="broker", help="MQTT broker access files")
    from weldguard.device.ingest import ingest_command
    from weldguard.sim.cli import sim_app

    app.command("ingest")(ingest_command)
    from weldguard.device.dispatcher import dispatch_command

    app.command("dispatch")(dispatch_command)
    from weldguard.unlock.labels_cli import labels_command

    app.command("labels")(labels_command)
    from weldguard.device.commands_cli import command_cli

    device_app.command("command")(command_cli)

    app.add_typer(sim_app, name="sim", help="Reference chip and fleet simulator")


_mount_device_commands()

# The command line is the operator's tool: it acts with the whole platform in reach.
OPERATOR_SCOPE = Scope(role=Role.ADMIN, user_id=0, everything=True)


def _factory(settings: Settings) -> sessionmaker[Session]:
    return make_session_factory(make_engine(settings.resolved_database_url()))


def _today(now: datetime) -> date:
    return local_today(now)


def _fail(exc: DomainError) -> None:
    typer.secho(str(exc), fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the Alembic migrations (creates the SQLite file when needed)."""
    from weldguard.migrate import upgrade

    settings = get_settings()
    upgrade(settings.resolved_database_url(), revision)
    typer.echo(f"数据库已升级到 {revision}")


@seed_app.command("reference")
def seed_reference() -> None:
    """Departments, the demo regions' jurisdiction tree and the built-in holiday
    calendar (a year already entered is left alone)."""
    from weldguard.seed.reference import load_reference

    with transaction(_factory(get_settings())) as session:
        nodes = load_reference(session)
    typer.echo(f"已载入 {len(nodes)} 个行政区划节点和部门目录")


@seed_app.command("demo")
def seed_demo_command() -> None:
    """Load the demo register (idempotent) and print the demo accounts."""
    from weldguard.seed.demo import seed_demo
    from weldguard.welder.identity import IdentityVault

    settings = get_settings()
    now = utcnow()
    with transaction(_factory(settings)) as session:
        summary = seed_demo(
            session, settings, IdentityVault(settings.resolved_secret_key()), _today(now), now
        )
    for line in summary.lines():
        typer.echo(line)
    from weldguard.device.registry import DeviceSecrets
    from weldguard.seed.demo_fleet import prepare_demo_fleet

    with transaction(_factory(settings)) as session:
        path, devices = prepare_demo_fleet(
            session,
            DeviceSecrets(settings.resolved_secret_key()),
            settings.data_dir,
            now,
            settings=settings,
        )
    typer.echo(f"模拟芯片 {devices} 台的密钥已写入 {path}（weldguard serve --fleet {path}）")


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port")] = None,
    fleet: Annotated[
        Path | None,
        typer.Option(
            "--fleet",
            help="Devices CSV (weldguard seed demo writes one): run these as simulated chips",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Run the web application and API with the device side: the embedded MQTT broker
    unless WELDGUARD_MQTT_URL names an existing one, and the ingest worker."""
    import asyncio

    from weldguard.device.broker import BrokerPortInUse

    settings = get_settings()
    logging.basicConfig(level=settings.log_level)
    # amqtt logs every connection at INFO: a fleet would drown the log.
    for noisy in ("amqtt", "transitions", "gmqtt", "weldguard.sim"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        asyncio.run(_serve(settings, host or settings.host, port or settings.port, fleet))
    except BrokerPortInUse as exc:
        _fail(exc)


async def _serve(settings: Settings, host: str, port: int, fleet: Path | None) -> None:
    import uvicorn

    from weldguard.app import create_app
    from weldguard.device.runtime import device_runtime

    async with device_runtime(settings, _factory(settings), fleet_file=fleet, echo=typer.echo):
        config = uvicorn.Config(
            create_app(settings), host=host, port=port, log_level=settings.log_level.lower()
        )
        await uvicorn.Server(config).serve()


@scans_app.command("rollup")
def scans_rollup(
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Also recount every folded day against the scan records (reads them all) "
            "and fold again the days that differ, e.g. after a bulk load",
        ),
    ] = False,
) -> None:
    """Fold the completed days of the scan records into the daily rollup the
    statistics read (serve does it at start and every 10 minutes)."""
    from weldguard.unlock.scan_rollup import days_text, fold_all

    report = fold_all(_factory(get_settings()), verify=verify)
    if report.skipped:
        typer.secho("另一个进程正在汇总扫码记录，请稍后再试", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=1)
    typer.echo(f"新汇总：{days_text(report.folded)}；重新汇总：{days_text(report.refolded)}")
    if report.sectors:
        typer.echo(f"行业变更的企业：{report.sectors} 家")


@permits_app.command("supervise")
def permits_supervise(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between passes", min=1.0)] = 30.0,
) -> None:
    """Expire and suspend running permits as the rules demand; keep the permit alarms.

    The machines of a stopped permit get a signed lock. serve does this every 30 s."""
    import asyncio
    import contextlib

    from weldguard.permit.supervisor import PermitSupervisor

    settings = get_settings()
    logging.basicConfig(level=settings.log_level)
    supervisor = PermitSupervisor.from_settings(settings, _factory(settings), interval_s=interval)
    if not once:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(supervisor.run())
        return
    report = supervisor.run_once()
    typer.echo(
        f"到期 {len(report.expired)} 张，暂停 {len(report.suspended)} 张；"
        f"报警 {report.alarms_seen} 条，消除 {report.alarms_cleared} 条"
    )
    if report.skipped:
        typer.echo(f"正由其他进程或操作处理的作业票：{report.skipped} 张（下次巡查处理）")
    if report.failed:
        ids = "、".join(f"#{i}" for i in report.failed)
        typer.secho(f"处理失败的作业票：{ids}（详见日志）", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)


@user_app.command("create")
def user_create(
    username: Annotated[str, typer.Option()],
    password: Annotated[str, typer.Option()],
    role: Annotated[str, typer.Option(help=", ".join(r.value for r in Role))],
    jurisdiction: Annotated[str | None, typer.Option(help="Division code, e.g. 310105")] = None,
    department: Annotated[str | None, typer.Option(help="e.g. 应急, 住建, emergency")] = None,
    enterprise: Annotated[str | None, typer.Option(help="统一社会信用代码")] = None,
    display_name: Annotated[str, typer.Option()] = "",
) -> None:
    """Create an account bound to a jurisdiction, department or enterprise."""
    from weldguard.auth.service import AuthService, NewUser

    settings = get_settings()
    try:
        with transaction(_factory(settings)) as session:
            user = AuthService(session, settings).create_user(
                NewUser(
                    username=username,
                    password=password,
                    role=role,
                    display_name=display_name,
                    jurisdiction_code=jurisdiction,
                    department=department,
                    enterprise_credit_code=enterprise,
                )
            )
            typer.echo(f"已创建用户 {user.username}（{Role(user.role).label}）")
    except DomainError as exc:
        _fail(exc)


def _print_report(report: ImportReport, report_path: Path | None) -> None:
    for line in report.summary_lines():
        typer.echo(line)
    if report.error_count and report_path is not None:
        report_path.write_bytes(report.to_xlsx())
        typer.echo(f"错误报告已写入 {report_path}")


def _read(path: Path) -> bytes:
    if not path.is_file():
        typer.secho(f"找不到文件：{path}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    return path.read_bytes()


@import_app.command("enterprises")
def import_enterprises_command(
    file: Path,
    partial: Annotated[
        bool, typer.Option("--partial", help="Write the good rows even if some are bad")
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="Where to write the error report (xlsx)")
    ] = None,
) -> None:
    """Import the enterprise register template (all or nothing unless --partial)."""
    from weldguard.enterprise.importer import import_enterprises

    content = _read(file)
    factory = _factory(get_settings())
    try:
        with transaction(factory) as session:
            result = import_enterprises(
                session,
                OPERATOR_SCOPE,
                content,
                file.name,
                partial=partial,
                user_id=None,
                now=utcnow(),
            )
    except DomainError as exc:
        _fail(exc)
        return
    _print_report(result, report or file.with_name(file.stem + ".report.xlsx"))
    if not result.applied:
        raise typer.Exit(code=1)


@import_app.command("certificates")
def import_certificates_command(
    file: Path,
    source: Annotated[
        str, typer.Option(help="Issuing authority feed, e.g. 应急管理部门")
    ] = "应急管理部门",
    partial: Annotated[bool, typer.Option("--partial")] = False,
    report: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Import certificates exported by an issuing authority (CSV or xlsx)."""
    from weldguard.welder.cert_import import import_certificates
    from weldguard.welder.identity import IdentityVault

    settings = get_settings()
    content = _read(file)
    now = utcnow()
    try:
        with transaction(_factory(settings)) as session:
            result = import_certificates(
                session,
                OPERATOR_SCOPE,
                IdentityVault(settings.resolved_secret_key()),
                content,
                file.name,
                source=source,
                partial=partial,
                user_id=None,
                now=now,
                today=_today(now),
            )
    except DomainError as exc:
        _fail(exc)
        return
    _print_report(result, report or file.with_name(file.stem + ".report.xlsx"))
    if not result.applied:
        raise typer.Exit(code=1)


def _area_path(session: Session, code: str | None) -> str | None:
    if code is None:
        return None
    from weldguard.jurisdiction.service import get_by_code

    return get_by_code(session, code).path


@export_app.command("enterprises")
def export_enterprises_command(
    file: Path,
    jurisdiction: Annotated[str | None, typer.Option(help="Division code to narrow to")] = None,
) -> None:
    """Export the enterprise register as xlsx (the import template's columns)."""
    from weldguard.report.exports import export_enterprises

    try:
        with transaction(_factory(get_settings())) as session:
            content = export_enterprises(session, OPERATOR_SCOPE, _area_path(session, jurisdiction))
    except DomainError as exc:
        _fail(exc)
        return
    file.write_bytes(content)
    typer.echo(f"已导出到 {file}")


@export_app.command("monthly")
def export_monthly_command(
    file: Path,
    month: Annotated[str | None, typer.Option(help="YYYY-MM, default this month")] = None,
    jurisdiction: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Export the monthly welding basic-information table (电气焊作业基础信息表)."""
    from weldguard.report.exports import export_monthly_basic_info

    today = _today(utcnow())
    try:
        first = parse_month(month) if month else today.replace(day=1)
    except ValueError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    try:
        with transaction(_factory(get_settings())) as session:
            content = export_monthly_basic_info(
                session, OPERATOR_SCOPE, first, _area_path(session, jurisdiction), today
            )
    except DomainError as exc:
        _fail(exc)
        return
    file.write_bytes(content)
    typer.echo(f"已导出到 {file}")


@device_app.command("register")
def device_register(
    device_id: Annotated[str, typer.Option("--device-id")],
    imei: Annotated[str, typer.Option()],
    iccid: Annotated[str, typer.Option()],
    firmware: Annotated[str, typer.Option()] = "",
    rotate: Annotated[bool, typer.Option("--rotate", help="Issue a new secret")] = False,
) -> None:
    """Register a chip and print its secret (shown once: load it into the chip)."""
    from weldguard.device.registry import ChipInput, DeviceRegistry, DeviceSecrets

    settings = get_settings()
    try:
        with transaction(_factory(settings)) as session:
            chip, secret = DeviceRegistry(
                session, DeviceSecrets(settings.resolved_secret_key())
            ).register(ChipInput(device_id, imei, iccid, firmware), utcnow(), rotate=rotate)
    except DomainError as exc:
        _fail(exc)
        return
    typer.echo(f"已登记芯片 {chip.device_id}")
    typer.echo(f"设备密钥（仅显示一次）：{secret}")


@device_app.command("bind")
def device_bind(
    machine: Annotated[str, typer.Option(help="Machine code on the QR label, e.g. WG3K9…")],
    device_id: Annotated[str, typer.Option("--device-id")],
    by: Annotated[str, typer.Option(help="Installer's name")] = "命令行",
    lat: Annotated[float | None, typer.Option()] = None,
    lon: Annotated[float | None, typer.Option()] = None,
) -> None:
    """Fit a registered chip to a machine; the previous binding goes to history."""
    from weldguard.device.registry import DeviceRegistry, DeviceSecrets

    settings = get_settings()
    position = (lat, lon) if lat is not None and lon is not None else None
    try:
        with transaction(_factory(settings)) as session:
            DeviceRegistry(session, DeviceSecrets(settings.resolved_secret_key())).bind(
                machine, device_id, by, utcnow(), position=position
            )
    except DomainError as exc:
        _fail(exc)
        return
    typer.echo(f"芯片 {device_id} 已安装到焊机 {machine.upper()}")


@calendar_app.command("import")
def calendar_import_command(
    file: Path,
    year: Annotated[
        int | None,
        typer.Option(help="The notice's year (default: the year most of the dates fall in)"),
    ] = None,
) -> None:
    """Import a year's 节假日安排 (CSV or xlsx with 日期, 类型, 名称): replaces that
    year's days, all or nothing."""
    from weldguard.permit.calendar_service import CalendarService

    content = _read(file)
    try:
        with transaction(_factory(get_settings())) as session:
            result = CalendarService(session).import_file(
                OPERATOR_SCOPE, content, file.name, "命令行", utcnow(), year=year
            )
    except DomainError as exc:
        _fail(exc)
        return
    for line in result.summary_lines():
        typer.echo(line)


@calendar_app.command("export")
def calendar_export_command(
    file: Path,
    year: Annotated[int | None, typer.Option(help="One year (default: every year)")] = None,
) -> None:
    """Export the 节假日安排 as xlsx, or as CSV when FILE ends in .csv."""
    from weldguard.permit.calendar_service import CalendarService

    try:
        with transaction(_factory(get_settings())) as session:
            content = CalendarService(session).export(year, file.name)
    except DomainError as exc:
        _fail(exc)
        return
    file.write_bytes(content)
    typer.echo(f"已导出到 {file}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
