"""The printed hot-work permit (PDF with a QR code) and the live view the QR opens.

pypdf is not installed: :func:`pdf_text` reads the page streams itself. reportlab
writes them ASCII85 + Flate encoded, the text in literal strings, the CID font's
in UCS-2 (UTF-16BE) and every text of the form is set in that font."""

from __future__ import annotations

import base64
import re
import zlib
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.factories import NOW, World, id_number
from tests.permit.permits import People, Steps, create, people, scope_of
from weldguard.config import Settings
from weldguard.deps import get_clock
from weldguard.permit.document import (
    PermitLinkSigner,
    link_signer_for,
    live_qr,
    load_sheet,
    permit_pdf,
)
from weldguard.unlock.labels import signer_for
from weldguard.welder.models import Certificate

STREAM = re.compile(rb"stream\r?\n(.*?)endstream", re.S)
LITERAL = re.compile(rb"\((?:[^()\\]|\\.)*\)\s*Tj", re.S)
ESCAPE = re.compile(rb"\\([0-7]{1,3}|.)", re.S)
SIMPLE_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _unescape(literal: bytes) -> bytes:
    def one(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        if code[:1].isdigit():
            return bytes([int(code, 8)])
        return SIMPLE_ESCAPES.get(code, code)

    return ESCAPE.sub(one, literal)


def pdf_text(pdf: bytes) -> str:
    """Every string shown on the pages, one per line."""
    out = []
    for data in _streams(pdf):
        for shown in LITERAL.finditer(data):
            literal = shown.group(0)
            body = literal[1 : literal.rindex(b")")]
            out.append(_unescape(body).decode("utf-16-be", errors="replace"))
    return "\n".join(out)


RECT = re.compile(rb"([-\d.]+) ([-\d.]+) ([-\d.]+) ([-\d.]+) re")


def _streams(pdf: bytes) -> list[bytes]:
    out = []
    for match in STREAM.finditer(pdf):
        raw = match.group(1).strip()
        try:
            out.append(zlib.decompress(base64.a85decode(raw.removesuffix(b"~>"))))
        except (ValueError, zlib.error):
            continue
    return out


def pdf_qr_matrix(pdf: bytes) -> list[list[bool]]:
    """The QR code as painted on the first page: its modules are the rectangles one
    module high (table backgrounds are taller), read back into rows and columns."""
    rects = [tuple(float(v) for v in r) for r in RECT.findall(_streams(pdf)[0])]
    heights = [round(h, 3) for *_, h in rects if h > 0]
    module = min(heights, key=lambda h: (-heights.count(h), h))
    runs = [r for r in rects if round(r[3], 3) == module]
    left, top = min(r[0] for r in runs), max(r[1] for r in runs)
    size = round((max(r[0] + r[2] for r in runs) - left) / module)
    matrix = [[False] * size for _ in range(size)]
    for x, y, w, _h in runs:
        row, col = round((top - y) / module), round((x - left) / module)
        for c in range(col, col + round(w / module)):
            matrix[row][c] = True
    return matrix


@pytest.fixture
def p(db: Session, settings: Settings, world: World) -> People:
    return people(db, settings, world)


@pytest.fixture
def started(db: Session, settings: Settings, world: World, p: People) -> Steps:
    steps = create(db, settings, world, p)
    steps.to_started()
    return steps


def number_of(db: Session, steps: Steps) -> str:
    from weldguard.permit.models import Permit

    row = db.get(Permit, steps.id)
    assert row is not None
    return row.number


def live_url(settings: Settings, db: Session, steps: Steps) -> str:
    """The path of the QR code's URL, as a phone opens it on this test server."""
    url = link_signer_for(settings).live_url(steps.id, number_of(db, steps))
    assert url.startswith(settings.public_base_url)
    return url[len(settings.public_base_url) :]


def at(client: TestClient, moment: object) -> None:
    client.app.dependency_overrides[get_clock] = lambda: moment  # type: ignore[attr-defined]


# --- the PDF ----------------------------------------------------------------------------
def test_pdf_for_an_in_scope_user(
    client: TestClient,
    sign_in: Callable[[str], TestClient],
    db: Session,
    world: World,
    started: Steps,
) -> None:
    number = number_of(db, started)
    response = sign_in("safety_b").get(f"/permits/{started.id}/permit.pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["cache-control"] == "no-store"
    disposition = response.headers["content-disposition"]
    assert number in disposition and number in unquote(disposition)
    assert response.content.startswith(b"%PDF-")
    assert re.search(rb"/Count [1-9]", response.content)

    text = pdf_text(response.content)
    assert "动火安全作业票" in text
    assert number in text
    assert world.enterprises["B"].name in text
    assert "3号楼钢结构焊接" in text
    assert "高处焊接火花飞溅" in text
    # The five steps, each signed in this test world.
    for step in ("审批", "清理", "动火", "监护", "处置"):
        assert step in text
    assert "动火中" in text  # the status now
    # A rest day raised 二级 to 一级: the reason is on the form.
    assert "公休日" in text
    # Certificate numbers masked, never the ID number they contain.
    cert = db.scalars(
        select(Certificate).where(Certificate.welder_id == world.welders["B"].id)
    ).first()
    assert cert is not None and cert.number_masked in text
    full = id_number(2)
    assert full not in text and full.encode() not in response.content


def test_pdf_is_deterministic_and_its_qr_holds_the_signed_live_url(
    db: Session, settings: Settings, p: People, started: Steps
) -> None:
    scope = scope_of(db, settings, p.applicant)
    sheet = load_sheet(db, scope, started.id, NOW)
    signer = link_signer_for(settings)
    url = signer.live_url(started.id, sheet.number)
    assert url.startswith(f"{settings.public_base_url}/permits/{started.id}/live?sig=1")
    sig = url.rsplit("=", 1)[1]
    assert signer.verify(started.id, sheet.number, sig)

    first = permit_pdf(sheet, url)
    assert first == permit_pdf(sheet, url)
    expected = [[bool(cell) for cell in row] for row in live_qr(url).matrix_iter(border=0)]
    assert pdf_qr_matrix(first) == expected
    # The QR code is drawn from the URL: another URL, another drawing.
    assert first != permit_pdf(sheet, url + "X")


def test_pdf_outside_scope_is_404(
    client: TestClient, sign_in: Callable[[str], TestClient], started: Steps
) -> None:
    # Another enterprise, another street of the district, another city.
    for username in ("ent_a", "reg_huayang", "reg_zhengzhou"):
        response = sign_in(username).get(f"/permits/{started.id}/permit.pdf")
        assert response.status_code == 404, username
    assert sign_in("reg_changning").get(f"/permits/{started.id}/permit.pdf").status_code == 200


# --- the signature ----------------------------------------------------------------------
def test_signatures_are_bound_to_the_permit_and_their_own_key(settings: Settings) -> None:
    signer = PermitLinkSigner("secret-one", "https://wg.example")
    sig = signer.sign(7, "DH-20261122-0001")
    assert len(sig) == 17
    assert signer.verify(7, "DH-20261122-0001", sig)
    assert not signer.verify(8, "DH-20261122-0001", sig)
    assert not signer.verify(7, "DH-20261122-0002", sig)
    assert not signer.verify(7, "DH-20261122-0001", "2" + sig[1:])
    assert not signer.verify(7, "DH-20261122-0001", sig.lower())
    assert not signer.verify(7, "DH-20261122-0001", None)
    assert not PermitLinkSigner("secret-two", "https://wg.example").verify(
        7, "DH-20261122-0001", sig
    )
    # Not the label key: a label's signature of the same text is no permit link.
    label_sig = signer_for(settings).sign("WG00000007")
    assert not link_signer_for(settings).verify(7, "WG00000007", label_sig)


# --- the live view ----------------------------------------------------------------------
def test_live_view_with_a_valid_signature(
    client: TestClient,
    sign_in: Callable[[str], TestClient],
    db: Session,
    settings: Settings,
    world: World,
    started: Steps,
) -> None:
    path = live_url(settings, db, started)
    at(client, NOW + timedelta(minutes=10))
    response = sign_in("insp_xinjing").get(path)
    assert response.status_code == 200, response.text
    html = response.text
    assert 'data-signature="valid"' in html and "票证真实" in html
    assert "二维码无效或被篡改" not in html
    assert number_of(db, started) in html
    assert 'data-status="in_progress"' in html and "动火中" in html
    assert 'class="badge badge-ok permit-status"' in html
    assert 'data-allowed="1"' in html and "有效：可以动火" in html
    assert "焊工B" in html
    cert = db.scalars(
        select(Certificate).where(Certificate.welder_id == world.welders["B"].id)
    ).first()
    assert cert is not None and cert.number_masked in html
    assert id_number(2) not in html
    assert world.machines["B"].code in html and world.machines["B"].serial_number in html
    assert 'data-overdue="0"' in html and "按时签到" in html
    assert "本作业票无需气体分析" in html
    assert f'href="/permits/{started.id}"' in html
    assert response.headers["cache-control"] == "no-store"


def test_live_view_with_a_tampered_or_missing_signature(
    client: TestClient,
    sign_in: Callable[[str], TestClient],
    db: Session,
    settings: Settings,
    world: World,
    started: Steps,
) -> None:
    path = live_url(settings, db, started)
    base, sig = path.split("?sig=")
    tampered = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    viewer = sign_in("safety_b")
    for url in (f"{base}?sig={tampered}", base, f"{base}?sig=", f"/permits/{started.id}/live"):
        response = viewer.get(url)
        assert response.status_code == 200, url
        assert 'data-signature="invalid"' in response.text and "二维码无效或被篡改" in response.text
        assert "票证真实" not in response.text
        # Still the permit as recorded, for the viewer's scope covers it.
        assert number_of(db, started) in response.text
    # A valid signature moved to another permit does not verify there.
    other = create(db, settings, world, started.p)
    response = viewer.get(f"/permits/{other.id}/live?sig={sig}")
    assert response.status_code == 200 and 'data-signature="invalid"' in response.text


def test_live_view_needs_a_login(
    client: TestClient, db: Session, settings: Settings, started: Steps
) -> None:
    path = live_url(settings, db, started)
    client.cookies.clear()
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/login?next=")
    assert unquote(location.split("next=", 1)[1]) == path


def test_live_view_outside_scope_is_404_even_when_signed(
    client: TestClient,
    sign_in: Callable[[str], TestClient],
    db: Session,
    settings: Settings,
    started: Steps,
) -> None:
    path = live_url(settings, db, started)
    for username in ("ent_a", "reg_huayang", "reg_zhengzhou", "welder_one"):
        response = sign_in(username).get(path)
        assert response.status_code == 404, username
        assert number_of(db, started) not in response.text


def test_live_view_shows_an_overdue_check_in(
    client: TestClient,
    sign_in: Callable[[str], TestClient],
    db: Session,
    settings: Settings,
    started: Steps,
) -> None:
    path = live_url(settings, db, started)
    # The watch checked in at NOW, every 30 min is due: two hours later they are away.
    at(client, NOW + timedelta(hours=2))
    html = sign_in("reg_changning").get(path).text
    assert 'data-overdue="1"' in html and "签到已超时" in html
    assert "已超时 1 小时 30 分钟" in html
    assert 'data-allowed="0"' in html and "应立即停止动火" in html
    # Still recorded as running, coloured as stopped.
    assert 'class="badge badge-bad permit-status"' in html and "动火中" in html
    assert "未按时签到" in html  # the domain's reason


def test_live_view_shows_the_last_gas_sample(
    client: TestClient,
    sign_in: Callable[[str], TestClient],
    db: Session,
    settings: Settings,
    p: People,
    started: Steps,
) -> None:
    taken = NOW + timedelta(minutes=5)
    started.do(
        p.applicant,
        "gas_sample",
        taken,
        taken_at=taken.isoformat(),
        gas="甲烷",
        lel_percent=5.0,
        reading_percent=0.1,
    )
    path = live_url(settings, db, started)
    at(client, NOW + timedelta(minutes=10))
    html = sign_in("safety_b").get(path).text
    assert 'data-valid="1"' in html and "甲烷" in html and "合格" in html
    assert "气体分析仍然有效" in html
    # Past midnight the daily re-test is due: the domain says so, the page shows it.
    at(client, NOW + timedelta(hours=12, minutes=30))
    html = sign_in("safety_b").get(path).text
    assert 'data-valid="0"' in html and "每日复测" in html


def test_live_view_says_when_the_permit_does_not_allow_work(
    client: TestClient,
    sign_in: Callable[[str], TestClient],
    db: Session,
    settings: Settings,
    world: World,
    p: People,
    started: Steps,
) -> None:
    path = live_url(settings, db, started)
    viewer = sign_in("reg_changning")
    # Past the window: expired, whatever the recorded status.
    at(client, NOW + timedelta(hours=7))
    html = viewer.get(path).text
    assert 'data-allowed="0"' in html and "已过期" in html
    # Stopped by the person in charge.
    at(client, NOW + timedelta(minutes=10))
    started.do(p.boss, "suspend", NOW + timedelta(minutes=5), note="现场检查发现隐患")
    html = viewer.get(path).text
    assert 'data-status="suspended"' in html and "badge-bad permit-status" in html
    assert "已暂停：责令停止作业" in html and "现场检查发现隐患" in html
    # Approved for later the same day (the machine is booked until 18:00).
    later = create(
        db, settings, world, p, starts_at=NOW + timedelta(hours=7), ends_at=NOW + timedelta(hours=9)
    )
    later.to_approved()
    html = viewer.get(live_url(settings, db, later)).text
    assert 'data-status="approved"' in html and "未到生效时间：2026-11-22 19:00 起生效" in html
    at(client, NOW + timedelta(hours=7, minutes=5))
    html = viewer.get(live_url(settings, db, later)).text
    assert "已审批，尚未开始动火" in html
