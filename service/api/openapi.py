"""The published OpenAPI document: Litestar's, made exactly true.

Litestar 2.25 drops msgspec constraints on list items and documents its own error shape,
so the generated document is finished here: component schemas come from
``msgspec.json.schema_components`` (the same Structs that validate requests), each
operation lists every status it can answer with its real body (problem+json on /v1,
OperationOutcome on /fhir), the bearer scope it needs, and ``links`` from creates to reads.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar

from service.api.errors import FHIR_JSON, PROBLEM_JSON, TITLES, ProblemDetails
from service.api.fhir.resources import FHIR_ACCEPTED
from service.api.importing import ImportReport
from service.api.v1.directory import ServiceEntry, ServicePage
from service.api.v1.referrals import Referral, ReferralPage, ReferralRequest, StatusChange
from service.api.v1.screenings import ScreeningRequest, ScreeningResult
from service.fhir.types import (
    Bundle,
    HealthcareService,
    Observation,
    OperationOutcome,
    Questionnaire,
    ServiceRequest,
    Task,
)

REF = "#/components/schemas/{name}"

EXTRA_STATUSES: dict[str, set[int]] = {
    "create_screening": {409, 422},
    "score_answers": {403, 422},
    "put_patient": {422},
    "create_referral": {422},
    "update_referral_status": {409, 412, 422},
    "import_directory": {422},
    "fhir_create_questionnaire_response": {409, 412, 415, 422},
    "health_ready": {503},
}
"""Statuses an operation answers beyond those its shape implies (see :func:`_statuses`)."""

RESPONSE_BODIES: dict[str, dict[int, tuple[str, Any]]] = {
    "create_screening": {201: ("application/json", ScreeningResult)},
    "fhir_read_observation": {200: (FHIR_JSON, Observation)},
    "fhir_search_observation": {200: (FHIR_JSON, Bundle)},
    "fhir_read_service_request": {200: (FHIR_JSON, ServiceRequest)},
    "fhir_search_service_request": {200: (FHIR_JSON, Bundle)},
    "fhir_read_task": {200: (FHIR_JSON, Task)},
    "fhir_search_task": {200: (FHIR_JSON, Bundle)},
    "fhir_read_healthcare_service": {200: (FHIR_JSON, HealthcareService)},
    "fhir_search_healthcare_service": {200: (FHIR_JSON, Bundle)},
    "fhir_read_questionnaire": {200: (FHIR_JSON, Questionnaire)},
    "fhir_search_questionnaire": {200: (FHIR_JSON, Bundle)},
}
"""Bodies of responses returned as bytes or built at run time, which Litestar cannot see."""

FHIR_RESOURCE = {
    "type": "object",
    "required": ["resourceType"],
    "properties": {"resourceType": {"type": "string"}, "id": {"type": "string"}},
}
QUESTIONNAIRE_RESPONSE = {
    "type": "object",
    "description": (
        "A FHIR R4 QuestionnaireResponse, stored as received. It must cite a Belong "
        "Questionnaire (its canonical url) or carry items whose linkIds are LOINC codes "
        "Belong knows; subject Patient/<id>, status completed and authored are required."
    ),
    "required": ["resourceType", "status", "subject", "authored"],
    "properties": {
        "resourceType": {"const": "QuestionnaireResponse"},
        "status": {"type": "string"},
        "questionnaire": {"type": "string"},
        "subject": {
            "type": "object",
            "properties": {"reference": {"type": "string", "pattern": "^Patient/"}},
            "required": ["reference"],
        },
        "authored": {"type": "string"},
        "identifier": {
            "type": "object",
            "properties": {"system": {"type": "string"}, "value": {"type": "string"}},
        },
        "item": {"type": "array", "items": {"type": "object"}},
    },
}
DIRECTORY_FILE = {
    "description": (
        "An Open Referral HSDS 3.0 list of services (or a page with `contents`) using the "
        "`belong` taxonomy attributes, or a FHIR R4 Bundle of HealthcareService with its "
        "Location and Organization entries."
    ),
    "oneOf": [
        {"type": "array", "items": {"type": "object"}},
        {"type": "object", "required": ["contents"]},
        {"type": "object", "required": ["resourceType", "entry"]},
    ],
}
LINKS: dict[str, dict[str, dict[str, Any]]] = {
    "create_screening": {
        "GetScreening": {
            "operationId": "get_screening",
            "parameters": {"screening_id": "$response.body#/id"},
        },
        "GetPatient": {
            "operationId": "get_patient",
            "parameters": {"patient_id": "$response.body#/patient_id"},
        },
        "GetPatientScreenings": {
            "operationId": "list_patient_screenings",
            "parameters": {"patient_id": "$response.body#/patient_id"},
        },
        "GetPatientReferrals": {
            "operationId": "get_patient_referrals",
            "parameters": {"patient_id": "$response.body#/patient_id"},
        },
    },
    "put_patient": {
        "GetPatient": {
            "operationId": "get_patient",
            "parameters": {"patient_id": "$response.body#/id"},
        },
    },
    "create_service": {
        "GetService": {
            "operationId": "get_service",
            "parameters": {"service_id": "$response.body#/id"},
        },
        "ReplaceService": {
            "operationId": "replace_service",
            "parameters": {"service_id": "$response.body#/id"},
        },
        "DeleteService": {
            "operationId": "delete_service",
            "parameters": {"service_id": "$response.body#/id"},
        },
    },
    "create_referral": {
        "GetReferral": {
            "operationId": "get_referral",
            "parameters": {"referral_id": "$response.body#/id"},
        },
        "UpdateReferral": {
            "operationId": "update_referral_status",
            "parameters": {"referral_id": "$response.body#/id"},
        },
        "ReadTask": {
            "operationId": "fhir_read_task",
            "parameters": {"resource_id": "$response.body#/id"},
        },
    },
    "fhir_create_questionnaire_response": {
        "ReadQuestionnaireResponse": {
            "operationId": "fhir_read_questionnaire_response",
            "parameters": {"resource_id": "$response.body#/id"},
        },
    },
}

SCHEMA_TYPES = (
    ProblemDetails,
    OperationOutcome,
    ScreeningRequest,
    ScreeningResult,
    ReferralRequest,
    StatusChange,
    Referral,
    ReferralPage,
    ServiceEntry,
    ServicePage,
    ImportReport,
    Bundle,
    Observation,
    Questionnaire,
    ServiceRequest,
    Task,
    HealthcareService,
)


def _ref(type_: Any) -> dict[str, str]:
    return {"$ref": REF.format(name=type_.__name__)}


def _statuses(path: str, method: str, op: dict[str, Any], handler_opt: dict[str, Any]) -> set[int]:
    statuses = set(EXTRA_STATUSES.get(op.get("operationId", ""), set()))
    if op.get("parameters") or "requestBody" in op:
        statuses.add(400)
    if "requestBody" in op:
        statuses |= {413, 415}
    if "{" in path:
        statuses.add(404)
    if "scope" in handler_opt:
        statuses |= {401, 403, 429, 503}
    return statuses


def finalize(doc: dict[str, Any], app: Litestar) -> dict[str, Any]:
    """Finish Litestar's document in place (see the module docstring) and return it."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    _, components = msgspec.json.schema_components(SCHEMA_TYPES, ref_template=REF)
    schemas.update(components)
    doc["components"]["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "A clinic API client's token from `belong clients create`. Each operation "
                "lists the scope it needs (screenings:write, screenings:read, referrals:read, "
                "referrals:write, directory:write, audit:read)."
            ),
        }
    }
    opts = {
        handler.operation_id: handler.opt
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        if isinstance(getattr(handler, "operation_id", None), str)
    }
    for path, item in doc.get("paths", {}).items():
        fhir = path.startswith("/fhir")
        error_media, error_schema = (
            (FHIR_JSON, _ref(OperationOutcome)) if fhir else (PROBLEM_JSON, _ref(ProblemDetails))
        )
        for method, op in item.items():
            operation_id = op.get("operationId", "")
            opt = opts.get(operation_id, {})
            scope = opt.get("scope")
            op["security"] = [{"bearer": [scope]}] if scope else []
            if scope:
                op["description"] = (op.get("description", "") + f"\n\nScope: `{scope}`.").strip()
            responses = op.setdefault("responses", {})
            for status in [s for s in responses if s.startswith("4")]:
                del responses[status]
            for status in sorted(_statuses(path, method, op, opt)):
                response: dict[str, Any] = {
                    "description": TITLES.get(status, "Error"),
                    "content": {error_media: {"schema": error_schema}},
                }
                if status in (429, 503):
                    response["headers"] = {
                        "Retry-After": {
                            "schema": {"type": "integer"},
                            "description": "Seconds to wait before retrying",
                        }
                    }
                if status == 401:
                    response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
                responses[str(status)] = response
            for status, (media, type_) in RESPONSE_BODIES.get(operation_id, {}).items():
                responses[str(status)]["content"] = {media: {"schema": _ref(type_)}}
            if fhir:
                for status, response in responses.items():
                    if status.startswith("2") and "content" in response:
                        response["content"] = {FHIR_JSON: next(iter(response["content"].values()))}
            if operation_id in LINKS:
                success = next(s for s in responses if s.startswith("2"))
                responses[success]["links"] = LINKS[operation_id]
    _bodies(doc)
    return doc


