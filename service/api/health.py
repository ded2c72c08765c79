from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.datastructures import State

from service.api.errors import ApiError


class Health(msgspec.Struct):
    status: str
    checks: dict[str, str] = {}


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/live", operation_id="health_live", summary="The process is up")
    async def live(self) -> Health:
        return Health(status="ok")

    @get("/ready", operation_id="health_ready", summary="Ready to serve: catalog loaded")
    async def ready(self, state: State) -> Health:
        if not state.get("catalog"):
            raise ApiError(503, "Instrument catalog not loaded", headers={"Retry-After": "5"})
        return Health(status="ok", checks={"catalog": "ok"})
