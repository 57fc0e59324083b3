"""``weldguard sim``: the reference chip and the fleet simulator."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from weldguard.sim.chip import ChipConfig, ChipCore, Misbehaviour
from weldguard.sim.fleet import (
    SITES,
    Fleet,
    generate_devices,
    load_devices,
    run_fleet,
    write_devices,
)
from weldguard.sim.transport import ChipTransport

sim_app = typer.Typer(no_args_is_help=True, help="Reference chip and fleet simulator (协议 v1)")

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"

BrokerOpt = Annotated[
    str | None,
    typer.Option(
        "--broker",
        help="mqtt://host:port (default: WELDGUARD_MQTT_URL, else mqtt://127.0.0.1:1883)",
    ),
]
SecondsOpt = Annotated[float | None, typer.Option(help="Stop after this many seconds")]


def _broker(url: str | None) -> str:
    if url:
        return url
    try:
        from weldguard.config import get_settings

        return get_settings().mqtt_url or DEFAULT_BROKER
    except Exception:  # the simulator must run without a configured platform
        return DEFAULT_BROKER


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@sim_app.command("chip")
def chip(
    device_id: Annotated[str, typer.Option("--device-id", help="Device id (client id, username)")],
    secret: Annotated[
        str, typer.Option("--secret", help="64-hex device secret (password, HMAC key)")
    ],
    broker: BrokerOpt = None,
    imei: Annotated[str, typer.Option(help="15 digits")] = "860000000000001",
    iccid: Annotated[str, typer.Option(help="19–20 digits")] = "89860000000000000001",
    rated_a: Annotated[int, typer.Option("--rated-a", help="Rated current (A)")] = 400,
    lat: Annotated[float, typer.Option(help="Home latitude (degrees)")] = SITES[0][0],
    lon: Annotated[float, typer.Option(help="Home longitude (degrees)")] = SITES[0][1],
    seconds: SecondsOpt = None,
    hb_s: Annotated[int, typer.Option("--hb-s", help="Heartbeat interval (s)")] = 30,
    tel_s: Annotated[
        int, typer.Option("--tel-s", help="Telemetry interval while welding (s)")
    ] = 10,
    unsynced: Annotated[
        bool, typer.Option(help="Start with an unsynchronised clock (answers 8 until `time`)")
    ] = False,
    weld_while_locked: Annotated[bool, typer.Option(help="Misbehave: arcs while locked")] = False,
    tamper: Annotated[bool, typer.Option(help="Misbehave: tamper events")] = False,
    wander: Annotated[bool, typer.Option(help="Misbehave: leave the site")] = False,
    go_offline: Annotated[bool, typer.Option(help="Misbehave: network outages")] = False,
    stop_heartbeats: Annotated[bool, typer.Option(help="Misbehave: no heartbeats")] = False,
    overcurrent: Annotated[bool, typer.Option(help="Misbehave: current above rating")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """One reference chip: heartbeats, arcs while unlocked, signed commands, offline buffer."""
    _logging(verbose)
    try:
        cfg = ChipConfig(
            device_id=device_id,
            secret_hex=secret,
            imei=imei,
            iccid=iccid,
            rated_a=rated_a,
            home_lat_udeg=round(lat * 1_000_000),
            home_lon_udeg=round(lon * 1_000_000),
            hb_s=hb_s,
            tel_s=tel_s,
            clock_synced=not unsynced,
            misbehaviour=Misbehaviour(
                weld_while_locked=weld_while_locked,
                tamper=tamper,
                wander=wander,
                go_offline=go_offline,
                stop_heartbeats=stop_heartbeats,
                overcurrent=overcurrent,
            ),
        )
    except ValueError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc
    url = _broker(broker)
    core = ChipCore(cfg, time.time_ns() // 1_000_000)
    transport = ChipTransport(core, url)
    typer.echo(f"chip {device_id} → {url} (Ctrl-C to stop)", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        transport.run(seconds)
    typer.echo(
        f"published {transport.published} messages, {transport.connects} connection(s)", err=True
    )


@sim_app.command("fleet")
def fleet(
    machines: Annotated[int, typer.Option("--machines", help="Number of chips to generate")] = 10,
    broker: BrokerOpt = None,
    misbehaving: Annotated[
        float, typer.Option(help="Share of machines that misbehave (0–1)")
    ] = 0.1,
    seconds: SecondsOpt = None,
    devices_file: Annotated[
        Path | None,
        typer.Option(
            "--devices-file",
            help="CSV with device_id,secret,imei,iccid,rated_a,lat,lon (instead of --machines)",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    write_devices_file: Annotated[
        Path | None,
        typer.Option("--write-devices", help="Write the generated devices to this CSV"),
    ] = None,
    self_unlock: Annotated[
        float,
        typer.Option(
            help="Share of honest machines that unlock themselves with their own key "
            "(a demo without the platform; 0 when the platform sends the unlocks)"
        ),
    ] = 0.0,
    hb_s: Annotated[int, typer.Option("--hb-s")] = 30,
    tel_s: Annotated[int, typer.Option("--tel-s")] = 10,
    tick_ms: Annotated[int, typer.Option("--tick-ms", help="Tick period of the fleet")] = 1000,
    stress: Annotated[
        bool, typer.Option(help="A heartbeat from every chip on every tick (throughput test)")
    ] = False,
    seed: Annotated[int | None, typer.Option()] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Many chips in one process, a share of them misbehaving."""
    _logging(verbose)
    if not verbose:
        logging.getLogger("gmqtt").setLevel(logging.WARNING)
        logging.getLogger("weldguard.sim").setLevel(logging.WARNING)
    if devices_file is not None:
        try:
            devices = load_devices(devices_file)
        except (ValueError, KeyError) as exc:
            typer.secho(str(exc), fg=typer.colors.RED, err=True)
            raise typer.Exit(code=2) from exc
    else:
        devices = generate_devices(machines, seed=seed)
        # The platform must know these devices: print them (or write them) so that
        # they can be registered.
        if write_devices_file is not None:
            with write_devices_file.open("w", newline="", encoding="utf-8") as f:
                write_devices(devices, f)
            typer.echo(f"devices written to {write_devices_file}", err=True)
        else:
            write_devices(devices, sys.stdout)
            sys.stdout.flush()
    url = _broker(broker)
    try:
        sim = Fleet(
            devices,
            url,
            misbehaving=misbehaving,
            self_unlock=self_unlock,
            tick_s=tick_ms / 1000,
            stress=stress,
            hb_s=hb_s,
            tel_s=tel_s,
            seed=seed,
        )
    except ValueError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc
    bad = len(sim.misbehaving)
    typer.echo(f"fleet of {len(devices)} ({bad} misbehaving) → {url}", err=True)
    started = time.monotonic()
    try:
        stats = run_fleet(sim, seconds, lambda line: typer.echo(line, err=True))
    except KeyboardInterrupt:
        stats = sim.stats
    elapsed = time.monotonic() - started
    typer.echo(
        f"published {stats.published} messages in {elapsed:.1f} s "
        f"({stats.published / max(elapsed, 1e-9):.0f}/s), commands {stats.commands}, "
        f"connects {stats.connects}, connect failures {stats.connect_failures}, "
        f"callback errors {stats.callback_errors}",
        err=True,
    )
