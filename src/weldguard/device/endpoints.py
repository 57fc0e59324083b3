"""/api/v1/machines/{id}/commands and /api/v1/commands/{id}: send a signed command
to a machine's chip and follow its delivery.

Who may send (weldguard.device.commands.may_send): admin; the enterprise's own
admin and safety officer (their scope is their enterprise); a regulator only
``lock``, within its jurisdiction and sectors (stopping a machine is a supervisory
act, starting one is not). Everyone else gets 403. A machine outside the
sender's scope is 404, as for every other record; a machine without a chip (or a
chip without a secret) is 409. Reads follow the scope alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from weldguard.auth.scope import Scope
from weldguard.deps import AppState, CurrentScope, DbSession, Now, app_state
from weldguard.device.commands import (
    DEFAULT_TTL_S,
    FINAL_STATUSES,
    MAX_TTL_S,
    CommandRepository,
    CommandService,
    ack_code_name,
    wait_for_result,
)
from weldguard.device.dispatcher import wake_local_dispatchers
from weldguard.device.models import DeviceCommand
from weldguard.device.registry import DeviceSecrets
from weldguard.errors import NotFound

router = APIRouter(tags=["commands"])

# How long a request may hold its connection waiting for the chip's answer.
MAX_WAIT_S = 30.0


class CommandIn(BaseModel):
    cmd: Literal["unlock", "lock", "config", "ping"]
    args: dict[str, Any] = Field(default_factory=dict)
    ttl_s: int = Field(default=DEFAULT_TTL_S, ge=1, le=MAX_TTL_S)
    wait_s: float = Field(default=0, ge=0, le=MAX_WAIT_S)
    reason: str = Field(default="", max_length=64)


class CommandOut(BaseModel):
    id: str
    machine_id: int | None
    device_id: str
    cmd: str
    args: dict[str, Any]
    status: str
    created_at: datetime
    expires_at: datetime
    attempts: int
    first_sent_at: datetime | None
    last_sent_at: datetime | None
    finished_at: datetime | None
    ack_code: int | None
    ack_code_name: str | None
    ack_state: str | None
    reason: str
    requested_by_user_id: int | None

    @classmethod
    def of(cls, command: DeviceCommand) -> CommandOut:
        return cls(
            id=command.id,
            machine_id=command.machine_id,
            device_id=command.device_id,
            cmd=command.cmd,
            args=command.args,
            status=command.status,
            created_at=command.created_at,
            expires_at=command.expires_at,
            attempts=command.attempts,
            first_sent_at=command.first_sent_at,
            last_sent_at=command.last_sent_at,
            finished_at=command.finished_at,
            ack_code=command.ack_code,
            ack_code_name=ack_code_name(command.ack_code),
            ack_state=command.ack_state,
            reason=command.reason,
            requested_by_user_id=command.requested_by_user_id,
        )


State = Annotated[AppState, Depends(app_state)]


def _issue_and_commit(
    session: Session, state: AppState, scope: Scope, machine_id: int, body: CommandIn, now: datetime
) -> str:
    service = CommandService(session, DeviceSecrets(state.settings.resolved_secret_key()))
    command = service.issue_for(
        scope, machine_id, body.cmd, body.args, now=now, ttl_s=body.ttl_s, reason=body.reason
    )
    # Committed here rather than after the response: the dispatcher must see the
    # command before we wait for its answer.
    session.commit()
    return command.id


def _load(state: AppState, command_id: str) -> CommandOut:
    with state.session_factory() as session:
        command = CommandRepository(session).get(command_id)
        if command is None:
            raise NotFound("命令不存在")
        return CommandOut.of(command)


@router.post(
    "/machines/{machine_id}/commands",
    response_model=CommandOut,
    status_code=202,
    responses={200: {"model": CommandOut, "description": "The chip answered within wait_s"}},
)
async def send_command(
    machine_id: int,
    body: CommandIn,
    response: Response,
    session: DbSession,
    scope: CurrentScope,
    state: State,
    now: Now,
) -> CommandOut:
    """Signs and queues the command. With ``wait_s`` the request waits up to that
    long for the chip's answer: 200 with the final status (acked, failed,
    expired), else 202 with the command still queued or sent."""
    command_id = await run_in_threadpool(
        _issue_and_commit, session, state, scope, machine_id, body, now
    )
    wake_local_dispatchers()
    if body.wait_s > 0:
        await wait_for_result(state.session_factory, command_id, body.wait_s)
    out = await run_in_threadpool(_load, state, command_id)
    response.status_code = 200 if out.status in FINAL_STATUSES else 202
    return out


@router.get("/machines/{machine_id}/commands", response_model=list[CommandOut])
def list_machine_commands(
    machine_id: int,
    session: DbSession,
    scope: CurrentScope,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[CommandOut]:
    """The machine's latest commands, newest first."""
    repo = CommandRepository(session)
    if repo.visible_machine(scope, machine_id) is None:
        raise NotFound("焊机不存在")
    return [CommandOut.of(c) for c in repo.for_machine(machine_id, limit)]


@router.get("/commands/{command_id}", response_model=CommandOut)
def get_command(command_id: str, session: DbSession, scope: CurrentScope) -> CommandOut:
    command = CommandRepository(session).visible(scope, command_id)
    if command is None:
        raise NotFound("命令不存在")
    return CommandOut.of(command)
