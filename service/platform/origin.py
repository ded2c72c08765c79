"""The public origin of a request: the one base of every absolute URL Belong writes and of
every ``aud`` it requires (Bundle links, ``fullUrl``, ``Location``, SMART and CDS URLs).

It is ``BELONG_PUBLIC_BASE_URL``; else, only when the direct peer is one of
``BELONG_TRUSTED_PROXIES``, what that proxy forwarded (``Forwarded``, else
``X-Forwarded-Host`` / ``X-Forwarded-Proto``); else the address the server listens on.
Never the request's ``Host`` header, which any client can set (Litestar's
``connection.base_url`` is built from it).
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import Headers

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,252}))(:[0-9]{1,5})?$")
"""A host name or address with an optional port: nothing that could carry a path or user."""
SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def public_origin(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """``scheme://host[:port]`` (plus any path of BELONG_PUBLIC_BASE_URL), no trailing slash."""
    settings = connection.app.state.settings
    if settings.public_base_url:
        return str(settings.public_base_url).rstrip("/")
    scope = connection.scope
    peer = scope.get("client")
    if peer and settings.trusted_proxies and _trusted(peer[0], settings.trusted_proxies):
        forwarded = _forwarded_origin(connection.headers, scope.get("scheme", "http"))
        if forwarded is not None:
            return forwarded
    return listening_origin(scope.get("scheme", "http"), scope.get("server"))


def listening_origin(scheme: str, server: tuple[str, int | None] | None) -> str:
    """The origin of the address the server accepted the connection on."""
    if server is None:  # a Unix socket: no address of its own to name
        return f"{scheme}://localhost"
    host, port = server
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


@lru_cache(maxsize=8)
def _networks(entries: frozenset[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _trusted(peer: str, entries: frozenset[str]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _networks(entries))


def _last(headers: Headers, name: str) -> str | None:
    """The last of a comma-separated header's values: the one the direct peer added."""
    values = [part.strip() for value in headers.getall(name, []) for part in value.split(",")]
    return values[-1] if values and values[-1] else None


def _forwarded_pairs(headers: Headers) -> dict[str, str]:
    """RFC 7239: the parameters of the header's last element (the trusted proxy's own)."""
    element = _last(headers, "forwarded")
    pairs: dict[str, str] = {}
    for pair in (element or "").split(";"):
        key, equals, value = pair.partition("=")
        if equals:
            pairs[key.strip().lower()] = value.strip().strip('"')
    return pairs


def _forwarded_origin(headers: Headers, scheme: str) -> str | None:
    forwarded = _forwarded_pairs(headers)
    host = forwarded.get("host") or _last(headers, "x-forwarded-host")
    proto = (forwarded.get("proto") or _last(headers, "x-forwarded-proto") or scheme).lower()
    if host is None or not HOST.fullmatch(host) or proto not in SCHEMES:
        return None
    return f"{proto}://{host}"
