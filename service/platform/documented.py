"""What a route handler's OpenAPI operation says beyond what Litestar sees in its signature.

A handler declares these facts in its own ``opt``, under the key ``"openapi"``
(``opt={**scoped(...), **documented(errors={422})}``); the finishing step
(service.platform.openapi) reads them generically from the app's route handlers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OPENAPI = "openapi"
"""The ``opt`` key holding a handler's :class:`Facts`."""

JSON = "application/json"
REF = "#/components/schemas/{name}"

FHIR_RESOURCE: dict[str, Any] = {
    "type": "object",
    "required": ["resourceType"],
    "properties": {"resourceType": {"type": "string"}, "id": {"type": "string"}},
}
"""Any FHIR resource, for bodies stored or built as received."""


@dataclass(frozen=True)
class Facts:
    """An operation's facts; a "shape" is a msgspec Struct or a JSON Schema dict.

    errors: statuses it answers beyond those its parameters, body, path and scope imply.
    bodies: status -> (media type, shape) of responses returned as bytes or built at run
        time. request: the shape of a body read from raw bytes (service.platform.body.decode),
        in each of request_media. example: one realistic request body. responses: whole
        response objects, replacing Litestar's. parameters: parameters Litestar cannot see.
        links: OpenAPI links from its first success. schemas: further Structs it answers
        with, published from msgspec. components: component schemas it refers to by name.
        plain_json: its bodies are plain JSON, though it is served under /fhir.
        search: it is a FHIR search (service.fhir.params): it takes the result parameters
        and ignores parameters it does not have unless asked to be strict.
    """

    errors: frozenset[int] = frozenset()
    bodies: Mapping[int, tuple[str, Any]] = field(default_factory=dict)
    request: Any = None
    request_media: tuple[str, ...] = (JSON,)
    example: Any = None
    responses: Mapping[int, dict[str, Any]] = field(default_factory=dict)
    parameters: tuple[dict[str, Any], ...] = ()
    links: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    schemas: tuple[type, ...] = ()
    components: Mapping[str, Any] = field(default_factory=dict)
    plain_json: bool = False
    search: bool = False


def documented(
    *,
    errors: set[int] | frozenset[int] = frozenset(),
    bodies: Mapping[int, tuple[str, Any]] | None = None,
    request: Any = None,
    request_media: tuple[str, ...] = (JSON,),
    example: Any = None,
    responses: Mapping[int, dict[str, Any]] | None = None,
    parameters: tuple[dict[str, Any], ...] = (),
    links: Mapping[str, dict[str, Any]] | None = None,
    schemas: tuple[type, ...] = (),
    components: Mapping[str, Any] | None = None,
    plain_json: bool = False,
    search: bool = False,
) -> dict[str, Facts]:
    """Route options carrying an operation's :class:`Facts`."""
    return {
        OPENAPI: Facts(
            errors=frozenset(errors),
            bodies=bodies or {},
            request=request,
            request_media=request_media,
            example=example,
            responses=responses or {},
            parameters=parameters,
            links=links or {},
            schemas=schemas,
            components=components or {},
            plain_json=plain_json,
            search=search,
        )
    }


def link(operation_id: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link to ``operation_id``, its parameters from the response."""
    return {"operationId": operation_id, "parameters": parameters}
