from __future__ import annotations

import asyncio

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from sqlalchemy import exc

from service.platform.auth import PUBLIC
from service.platform.database import UNAVAILABLE
from service.platform.documented import documented
from service.platform.errors import ApiError

READY_TIMEOUT = 3.0


class Health(msgspec.Struct):
    status: str
    checks: dict[str, str] = {}


class HealthController(Controller):
    path = "/health"
    tags = ["health"]
    opt = PUBLIC

    @get("/live", operation_id="health_live", summary="The process is up")
    async def live(self) -> Health:
        return Health(status="ok")

    @get(
        "/ready",
        operation_id="health_ready",
        summary="Ready to serve: the database answers",
        opt=documented(errors={503}),
    )
    async def ready(self, state: State) -> Health:
        try:
            await asyncio.wait_for(state.db.ping(), timeout=READY_TIMEOUT)
        except (*UNAVAILABLE, exc.DBAPIError):
            raise ApiError(
                503, "The database is not reachable", headers={"Retry-After": "5"}
            ) from None
        return Health(status="ok", checks={"database": "ok", "catalog": "ok"})
