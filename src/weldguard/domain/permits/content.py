"""Whether a permit's content may be submitted and approved.

Every failing rule is reported, each with its code. The certificate rule is the
unlock decision's table (:data:`~weldguard.domain.authorization.CERTIFICATE_FIT`,
read through :func:`~weldguard.domain.authorization.accepted_certificates` and
:func:`~weldguard.domain.authorization.work_context`): a welder named on a permit
holds, for the machines on it, a certificate whose kind and item fit the process
at this place, in a status that allows work (pending verification only when an
enterprise of the permit confirmed it). The scan re-checks it at every unlock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from weldguard.domain.authorization import (
    PROCESS_LABELS,
    HeldCertificate,
    accepted_certificates,
    work_context,
)
from weldguard.domain.calendar import WorkCalendar
from weldguard.domain.certificates import CertificateKind
from weldguard.domain.permits.crowded import check_crowded_window
from weldguard.domain.permits.levels import assess_level, check_window
from weldguard.domain.permits.model import PermitContent, PermitLevel, PermitWelder
from weldguard.domain.permits.policy import (
    DEFAULT_PERMIT_POLICY,
    STANDARD_SAFETY_MEASURES,
    PermitPolicy,
    mandatory_measure_codes,
)
from weldguard.domain.permits.reasons import PermitReason, PermitReasonCode, duration_text

__all__ = [
    "check_certificates",
    "check_content",
    "check_machines",
    "check_measures",
    "known_process",
    "process_label",
]

R = PermitReasonCode


def known_process(process: str) -> bool:
    return process in PROCESS_LABELS


def process_label(process: str) -> str:
    return PROCESS_LABELS.get(process, process)


def _missing_fields(content: PermitContent) -> list[PermitReason]:
    missing = []
    if not content.place_description.strip():
        missing.append("动火地点")
    if not content.methods:
        missing.append("动火方式")
    if not content.welders:
        missing.append("动火人")
    if not content.machines and any(m.processes for m in content.methods):
        missing.append("焊机")
    if not any(h.strip() for h in content.hazards):
        missing.append("危害辨识")
    if not content.measures:
        missing.append("安全措施")
    if not missing:
        return []
    return [PermitReason(R.MISSING_FIELD, "作业票缺少：" + "、".join(missing))]


def check_machines(content: PermitContent) -> tuple[PermitReason, ...]:
    """Each machine once; its process known and allowed by the permit's methods."""
    reasons = []
    counts = Counter(m.machine_id for m in content.machines)
    duplicated = [m.label for m in content.machines if counts[m.machine_id] > 1]
    if duplicated:
        reasons.append(
            PermitReason(
                R.MACHINE_DUPLICATED,
                "同一焊机重复登记：" + "、".join(dict.fromkeys(duplicated)),
            )
        )
    unknown = [m for m in content.machines if not known_process(m.process)]
    if unknown:
        reasons.append(
            PermitReason(
                R.UNKNOWN_PROCESS,
                "焊机登记的焊接工艺无法识别："
                + "、".join(f"{m.label}（{m.process}）" for m in unknown)
                + "，请企业更正焊机信息",
            )
        )
    allowed = frozenset().union(*(method.processes for method in content.methods))
    mismatched = [
        m for m in content.machines if known_process(m.process) and m.process not in allowed
    ]
    if mismatched:
        methods = "、".join(sorted(method.label for method in content.methods)) or "未填写"
        reasons.append(
            PermitReason(
                R.METHOD_MISMATCH,
                f"作业票的动火方式为{methods}，以下焊机的工艺不在其内："
                + "、".join(f"{m.label}（{process_label(m.process)}）" for m in mismatched),
            )
        )
    return tuple(reasons)


def _fits(
    own: Sequence[HeldCertificate],
    accepted: set[tuple[CertificateKind, str]],
    confirmers: frozenset[int],
) -> tuple[list[HeldCertificate], list[HeldCertificate]]:
    """(fitting, fitting and usable) certificates among ``own``."""
    fitting = [c for c in own if (c.kind, c.item) in accepted]
    usable = [
        c for c in fitting if c.status.allows_work(c.confirmed_by_enterprise_id in confirmers)
    ]
    return fitting, usable


def _welder_certificate_reasons(
    welder: PermitWelder,
    content: PermitContent,
    processes: Sequence[str],
    confirmers: frozenset[int],
    policy: PermitPolicy,
) -> list[PermitReason]:
    if not welder.certificates:
        return [
            PermitReason(R.CERT_MISSING, f"动火人{welder.name}未登记焊接作业证书，无证不得动火")
        ]
    reasons = []
    foreign = [c for c in welder.certificates if c.holder_welder_id != welder.welder_id]
    if foreign:
        numbers = "、".join(f"{c.label} {c.number_masked}".rstrip() for c in foreign)
        reasons.append(
            PermitReason(
                R.CERT_HOLDER_MISMATCH, f"动火人{welder.name}登记的证书不是本人的：{numbers}"
            )
        )
    own = [c for c in welder.certificates if c.holder_welder_id == welder.welder_id]
    if not own:
        if not foreign:
            reasons.append(PermitReason(R.CERT_MISSING, f"动火人{welder.name}没有本人的证书"))
        return reasons
    if not processes:
        return reasons

    context = work_context(content.place)
    not_fit: list[str] = []
    not_usable: dict[int, HeldCertificate] = {}
    ok = 0
    for process in processes:
        pairs = accepted_certificates(context, process, policy.certificate_fit)
        fitting, usable = _fits(own, set(pairs), confirmers)
        if usable:
            ok += 1
        elif fitting:
            not_usable.update((c.id, c) for c in fitting)
        else:
            accepted_text = "或".join(f"{kind.label}（{item}）" for kind, item in pairs) or "无"
            not_fit.append(f"{process_label(process)}须持{accepted_text}")
    enough = ok == len(processes) if policy.each_welder_fits_every_machine else ok > 0
    if enough:
        return reasons
    if not_fit:
        held = "、".join(c.label for c in own)
        reasons.append(
            PermitReason(
                R.CERT_NOT_FIT,
                f"动火人{welder.name}的证书与作业不符：在{context.label}"
                + "；".join(not_fit)
                + f"；其持有{held}",
            )
        )
    if not_usable:
        reasons.append(
            PermitReason(
                R.CERT_NOT_USABLE,
                f"动火人{welder.name}的证书不可用："
                + "、".join(
                    f"{c.label}{c.status.label}" for c in sorted(not_usable.values(), key=_by_id)
                ),
            )
        )
    return reasons


