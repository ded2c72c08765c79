"""SMART App Launch of the clinician app: ``GET /app/launch`` (from the EHR, with ``iss``
and ``launch``; or standalone, with ``iss`` alone) and the authorization server's redirect
back to ``/app/launch/callback``. Both run in the EHR's frame, so the cookie that binds a
launch to its browser, like the session's, is a partitioned third-party cookie."""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Any

from litestar import Request, get
from litestar.datastructures import Cookie
from litestar.response import Redirect, Response, Template

from service.platform.origin import public_origin
from service.platform.sessions import session_cookie
from service.web.launch import (
    CALLBACK_PATH,
    FLOW_MINUTES,
    Launches,
    LaunchRefused,
)
from service.web.pages import PUBLIC, AppController, page

LAUNCH_COOKIE = "__Host-belong-launch"
"""The state of this browser's launch in flight: the redirect back is taken only with it."""
MAX_PARAM_CHARS = 2000


class PartitionedCookie(Cookie):
    """A cookie with the ``Partitioned`` attribute (CHIPS), which Litestar's lacks."""

    def to_header(self, **kwargs: Any) -> str:
        return super().to_header(**kwargs) + "; Partitioned"


def launch_cookie(state: str = "", max_age: int = 0) -> Cookie:
    return PartitionedCookie(
        key=LAUNCH_COOKIE,
        value=state,
        max_age=max_age,
        path="/",
        secure=True,
        httponly=True,
        samesite="none",
    )


def _launches(request: Request[Any, Any, Any]) -> Launches:
    return Launches(request.app.state.db, request.app.state.smart_launch)


def _refused(request: Request[Any, Any, Any], exc: LaunchRefused) -> Template:
    refused = page(request, "launch_refused.html", status_code=exc.status, reason=exc.reason)
    refused.cookies.append(launch_cookie())
    return refused


def _param(request: Request[Any, Any, Any], name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None or not value or len(value) > MAX_PARAM_CHARS or not value.isprintable():
        return None
    return value


class LaunchController(AppController):
    path = "/app/launch"

    @get("/", opt=PUBLIC)
    async def launch(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """The EHR opens this with ``iss`` (its FHIR base) and ``launch`` (its launch id);
        ``iss`` alone starts a standalone launch, where the clinician picks the patient at
        the EHR."""
        iss, launch = _param(request, "iss"), _param(request, "launch")
        launches = _launches(request)
        try:
            if iss is None:
                raise await launches.refuse_missing_iss()
            url, state = await launches.start(iss, launch, public_origin(request) + CALLBACK_PATH)
        except LaunchRefused as exc:
            return _refused(request, exc)
        return Redirect(
            path=url, status_code=303, cookies=[launch_cookie(state, FLOW_MINUTES * 60)]
        )

    @get("/callback", opt=PUBLIC)
    async def callback(self, request: Request[Any, Any, Any]) -> Response[Any]:
        launches = _launches(request)
        state = _param(request, "state")
        started = request.cookies.get(LAUNCH_COOKIE) or None
        try:
            if (
                state is None
                or started is None
                or not hmac.compare_digest(started.encode(), state.encode())
            ):
                raise await launches.refuse_unbound(started)
            absolute = timedelta(hours=request.app.state.settings.session_absolute_hours)
            launched = await launches.finish(
                state=state,
                code=_param(request, "code"),
                error=_param(request, "error"),
                redirect_uri=public_origin(request) + CALLBACK_PATH,
                absolute=absolute,
            )
        except LaunchRefused as exc:
            return _refused(request, exc)
        return Redirect(
            path=launched.go_to,
            status_code=303,
            headers={
                "Set-Cookie": session_cookie(
                    launched.session_id, max_age=int(absolute.total_seconds()), embedded=True
                )
            },
            cookies=[launch_cookie()],
        )
