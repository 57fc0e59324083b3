"""``weldguard device command``: queue a signed command for a machine (or a chip)
and optionally wait for the chip's answer. A running dispatcher (``weldguard
serve`` or ``weldguard dispatch``) publishes it."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from weldguard.device.commands import (
    DEFAULT_TTL_S,
    MAX_TTL_S,
    PENDING,
    STATUS_LABELS,
    CommandRepository,
    CommandService,
    describe,
    to_ms,
    wait_for_result_blocking,
)
from weldguard.device.models import CommandStatus
from weldguard.errors import DomainError

_RELATIVE = re.compile(r"^\+(\d{1,5})([mh])$")
# Exit codes beyond typer's own 0/1/2: the command is still on its way.
EXIT_PENDING = 3


class CommandName(StrEnum):
    PING = "ping"
    LOCK = "lock"
    UNLOCK = "unlock"
    CONFIG = "config"


def parse_until(text: str, now: datetime, timezone: str) -> datetime:
    """``+90m``, ``+8h``, or an ISO 8601 time (China time when no offset is given)."""
    relative = _RELATIVE.match(text.strip())
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return now + (timedelta(minutes=amount) if unit == "m" else timedelta(hours=amount))
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            "应为 +90m、+8h 或 2026-11-23T18:00（北京时间）", param_hint="--until"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(timezone))


def _udeg(degrees: float) -> int:
    return round(degrees * 1_000_000)


def build_args(
    cmd: CommandName,
    now: datetime,
    timezone: str,
    *,
    welder: str | None,
    session_id: str | None,
    until: str | None,
    fence: tuple[float | None, float | None, int | None],
    reason: str,
    hb_s: int | None,
    tel_s: int | None,
    arc_threshold_da: int | None,
) -> dict[str, Any]:
    if cmd is CommandName.UNLOCK:
        if not welder:
            raise typer.BadParameter("unlock 需要 --welder（焊工匿名编号）", param_hint="--welder")
        args: dict[str, Any] = {
            "sess": session_id or str(uuid.uuid4()),
            "welder": welder,
            "until": to_ms(parse_until(until or "+1h", now, timezone)),
        }
        lat, lon, radius = fence
        if lat is not None or lon is not None or radius is not None:
            if lat is None or lon is None or radius is None:
                raise typer.BadParameter(
                    "电子围栏需要同时给出 --fence-lat、--fence-lon、--fence-r",
                    param_hint="--fence-lat/--fence-lon/--fence-r",
                )
            args["fence"] = {"lat": _udeg(lat), "lon": _udeg(lon), "r_m": radius}
        return args
    if cmd is CommandName.LOCK:
        return {"reason": reason} if reason else {}
    if cmd is CommandName.CONFIG:
        settings = {"hb_s": hb_s, "tel_s": tel_s, "arc_threshold_da": arc_threshold_da}
        return {k: v for k, v in settings.items() if v is not None}
    return {}


def command_cli(
    target: Annotated[str, typer.Argument(help="焊机编码 (machine code) or chip device id")],
    cmd: Annotated[CommandName, typer.Argument(help="ping | lock | unlock | config")],
    wait: Annotated[
        float | None,
        typer.Option("--wait", min=0, max=600, help="Seconds to wait for the chip's answer"),
    ] = None,
    ttl: Annotated[
        int, typer.Option("--ttl", min=1, max=MAX_TTL_S, help="Seconds until the command expires")
    ] = DEFAULT_TTL_S,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded; lock passes it on)")] = "",
    welder: Annotated[
        str | None, typer.Option("--welder", help="unlock: opaque welder reference")
    ] = None,
    session_id: Annotated[
        str | None, typer.Option("--session", help="unlock: work-session id (default: new)")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="unlock: +90m, +8h or ISO time (default +1h)")
    ] = None,
    fence_lat: Annotated[float | None, typer.Option("--fence-lat", help="degrees WGS-84")] = None,
    fence_lon: Annotated[float | None, typer.Option("--fence-lon", help="degrees WGS-84")] = None,
    fence_r: Annotated[int | None, typer.Option("--fence-r", help="radius, metres")] = None,
    hb_s: Annotated[int | None, typer.Option("--hb-s", help="config: heartbeat period")] = None,
    tel_s: Annotated[int | None, typer.Option("--tel-s", help="config: telemetry window")] = None,
    arc_threshold_da: Annotated[
        int | None, typer.Option("--arc-threshold-da", help="config: arc threshold, 0.1 A")
    ] = None,
) -> None:
    """Send a signed command to a machine's chip (下发命令). Exit code 0 when the
    chip acknowledged (or without --wait), 1 when it failed or expired, 3 when
    --wait passed with the command still on its way."""
    from weldguard.config import get_settings
    from weldguard.db import make_engine, make_session_factory, transaction, utcnow
    from weldguard.device.registry import DeviceSecrets

    settings = get_settings()
    now = utcnow()
    args = build_args(
        cmd,
        now,
        settings.timezone,
        welder=welder,
        session_id=session_id,
        until=until,
        fence=(fence_lat, fence_lon, fence_r),
        reason=reason if cmd is CommandName.LOCK else "",
        hb_s=hb_s,
        tel_s=tel_s,
        arc_threshold_da=arc_threshold_da,
    )
    factory = make_session_factory(make_engine(settings.resolved_database_url()))
    try:
        with transaction(factory) as session:
            service = CommandService(session, DeviceSecrets(settings.resolved_secret_key()))
            command = service.issue(
                service.resolve_target(target),
                cmd.value,
                args,
                now=now,
                ttl_s=ttl,
                reason=reason or "cli",
            )
            command_id, device_id = command.id, command.device_id
    except DomainError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"已排队命令 {command_id}（{cmd.value}）→ 芯片 {device_id}，{ttl} 秒内有效")
    if not wait:
        return
    status = wait_for_result_blocking(factory, command_id, wait)
    with factory() as session:
        stored = CommandRepository(session).get(command_id)
    if status == PENDING or stored is None:
        typer.echo(f"状态 status：{STATUS_LABELS[PENDING]}（pending）")
        raise typer.Exit(code=EXIT_PENDING)
    for line in describe(stored):
        typer.echo(line)
    if status != CommandStatus.ACKED.value:
        raise typer.Exit(code=1)
