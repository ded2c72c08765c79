"""The exported OpenAPI document is what the app serves, and it is finished."""

from __future__ import annotations

import json

from service.cli import OPENAPI_DIR, openapi_documents


def test_exported_documents_match_the_app() -> None:
    for name, text in openapi_documents().items():
        assert (OPENAPI_DIR / name).read_text(encoding="utf-8") == text, (
            f"openapi/{name} is stale: run `make schemas`"
        )


def test_served_document_is_the_finished_one(session_client) -> None:
    served = session_client.get("/schema/openapi.json").json()
    assert served == json.loads(openapi_documents()["openapi.json"])
    screening = served["paths"]["/v1/screenings"]["post"]
    assert screening["security"] == [{"bearer": ["screenings:write"]}]
    assert set(screening["responses"]) >= {"201", "400", "401", "403", "409", "413", "415", "422"}
    problem = screening["responses"]["422"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/ProblemDetails"}
    assert "links" in screening["responses"]["201"]
    observation = served["paths"]["/fhir/Observation"]["get"]["responses"]
    assert (
        "application/fhir+json" in observation["404" if "404" in observation else "400"]["content"]
    )
    public = served["paths"]["/v1/instruments"]["get"]
    assert public["security"] == []


def test_list_item_constraints_survive(session_client) -> None:
    schemas = session_client.get("/schema/openapi.json").json()["components"]["schemas"]
    languages = schemas["PatientProfile"]["properties"]["languages"]
    assert languages["items"]["pattern"].startswith("^[A-Za-z]{2,3}")
    assert languages["maxItems"] == 10
