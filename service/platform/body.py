"""Strict JSON request bodies.

Litestar converts bodies leniently (``0`` becomes ``false``, ``"1"`` becomes ``1``), which
would make the service accept what its published schema forbids. Bodies are decoded here
with msgspec in strict mode instead, and the document lists the same Structs
(each handler names it with ``documented(request=...)``).
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from litestar import Request

from service.platform.errors import ApiError, FieldError

T = TypeVar("T")
MAX_JSON_DEPTH = 128
"""How deep a request body's arrays and objects may nest. Resources nest far less; a deeper
body is refused before the code after the parser (NUL checks, storage) recurses into it."""
_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_NAMED = re.compile(r"Object (contains unknown|missing required) field `(?P<name>[^`]+)`")


def _integral(value: Any) -> Any:
    """JSON Schema counts 16.0 as an integer; msgspec in strict mode does not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def too_deep() -> ApiError:
    message = f"arrays and objects nest more than {MAX_JSON_DEPTH} deep"
    return ApiError(
        400, f"The body is not accepted: {message}", [FieldError("body", message, "too_deep")]
    )


def check_depth(value: Any) -> None:
    """Refuse decoded JSON nesting deeper than MAX_JSON_DEPTH (level by level, no recursion)."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_JSON_DEPTH:
            raise too_deep()
        below: list[Any] = []
        for container in level:
            items = container.values() if isinstance(container, dict) else container
            below.extend(item for item in items if isinstance(item, dict | list))
        level = below


def document(raw: bytes) -> Any:
    """A body read without a type (a FHIR resource, an import file). Malformed JSON raises
    ``msgspec.DecodeError`` for the caller to word; nesting too deep is a 400 here."""
    try:
        value = msgspec.json.decode(raw)
    except RecursionError:
        raise too_deep() from None
    check_depth(value)
    return value


async def decode(request: Request[Any, Any, Any], type_: type[T]) -> T:
    raw = await request.body()
    try:
        try:
            return msgspec.json.decode(raw, type=type_, strict=True)
        except msgspec.ValidationError as exc:
            if "got `float`" not in str(exc):
                raise
            return msgspec.convert(_integral(msgspec.json.decode(raw)), type_, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _AT.search(message)
        path = match["path"] if match else ""
        named = _NAMED.match(message)
        if named:  # an unknown or missing field: name it, not the object holding it
            path = f"{path}.{named['name']}" if path else named["name"]
        field = path or "body"
        raise ApiError(
            400, "The request body is not valid", [FieldError(field, message, "invalid")]
        ) from exc
    except msgspec.DecodeError as exc:
        raise ApiError(
            400, f"The body is not JSON: {exc}", [FieldError("body", str(exc), "malformed")]
        ) from exc
    except RecursionError:  # nested too deep to decode, even in a field that is ignored
        raise too_deep() from None
