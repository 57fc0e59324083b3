"""Labels on the web: single labels and sheets within the viewer's scope (404
outside it, as for every record), and the page a scanned label opens."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import ADMIN_SCOPE, NOW, World
from weldguard.machine.service import MachineService
from weldguard.unlock.labels import REJECTED_SCANS, LabelSigner, RejectReason

SignIn = Callable[[str], TestClient]
INVALID = "标签无效"
ADVICE = "可能是伪造或损坏的二维码，请联系企业安全管理员"


def _urls(world: World, key: str) -> list[str]:
    machine_id = world.machines[key].id
    return [
        f"/machines/{machine_id}/label.svg",
        f"/machines/{machine_id}/label.png",
        f"/enterprises/{world.enterprises[key].id}/labels.pdf",
    ]


@pytest.mark.parametrize(
    ("persona", "visible", "hidden"),
    [
        ("reg_changning", "A", "Z"),
        ("reg_zhengzhou", "Z", "A"),
        ("reg_huayang", "A", "B"),
        ("reg_changning_zj", "B", "A"),  # 住建 sees construction sites only
        ("insp_xinjing", "B", "A"),
        ("ent_a", "A", "B"),
        ("safety_b", "B", "C"),
        ("admin", "Z", None),
    ],
)
def test_labels_follow_the_scope(
    sign_in: SignIn, world: World, persona: str, visible: str, hidden: str | None
) -> None:
    client = sign_in(persona)
    svg, png, pdf = (client.get(url) for url in _urls(world, visible))
    assert svg.status_code == 200, svg.text
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert world.machines[visible].code in svg.text
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"
    if hidden is not None:
        for url in _urls(world, hidden):
            response = client.get(url)
            assert response.status_code == 404, url
            assert "不在您的管辖范围内" in response.text


def test_a_missing_machine_is_the_same_404(sign_in: SignIn, world: World) -> None:
    client = sign_in("admin")
    assert client.get("/machines/999999/label.svg").status_code == 404
    assert client.get("/enterprises/999999/labels.pdf").status_code == 404


def test_signed_out_label_requests_go_to_sign_in(client: TestClient, world: World) -> None:
    response = client.get(_urls(world, "A")[0], follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


def test_downloads_and_sheet_layouts(sign_in: SignIn, world: World) -> None:
    client = sign_in("ent_a")
    svg = client.get(f"/machines/{world.machines['A'].id}/label.svg?download=1")
    assert svg.headers["content-disposition"].startswith("attachment;")
    assert "default-src 'none'" in svg.headers["content-security-policy"]
    pdf = client.get(f"/enterprises/{world.enterprises['A'].id}/labels.pdf?layout=3x8")
    assert pdf.status_code == 200 and pdf.headers["content-disposition"].startswith("inline;")
    assert world.enterprises["A"].credit_code in pdf.headers["content-disposition"]


def test_a_retired_machine_gets_no_label(sign_in: SignIn, world: World, db: Session) -> None:
    MachineService(db).retire(ADMIN_SCOPE, world.machines["A"].id, NOW)
    db.commit()
    client = sign_in("ent_a")
    assert client.get(f"/machines/{world.machines['A'].id}/label.svg").status_code == 409
    response = client.get(f"/enterprises/{world.enterprises['A'].id}/labels.pdf")
    assert response.status_code == 409
    assert "均已报废" in response.text


# --- the scanned label ----------------------------------------------------------------
def test_a_valid_label_goes_on_to_the_scan_page(
    client: TestClient, world: World, signer: LabelSigner
) -> None:
    code = world.machines["A"].code
    sig = signer.sign(code)
    response = client.get(f"/s/{code}.{sig}", follow_redirects=False)  # no sign-in needed
    assert response.status_code == 303
    assert response.headers["location"] == f"/scan/{code}?sig={sig}"
    assert response.headers["cache-control"] == "no-store"


def _assert_invalid(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 404, path
    assert INVALID in response.text and ADVICE in response.text
    assert response.headers["content-type"].startswith("text/html")


def test_forged_tampered_and_unknown_labels_open_the_warning(
    client: TestClient,
    world: World,
    signer: LabelSigner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    code = world.machines["A"].code
    sig = signer.sign(code)
    tampered = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    forged = LabelSigner("someone-elses-secret", "http://127.0.0.1:8000").sign(code)
    unknown = "WGZZZZZZZZ"
    before = REJECTED_SCANS.counts()
    caplog.set_level(logging.WARNING, logger="weldguard.unlock.labels")
    _assert_invalid(client, f"/s/{code}.{tampered}")
    _assert_invalid(client, f"/s/{code}.{forged}")
    _assert_invalid(client, f"/s/{unknown}.{signer.sign(unknown)}")  # ours, but no such machine
    _assert_invalid(client, "/s/not-a-label")
    _assert_invalid(client, f"/s/{code}.9{sig[1:]}")
    after = REJECTED_SCANS.counts()

    def added(reason: RejectReason) -> int:
        return after.get(reason, 0) - before.get(reason, 0)

    assert added(RejectReason.BAD_SIGNATURE) >= 2
    assert added(RejectReason.UNKNOWN_MACHINE) >= 1
    assert added(RejectReason.MALFORMED) >= 1
    assert added(RejectReason.UNKNOWN_VERSION) >= 1
    logged = "\n".join(r.getMessage() for r in caplog.records if "rejected label" in r.getMessage())
    assert "reason=bad_signature" in logged and f"code={code}" in logged
    for secret_part in (tampered, forged, sig):
        assert secret_part not in logged  # no signature in the log


def test_rejected_labels_are_kept_as_scan_records(
    client: TestClient, world: World, signer: LabelSigner, db: Session
) -> None:
    from sqlalchemy import select

    from weldguard.unlock.models import ScanOutcome, ScanRecord

    code = world.machines["A"].code
    forged = LabelSigner("someone-elses-secret", "http://127.0.0.1:8000").sign(code)
    _assert_invalid(client, f"/s/{code}.{forged}")
    _assert_invalid(client, "/s/not-a-label")
    records = db.scalars(select(ScanRecord).order_by(ScanRecord.id)).all()
    assert [r.outcome for r in records] == [ScanOutcome.INVALID_LABEL.value] * 2
    assert records[0].machine_code == code
    # Arbitrary input is never stored as a machine code, and no signature anywhere.
    assert records[1].machine_code == ""
    assert all(forged not in str(r.reasons) for r in records)


def test_machine_and_enterprise_pages_link_their_labels(sign_in: SignIn, world: World) -> None:
    client = sign_in("ent_a")
    machine = world.machines["A"]
    page = client.get(f"/machines/{machine.id}").text
    assert f"/machines/{machine.id}/label.svg" in page
    assert f"/machines/{machine.id}/label.png?download=1" in page
    enterprise = client.get(f"/enterprises/{world.enterprises['A'].id}").text
    assert f"/enterprises/{world.enterprises['A'].id}/labels.pdf" in enterprise
