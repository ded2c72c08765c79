"""Clinics are explicit, and a patient without a profile is matched on safe defaults.

A clinic is made by ``belong clinics create`` (or on purpose with ``--create-clinic``) and
carries the languages its patients speak unless their profile says otherwise; a screening
for a patient without languages is matched in those languages, and the answer warns of what
the profile lacks.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient

from service.cli import main as belong
from service.platform.tables import api_clients, clinics
from tests.conftest import Clinic, MakeClinic
from tests.helpers import Storage, new_patient_id, ucla3

SEED = Path(__file__).resolve().parents[2] / "deploy" / "seed" / "directory.hsds.json"
ARABIC_GROUP = {
    "name": "Arabic Speakers Pain Circle",
    "organization": "Community Trust",
    "category": "support-group",
    "modalities": ["online"],
    "languages": ["ar"],
}
ENGLISH_GROUP = {
    "name": "English Peer Support Group",
    "organization": "Community Trust",
    "category": "support-group",
    "modalities": ["online"],
    "languages": ["en"],
}
COMPLETE_PROFILE = {
    "pain_conditions": ["crps"],
    "languages": ["en"],
    "location": {"lat": 51.5, "lon": -0.12},
    "age_band": "45-64",
}


def directory_of_two(client: TestClient[Litestar], clinic: Clinic) -> None:
    for body in (ARABIC_GROUP, ENGLISH_GROUP):
        response = client.post("/v1/directory/services", json=body, headers=clinic.headers)
        assert response.status_code == 201, response.text


def recommended(recommendations: dict[str, Any]) -> list[str]:
    return [item["service"]["name"] for item in recommendations["items"]]


def warned(recommendations: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {w["field"]: w for w in recommendations["warnings"]}


# -- safe defaults for a patient without a profile ------------------------------------------


def test_a_patient_without_a_profile_is_matched_in_the_clinics_languages(
    session_client: TestClient[Litestar], make_clinic: MakeClinic
) -> None:
    clinic = make_clinic(languages=("en",))
    directory_of_two(session_client, clinic)
    patient = new_patient_id()

    screened = session_client.post("/v1/screenings", json=ucla3(patient), headers=clinic.headers)

    assert screened.status_code == 201, screened.text
    answer = screened.json()["recommendations"]
    assert recommended(answer) == ["English Peer Support Group"]
    warnings = warned(answer)
    assert {"languages", "age_band", "location", "pain_conditions"} <= set(warnings)
    assert warnings["languages"]["code"] == "missing_profile_field"
    assert "clinic" in warnings["languages"]["message"]
    assert "en" in warnings["languages"]["message"]
    assert all(w["message"] for w in answer["warnings"])

    url = f"/v1/patients/{patient}/referrals"
    current = session_client.get(url, params={"explain": "true"}, headers=clinic.headers).json()
    recommendations = current["recommendations"]
    assert recommended(recommendations) == ["English Peer Support Group"]
    assert recommendations["warnings"] == answer["warnings"]
    [excluded] = recommendations["excluded"]
    assert excluded["service"]["name"] == "Arabic Speakers Pain Circle"
    [reason] = excluded["reasons"]
    assert reason["code"] == "no_shared_language"
    assert "clinic" in reason["text"]


def test_the_clinics_own_languages_are_the_default(
    session_client: TestClient[Litestar], make_clinic: MakeClinic
) -> None:
    clinic = make_clinic(languages=("ar",))
    directory_of_two(session_client, clinic)

    screened = session_client.post(
        "/v1/screenings", json=ucla3(new_patient_id()), headers=clinic.headers
    )

    answer = screened.json()["recommendations"]
    assert recommended(answer) == ["Arabic Speakers Pain Circle"]
    assert "ar" in warned(answer)["languages"]["message"]


def test_the_patients_own_languages_win_over_the_clinics(
    session_client: TestClient[Litestar], make_clinic: MakeClinic
) -> None:
    clinic = make_clinic(languages=("en",))
    directory_of_two(session_client, clinic)
    body = ucla3(new_patient_id(), profile={"languages": ["ar-EG"]})

    answer = session_client.post("/v1/screenings", json=body, headers=clinic.headers).json()

    assert recommended(answer["recommendations"]) == ["Arabic Speakers Pain Circle"]
    assert "languages" not in warned(answer["recommendations"])


def test_a_complete_profile_has_no_warnings(
    session_client: TestClient[Litestar], make_clinic: MakeClinic
) -> None:
    clinic = make_clinic()
    directory_of_two(session_client, clinic)
    patient = new_patient_id()
    put = session_client.put(
        f"/v1/patients/{patient}", json=COMPLETE_PROFILE, headers=clinic.headers
    )
    assert put.status_code == 201, put.text

    answer = session_client.post("/v1/screenings", json=ucla3(patient), headers=clinic.headers)
    current = session_client.get(f"/v1/patients/{patient}/referrals", headers=clinic.headers)

    assert answer.json()["recommendations"]["warnings"] == []
    assert current.json()["recommendations"]["warnings"] == []


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
