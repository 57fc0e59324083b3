"""The facts behind a scan decision, gathered from the database.

:func:`gather_scan_facts` turns (signed-in welder, scanned machine, phone position,
now) into the :class:`~weldguard.domain.authorization.ScanRequest` that the pure
:func:`~weldguard.domain.authorization.decide` judges, and
:func:`authorization_policy` maps the Settings onto its policy. Every query lives
in :class:`~weldguard.unlock.repository.ScanRepository`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from weldguard.auth.models import User
from weldguard.clock import local_today
from weldguard.config import Settings
from weldguard.device.models import DeviceState
from weldguard.device.views_repository import is_online
from weldguard.domain.authorization import (
    DEFAULT_PERMIT_RULE,
    AuthorizationPolicy,
    EmploymentPeriod,
    HeldCertificate,
    MachineFacts,
    MobileJob,
    OpeningWindow,
    PermitFacts,
    PermitRule,
    PhonePosition,
    PlaceFacts,
    ScanRequest,
    SpecialPeriod,
    SpecialPeriodKind,
    WelderFacts,
    is_crowded_place,
    opening_windows_from_json,
    permit_required,
)
from weldguard.domain.certificates import CertificateKind
from weldguard.domain.geo import GeoPoint
from weldguard.domain.permits import PermitStatus, geofence, unlock_state
from weldguard.enterprise.models import Enterprise, Site
from weldguard.machine.models import Chip, Machine
from weldguard.permit.codec import crowded_exception_of, hot_spot_from
from weldguard.permit.mobile_repository import MobileJobRepository
from weldguard.permit.repository import PermitRepository
from weldguard.unlock.models import SpecialPeriod as SpecialPeriodRow
from weldguard.unlock.models import WorkSession
from weldguard.unlock.repository import ScanRepository, WelderRows
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
        permit_rule=permit_rule_of(settings),
    )


def _names(text: str) -> frozenset[str]:
    return frozenset(x.strip() for x in text.replace("，", ",").split(",") if x.strip())


def permit_rule_of(settings: Settings) -> PermitRule:
    """Where a permit is required, as configured (sectors, processes, everywhere)."""
    return _permit_rule(
        settings.permit_sectors, settings.permit_processes, settings.permit_everywhere
    )


@functools.lru_cache(maxsize=8)
def _permit_rule(sectors: str, processes: str, everywhere: bool) -> PermitRule:
    # Built on every scan: parse the settings' text once.
    return PermitRule(sectors=_names(sectors), processes=_names(processes), everywhere=everywhere)


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
        permit_required_override=enterprise.permit_required,
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


@dataclass(frozen=True)
class MobileWork:
    """What the declared mobile jobs covering a scan say: the jobs as the decision
    takes them and, when the machine is away from its owner's premises, where:
    at a registered ``client``'s premises, or at an unregistered client's place
    in ``area_path``."""

    jobs: tuple[MobileJob, ...] = ()
    client: Enterprise | None = None
    area_path: str | None = None


def mobile_work(session: Session, welder_id: int, machine: Machine, now: datetime) -> MobileWork:
    """The declared jobs (流动作业报备) of this machine whose window holds ``now``,
    in one query (``MobileJobRepository.covering``): those naming the welder too
    are the decision's jobs; the machine's job, whoever it names, says where the
    machine is (a welder not named in it is refused there, MOBILE_JOB_NOT_DECLARED).

    A job at a registered client other than the owner moves the place of work to
    the client's premises (its sector, opening hours and area decide); the decision
    then asks for the owner's welder with that job. A job at an unregistered client
    (a household, a shop not in the register) leaves the owner answerable for the
    place, so it counts as the owner's premises, but in the job's area: a special
    period over the street where the work happens applies there. Jobs of one
    machine never overlap (refused when declared); should two cover ``now``, the
    earliest-starting one places the machine."""
    rows = MobileJobRepository(session).covering(welder_id, machine.id, now)
    if not rows:
        return MobileWork()
    jobs = tuple(
        MobileJob(
            id=job.id,
            client_enterprise_id=client.id if client is not None else machine.enterprise_id,
            starts_at=job.starts_at,
            ends_at=job.ends_at,
        )
        for job, client, names_welder in rows
        if names_welder
    )
    job, client, _ = rows[0]
    if client is None:
        return MobileWork(jobs, area_path=job.area_path)
    if client.id != machine.enterprise_id:
        return MobileWork(jobs, client=client)
    return MobileWork(jobs)


def declared_mobile_jobs(
    session: Session, welder_id: int, machine: Machine, now: datetime
) -> tuple[MobileJob, ...]:
    """The welder's declared mobile jobs (流动作业报备) that may cover this scan."""
    return mobile_work(session, welder_id, machine, now).jobs


