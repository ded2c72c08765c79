"""No patient data in the log, even when the database refuses a write.

The database is made to refuse the rows of this test's patients (a CHECK constraint,
whose error in PostgreSQL repeats the whole failing row), so each write
fails deep in the driver and is answered as an unexpected error (500). The log of the run,
formatted as `belong serve` writes it, must name the failures without the patient ids,
answers, free text or identifiers the requests carried.
"""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

from service.platform.observability import configure_logging
from service.systems.controllers.cds import SERVICE_ID
from tests.conftest import Clinic
from tests.helpers import Storage
from tests.jwt_keys import ec_key, public_jwks
from tests.systems.test_smart_cds import FEEDBACK_URL, System, cds_jwt, register

MARK = "leak"
REFUSED = {
    "questionnaire_responses": "patient_id",
    "cds_feedback": "card_uuid",
}
"""Tables whose rows the database refuses when ``column`` starts with the test's mark."""


@contextmanager
def refusing_marked_rows(storage: Storage) -> Iterator[None]:
    async def change(conn: Any, add: bool) -> None:
        for table, column in REFUSED.items():
            name = f"fault_probe_{table}"
            sql = (
                f"ALTER TABLE {table} ADD CONSTRAINT {name} "
                f"CHECK ({column} NOT LIKE '{MARK}-%') NOT VALID"
                if add
                else f"ALTER TABLE {table} DROP CONSTRAINT {name}"
            )
            await conn.exec_driver_sql(sql)

    storage.run(lambda conn: change(conn, True))
    try:
        yield
    finally:
        storage.run(lambda conn: change(conn, False))


@contextmanager
def production_log() -> Iterator[io.StringIO]:
    """The log as `belong serve` writes it (JSON lines), at its most verbose level."""
    written = io.StringIO()
    root = logging.getLogger()
    kept = root.handlers[:], root.level
    configure_logging("DEBUG", written)
    try:
        yield written
    finally:
        root.handlers[:], level = kept
        root.setLevel(level)


def test_a_run_of_refused_writes_logs_no_patient_data(
    session_client: TestClient[Litestar],
    client: TestClient[Litestar],
    clinic: Clinic,
    storage: Storage,
) -> None:
    issuer = f"https://ehr.example.org/{uuid.uuid4()}"
    register(
        session_client, clinic.name, ["referrals:read"], issuer=issuer, jwks=public_jwks(ec_key())
    )
    ehr = System(issuer, clinic)
    screened = f"{MARK}-{uuid.uuid4().hex[:12]}"
    responded = f"{MARK}-{uuid.uuid4().hex[:12]}"
    identifier = f"qr-{uuid.uuid4()}"
    card = f"{MARK}-{uuid.uuid4()}"
    comment = f"Declined: lives alone since {uuid.uuid4().hex[:8]}"
    answers = {"1": 3, "2": 3, "3": 2}
    questionnaire = client.get("/fhir/Questionnaire/ucla-3").json()
    codings = {
        item["linkId"]: {
            int(e["valueDecimal"]): option["valueCoding"]
            for option in item["answerOption"]
            for e in option["extension"]
            if e["url"].endswith("ordinalValue")
        }
        for item in questionnaire["item"]
    }
    response = {
        "resourceType": "QuestionnaireResponse",
        "identifier": {"system": "urn:ehr:qr", "value": identifier},
        "questionnaire": questionnaire["url"],
        "status": "completed",
        "subject": {"reference": f"Patient/{responded}"},
        "authored": "2025-03-04T09:30:00Z",
        "item": [
            {"linkId": linkId, "answer": [{"valueCoding": codings[linkId][value]}]}
            for linkId, value in answers.items()
        ],
    }
    feedback = {
        "feedback": [
            {
                "card": card,
                "outcome": "overridden",
                "overrideReason": {"userComment": comment},
                "outcomeTimestamp": "2026-11-25T10:01:00Z",
            }
        ]
    }

    with refusing_marked_rows(storage), production_log() as log:
        failed = [
            client.post(
                "/v1/screenings",
                json={
                    "patient_id": screened,
                    "instrument": "ucla-3",
                    "completed_at": "2026-01-05T09:00:00Z",
                    "answers": answers,
                },
                headers={"X-Request-ID": "fault-run-1"},
            ),
            client.post(
                "/fhir/QuestionnaireResponse",
                content=json.dumps(response),
                headers={"Content-Type": "application/fhir+json", "X-Request-ID": "fault-run-2"},
            ),
            client.post(
                f"/cds-services/{SERVICE_ID}/feedback",
                json=feedback,
                headers={
                    "Authorization": f"Bearer {cds_jwt(ehr, aud=FEEDBACK_URL)}",
                    "X-Request-ID": "fault-run-3",
                },
            ),
        ]
    assert [r.status_code for r in failed] == [500, 500, 500], [r.text for r in failed]

    text = log.getvalue()
    sent = [screened, responded, identifier, card, comment, "lives alone"]
    sent += [codings[k][v]["display"] for k, v in answers.items()]
    sent += [json.dumps(answers, separators=(",", ":")), "[parameters", "Failing row"]
    leaked = [value for value in sent if value in text]
    assert leaked == [], text

    lines = [json.loads(line) for line in text.splitlines()]
    unhandled = [e for e in lines if e["message"].startswith("unhandled error")]
    assert [e.get("request_id") for e in unhandled] == ["fault-run-1", "fault-run-2", "fault-run-3"]
    for entry in unhandled:  # each names what failed: the class and the SQLSTATE
        assert re.search(r"(IntegrityError|CheckViolationError)", entry["message"]), entry
        assert "File " in entry["exception"], entry
        assert "SQLSTATE 23514" in entry["exception"], entry
