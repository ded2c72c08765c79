"""The published OpenAPI document: Litestar's, made exactly true.

Litestar 2.25 drops msgspec constraints on list items and documents its own error shape,
so the generated document is finished here: component schemas come from
``msgspec.json.schema_components`` (the same Structs that validate requests), each
operation lists every status it can answer with its real body (problem+json on /v1,
OperationOutcome on /fhir), the bearer scope it needs, and ``links`` from creates to reads.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import msgspec
from litestar import Litestar

from service.api.cds import (
    CdsRequest,
    CdsResponse,
    CdsServices,
    FeedbackReceipt,
    FeedbackRequest,
)
from service.api.errors import FHIR_JSON, PROBLEM_JSON, TITLES, ProblemDetails
from service.api.fhir.resources import FHIR_ACCEPTED
from service.api.importing import ImportReport
from service.api.params import IDENTIFIER_SEARCH, IF_NONE_EXIST
from service.api.smart import (
    ASSERTION_TYPE,
    FORM,
    OAuthError,
    SmartConfiguration,
    TokenResponse,
)
from service.api.v1.directory import ServiceEntry, ServicePage
from service.api.v1.instruments import ScoreRequest
from service.api.v1.patients import Patient
from service.api.v1.referrals import (
    Referral,
    ReferralPage,
    ReferralRequest,
    StatusChange,
)
from service.api.v1.screenings import ScreeningRequest, ScreeningResult
from service.domain.directory import ServiceDetails
from service.domain.patients import PatientProfile
from service.fhir.intake import VALUE_FIELDS, InboundQuestionnaireResponse
from service.fhir.search import DATE_SEARCH
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
    "create_screening": {403, 404, 409, 422},
    "score_answers": {403, 422},
    "put_patient": {422},
    "create_referral": {422},
    "create_service": {422},
    "replace_service": {422},
    "update_referral_status": {409, 412, 422},
    "import_directory": {422},
    "fhir_create_questionnaire_response": {403, 409, 412, 422},
    # A date the calendar does not have (29 February outside a leap year).
    "fhir_search_observation": {422},
    "fhir_search_service_request": {422},
    "fhir_search_task": {422},
    "health_ready": {503},
    "cds_call": {412},
    "cds_feedback": {422},
    "smart_token": {401},
}
"""Statuses an operation answers beyond those its shape implies (see :func:`_statuses`)."""

RESPONSE_BODIES: dict[str, dict[int, tuple[str, Any]]] = {
    "create_screening": {201: ("application/json", ScreeningResult)},
    "put_patient": {200: ("application/json", Patient), 201: ("application/json", Patient)},
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
    "cds_call": {200: ("application/json", CdsResponse)},
    "smart_token": {
        200: ("application/json", TokenResponse),
        400: ("application/json", OAuthError),
        401: ("application/json", OAuthError),
    },
    "fhir_smart_configuration": {200: ("application/json", SmartConfiguration)},
}
"""Bodies of responses returned as bytes or built at run time, which Litestar cannot see."""

EXAMPLES: dict[str, dict[str, Any]] = {
    "ScoreRequest": {"answers": {"1": 2, "2": 3, "3": 2}},
    "ScreeningRequest": {
        "patient_id": "pat-1042",
        "instrument": "ucla-3",
        "completed_at": "2026-11-24T09:30:00Z",
        "answers": {"1": 3, "2": 2, "3": 3},
        "encounter_id": "enc-77",
        "profile": {"pain_conditions": ["crps"], "preferred_modalities": ["online"]},
    },
    "PatientProfile": {
        "pain_conditions": ["crps"],
        "languages": ["en"],
        "location": {"lat": 51.52, "lon": -0.12},
        "preferred_modalities": ["online"],
        "age_band": "45-64",
        "max_travel_km": 10,
    },
    "ReferralRequest": {
        "patient_id": "pat-1042",
        "service_id": "01a213cc-3899-769f-979a-40a09bb72e88",
        "need": "loneliness",
        "consent": {"given": True, "method": "verbal"},
        "note": "Prefers evening online groups",
    },
    "StatusChange": {"status": "completed", "outcome": "Attended 6 of 8 sessions"},
}
"""One realistic request per body, shown in the document (and tried by schemathesis)."""

REQUEST_BODIES: dict[str, Any] = {
    "score_answers": ScoreRequest,
    "create_screening": ScreeningRequest,
    "put_patient": PatientProfile,
    "create_service": ServiceDetails,
    "replace_service": ServiceDetails,
    "create_referral": ReferralRequest,
    "update_referral_status": StatusChange,
    "cds_call": CdsRequest,
    "cds_feedback": FeedbackRequest,
}
"""Bodies decoded strictly by service.api.body.decode, which Litestar does not see."""

FHIR_RESOURCE = {
    "type": "object",
    "required": ["resourceType"],
    "properties": {"resourceType": {"type": "string"}, "id": {"type": "string"}},
}
DIRECTORY_FILE = {
    "description": (
        "An Open Referral HSDS 3.0 list of services (or a page with `contents`) using the "
        "`belong` taxonomy attributes, or a FHIR R4 Bundle of HealthcareService with its "
        "Location and Organization entries. Records that cannot be read are reported by "
        "index (422 with on_error=reject-file)."
    ),
    "oneOf": [
        {"type": "array", "items": {"type": "object"}},
        {
            "type": "object",
            "required": ["contents"],
            "properties": {"contents": {"type": "array", "items": {"type": "object"}}},
        },
        {
            "type": "object",
            "required": ["resourceType", "entry"],
            "properties": {
                "resourceType": {"const": "Bundle"},
                "entry": {"type": "array", "items": {"type": "object"}},
            },
        },
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
    ScoreRequest,
    PatientProfile,
    Patient,
    ServiceDetails,
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
    CdsServices,
    CdsRequest,
    CdsResponse,
    FeedbackRequest,
    FeedbackReceipt,
    SmartConfiguration,
    TokenResponse,
    OAuthError,
)

TOKEN_FORM = {
    "type": "object",
    "description": (
        "RFC 6749 client_credentials with a private_key_jwt client assertion (RFC 7523): "
        "a JWT signed with RS384 or ES384, iss = sub = the client_id, aud = the token URL, "
        "exp at most 300 seconds ahead, a jti never used before."
    ),
    "required": ["grant_type", "scope", "client_assertion_type", "client_assertion"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["client_credentials"]},
        "scope": {
            "type": "string",
            "description": "Space-separated system/ scopes (see scopes_supported)",
            "pattern": "^[!#-\\[\\]-~]+( [!#-\\[\\]-~]+)*$",
            "maxLength": 2000,
        },
        "client_assertion_type": {"type": "string", "enum": [ASSERTION_TYPE]},
        "client_assertion": {
            "type": "string",
            "pattern": "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]*$",
            "maxLength": 8192,
        },
    },
}
"""The token request: a form, which Litestar cannot describe from the handler."""


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
    _bodies(doc)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    _, components = msgspec.json.schema_components(SCHEMA_TYPES, ref_template=REF)
    schemas.update(components)
    schemas["BundleEntry"]["properties"]["resource"] = FHIR_RESOURCE
    schemas["Consent"]["properties"]["given"] = {
        "const": True,
        "description": "The patient consented; a referral without consent answers 422",
    }
    for name, example in EXAMPLES.items():
        schemas[name]["examples"] = [example]
    doc["components"]["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "A clinic API client's token from `belong clients create`, or a SMART "
                "Backend Services access token from /auth/token (see "
                "/.well-known/smart-configuration); CDS Hooks calls carry the CDS client's "
                "own signed JWT instead. Each operation "
                "lists the scope it needs (screenings:write, screenings:read, referrals:read, "
                "referrals:write, directory:write, audit:read, metrics:read)."
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
                response = responses.setdefault(str(status), {"description": "Created"})
                response["content"] = {media: {"schema": _ref(type_)}}
            if operation_id == "fhir_smart_configuration":  # JSON, though under /fhir
                continue
            for parameter in op.get("parameters", []):
                parameter["schema"] = _not_null(parameter.get("schema", {}))
                if parameter["name"] in ("date", "_lastUpdated"):
                    parameter["schema"] = {
                        "type": "array",
                        "items": {"type": "string", "pattern": DATE_SEARCH},
                        "maxItems": 4,
                    }
                    parameter["explode"] = True
            if fhir:
                for status, response in responses.items():
                    if status.startswith("2") and "content" in response:
                        response["content"] = {FHIR_JSON: next(iter(response["content"].values()))}
            if operation_id in LINKS:
                success = next(s for s in responses if s.startswith("2"))
                responses[success]["links"] = LINKS[operation_id]
    return doc


def _inbound_components() -> dict[str, Any]:
    """The received QuestionnaireResponse, from the same Structs that decode it."""
    _, components = msgspec.json.schema_components([InboundQuestionnaireResponse], ref_template=REF)
    components["InboundQuestionnaireResponse"]["description"] = (
        "A FHIR R4 QuestionnaireResponse, stored as received. It must cite a Belong "
        "Questionnaire (its canonical url) or carry items whose linkIds are LOINC codes "
        "Belong knows; subject Patient/<id>, status completed and authored (a time with its "
        "zone) are needed to score it (422 otherwise). Elements R4 does not define answer 400."
    )
    no_nul = {"$ref": REF.format(name="JsonWithoutNul")}
    components["JsonWithoutNul"] = {
        "description": "Any JSON value without a NUL character in a string or a key",
        "anyOf": [
            {"type": ["null", "boolean", "number"]},
            {"type": "string", "pattern": "^[^\\x00]*$"},
            {"type": "array", "items": no_nul},
            {
                "type": "object",
                "propertyNames": {"pattern": "^[^\\x00]*$"},
                "additionalProperties": no_nul,
            },
        ],
    }
    pairs = combinations(VALUE_FIELDS, 2)
    components["InboundAnswer"]["not"] = {
        "anyOf": [{"required": list(pair)} for pair in pairs],
    }
    return components


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter is absent or a value, never JSON null: Litestar writes optional ones as
    ``oneOf [string, null]`` with the constraints beside the ``oneOf``."""
    options = schema.get("oneOf")
    if not options:
        return schema
    kept = [o for o in options if o != {"type": "null"}]
    if len(kept) != 1:
        return schema
    rest = {k: v for k, v in schema.items() if k != "oneOf"}
    return {**kept[0], **rest}


