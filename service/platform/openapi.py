"""The published OpenAPI document: Litestar's, made exactly true.

Litestar 2.25 drops msgspec constraints on list items and documents its own error shape,
so the generated document is finished here: component schemas come from
``msgspec.json.schema_components`` (the same Structs that validate requests), each
operation lists every status it can answer with its real body (problem+json on /v1,
OperationOutcome on /fhir), the bearer scope it needs, and ``links`` from creates to reads.
What Litestar cannot see in a handler's signature the handler declares in its own ``opt``
(service.platform.documented); this step reads those facts from the route handlers and names
no controller.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin

from service.fhir.params import (
    GENERAL_PARAMETERS,
    PREFER_HANDLING,
    RESULT_PARAMETERS,
    SEARCH_NOTE,
)
from service.fhir.search import DATE_SEARCH
from service.fhir.types import OperationOutcome
from service.platform.documented import FHIR_RESOURCE, OPENAPI, REF, Facts
from service.platform.errors import FHIR_JSON, PROBLEM_JSON, TITLES, ProblemDetails

NO_FACTS = Facts()


def _ref(type_: Any) -> dict[str, str]:
    return {"$ref": REF.format(name=type_.__name__)}


def _shape(shape: Any, shared: dict[bytes, dict[str, Any]]) -> dict[str, Any]:
    """A Struct as a reference to its component, a JSON Schema dict as the one object
    ``shared`` holds for it: Litestar copies each handler's ``opt``, and a schema met
    twice is one object in the document (one anchor in its YAML)."""
    if not isinstance(shape, dict):
        return _ref(shape)
    return shared.setdefault(msgspec.json.encode(shape, order="sorted"), shape)


def _statuses(path: str, op: dict[str, Any], opt: dict[str, Any], facts: Facts) -> set[int]:
    statuses = set(facts.errors)
    if op.get("parameters") or "requestBody" in op:
        statuses.add(400)
    if "requestBody" in op:
        statuses |= {413, 415}
    if "{" in path:
        statuses.add(404)
    if "scope" in opt:
        statuses |= {401, 403, 429, 503}
    if path.startswith("/fhir") and not facts.plain_json:
        statuses.add(406)  # _format or Accept asking for anything but JSON
    if facts.search:
        statuses.add(422)  # a _cursor Belong did not write for this search
    return statuses


def _handler_opts(app: Litestar) -> dict[str, dict[str, Any]]:
    """operationId -> the route handler's ``opt``."""
    return {
        handler.operation_id: handler.opt
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        if isinstance(getattr(handler, "operation_id", None), str)
    }


def _schema_types(facts: list[Facts]) -> list[Any]:
    """Every Struct the operations name, published from msgspec (errors' too)."""
    types: dict[Any, None] = {ProblemDetails: None, OperationOutcome: None}
    for fact in facts:
        named = [fact.request, *(shape for _, shape in fact.bodies.values()), *fact.schemas]
        types.update((t, None) for t in named if isinstance(t, type))
    return list(types)


def finalize(doc: dict[str, Any], app: Litestar) -> dict[str, Any]:
    """Finish Litestar's document in place (see the module docstring) and return it."""
    opts = _handler_opts(app)
    facts = [opt[OPENAPI] for opt in opts.values() if OPENAPI in opt]
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for fact in facts:
        schemas.update(fact.components)
    _, components = msgspec.json.schema_components(_schema_types(facts), ref_template=REF)
    schemas.update(components)
    schemas["BundleEntry"]["properties"]["resource"] = FHIR_RESOURCE
    shared = {msgspec.json.encode(FHIR_RESOURCE, order="sorted"): FHIR_RESOURCE}
    schemas["Consent"]["properties"]["given"] = {
        "const": True,
        "description": "The patient consented; a referral without consent answers 422",
    }
    for fact in facts:
        if fact.example is not None:
            schemas[fact.request.__name__]["examples"] = [fact.example]
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
    for path, item in doc.get("paths", {}).items():
        fhir = path.startswith("/fhir")
        error_media, error_schema = (
            (FHIR_JSON, _ref(OperationOutcome)) if fhir else (PROBLEM_JSON, _ref(ProblemDetails))
        )
        for op in item.values():
            opt = opts.get(op.get("operationId", ""), {})
            fact = opt.get(OPENAPI, NO_FACTS)
            responses = op.setdefault("responses", {})
            _declared(op, fact, shared)
            if fhir and not fact.plain_json:
                op.setdefault("parameters", []).extend(copy.deepcopy(GENERAL_PARAMETERS))
            scope = opt.get("scope")
            op["security"] = [{"bearer": [scope]}] if scope else []
            if scope:
                op["description"] = (op.get("description", "") + f"\n\nScope: `{scope}`.").strip()
            for status in [s for s in responses if s.startswith("4")]:
                del responses[status]
            for status in sorted(_statuses(path, op, opt, fact)):
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
            for status, (media, shape) in fact.bodies.items():
                response = responses.setdefault(str(status), {"description": "Created"})
                response["content"] = {media: {"schema": _shape(shape, shared)}}
            if fact.plain_json:
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
            if fact.links:
                success = next(s for s in responses if s.startswith("2"))
                responses[success]["links"] = dict(fact.links)
    return doc


def _declared(op: dict[str, Any], fact: Facts, shared: dict[bytes, dict[str, Any]]) -> None:
    """The request body, parameters and whole responses the handler declares."""
    if fact.request is not None:
        body = _shape(fact.request, shared)
        op["requestBody"] = {
            "required": True,
            "content": {media: {"schema": body} for media in fact.request_media},
        }
    for status, response in fact.responses.items():
        content = {
            media: {"schema": _shape(c["schema"], shared)}
            for media, c in response.get("content", {}).items()
        }
        op["responses"][str(status)] = {**response, "content": content}
    if fact.parameters:
        op.setdefault("parameters", []).extend(copy.deepcopy(fact.parameters))
    if fact.search:
        op.setdefault("parameters", []).extend(copy.deepcopy([*RESULT_PARAMETERS, PREFER_HANDLING]))
        op["description"] = f"{op.get('description', '')}\n\n{SEARCH_NOTE}".strip()


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
    """Finish the document once, keep it in ``app.state.openapi_document`` (served by
    :class:`FinishedJson` and :class:`FinishedYaml`), and keep its query parameters for the
    unknown-parameter check (limits.check_request)."""
    document = finalize(app.openapi_schema.to_schema(), app)
    app.state.openapi_document = document
    app.state.query_parameters = query_parameters(document)


class FinishedJson(JsonRenderPlugin):
    """/schema/openapi.json: the finished document, not Litestar's."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, request.app.state.openapi_document)


class FinishedYaml(YamlRenderPlugin):
    """/schema/openapi.yaml: the finished document, not Litestar's."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, request.app.state.openapi_document)
