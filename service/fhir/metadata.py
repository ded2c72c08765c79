from __future__ import annotations

from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from litestar import Controller, Request, get

from service.fhir.capability import capability_statement
from service.platform.auth import PUBLIC
from service.platform.documented import FHIR_RESOURCE, documented
from service.platform.errors import FHIR_JSON

try:
    SOFTWARE_VERSION = version("belong")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    SOFTWARE_VERSION = "0.0.0"

PUBLISHED = "2026-11-25"


@lru_cache(maxsize=4)
def capability(canonical_base: str) -> dict[str, Any]:
    """The CapabilityStatement, its url under the deployment's canonical base."""
    return capability_statement(SOFTWARE_VERSION, PUBLISHED, canonical_base)


class MetadataController(Controller):
    path = "/fhir/metadata"
    tags = ["fhir"]
    opt = PUBLIC

    @get(
        operation_id="fhir_capabilities",
        media_type=FHIR_JSON,
        summary="The CapabilityStatement (FHIR 4.0.1)",
        opt=documented(bodies={200: (FHIR_JSON, FHIR_RESOURCE)}),
    )
    async def metadata(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        return capability(request.app.state.settings.fhir_canonical_base)
