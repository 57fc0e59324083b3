"""Chip registration: each chip gets its own secret, which is both its broker
password and the HMAC key of the commands it accepts (docs/protocol.md)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from weldguard.crypto import SecretBox
from weldguard.errors import Conflict, ErrorDetail, InvalidInput, NotFound
from weldguard.machine.models import Chip, ChipBinding
from weldguard.machine.repository import MachineRepository
from weldguard.machine.service import DEVICE_ID_RE, ICCID_RE, IMEI_RE, MachineService

SECRET_PURPOSE = b"weldguard device secret v1"


def new_device_secret() -> str:
    """32 random bytes as 64 lowercase hex characters."""
    return secrets.token_hex(32)


class DeviceSecrets:
    """Encrypts device secrets at rest under a key derived from the platform secret."""

    def __init__(self, platform_secret: str) -> None:
        self._box = SecretBox(platform_secret, SECRET_PURPOSE)

    def seal(self, device_secret: str) -> bytes:
        return self._box.encrypt(device_secret)

    def open(self, chip: Chip) -> str:
        if chip.secret_encrypted is None:
            raise NotFound(f"芯片 {chip.device_id} 尚未签发密钥")
        return self._box.decrypt(chip.secret_encrypted)


@dataclass(frozen=True)
class ChipInput:
    device_id: str
    imei: str
    iccid: str
    firmware: str = ""


def validate_chip(data: ChipInput) -> list[ErrorDetail]:
    errors = []
    if not DEVICE_ID_RE.match(data.device_id):
        errors.append(ErrorDetail("设备号应为 4–32 位字母、数字、-、_", field="device_id"))
    if not IMEI_RE.match(data.imei):
        errors.append(ErrorDetail("IMEI 应为 15 位数字", field="imei"))
    if not ICCID_RE.match(data.iccid):
        errors.append(ErrorDetail("ICCID 应为 19–20 位数字", field="iccid"))
    if len(data.firmware) > 32:
        errors.append(ErrorDetail("固件版本不超过 32 个字符", field="firmware"))
    return errors


class DeviceRegistry:
    def __init__(self, session: Session, keys: DeviceSecrets) -> None:
        self.session = session
        self.keys = keys
        self.machines = MachineRepository(session)

    def register(self, data: ChipInput, now: datetime, *, rotate: bool = False) -> tuple[Chip, str]:
        """Registers a chip and issues its secret, returned once in clear. A chip
        already known (e.g. fitted before registration) gets its first secret; one
        that has a secret keeps it unless rotate is asked for."""
        errors = validate_chip(data)
        if errors:
            raise InvalidInput("芯片信息有误", errors)
        chip = self.machines.chip_by_device_id(data.device_id)
        if chip is None:
            holder = self.machines.chip_by_imei(data.imei)
            if holder is not None:
                raise Conflict(f"IMEI {data.imei} 已登记在芯片 {holder.device_id} 上")
            chip = self.machines.add_chip(
                Chip(
                    device_id=data.device_id,
                    imei=data.imei,
                    iccid=data.iccid,
                    firmware=data.firmware,
                    registered_at=now,
                )
            )
        elif chip.imei != data.imei:
            raise Conflict(f"设备号 {data.device_id} 已登记为另一 IMEI 的芯片")
        elif chip.secret_encrypted is not None and not rotate:
            raise Conflict(f"芯片 {data.device_id} 已签发密钥；如需更换请使用 --rotate")
        chip.iccid = data.iccid
        chip.firmware = data.firmware or chip.firmware
        secret = new_device_secret()
        chip.secret_encrypted = self.keys.seal(secret)
        chip.secret_issued_at = now
        self.session.flush()
        return chip, secret

    def bind(
        self,
        machine_code: str,
        device_id: str,
        fitted_by_name: str,
        now: datetime,
        *,
        fitted_by_user_id: int | None = None,
        position: tuple[float, float] | None = None,
    ) -> ChipBinding:
        machine = self.machines.by_code(machine_code.strip().upper())
        if machine is None:
            raise NotFound(f"未知的焊机编码 {machine_code}")
        chip = self.machines.chip_by_device_id(device_id)
        if chip is None:
            raise NotFound(f"未登记的芯片 {device_id}：请先执行 weldguard device register")
        return MachineService(self.session).fit_chip(
            machine,
            chip.device_id,
            chip.imei,
            chip.iccid,
            fitted_by_name,
            now,
            fitted_by_user_id=fitted_by_user_id,
            position=position,
        )
