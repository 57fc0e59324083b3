"""ID numbers are masked on screen, never echoed in errors, never logged, never
stored in clear."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.factories import World, id_number
from weldguard.welder.identity import IdentityVault

Headers = Callable[[str], dict[str, str]]


def test_register_welder_masks_and_encrypts(
    client: TestClient,
    world: World,
    as_user: Headers,
    db: Session,
    vault: IdentityVault,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    raw = id_number(55)
    response = client.post(
        "/api/v1/welders",
        json={
            "name": "李四",
            "id_number": raw,
            "phone": "13912345678",
            "enterprise_id": world.enterprises["A"].id,
        },
        headers=as_user("ent_a"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id_number_masked"] == raw[:3] + "*" * 11 + raw[-4:]
    assert raw not in response.text
    detail = client.get(f"/api/v1/welders/{body['id']}", headers=as_user("ent_a"))
    assert raw not in detail.text
    assert raw not in caplog.text
    stored = db.execute(
        text("SELECT id_number_hash, id_number_masked FROM welder WHERE id = :i"), {"i": body["id"]}
    ).one()
    assert raw not in "".join(stored)
    blob = db.execute(
        text("SELECT id_number_encrypted FROM welder WHERE id = :i"), {"i": body["id"]}
    ).scalar_one()
    assert raw.encode() not in bytes(blob)
    assert vault.decrypt(bytes(blob)) == raw


def test_bad_id_number_is_named_but_not_echoed(
    client: TestClient, world: World, as_user: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = id_number(56)
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    response = client.post(
        "/api/v1/welders",
        json={"name": "王五", "id_number": bad, "enterprise_id": world.enterprises["A"].id},
        headers=as_user("ent_a"),
    )
    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert detail["field"] == "id_number"
    assert "校验" in detail["reason"]
    assert bad not in response.text
    assert bad not in caplog.text


def test_same_id_with_another_name_is_refused(
    client: TestClient, world: World, as_user: Headers
) -> None:
    # Welder A is registered with id_number(1) under the name 焊工A.
    response = client.post(
        "/api/v1/welders",
        json={
            "name": "冒名者",
            "id_number": id_number(1),
            "enterprise_id": world.enterprises["A"].id,
        },
        headers=as_user("ent_a"),
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["reason"] == "该身份证号已登记，但姓名不一致"


def test_certificate_numbers_are_masked(client: TestClient, world: World, as_user: Headers) -> None:
    listed = client.get("/api/v1/certificates", headers=as_user("admin")).json()["items"]
    assert listed
    for n in range(1, 5):
        raw = id_number(n)
        assert all(raw not in c["number_masked"] for c in listed)
