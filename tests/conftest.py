from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from service.app import create_app
from service.domain.instruments import Instrument, load_catalog
from service.settings import PROJECT_ROOT, Settings

INSTRUMENTS_DIR = PROJECT_ROOT / "schemas" / "instruments"


@pytest.fixture(scope="session")
def catalog() -> dict[str, Instrument]:
    return load_catalog(INSTRUMENTS_DIR)


def make_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def app() -> Litestar:
    return create_app(make_settings())


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def licensed_client() -> Iterator[TestClient[Litestar]]:
    app = create_app(make_settings(licensed_instruments=frozenset({"promis"})))
    with TestClient(app) as test_client:
        yield test_client


__all__ = ["INSTRUMENTS_DIR", "Path", "make_settings"]
