"""An unknown id answers 404 from one place: a NotFound raised by the lookup, mapped by
handle_http to problem+json on /v1 and an OperationOutcome on /fhir."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import service

SERVICE = Path(service.__file__).parent
CONTROLLERS = sorted([*SERVICE.glob("*/controllers/v1.py"), *SERVICE.glob("*/controllers/fhir.py")])


def test_no_controller_builds_its_own_404() -> None:
    own = [
        f"{path.relative_to(SERVICE)}:{node.lineno}"
        for path in CONTROLLERS
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) in ("ApiError", "field_error")
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and node.args[0].value == 404
    ]
    assert own == []


def test_unknown_ids_on_v1_answer_problem_json_naming_the_id(client) -> None:
    unknown = str(uuid.uuid4())
    cases = {
        f"/v1/patients/{unknown}": ("patient_id", f"No patient {unknown!r}"),
        f"/v1/patients/{unknown}/screenings": ("patient_id", f"No patient {unknown!r}"),
        f"/v1/patients/{unknown}/referrals": ("patient_id", f"No patient {unknown!r}"),
        f"/v1/screenings/{unknown}": ("screening_id", "No such screening"),
        f"/v1/referrals/{unknown}": ("referral_id", "No such referral"),
        f"/v1/directory/services/{unknown}": ("service_id", f"No service {unknown!r}"),
    }
    for path, (field, detail) in cases.items():
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["detail"] == detail, path
        assert body["errors"] == [{"field": field, "message": "not found", "code": "not_found"}]
    response = client.delete(f"/v1/directory/services/{unknown}")
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "service_id"


def test_unknown_ids_on_fhir_answer_an_operation_outcome(client) -> None:
    unknown = str(uuid.uuid4())
    for resource_type in (
        "QuestionnaireResponse",
        "Observation",
        "ServiceRequest",
        "Task",
        "HealthcareService",
    ):
        response = client.get(f"/fhir/{resource_type}/{unknown}")
        assert response.status_code == 404, resource_type
        assert response.headers["content-type"].startswith("application/fhir+json")
        assert response.json()["issue"] == [
            {
                "severity": "error",
                "code": "not-found",
                "diagnostics": f"no such {resource_type}",
                "expression": ["id"],
            }
        ]
