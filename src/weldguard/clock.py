"""Local time: storage is UTC, the trade's days are China Standard Time."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local_today(now: datetime) -> date:
    return now.astimezone(SHANGHAI).date()


def parse_month(text: str) -> date:
    """'2026-11' -> date(2026, 11, 1); ValueError with a Chinese reason otherwise."""
    parts = text.strip().split("-")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or len(parts[0]) != 4:
        raise ValueError(f"月份格式应为 YYYY-MM：{text}")
    year, month = int(parts[0]), int(parts[1])
    if not 1 <= month <= 12:
        raise ValueError(f"月份应在 1 到 12 之间：{text}")
    return date(year, month, 1)
