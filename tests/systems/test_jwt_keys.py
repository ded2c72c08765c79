"""The hand-signing helper (``python -m tests.jwt_keys``): its private key stays private."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import jwt_keys


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (022), which leaves new files readable by everyone."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("open_umask")
def test_keygen_writes_the_private_key_readable_by_its_owner_only(tmp_path: Path) -> None:
    assert jwt_keys._main(["keygen", str(tmp_path)]) == 0

    assert mode(tmp_path / "private.json") == 0o600
    assert "d" in json.loads((tmp_path / "private.json").read_text())
    assert "d" not in json.loads((tmp_path / "jwks.json").read_text())["keys"][0]


@pytest.mark.usefixtures("open_umask")
def test_keygen_over_an_old_readable_key_makes_it_private_too(tmp_path: Path) -> None:
    old = tmp_path / "private.json"
    old.write_text("{}")
    old.chmod(0o644)

    assert jwt_keys._main(["keygen", str(tmp_path)]) == 0

    assert mode(old) == 0o600
    assert "d" in json.loads(old.read_text())
