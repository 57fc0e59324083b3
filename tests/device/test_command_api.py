"""The command endpoints: who may send what, scope (out of scope is 404, like a
missing machine), validation errors naming the field, and waiting for the ack."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import NOW, World
from weldguard.config import Settings
from weldguard.device.commands import CommandService
from weldguard.device.models import DeviceCommand
from weldguard.device.registry import ChipInput, DeviceRegistry, DeviceSecrets

Headers = Callable[[str], dict[str, str]]


@pytest.fixture
def fitted(db: Session, settings: Settings, world: World) -> dict[str, str]:
    """Machines A, B and Z with a registered chip each (A's existing chip gets its
    first secret); C stays without a chip. Returns machine key -> device id."""
    registry = DeviceRegistry(db, DeviceSecrets(settings.resolved_secret_key()))
    registry.register(ChipInput("WGC000001", "860000000000001", "89860000000000000001"), NOW)
    devices = {"A": "WGC000001"}
    for n, key in enumerate(("B", "Z"), start=2):
        chip, _ = registry.register(
            ChipInput(f"WGC00000{n}", f"86000000000000{n}", f"8986000000000000000{n}"), NOW
        )
        registry.bind(world.machines[key].code, chip.device_id, "测试", NOW)
        devices[key] = chip.device_id
    db.commit()
    return devices


def post(
    client: TestClient, headers: dict[str, str], machine_id: int, body: dict[str, object]
) -> tuple[int, dict[str, object]]:
    response = client.post(f"/api/v1/machines/{machine_id}/commands", json=body, headers=headers)
    return response.status_code, response.json()


UNLOCK: dict[str, object] = {
    "cmd": "unlock",
    "args": {"sess": "S-1", "welder": "wd-1", "until": 4_102_444_800_000},
}

# (persona, machine, cmd) -> expected status. 202: queued; 403: the role may not
# send that command; 404: the machine is outside the persona's scope.
CASES = [
    ("admin", "A", "unlock", 202),
    ("admin", "Z", "config", 202),
    ("ent_a", "A", "unlock", 202),
    ("ent_a", "A", "ping", 202),
    ("ent_a", "B", "lock", 404),
    ("safety_b", "B", "unlock", 202),
    ("safety_b", "A", "ping", 404),
    ("reg_changning", "A", "lock", 202),
    ("reg_changning", "A", "unlock", 403),
    ("reg_changning", "A", "ping", 403),
    ("reg_changning", "Z", "lock", 404),
    ("reg_changning_zj", "A", "lock", 404),  # 住建 sees construction sites only
    ("reg_changning_zj", "B", "lock", 202),
    ("reg_zhengzhou", "Z", "lock", 202),
    ("insp_xinjing", "B", "lock", 403),
    ("installer_cn", "A", "lock", 403),
    ("welder_one", "A", "unlock", 403),
]
BODIES: dict[str, dict[str, object]] = {
    "unlock": UNLOCK,
    "lock": {"cmd": "lock", "args": {"reason": "检查发现隐患"}},
    "ping": {"cmd": "ping"},
    "config": {"cmd": "config", "args": {"hb_s": 60}},
}


@pytest.mark.parametrize(("username", "machine", "cmd", "expected"), CASES)
def test_who_may_send_what_where(
    client: TestClient,
    world: World,
    fitted: dict[str, str],
    as_user: Headers,
    username: str,
    machine: str,
    cmd: str,
    expected: int,
) -> None:
    status, body = post(client, as_user(username), world.machines[machine].id, BODIES[cmd])
    assert status == expected, body
    if expected == 202:
        assert body["status"] == "queued" and body["cmd"] == cmd
        assert body["device_id"] == fitted[machine]
        assert body["machine_id"] == world.machines[machine].id
        assert "payload" not in body and "sig" not in str(body)
    elif expected == 404:
        assert body["error"]["code"] == "not_found"  # type: ignore[index]
    else:
        assert body["error"]["code"] == "forbidden"  # type: ignore[index]


def test_reading_commands_follows_the_scope(
    client: TestClient, world: World, fitted: dict[str, str], as_user: Headers
) -> None:
    machine_a = world.machines["A"].id
    status, sent = post(client, as_user("ent_a"), machine_a, BODIES["ping"])
    assert status == 202
    for username in ("ent_a", "admin", "reg_changning", "reg_huayang"):
        headers = as_user(username)
        listed = client.get(f"/api/v1/machines/{machine_a}/commands", headers=headers)
        assert listed.status_code == 200, listed.text
        assert [c["id"] for c in listed.json()] == [sent["id"]]
        one = client.get(f"/api/v1/commands/{sent['id']}", headers=headers)
        assert one.status_code == 200 and one.json()["status"] == "queued"
    for username in ("safety_b", "reg_zhengzhou", "reg_changning_zj", "insp_xinjing"):
        headers = as_user(username)
        listed = client.get(f"/api/v1/machines/{machine_a}/commands", headers=headers)
        assert listed.status_code == 404
        assert client.get(f"/api/v1/commands/{sent['id']}", headers=headers).status_code == 404
    missing = client.get("/api/v1/commands/no-such-command", headers=as_user("admin"))
    assert missing.status_code == 404
    assert client.get(f"/api/v1/commands/{sent['id']}").status_code == 401


def test_bad_arguments_and_machines_without_chip(
    client: TestClient, world: World, fitted: dict[str, str], as_user: Headers
) -> None:
    headers = as_user("admin")
    status, body = post(
        client, headers, world.machines["A"].id, {"cmd": "unlock", "args": {"sess": "S-1"}}
    )
    assert status == 422
    reasons = {d["field"] for d in body["error"]["details"]}  # type: ignore[index]
    assert {"args.welder", "args.until"} <= reasons
    status, body = post(client, headers, world.machines["A"].id, {"cmd": "time"})
    assert status == 422  # the platform's own command, not a person's
    status, body = post(client, headers, world.machines["A"].id, {"cmd": "ping", "ttl_s": 601})
    assert status == 422
    status, body = post(client, headers, world.machines["C"].id, BODIES["ping"])
    assert status == 409 and "未安装芯片" in body["error"]["message"]  # type: ignore[index]
    status, body = post(client, headers, 999_999, BODIES["ping"])
    assert status == 404


def test_wait_returns_the_answer_or_202_while_pending(
    client: TestClient,
    world: World,
    fitted: dict[str, str],
    as_user: Headers,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    headers = as_user("ent_a")
    machine_a = world.machines["A"].id
    status, body = post(client, headers, machine_a, {"cmd": "ping", "wait_s": 0.3})
    assert status == 202 and body["status"] == "queued"

    # Stands in for dispatcher + chip + ingest: acks the next command it finds.
    stop = threading.Event()

    def answer() -> None:
        secrets = DeviceSecrets(settings.resolved_secret_key())
        while not stop.is_set():
            with session_factory() as session:
                command_id = session.scalar(
                    select(DeviceCommand.id).where(
                        DeviceCommand.cmd == "lock", DeviceCommand.status == "queued"
                    )
                )
                if command_id is not None:
                    ack = {"id": command_id, "ok": True, "code": 0, "state": "locked"}
                    CommandService(session, secrets).record_ack(fitted["A"], ack, NOW)
                    session.commit()
                    return
            time.sleep(0.05)

    answering = threading.Thread(target=answer, daemon=True)
    answering.start()
    try:
        status, body = post(client, headers, machine_a, {"cmd": "lock", "wait_s": 20})
    finally:
        stop.set()
        answering.join(5)
    assert status == 200, body
    assert (body["status"], body["ack_code"], body["ack_code_name"], body["ack_state"]) == (
        "acked",
        0,
        "ok",
        "locked",
    )
