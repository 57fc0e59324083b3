"""Fixtures of the unlock tests: cookie sign-in for pages (the web tests' own),
the brokers the unlock fast path and the session sink run against (the device
tests' own: the embedded amqtt broker and, when configured, Mosquitto), and the
command line against the test database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

# Imported fixtures: pytest registers them under these names for this folder.
from tests.device.conftest import broker  # noqa: F401
from tests.web.conftest import sign_in  # noqa: F401
from weldguard.config import Settings, get_settings
from weldguard.unlock.labels import LabelSigner, signer_for


@pytest.fixture
def signer(settings: Settings) -> LabelSigner:
    return signer_for(settings)


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("WELDGUARD_DATABASE_URL", settings.resolved_database_url())
    monkeypatch.setenv("WELDGUARD_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("WELDGUARD_SECRET_KEY", settings.resolved_secret_key())
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()
