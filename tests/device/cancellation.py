"""A check shared by the tests of the workers' shutdown (ingest writer, MQTT link,
dispatcher): Python 3.11's ``asyncio.wait_for`` lost a cancellation that came in
the same loop turn as what it awaited, so each is cancelled some turns after the
moment that matters."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_after_turns(
    task: asyncio.Task[Any], turns: int, what: str, timeout: float = 2.0
) -> None:
    """Lets the loop run ``turns`` times, cancels ``task`` and asserts that it ends
    cancelled within ``timeout`` seconds."""
    for _ in range(turns):
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    assert done, f"{what} lost its cancellation after {turns} turns"
    assert task.cancelled()
