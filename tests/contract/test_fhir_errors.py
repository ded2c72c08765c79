"""FHIR controllers build their field errors with one helper, errors.field_error."""

from __future__ import annotations

import ast
from pathlib import Path

import service

FHIR_CONTROLLERS = sorted(Path(service.__file__).parent.glob("*/controllers/fhir.py"))


def _builds_a_field_error(function: ast.FunctionDef) -> bool:
    """``return ApiError(..., [FieldError(...)])``: a helper of its own."""
    for node in ast.walk(function):
        if (
            isinstance(node, ast.Return)
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", None) == "ApiError"
            and any(isinstance(arg, ast.List) for arg in node.value.args)
        ):
            return True
    return False


def test_no_fhir_controller_keeps_its_own_field_error_helper() -> None:
    own = [
        f"{path.parent.parent.name}/{path.name}:{node.name}"
        for path in FHIR_CONTROLLERS
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef) and _builds_a_field_error(node)
    ]
    assert own == []


def test_a_fhir_field_error_names_its_field_in_an_operation_outcome(client) -> None:
    response = client.get("/fhir/ServiceRequest", params={"status": "nonsense"})
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["expression"] == ["status"]
    assert issue["code"] == "invalid"
    response = client.post(
        "/fhir/QuestionnaireResponse",
        content=b"{",
        headers={"Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["body"]
