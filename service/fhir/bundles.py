"""Searchset Bundles: links on the public origin that carry only the parameters applied,
the next page by keyset cursor (see service.fhir.params)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Request

from service.fhir.params import CURSOR, GENERAL, RESULT_PARAMETERS, Cursor, Search
from service.fhir.types import Bundle, BundleEntry, BundleLink, BundleSearch, StoredJson
from service.platform.errors import ApiError, FieldError
from service.platform.observability import route_template
from service.platform.origin import public_origin

RESULT_NAMES = frozenset(p["name"] for p in RESULT_PARAMETERS)
"""Given by :attr:`Search.applied` as applied (``_count`` capped), or by the cursor."""


def single(request: Request[Any, Any, Any], names: Sequence[str]) -> None:
    """400 for a repeated parameter Belong cannot AND (FHIR: every repeat must match)."""
    for name in names:
        if len(request.query_params.getall(name, [])) > 1:
            raise ApiError(
                400,
                f"{name} may be given once",
                [FieldError(name, "repeating this parameter is not supported", "invalid")],
            )


def applied(request: Request[Any, Any, Any], ignored: Sequence[str] = ()) -> list[tuple[str, str]]:
    """The request's search parameters this operation has (as its published document says),
    in the order sent, less ``ignored``: what the self link shows. Unknown parameters a
    lenient search let through, and the result parameters, are not among them."""
    known = request.app.state.query_parameters.get(
        (request.method, route_template(request.scope)), {}
    )
    return [
        (name, value)
        for name, value in request.query_params.multi_items()
        if name in known
        and name not in RESULT_NAMES
        and name not in GENERAL
        and name not in ignored
    ]


def searchset(
    request: Request[Any, Any, Any],
    resource_type: str,
    resources: Sequence[Any],
    total: int,
    search: Search,
    after: Cursor | None,
    ignored: Sequence[str] = (),
) -> Bundle:
    """``resources`` (one page: Structs, stored JSON objects or StoredJson, each with an
    ``id``) as a searchset. The self link carries the parameters applied (less ``ignored``,
    those the handler did not apply), ``next`` the cursor ``after`` the page when more
    follow; every URL is on the public origin."""
    base = public_origin(request)
    parameters = [*applied(request, ignored), *search.applied]
    if search.after is not None:
        parameters.append((CURSOR, search.after.encode()))
    links = [BundleLink(relation="self", url=_url(base, resource_type, parameters))]
    if after is not None:
        following = [(k, v) for k, v in parameters if k != CURSOR]
        following.append((CURSOR, after.encode()))
        links.append(BundleLink(relation="next", url=_url(base, resource_type, following)))
    entries = [
        BundleEntry(
            fullUrl=f"{base}/fhir/{resource_type}/{_id(resource)}",
            resource=_shown(resource, search),
            search=BundleSearch(mode="match"),
        )
        for resource in resources
    ]
    return Bundle(
        type="searchset", total=total if search.total else None, link=links, entry=entries
    )


def _url(base: str, resource_type: str, parameters: Sequence[tuple[str, str]]) -> str:
    query = urlencode(parameters)
    return f"{base}/fhir/{resource_type}{'?' if query else ''}{query}"


def _shown(resource: Any, search: Search) -> Any:
    stored = resource.json if isinstance(resource, StoredJson) else resource
    if search.elements is None:
        return stored
    if isinstance(stored, msgspec.Raw):
        whole = msgspec.json.decode(stored)
    elif isinstance(stored, dict):
        whole = stored
    else:
        whole = msgspec.to_builtins(stored)
    return search.subset(whole)


def _id(resource: Any) -> str:
    return str(resource["id"] if isinstance(resource, dict) else resource.id)


def add_included(
    request: Request[Any, Any, Any], bundle: Bundle, included: Sequence[tuple[str, Any]]
) -> Bundle:
    """``bundle`` with the resources an ``_include`` or ``_revinclude`` brought in, as
    (resource type, resource) pairs, each once and after the matches, as search mode
    ``include``."""
    base = public_origin(request)
    seen = {entry.fullUrl for entry in bundle.entry}
    for resource_type, resource in included:
        full_url = f"{base}/fhir/{resource_type}/{_id(resource)}"
        if full_url in seen:
            continue
        seen.add(full_url)
        bundle.entry.append(
            BundleEntry(
                fullUrl=full_url,
                resource=resource.json if isinstance(resource, StoredJson) else resource,
                search=BundleSearch(mode="include"),
            )
        )
    return bundle