def may_work_away(
    employments: Iterable[EmploymentPeriod], owner: Enterprise, now: datetime
) -> bool:
    """Whether a mobile job can change this scan's decision, so that the common
    scan (the owner's welder at a stay-at-home enterprise) spends no query on them:
    ``decide`` reads jobs only when the welder is not the owner's (an outside
    welder needs a job there) or when the place is not the owner's premises, which
    only a job of an enterprise registered for mobile work (是否流动作业) can make it
    (``permit.mobile_service`` refuses other owners' machines)."""
    today = local_today(now)
    employed = any(e.enterprise_id == owner.id and e.active_on(today) for e in employments)
    return not employed or owner.mobile_work


def permit_may_be_required(
    place: PlaceFacts,
    process: str,
    periods: Iterable[SpecialPeriod],
    rule: PermitRule = DEFAULT_PERMIT_RULE,
) -> bool:
    """Whether the decision may ask for a permit here: by the rule, a special period
    requiring one, or a crowded place (its exception path during opening hours).
    Elsewhere the scan reads no permits: the scan path is latency-critical."""
    return (
        permit_required(place, process, rule)
        or is_crowded_place(place)
        or any(p.kind is SpecialPeriodKind.REQUIRE_PERMIT for p in periods)
    )


def candidate_permits(
    session: Session,
    welder_id: int,
    machine: Machine,
    now: datetime,
    machine_position: GeoPoint | None = None,
) -> tuple[PermitFacts, ...]:
    """The started hot-work permits (动火作业票: in progress, paused, suspended)
    naming the welder or the machine, as the decision reads them, in one query.
    ``machine_position``: the chip's own fix (a site's position says nothing about
    the hot spot's 10 m), for the permit's geofence."""
    found = PermitRepository(session).scan_candidates(welder_id, machine.id)
    facts = []
    for c in found:
        hot_spot = hot_spot_from(
            c.hot_spot_lat, c.hot_spot_lon, c.hot_spot_radius_m, c.hot_spot_polygon
        )
        exception = crowded_exception_of(c.crowded_exception)
        facts.append(
            PermitFacts(
                id=c.id,
                number=c.number,
                state=unlock_state(PermitStatus(c.status)),
                enterprise_id=c.enterprise_id,
                starts_at=c.starts_at,
                ends_at=c.ends_at,
                welder_ids=frozenset(c.welder_ids),
                machine_ids=frozenset(c.machine_ids),
                site_id=c.site_id,
                # Started permits were approved: the path is taken when complete.
                crowded_place_exception=exception is not None and exception.complete,
                problems=tuple(r.message for r in geofence(hot_spot, machine_position)),
            )
        )
    return tuple(facts)


# --- the request --------------------------------------------------------------------


def gather_scan_facts(
    session: Session,
    user: User,
    machine: Machine,
    phone: PhonePosition | None,
    now: datetime,
    place: MachinePlace | None = None,
    periods: tuple[SpecialPeriod, ...] | None = None,
    permit_rule: PermitRule = DEFAULT_PERMIT_RULE,
    welder_rows: WelderRows | None = None,
) -> ScanFacts:
    """Everything :func:`decide` needs for ``user`` (a welder account) scanning
    ``machine`` at ``now``. ``place`` and ``periods``: the machine's place and the
    special periods over it when the caller has read them already
    (:func:`scan_place_by_code` reads both with the machine in one query);
    ``welder_rows``: the welder's certificates, employments and open sessions
    likewise (``ScanRepository.scan_read`` reads them with the place).

    Round trips: the place (unless given); the certificates, employments and open
    sessions (the machine's and the welder's) in one query; the covering mobile
    jobs, only where one can matter (:func:`may_work_away`); the special periods
    (unless given, or when a job moved the place to another area); the candidate
    permits, only where a permit may be required."""
    if user.welder_id is None:
        raise ValueError("only a welder account scans to unlock")
    repo = ScanRepository(session)
    welder_id = user.welder_id
    today = local_today(now)
    if place is None or place.machine.id != machine.id:
        place, periods = load_machine_place(repo, machine), None
    held, employed, open_sessions = (
        welder_rows if welder_rows is not None else repo.welder_facts(welder_id, machine.id)
    )

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
    work = (
        mobile_work(session, welder_id, machine, now)
        if may_work_away(employments, place.enterprise, now)
        else MobileWork()
    )
    if work.client is not None:
        place_of_work = place_facts(work.client)
    elif work.area_path is not None:
        place_of_work = replace(place_of_work, area_path=work.area_path)
    if place_of_work.area_path != place.enterprise.area_path:
        periods = None  # those read with the machine are over its home's area
    periods_here = (
        periods if periods is not None else special_periods(repo, place_of_work.area_path, now)
    )
    request = ScanRequest(
        welder=WelderFacts(id=welder_id, active=user.is_active),
        machine=machine_facts,
        place=place_of_work,
        now=now,
        certificates=certificates,
        employments=employments,
        mobile_jobs=work.jobs,
        special_periods=periods_here,
        permits=candidate_permits(session, welder_id, machine, now, chip_position(state))
        if permit_may_be_required(place_of_work, machine.process, periods_here, permit_rule)
        else (),
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
