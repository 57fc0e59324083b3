"""The domain permit's recorded state as JSON and back, and its content from the
header rows. No rule lives here: the state is what ``transition`` returned when the
event was applied (see ``permit/models.py`` for why it is stored, not replayed)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from weldguard.domain.authorization import HeldCertificate, PlaceFacts
from weldguard.domain.certificates import CertificateKind, CertificateStatus
from weldguard.domain.geo import GeoPoint
from weldguard.domain.permits import (
    Approval,
    ApproverRole,
    CrowdedPlaceException,
    FireWatch,
    FireWatchCheckIn,
    GasSample,
    HotSpot,
    HotWorkMethod,
    MeasureConfirmation,
    NoticeConfirmation,
    NoticeLocation,
    Pause,
    Permit,
    PermitContent,
    PermitLevel,
    PermitMachine,
    PermitStatus,
    PermitWelder,
    Person,
    SafetyMeasure,
    StepRecord,
    SuspendCause,
    Suspension,
)
from weldguard.permit import models as m
from weldguard.welder.models import Certificate

Json = dict[str, Any]


# --- small values ---------------------------------------------------------------------
def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _must_dt(value: Any) -> datetime:
    parsed = _parse_dt(value)
    assert parsed is not None
    return parsed


def person_json(person: Person | None) -> Json | None:
    if person is None:
        return None
    return {"name": person.name, "user_id": person.user_id, "welder_id": person.welder_id}


def person_of(data: Any) -> Person | None:
    if data is None:
        return None
    return Person(str(data["name"]), data.get("user_id"), data.get("welder_id"))


def _must_person(data: Any) -> Person:
    person = person_of(data)
    assert person is not None
    return person


def _point_json(point: GeoPoint | None) -> list[float] | None:
    return [point.latitude, point.longitude] if point is not None else None


def _point_of(data: Any) -> GeoPoint | None:
    return GeoPoint(float(data[0]), float(data[1])) if data is not None else None


def _step_json(step: StepRecord | None) -> Json | None:
    if step is None:
        return None
    return {
        "at": _dt(step.at),
        "by": person_json(step.by),
        "photos": list(step.photos),
        "note": step.note,
    }


def _step_of(data: Any) -> StepRecord | None:
    if data is None:
        return None
    return StepRecord(
        _must_dt(data["at"]), person_of(data["by"]), tuple(data["photos"]), data["note"]
    )


# --- the recorded state ---------------------------------------------------------------
def state_json(permit: Permit) -> Json:
    """Everything of the domain permit except its content (which is the header's)."""
    approval = permit.approval
    return {
        "status": permit.status.value,
        "submitted": _step_json(permit.submitted),
        "site_survey": _step_json(permit.site_survey),
        "risk_confirmation": _step_json(permit.risk_confirmation),
        "approval": None
        if approval is None
        else {
            "at": _dt(approval.at),
            "by": person_json(approval.by),
            "role": approval.role.value,
            "photos": list(approval.photos),
            "note": approval.note,
        },
        "rejections": [_step_json(r) for r in permit.rejections],
        "clearance": _step_json(permit.clearance),
        "started": _step_json(permit.started),
        "pauses": [
            {
                "since": _dt(p.since),
                "by": person_json(p.by),
                "reason": p.reason,
                "until": _dt(p.until),
            }
            for p in permit.pauses
        ],
        "suspensions": [
            {
                "since": _dt(s.since),
                "cause": s.cause.value,
                "by": person_json(s.by),
                "note": s.note,
                "lifted": _step_json(s.lifted),
            }
            for s in permit.suspensions
        ],
        "stopped_since": _dt(permit.stopped_since),
        "work_ended": _step_json(permit.work_ended),
        "ended_by_expiry": permit.ended_by_expiry,
        "disposal": _step_json(permit.disposal),
        "closure": _step_json(permit.closure),
        "cancellation": _step_json(permit.cancellation),
        "expiry": _step_json(permit.expiry),
        "gas_samples": [
            {
                "taken_at": _dt(g.taken_at),
                "gas": g.gas,
                "lel_percent": g.lel_percent,
                "reading_percent": g.reading_percent,
                "analyst": person_json(g.analyst),
                "position": _point_json(g.position),
            }
            for g in permit.gas_samples
        ],
        "check_ins": [
            {
                "at": _dt(c.at),
                "by": person_json(c.by),
                "position": _point_json(c.position),
                "photos": list(c.photos),
            }
            for c in permit.check_ins
        ],
        "measure_confirmations": [
            {"code": c.code, "by": person_json(c.by), "at": _dt(c.at), "photos": list(c.photos)}
            for c in permit.measure_confirmations
        ],
        "notices": [
            {
                "location": n.location.value,
                "by": person_json(n.by),
                "at": _dt(n.at),
                "photos": list(n.photos),
            }
            for n in permit.notices
        ],
    }


def permit_of(content: PermitContent, state: Json) -> Permit:
    """The domain permit: ``content`` with the recorded ``state``."""
    approval = state["approval"]
    return Permit(
        content=content,
        status=PermitStatus(state["status"]),
        submitted=_step_of(state["submitted"]),
        site_survey=_step_of(state["site_survey"]),
        risk_confirmation=_step_of(state["risk_confirmation"]),
        approval=None
        if approval is None
        else Approval(
            _must_dt(approval["at"]),
            _must_person(approval["by"]),
            ApproverRole(approval["role"]),
            tuple(approval["photos"]),
            approval["note"],
        ),
        rejections=tuple(s for r in state["rejections"] if (s := _step_of(r)) is not None),
        clearance=_step_of(state["clearance"]),
        started=_step_of(state["started"]),
        pauses=tuple(
            Pause(_must_dt(p["since"]), person_of(p["by"]), p["reason"], _parse_dt(p["until"]))
            for p in state["pauses"]
        ),
        suspensions=tuple(
            Suspension(
                _must_dt(s["since"]),
                SuspendCause(s["cause"]),
                person_of(s["by"]),
                s["note"],
                _step_of(s["lifted"]),
            )
            for s in state["suspensions"]
        ),
        stopped_since=_parse_dt(state["stopped_since"]),
        work_ended=_step_of(state["work_ended"]),
        ended_by_expiry=bool(state["ended_by_expiry"]),
        disposal=_step_of(state["disposal"]),
        closure=_step_of(state["closure"]),
        cancellation=_step_of(state["cancellation"]),
        expiry=_step_of(state["expiry"]),
        gas_samples=tuple(
            GasSample(
                _must_dt(g["taken_at"]),
                g["gas"],
                float(g["lel_percent"]),
                float(g["reading_percent"]),
                _must_person(g["analyst"]),
                _point_of(g["position"]),
            )
            for g in state["gas_samples"]
        ),
        check_ins=tuple(
            FireWatchCheckIn(
                _must_dt(c["at"]),
                _must_person(c["by"]),
                _point_of(c["position"]),
                tuple(c["photos"]),
            )
            for c in state["check_ins"]
        ),
        measure_confirmations=tuple(
            MeasureConfirmation(
                c["code"], _must_person(c["by"]), _must_dt(c["at"]), tuple(c["photos"])
            )
            for c in state["measure_confirmations"]
        ),
        notices=tuple(
            NoticeConfirmation(
                NoticeLocation(n["location"]),
                _must_person(n["by"]),
                _must_dt(n["at"]),
                tuple(n["photos"]),
            )
            for n in state["notices"]
        ),
    )


# --- the content ----------------------------------------------------------------------
def hot_spot_of(row: m.Permit) -> HotSpot:
    return hot_spot_from(
        row.hot_spot_lat, row.hot_spot_lon, row.hot_spot_radius_m, row.hot_spot_polygon
    )


def hot_spot_from(
    lat: float, lon: float, radius_m: float, polygon: Sequence[Sequence[float]] | None
) -> HotSpot:
    points = tuple(GeoPoint(float(p[0]), float(p[1])) for p in polygon or ())
    return HotSpot(GeoPoint(lat, lon), radius_m, points)


def content_of(
    row: m.Permit,
    place: PlaceFacts,
    welders: Sequence[PermitWelder],
    machines: Sequence[PermitMachine],
) -> PermitContent:
    """The domain content of a header. ``place``: the enterprise's facts (with the
    permit's special-equipment declaration); ``welders`` with the certificates
    written on the permit, their status for today."""
    watch = row.fire_watch
    return PermitContent(
        id=row.id,
        number=row.number,
        place=place,
        site_id=row.site_id,
        place_description=row.place_description,
        hot_spot=hot_spot_of(row),
        methods=frozenset(HotWorkMethod(x) for x in row.methods),
        base_level=PermitLevel(row.base_level),
        level=PermitLevel(row.level),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        welders=tuple(welders),
        machines=tuple(machines),
        lead=_must_person(row.lead),
        fire_watch=FireWatch(_must_person(watch), bool(watch.get("trained", False))),
        hazards=tuple(row.hazards),
        measures=tuple(
            SafetyMeasure(x["code"], x["text"], bool(x.get("applicable", True)))
            for x in row.measures
        ),
        linked_permits=tuple(row.linked_permits),
        gas_analysis_required=row.gas_analysis_required,
        check_in_interval=timedelta(minutes=row.check_in_interval_min),
        crowded_exception=crowded_exception_of(row.crowded_exception),
    )


def crowded_exception_of(data: Any) -> CrowdedPlaceException | None:
    if data is None:
        return None
    return CrowdedPlaceException(
        _step_of(data.get("risk_assessment")), _step_of(data.get("fire_separation"))
    )


def crowded_exception_json(exception: CrowdedPlaceException | None) -> Json | None:
    if exception is None:
        return None
    return {
        "risk_assessment": _step_json(exception.risk_assessment),
        "fire_separation": _step_json(exception.fire_separation),
    }


def held_certificate(cert: Certificate, status: CertificateStatus) -> HeldCertificate:
    """A certificate row as the content checks read it (``status`` for today)."""
    return HeldCertificate(
        id=cert.id,
        holder_welder_id=cert.welder_id,
        kind=CertificateKind(cert.kind),
        item=cert.item,
        status=status,
        expiry_date=cert.expiry_date,
        review_due_date=cert.review_due_date,
        confirmed_by_enterprise_id=cert.confirmed_by_enterprise_id,
        number_masked=cert.number_masked,
    )
