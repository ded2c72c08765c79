"""Searchset Bundles with paging links (the offset travels as ``_offset``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from litestar import Request

from service.fhir.types import Bundle, BundleEntry, BundleLink, BundleSearch


def searchset(
    request: Request[Any, Any, Any],
    resource_type: str,
    resources: Sequence[Any],
    total: int,
    offset: int,
    count: int,
) -> Bundle:
    """``resources`` are Structs or stored JSON objects, each with an ``id``."""
    base = str(request.base_url).rstrip("/")
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "_offset"]

    def link(relation: str, at: int) -> BundleLink:
        query = urlencode([*params, ("_offset", str(at))])
        return BundleLink(relation=relation, url=f"{base}/fhir/{resource_type}?{query}")

    links = [link("self", offset)]
    if offset + count < total:
        links.append(link("next", offset + count))
    if offset > 0:
        links.append(link("previous", max(offset - count, 0)))
    entries = [
        BundleEntry(
            fullUrl=f"{base}/fhir/{resource_type}/{_id(resource)}",
            resource=resource,
            search=BundleSearch(mode="match"),
        )
        for resource in resources
    ]
    return Bundle(type="searchset", total=total, link=links, entry=entries)


def _id(resource: Any) -> str:
    return str(resource["id"] if isinstance(resource, dict) else resource.id)