def _bodies(doc: dict[str, Any]) -> None:
    """Request bodies read from raw bytes, which Litestar cannot describe."""
    qr = doc["paths"]["/fhir/QuestionnaireResponse"]["post"]
    qr["requestBody"] = {
        "required": True,
        "content": {media: {"schema": QUESTIONNAIRE_RESPONSE} for media in FHIR_ACCEPTED},
    }
    qr["responses"]["200"] = {
        "description": "An existing QuestionnaireResponse matched the conditional create",
        "content": {FHIR_JSON: {"schema": FHIR_RESOURCE}},
    }
    qr["responses"]["201"] = {
        "description": "Stored and scored",
        "headers": {
            "Location": {"schema": {"type": "string"}},
            "ETag": {"schema": {"type": "string"}},
        },
        "content": {FHIR_JSON: {"schema": FHIR_RESOURCE}},
        "links": qr["responses"].get("201", {}).get("links", {}),
    }
    qr.setdefault("parameters", []).append(
        {
            "name": "If-None-Exist",
            "in": "header",
            "required": False,
            "description": "Conditional create: identifier=system|value",
            "schema": {"type": "string", "pattern": r"^identifier=[^\x00]{1,512}$"},
        }
    )
    for operation_id in ("fhir_read_questionnaire_response",):
        for path_item in doc["paths"].values():
            for op in path_item.values():
                if op.get("operationId") == operation_id:
                    op["responses"]["200"]["content"] = {FHIR_JSON: {"schema": FHIR_RESOURCE}}
    imports = doc["paths"]["/v1/directory/import"]["post"]
    imports["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": DIRECTORY_FILE}},
    }
    imports["responses"]["200"]["content"] = {"application/json": {"schema": _ref(ImportReport)}}
    metadata = doc["paths"]["/fhir/metadata"]["get"]
    metadata["responses"]["200"]["content"] = {FHIR_JSON: {"schema": FHIR_RESOURCE}}


def install(app: Litestar) -> None:
    """Serve the finished document at /schema (the OpenAPI plugin caches its dict)."""
    from litestar._openapi.plugin import OpenAPIPlugin

    plugin = app.plugins.get(OpenAPIPlugin)
    plugin._openapi_schema = finalize(plugin.provide_openapi().to_schema(), app)
