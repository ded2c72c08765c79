from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from litestar import Controller, get

from service.fhir.capability import capability_statement
from service.platform.auth import PUBLIC
from service.platform.documented import FHIR_RESOURCE, documented
from service.platform.errors import FHIR_JSON

try:
    SOFTWARE_VERSION = version("belong")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    SOFTWARE_VERSION = "0.0.0"

CAPABILITY = capability_statement(SOFTWARE_VERSION, "2026-11-25")


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
    async def metadata(self) -> dict[str, Any]:
        return CAPABILITY
