"""Gas analysis (气体分析) and continuous monitoring (GB 30871-2022).

* A reading passes at ≤ 0.5 % by volume for a gas with LEL ≥ 4 %, at ≤ 0.2 % for
  a gas with LEL < 4 % (both bounds inclusive).
* Every gas sampled on a permit is judged by its own latest sample: a re-test has
  to cover every gas analysed before, not just one of them.
* Starting: each gas's latest sample is at most 30 min old (exactly 30 min
  passes) and within its limit.
* Resuming after an interruption longer than 30 min (特级/一级) or 60 min (二级):
  a new sample taken since the interruption began, again at most 30 min old.
  Shorter interruptions need no new sample.
* Daily re-test: the latest sample of each gas is from the current local
  calendar day (the stricter reading of "daily": work past midnight needs a new
  sample even when the last one is minutes old). A sample too old to start with
  is reported once, as stale.
* 特级 (including work raised to 特级): a continuous monitor whose latest reading of
  each gas is at most 2 min old and within the limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TypeVar

from weldguard.domain.permits.model import GasSample, HotSpot, MonitorReading, PermitLevel
from weldguard.domain.permits.policy import DEFAULT_PERMIT_POLICY, PermitPolicy
from weldguard.domain.permits.reasons import (
    PermitReason,
    PermitReasonCode,
    duration_text,
    local_text,
)

__all__ = [
    "check_gas",
    "check_monitor",
    "check_sample",
    "gas_limit_percent",
    "latest_per_gas",
    "within_limit",
]

R = PermitReasonCode


def gas_limit_percent(lel_percent: float, policy: PermitPolicy = DEFAULT_PERMIT_POLICY) -> float:
    """The pass limit (% by volume) for a gas whose LEL is ``lel_percent``."""
    if lel_percent >= policy.lel_threshold_percent:
        return policy.limit_high_lel_percent
    return policy.limit_low_lel_percent


def within_limit(
    reading: GasSample | MonitorReading, policy: PermitPolicy = DEFAULT_PERMIT_POLICY
) -> bool:
    return reading.reading_percent <= gas_limit_percent(reading.lel_percent, policy)


def _gas_key(gas: str) -> str:
    return gas.strip().lower()


_Reading = TypeVar("_Reading", GasSample, MonitorReading)


def latest_per_gas(readings: Iterable[_Reading], now: datetime) -> tuple[_Reading, ...]:
    """The latest reading of each gas taken at or before ``now`` (later ones are
    ignored: they cannot have been taken yet), ordered by gas name."""
    latest: dict[str, _Reading] = {}
    for reading in readings:
        if reading.taken_at > now:
            continue
        key = _gas_key(reading.gas)
        if key not in latest or reading.taken_at >= latest[key].taken_at:
            latest[key] = reading
    return tuple(latest[key] for key in sorted(latest))


def _over_limit_text(reading: GasSample | MonitorReading, policy: PermitPolicy) -> str:
    limit = gas_limit_percent(reading.lel_percent, policy)
    return (
        f"{reading.gas.strip()} {reading.reading_percent:g}%（爆炸下限 {reading.lel_percent:g}%，"
        f"合格标准 ≤ {limit:g}%）"
    )


def check_sample(
    sample: GasSample,
    now: datetime,
    hot_spot: HotSpot | None = None,
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> tuple[PermitReason, ...]:
    """A sample may be recorded: not taken in the future, and within 10 m of the hot
    spot when it has a position. (A reading over the limit is recorded: it is a
    fact, and it stops the work.)"""
    tz = policy.timezone
    reasons = []
    if sample.taken_at > now:
        reasons.append(
            PermitReason(
                R.GAS_SAMPLE_IN_FUTURE,
                f"采样时间 {local_text(sample.taken_at, tz)} 晚于当前时间 {local_text(now, tz)}",
            )
        )
    if sample.position is not None and hot_spot is not None:
        distance = hot_spot.distance_m(sample.position)
        if distance > policy.gas_sample_radius_m:
            reasons.append(
                PermitReason(
                    R.GAS_SAMPLE_TOO_FAR,
                    f"采样点距动火点约 {distance:.0f} 米，应在 {policy.gas_sample_radius_m:g} "
                    "米范围内采样",
                )
            )
    return tuple(reasons)


def check_gas(
    samples: Sequence[GasSample],
    level: PermitLevel,
    now: datetime,
    *,
    starting: bool = False,
    interrupted_since: datetime | None = None,
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> tuple[PermitReason, ...]:
    """Whether the gas analysis allows the work at ``now``: to start
    (``starting``), to resume after an interruption that began at
    ``interrupted_since``, or to go on (neither). Empty when it does."""
    tz = policy.timezone
    latest = latest_per_gas(samples, now)
    if not latest:
        return (
            PermitReason(
                R.GAS_SAMPLE_MISSING,
                f"动火前须在动火点 {policy.gas_sample_radius_m:g} 米范围内进行气体分析，"
                "尚无分析记录",
            ),
        )
    reasons: list[PermitReason] = []
    over = [s for s in latest if not within_limit(s, policy)]
    if over:
        reasons.append(
            PermitReason(
                R.GAS_OVER_LIMIT,
                "气体分析不合格，禁止动火："
                + "；".join(
                    f"{_over_limit_text(s, policy)}，采样于 {local_text(s.taken_at, tz)}"
                    for s in over
                ),
            )
        )

    pause_limit = policy.pause_retest_after(level)
    long_pause = interrupted_since is not None and now - interrupted_since > pause_limit
    need_fresh = starting or long_pause
    flagged: set[str] = set()
    if long_pause:
        assert interrupted_since is not None
        before = [s for s in latest if s.taken_at < interrupted_since]
        if before:
            flagged.update(_gas_key(s.gas) for s in before)
            reasons.append(
                PermitReason(
                    R.GAS_RETEST_AFTER_PAUSE,
                    f"作业中断已 {duration_text(now - interrupted_since)}（自 "
                    f"{local_text(interrupted_since, tz)}），超过 {duration_text(pause_limit)}，"
                    "须重新分析：" + "、".join(s.gas.strip() for s in before),
                )
            )
    if need_fresh:
        stale = [
            s
            for s in latest
            if _gas_key(s.gas) not in flagged and now - s.taken_at > policy.gas_sample_max_age
        ]
        if stale:
            flagged.update(_gas_key(s.gas) for s in stale)
            reasons.append(
                PermitReason(
                    R.GAS_SAMPLE_STALE,
                    f"动火前 {duration_text(policy.gas_sample_max_age)} 内须有气体分析合格记录："
                    + "；".join(
                        f"{s.gas.strip()} 采样于 {local_text(s.taken_at, tz)}"
                        f"（{duration_text(now - s.taken_at)}前）"
                        for s in stale
                    ),
                )
            )
    today = now.astimezone(tz).date()
    old_day = [
        s
        for s in latest
        if _gas_key(s.gas) not in flagged and s.taken_at.astimezone(tz).date() < today
    ]
    if old_day:
        reasons.append(
            PermitReason(
                R.GAS_DAILY_RETEST,
                "动火作业须每日复测气体，今日尚未分析："
                + "、".join(
                    f"{s.gas.strip()}（上次 {local_text(s.taken_at, tz)}）" for s in old_day
                ),
            )
        )
    return tuple(reasons)


def check_monitor(
    readings: Sequence[MonitorReading],
    now: datetime,
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> tuple[PermitReason, ...]:
    """The continuous monitor of 特级 work: a reading of each gas at most 2 min old
    (exactly 2 min passes), each within its limit."""
    tz = policy.timezone
    latest = latest_per_gas(readings, now)
    if not latest:
        return (PermitReason(R.MONITOR_MISSING, "特级动火作业须连续监测可燃气体，未收到监测数据"),)
    reasons = []
    stale = [r for r in latest if now - r.taken_at > policy.monitor_max_age]
    if stale:
        reasons.append(
            PermitReason(
                R.MONITOR_STALE,
                f"连续气体监测已超过 {duration_text(policy.monitor_max_age)}未上报："
                + "；".join(
                    f"{r.gas.strip()} 最后一次 {local_text(r.taken_at, tz)}" for r in stale
                ),
            )
        )
    over = [r for r in latest if not within_limit(r, policy)]
    if over:
        reasons.append(
            PermitReason(
                R.MONITOR_OVER_LIMIT,
                "连续气体监测超标：" + "；".join(_over_limit_text(r, policy) for r in over),
            )
        )
    return tuple(reasons)
