"""The facts behind a scan decision, gathered from the database.

:func:`gather_scan_facts` turns (signed-in welder, scanned machine, phone position,
now) into the :class:`~weldguard.domain.authorization.ScanRequest` that the pure
:func:`~weldguard.domain.authorization.decide` judges, and
:func:`authorization_policy` maps the Settings onto its policy. Every query lives
in :class:`~weldguard.unlock.repository.ScanRepository`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from weldguard.auth.models import User
from weldguard.clock import local_today
from weldguard.config import Settings
from weldguard.device.models import DeviceState
from weldguard.device.views_repository import is_online
from weldguard.domain.authorization import (
    AuthorizationPolicy,
    EmploymentPeriod,
    HeldCertificate,
    MachineFacts,
    MobileJob,
    OpeningWindow,
    PermitFacts,
    PhonePosition,
    PlaceFacts,
    ScanRequest,
    SpecialPeriod,
    SpecialPeriodKind,
    WelderFacts,
    opening_windows_from_json,
)
from weldguard.domain.certificates import CertificateKind
from weldguard.domain.geo import GeoPoint
from weldguard.enterprise.models import Enterprise, Site
from weldguard.machine.models import Chip, Machine
from weldguard.unlock.models import SpecialPeriod as SpecialPeriodRow
from weldguard.unlock.models import WorkSession
from weldguard.unlock.repository import ScanRepository
from weldguard.welder.service import status_of

log = logging.getLogger(__name__)

LOCKED = "locked"
UNLOCKED = "unlocked"


def authorization_policy(settings: Settings) -> AuthorizationPolicy:
    """The decision's configurable parts, from the Settings (the rest keeps the
    domain's stricter defaults)."""
    return AuthorizationPolicy(
        max_distance_m=settings.scan_max_distance_m,
        require_position=settings.scan_require_position,
        refuse_when_busy_elsewhere=settings.scan_refuse_busy_elsewhere,
    )


@dataclass(frozen=True)
class MachinePlace:
    """A scanned machine with what the scan page and the decision show of it."""

    machine: Machine
    enterprise: Enterprise
    site: Site | None
    chip: Chip | None
    state: DeviceState | None

    @property
    def position(self) -> GeoPoint | None:
        """The chip's last fix, else the site's position."""
        return chip_position(self.state) or site_position(self.site)


@dataclass(frozen=True)
class ScanFacts:
    """The request for :func:`decide` plus the rows it was built from."""

    request: ScanRequest
    place: MachinePlace
    open_session_here: WorkSession | None
    welder_sessions: tuple[WorkSession, ...]


def chip_position(state: DeviceState | None) -> GeoPoint | None:
    if state is None or state.lat_e6 is None or state.lon_e6 is None:
        return None
    try:
        return GeoPoint(state.lat_e6 / 1e6, state.lon_e6 / 1e6)
    except ValueError:
        return None


def site_position(site: Site | None) -> GeoPoint | None:
    if site is None or site.latitude is None or site.longitude is None:
        return None
    try:
        return GeoPoint(site.latitude, site.longitude)
    except ValueError:
        return None


def lock_state(state: DeviceState | None) -> bool | None:
    """True locked, False unlocked, None unknown."""
    if state is None or state.lock_state not in (LOCKED, UNLOCKED):
        return None
    return state.lock_state == LOCKED


def load_machine_place(repo: ScanRepository, machine: Machine) -> MachinePlace:
    found = repo.machine_place(machine_id=machine.id)
    if found is None:  # the foreign key forbids it; a clear error if it happens
        raise LookupError(f"machine {machine.code} has no enterprise")
    _machine, enterprise, site, chip, state = found
    return MachinePlace(machine, enterprise, site, chip, state)


def machine_place_by_code(repo: ScanRepository, code: str) -> MachinePlace | None:
    """The scanned machine and its place in one query, None for an unknown code."""
    found = repo.machine_place(code=code)
    return MachinePlace(*found) if found is not None else None


def opening_hours_of(enterprise: Enterprise) -> tuple[OpeningWindow, ...] | None:
    """The recorded opening hours; unreadable ones count as not recorded (for a
    crowded place that denies, the stricter side), and are logged."""
    if enterprise.opening_hours is None:
        return None
    try:
        return opening_windows_from_json(enterprise.opening_hours)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("enterprise %s: unreadable opening hours: %s", enterprise.id, exc)
        return None


def place_facts(enterprise: Enterprise) -> PlaceFacts:
    return PlaceFacts(
        enterprise_id=enterprise.id,
        sector=enterprise.sector,
        area_path=enterprise.area_path,
        crowded_subtype=enterprise.crowded_subtype,
        opening_hours=opening_hours_of(enterprise),
        production_status=enterprise.production_status,
    )


def special_periods(
    repo: ScanRepository, area_path: str, now: datetime
) -> tuple[SpecialPeriod, ...]:
    return special_periods_of(repo.special_periods_over(area_path, now))