def _bodies(doc: dict[str, Any]) -> None:
    """Request bodies read from raw bytes, which Litestar cannot describe."""
    qr = doc["paths"]["/fhir/QuestionnaireResponse"]["post"]
    doc.setdefault("components", {}).setdefault("schemas", {}).update(_inbound_components())
    body = {"$ref": REF.format(name="InboundQuestionnaireResponse")}
    qr["requestBody"] = {
        "required": True,
        "content": {media: {"schema": body} for media in FHIR_ACCEPTED},
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
            "name": "identifier",
            "in": "query",
            "required": False,
            "description": (
                "Conditional create by query string: system|value, |value (no system) or "
                "value (any system); ignored when If-None-Exist is sent"
            ),
            "schema": {"type": "string", "pattern": IDENTIFIER_SEARCH},
        }
    )
    qr["parameters"].append(
        {
            "name": "If-None-Exist",
            "in": "header",
            "required": False,
            "description": (
                "Conditional create: a FHIR search query string, identifier=system|value "
                "(or identifier=|value, or identifier=value), percent-encoded, e.g. "
                "identifier=urn:oid:2.16.840.1.113883.3.1|A-1042. One match answers it with "
                "200, several with 412, none stores the resource."
            ),
            "schema": {
                "type": "string",
                "pattern": IF_NONE_EXIST,
                "examples": ["identifier=urn:oid:2.16.840.1.113883.3.1|A-1042"],
            },
        }
    )
    for operation_id in ("fhir_read_questionnaire_response",):
        for path_item in doc["paths"].values():
            for op in path_item.values():
                if op.get("operationId") == operation_id:
                    op["responses"]["200"]["content"] = {FHIR_JSON: {"schema": FHIR_RESOURCE}}
    for path_item in doc["paths"].values():
        for op in path_item.values():
            type_ = REQUEST_BODIES.get(op.get("operationId", ""))
            if type_ is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(type_)}},
                }
    imports = doc["paths"]["/v1/directory/import"]["post"]
    imports["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": DIRECTORY_FILE}},
    }
    imports["responses"]["200"]["content"] = {"application/json": {"schema": _ref(ImportReport)}}
    token = doc["paths"]["/auth/token"]["post"]
    token["requestBody"] = {"required": True, "content": {FORM: {"schema": TOKEN_FORM}}}
    metadata = doc["paths"]["/fhir/metadata"]["get"]
    metadata["responses"]["200"]["content"] = {FHIR_JSON: {"schema": FHIR_RESOURCE}}


def query_parameters(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    """(METHOD, path template) -> {query parameter: its schema}, from the document."""
    components = doc.get("components", {}).get("schemas", {})

    def resolved(schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref", "")
        return components.get(ref.rpartition("/")[2], schema) if ref else schema

    index: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            index[(method.upper(), path)] = {
                p["name"]: resolved(p.get("schema", {}))
                for p in op.get("parameters", [])
                if p.get("in") == "query"
            }
    return index


def install(app: Litestar) -> None:
    """Serve the finished document at /schema (the OpenAPI plugin caches its dict), and
    keep its query parameters for the unknown-parameter check (limits.check_request)."""
    from litestar._openapi.plugin import OpenAPIPlugin

    plugin = app.plugins.get(OpenAPIPlugin)
    plugin._openapi_schema = finalize(plugin.provide_openapi().to_schema(), app)
    app.state.query_parameters = query_parameters(plugin._openapi_schema)
