"""Local time: storage is UTC, the trade's days are China Standard Time."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local_today(now: datetime) -> date:
    return now.astimezone(SHANGHAI).date()
