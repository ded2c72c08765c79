"""The load benchmark's lean screening app (tests/perf/lean_screening_app.py) still does a
screening's work: for the same input it answers what Belong's POST /v1/screenings answers
and stores what Belong stores, so the lean-limit ratio in ``make bench`` cannot rot."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient

from service.platform.tables import idempotency_keys
from service.settings import Settings
from tests.conftest import Clinic
from tests.helpers import Storage, new_patient_id, ucla3

LEAN = Path(__file__).resolve().parents[1] / "perf" / "lean_screening_app.py"
_spec = importlib.util.spec_from_file_location("lean_screening_app", LEAN)
assert _spec is not None and _spec.loader is not None
lean_screening_app = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = lean_screening_app  # Litestar reads the handlers' annotations there
_spec.loader.exec_module(lean_screening_app)

PROFILE = {
    "pain_conditions": ["crps"],
    "languages": ["en"],
    "preferred_modalities": ["online"],
    "age_band": "45-64",
}
SERVICES = [
    {"name": "CRPS Online Circle", "modalities": ["online"], "conditions": ["crps"]},
    {"name": "General Group", "modalities": ["in-person"]},
    {"name": "Pain Counselling", "category": "counselling", "modalities": ["phone"]},
    {"name": "Closed Group", "modalities": ["online"], "accepting_referrals": False},
]


def shape(value: Any) -> Any:
    """The JSON's structure: every key and list length, with each value's type."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def without_ids(recommendations: dict[str, Any]) -> dict[str, Any]:
    """Recommendations less what names this screening (its id and time)."""
    needs = [
        {k: v for k, v in need.items() if k not in ("screening_id", "completed_at")}
        for need in recommendations["needs"]
    ]
    return {**recommendations, "needs": needs}


def test_the_lean_app_answers_and_stores_what_belong_does_for_the_same_screening(
    client: TestClient[Litestar], clinic: Clinic, database_url: str, storage: Storage
) -> None:
    for service in SERVICES:
        body = {"organization": "Org", "category": "support-group", **service}
        added = client.post("/v1/directory/services", json=body)
        assert added.status_code == 201, added.text
    belong_patient, lean_patient = new_patient_id(), new_patient_id()
    for patient_id in (belong_patient, lean_patient):
        put = client.put(f"/v1/patients/{patient_id}", json=PROFILE)
        assert put.status_code == 201, put.text
    key = f"lean-{uuid.uuid4()}"

    belong = client.post(
        "/v1/screenings", json=ucla3(belong_patient), headers={"Idempotency-Key": f"b-{key}"}
    )
    app = lean_screening_app.create_app(Settings(database_url=database_url), clinic.name)
    with TestClient(app) as lean_client:
        lean = lean_client.post(
            "/v1/screenings", json=ucla3(lean_patient), headers={"Idempotency-Key": key}
        )

    assert belong.status_code == lean.status_code == 201, (belong.text, lean.text)
    assert lean.headers["content-type"] == belong.headers["content-type"]
    assert lean.headers["location"] == f"/v1/screenings/{lean.json()['id']}"
    ours, theirs = lean.json(), belong.json()
    assert shape(ours) == shape(theirs)
    assert ours["patient_id"] == lean_patient
    assert ours["score"] == theirs["score"]
    assert [o["code"] for o in ours["observations"]] == [o["code"] for o in theirs["observations"]]
    assert without_ids(ours["recommendations"]) == without_ids(theirs["recommendations"])
    assert [i["service"]["name"] for i in ours["recommendations"]["items"]] == [
        "CRPS Online Circle",
        "General Group",
        "Pain Counselling",
    ]
    # The same write: the screening with its resources, and the key holding the answer.
    stored, expected = (
        storage.patient(clinic.clinic_id, p) for p in (lean_patient, belong_patient)
    )
    assert (
        (stored.screenings, stored.questionnaire_responses, stored.observations)
        == (
            expected.screenings,
            expected.questionnaire_responses,
            expected.observations,
        )
        == (1, 1, len(theirs["observations"]))
    )

    async def held(conn: Any) -> tuple[Any, ...] | None:
        row = (
            await conn.execute(
                sa.select(
                    idempotency_keys.c.route,
                    idempotency_keys.c.status_code,
                    idempotency_keys.c.response,
                    idempotency_keys.c.response_headers,
                    idempotency_keys.c.resource_id,
                ).where(
                    idempotency_keys.c.clinic_id == clinic.clinic_id,
                    idempotency_keys.c.key == key,
                )
            )
        ).one_or_none()
        return tuple(row) if row is not None else None

    location = {"Location": lean.headers["location"]}
    assert storage.run(held) == ("POST /v1/screenings", 201, lean.content, location, ours["id"])