def _by_id(cert: HeldCertificate) -> int:
    return cert.id


def check_certificates(
    content: PermitContent, policy: PermitPolicy = DEFAULT_PERMIT_POLICY
) -> tuple[PermitReason, ...]:
    """Each welder once, holding fitting, usable certificates of their own for the
    machines on the permit (:attr:`PermitPolicy.each_welder_fits_every_machine`)."""
    reasons = []
    counts = Counter(w.welder_id for w in content.welders)
    duplicated = [w.name for w in content.welders if counts[w.welder_id] > 1]
    if duplicated:
        reasons.append(
            PermitReason(
                R.WELDER_DUPLICATED, "同一动火人重复登记：" + "、".join(dict.fromkeys(duplicated))
            )
        )
    processes = sorted({m.process for m in content.machines if known_process(m.process)})
    confirmers = frozenset({content.enterprise_id} | {m.enterprise_id for m in content.machines})
    seen: set[int] = set()
    for welder in content.welders:
        if welder.welder_id in seen:
            continue
        seen.add(welder.welder_id)
        reasons.extend(_welder_certificate_reasons(welder, content, processes, confirmers, policy))
    return tuple(reasons)


def check_measures(
    content: PermitContent, level: PermitLevel | None = None
) -> tuple[PermitReason, ...]:
    """The mandatory standard measures for the methods and ``level`` (default: the
    permit's) are on the permit and applicable."""
    applicable = {m.code for m in content.measures if m.applicable}
    texts = {t.code: t.text for t in STANDARD_SAFETY_MEASURES}
    mandatory = mandatory_measure_codes(content.methods, level or content.level)
    missing = [code for code in mandatory if code not in applicable]
    if not missing:
        return ()
    return (
        PermitReason(
            R.MEASURE_MISSING,
            "以下安全措施必须落实，不得缺项或标为不涉及：" + "；".join(texts[c] for c in missing),
        ),
    )


def _fire_watch_reasons(content: PermitContent, policy: PermitPolicy) -> list[PermitReason]:
    reasons = []
    watch = content.fire_watch
    if not watch.trained:
        reasons.append(
            PermitReason(
                R.FIRE_WATCH_NOT_TRAINED,
                f"监护人{watch.person.name}未经培训，监护人须经培训并佩戴明显标识",
            )
        )
    as_welder = watch.person.welder_id is not None and watch.person.welder_id in content.welder_ids
    if as_welder or watch.person.same_as(content.lead):
        role = "动火人" if as_welder else "动火作业负责人"
        reasons.append(
            PermitReason(
                R.FIRE_WATCH_CONFLICT,
                f"监护人{watch.person.name}同时是{role}；监护人须专职监护，不得兼任",
            )
        )
    interval = content.check_in_interval
    if not policy.min_check_in_interval <= interval <= policy.max_check_in_interval:
        reasons.append(
            PermitReason(
                R.CHECK_IN_INTERVAL_INVALID,
                f"监护签到间隔应在 {duration_text(policy.min_check_in_interval)} 至 "
                f"{duration_text(policy.max_check_in_interval)} 之间，填写的是 "
                f"{duration_text(interval)}",
            )
        )
    return reasons


def check_content(
    content: PermitContent,
    calendar: WorkCalendar,
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> tuple[PermitReason, ...]:
    """Every rule on the content, at submission and again at approval."""
    reasons = _missing_fields(content)
    assessment = assess_level(
        content.base_level, content.starts_at, content.ends_at, calendar, policy
    )
    managed = content.level
    if content.level.rank < assessment.level.rank:
        managed = assessment.level
        if assessment.raised:
            why = (
                f"{'；'.join(assessment.because)}，{content.base_level.label}动火须升级为"
                f"{assessment.level.label}管理"
            )
        else:
            why = f"作业票级别不得低于动火点的级别{content.base_level.label}"
        reasons.append(
            PermitReason(R.LEVEL_NOT_RAISED, f"{why}，作业票填写的是{content.level.label}")
        )
    reasons.extend(check_window(content.starts_at, content.ends_at, managed, policy))
    reasons.extend(check_machines(content))
    reasons.extend(check_certificates(content, policy))
    reasons.extend(_fire_watch_reasons(content, policy))
    reasons.extend(check_measures(content, managed))
    reasons.extend(check_crowded_window(content, policy))
    return tuple(reasons)
