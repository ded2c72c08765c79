"""Searchset Bundles with paging links (the offset travels as ``_offset``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from litestar import Request

from service.fhir.types import Bundle, BundleEntry, BundleLink, BundleSearch, StoredJson
from service.platform.errors import ApiError, FieldError
from service.platform.origin import public_origin


def single(request: Request[Any, Any, Any], names: Sequence[str]) -> None:
    """400 for a repeated parameter Belong cannot AND (FHIR: every repeat must match)."""
    for name in names:
        if len(request.query_params.getall(name, [])) > 1:
            raise ApiError(
                400,
                f"{name} may be given once",
                [FieldError(name, "repeating this parameter is not supported", "invalid")],
            )


def searchset(
    request: Request[Any, Any, Any],
    resource_type: str,
    resources: Sequence[Any],
    total: int,
    offset: int,
    count: int,
    used: Sequence[str],
) -> Bundle:
    """``resources`` are Structs, stored JSON objects or StoredJson, each with an ``id``. The links
    carry only the ``used`` parameters, as FHIR asks of a self link."""
    base = public_origin(request)
    # Encoded once for every link; only the offset differs between them.
    query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k in used])
    prefix = f"{base}/fhir/{resource_type}?{query}{'&' if query else ''}_offset="

    def link(relation: str, at: int) -> BundleLink:
        return BundleLink(relation=relation, url=f"{prefix}{at}")

    links = [link("self", offset)]
    if offset + count < total:
        links.append(link("next", offset + count))
    if offset > 0:
        links.append(link("previous", max(offset - count, 0)))
    entries = [
        BundleEntry(
            fullUrl=f"{base}/fhir/{resource_type}/{_id(resource)}",
            resource=resource.json if isinstance(resource, StoredJson) else resource,
            search=BundleSearch(mode="match"),
        )
        for resource in resources
    ]
    return Bundle(type="searchset", total=total, link=links, entry=entries)


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
