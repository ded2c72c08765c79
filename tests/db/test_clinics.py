"""Clinics are explicit: made by ``belong clinics create`` (or on purpose with
``--create-clinic``), each with the languages its patients speak."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from service.cli import main as belong
from service.store.tables import api_clients, clinics
from tests.db.conftest import Storage

SEED = Path(__file__).resolve().parents[2] / "deploy" / "seed" / "directory.hsds.json"


# -- the CLI: clinics are made on purpose ---------------------------------------------------


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BELONG_DATABASE_URL", database_url)


def clinic_row(storage: Storage, name: str) -> Any:
    async def look(conn: Any) -> Any:
        query = sa.select(clinics).where(clinics.c.name == name)
        return (await conn.execute(query)).first()

    return storage.run(look)


def clients_of(storage: Storage, name: str) -> int:
    async def count(conn: Any) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(api_clients.join(clinics))
            .where(clinics.c.name == name)
        )
        return int((await conn.execute(query)).scalar_one())

    return storage.run(count)


@pytest.mark.usefixtures("cli")
def test_clinics_create_and_list(storage: Storage, capsys: Any) -> None:
    name = f"Clinic {uuid.uuid4()}"

    assert (
        belong(["clinics", "create", "--name", name, "--language", "en", "--language", "cy"]) == 0
    )
    created = capsys.readouterr().out
    assert name in created and "en, cy" in created
    assert clinic_row(storage, name).languages == ["en", "cy"]

    assert belong(["clinics", "list"]) == 0
    [line] = [line for line in capsys.readouterr().out.splitlines() if name in line]
    assert "en, cy" in line

    assert belong(["clinics", "create", "--name", name]) == 2  # taken
    assert "already exists" in capsys.readouterr().err
    assert belong(["clinics", "create", "--name", name, "--if-missing"]) == 0
    assert clinic_row(storage, name).languages == ["en", "cy"]  # left as it was


@pytest.mark.usefixtures("cli")
def test_a_new_clinic_speaks_english_unless_told(storage: Storage, capsys: Any) -> None:
    name = f"Clinic {uuid.uuid4()}"

    assert belong(["clinics", "create", "--name", name]) == 0

    assert clinic_row(storage, name).languages == ["en"]


@pytest.mark.usefixtures("cli")
def test_clinics_update_sets_the_languages(storage: Storage, capsys: Any) -> None:
    name = f"Clinic {uuid.uuid4()}"
    assert belong(["clinics", "create", "--name", name]) == 0

    assert belong(["clinics", "update", "--name", name, "--language", "es-MX"]) == 0
    assert clinic_row(storage, name).languages == ["es-MX"]

    assert belong(["clinics", "update", "--name", f"{name}x", "--language", "fr"]) == 2
    assert "no clinic named" in capsys.readouterr().err
    assert clinic_row(storage, f"{name}x") is None


@pytest.mark.usefixtures("cli")
@pytest.mark.parametrize("bad", ["english", "e", "en_GB", "12"])
def test_a_malformed_language_is_refused(storage: Storage, capsys: Any, bad: str) -> None:
    name = f"Clinic {uuid.uuid4()}"

    assert belong(["clinics", "create", "--name", name, "--language", bad]) == 2

    assert bad in capsys.readouterr().err
    assert clinic_row(storage, name) is None


@pytest.mark.usefixtures("cli")
def test_clients_create_refuses_an_unknown_clinic(storage: Storage, capsys: Any) -> None:
    name = f"Clinic {uuid.uuid4()}"
    assert belong(["clinics", "create", "--name", name]) == 0
    capsys.readouterr()
    typo = name[:-1]

    code = belong(["clients", "create", "--clinic", typo, "--scope", "screenings:read"])

    assert code == 2
    err = capsys.readouterr().err
    assert f"no clinic named {typo!r}" in err
    assert repr(name) in err  # the near miss is suggested
    assert "--create-clinic" in err and "belong clinics create" in err
    assert clinic_row(storage, typo) is None
    assert clients_of(storage, name) == 0

    assert belong(["clients", "create", "--clinic", name, "--scope", "screenings:read"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("blg_")
    assert clients_of(storage, name) == 1


@pytest.mark.usefixtures("cli")
def test_clients_create_makes_the_clinic_when_told(storage: Storage, capsys: Any) -> None:
    name = f"Clinic {uuid.uuid4()}"

    code = belong(
        ["clients", "create", "--clinic", name, "--create-clinic", "--scope", "screenings:read"]
    )

    assert code == 0, capsys.readouterr().err
    assert clinic_row(storage, name).languages == ["en"]
    assert clients_of(storage, name) == 1


@pytest.mark.usefixtures("cli")
def test_directory_import_refuses_an_unknown_clinic(
    storage: Storage, capsys: Any, tmp_path: Any
) -> None:
    directory = tmp_path / "directory.json"
    directory.write_text(json.dumps(json.loads(SEED.read_text("utf-8"))[:1]), encoding="utf-8")
    name = f"Clinic {uuid.uuid4()}"

    assert belong(["directory", "import", "--clinic", name, str(directory)]) == 2
    assert f"no clinic named {name!r}" in capsys.readouterr().err
    assert clinic_row(storage, name) is None

    code = belong(["directory", "import", "--clinic", name, "--create-clinic", str(directory)])
    assert code == 0, capsys.readouterr().err
    assert clinic_row(storage, name).languages == ["en"]
    assert belong(["directory", "import", "--clinic", name, str(directory)]) == 0