def special_periods_of(rows: Iterable[SpecialPeriodRow]) -> tuple[SpecialPeriod, ...]:
    """The declared periods as the decision takes them (an unknown kind, written by a
    newer version, is logged and left out)."""
    periods = []
    for row in rows:
        try:
            kind = SpecialPeriodKind(row.kind)
        except ValueError:
            log.warning("special period %s: unknown kind %r, ignored", row.id, row.kind)
            continue
        periods.append(
            SpecialPeriod(
                id=row.id,
                title=row.title,
                area_path=row.area_path,
                starts_at=row.starts_at,
                ends_at=row.ends_at,
                kind=kind,
                sectors=frozenset(row.sectors) if row.sectors is not None else None,
            )
        )
    return tuple(periods)


def scan_place_by_code(
    repo: ScanRepository, code: str, now: datetime
) -> tuple[MachinePlace, tuple[SpecialPeriod, ...]] | None:
    """The scanned machine, its place and the special periods over it, in one
    query; None for an unknown code."""
    found = repo.scan_place(code, now)
    if found is None:
        return None
    place, periods = found
    return MachinePlace(*place), special_periods_of(periods)


# --- filled by the permit issue ---------------------------------------------------


def declared_mobile_jobs(
    session: Session, welder_id: int, machine: Machine, now: datetime
) -> tuple[MobileJob, ...]:
    """The welder's declared mobile jobs (流动作业报备) that may cover this scan.
    None are recorded yet: the permit issue adds them and fills this in."""
    return ()


def candidate_permits(
    session: Session, welder_id: int, machine: Machine, now: datetime
) -> tuple[PermitFacts, ...]:
    """Hot-work permits (动火作业票) that may cover this scan. None are recorded
    yet: the permit issue adds them and fills this in."""
    return ()


# --- the request --------------------------------------------------------------------


def gather_scan_facts(
    session: Session,
    user: User,
    machine: Machine,
    phone: PhonePosition | None,
    now: datetime,
    place: MachinePlace | None = None,
    periods: tuple[SpecialPeriod, ...] | None = None,
) -> ScanFacts:
    """Everything :func:`decide` needs for ``user`` (a welder account) scanning
    ``machine`` at ``now``. ``place`` and ``periods``: the machine's place and the
    special periods over it when the caller has read them already
    (:func:`scan_place_by_code` reads both with the machine in one query).

    Round trips: the place (unless given); the certificates, employments and open
    sessions (the machine's and the welder's) in one query; the special periods
    (unless given)."""
    if user.welder_id is None:
        raise ValueError("only a welder account scans to unlock")
    repo = ScanRepository(session)
    welder_id = user.welder_id
    today = local_today(now)
    if place is None or place.machine.id != machine.id:
        place, periods = load_machine_place(repo, machine), None
    held, employed, open_sessions = repo.welder_facts(welder_id, machine.id)

    certificates = tuple(
        HeldCertificate(
            id=cert.id,
            holder_welder_id=cert.welder_id,
            kind=CertificateKind(cert.kind),
            item=cert.item,
            status=status_of(cert, today),
            expiry_date=cert.expiry_date,
            review_due_date=cert.review_due_date,
            confirmed_by_enterprise_id=cert.confirmed_by_enterprise_id,
            number_masked=cert.number_masked,
        )
        for cert in held
        if cert.kind in CertificateKind.__members__.values()
    )
    employments = tuple(
        EmploymentPeriod(e.enterprise_id, e.start_date, e.end_date) for e in employed
    )
    here = next((s for s in open_sessions if s.machine_id == machine.id), None)
    mine = tuple(s for s in open_sessions if s.welder_id == welder_id)
    state = place.state
    machine_facts = MachineFacts(
        id=machine.id,
        status=machine.status,
        process=machine.process,
        enterprise_id=machine.enterprise_id,
        chip_bound=place.chip is not None,
        chip_online=is_online(state, now),
        site_id=machine.site_id,
        chip_last_seen=state.last_seen_at if state is not None else None,
        chip_position=chip_position(state),
        site_position=site_position(place.site),
        locked=lock_state(state),
        session_welder_id=here.welder_id if here is not None else None,
        code=machine.code,
    )
    # The machine works at its owner's premises until mobile jobs say otherwise.
    place_of_work = place_facts(place.enterprise)
    request = ScanRequest(
        welder=WelderFacts(id=welder_id, active=user.is_active),
        machine=machine_facts,
        place=place_of_work,
        now=now,
        certificates=certificates,
        employments=employments,
        mobile_jobs=declared_mobile_jobs(session, welder_id, machine, now),
        special_periods=periods
        if periods is not None
        else special_periods(repo, place.enterprise.area_path, now),
        permits=candidate_permits(session, welder_id, machine, now),
        phone_position=phone,
        other_session_machine_ids=frozenset(s.machine_id for s in mine) - {machine.id},
    )
    return ScanFacts(request, place, here, mine)


def session_limit(decision_limit: datetime | None, now: datetime, settings: Settings) -> datetime:
    """When the session (and the unlock it sends) ends at the latest: the
    decision's limit, capped by the default session length."""
    default = now + timedelta(hours=settings.session_default_hours)
    if decision_limit is None:
        return default
    return min(decision_limit, default)
