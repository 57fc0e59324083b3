"""Fixtures of the unlock tests: cookie sign-in for pages and the command line
against the test database."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.web.conftest import login
from weldguard.config import Settings, get_settings
from weldguard.unlock.labels import LabelSigner, signer_for


@pytest.fixture
def signer(settings: Settings) -> LabelSigner:
    return signer_for(settings)


@pytest.fixture
def sign_in(client: TestClient) -> Callable[[str], TestClient]:
    def do(username: str) -> TestClient:
        response = login(client, username)
        assert response.status_code == 303, response.text
        return client

    return do


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("WELDGUARD_DATABASE_URL", settings.resolved_database_url())
    monkeypatch.setenv("WELDGUARD_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("WELDGUARD_SECRET_KEY", settings.resolved_secret_key())
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()
