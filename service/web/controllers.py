"""Signing in and out of the clinician app: the sign-in page, the single-use sign-in link
of `belong users link`, the user's own account page and sign-out."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import PathParameter
from litestar.response import Redirect, Response, Template

from service.platform.sessions import ROLE_SCOPES, end_session, session_cookie
from service.web.pages import PUBLIC, AppController, app_user, page
from service.web.users import redeem_sign_in_link

HOME = "/app"


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a path of this app only (never another host)."""
    if (
        target
        and (target == HOME or target.startswith(HOME + "/"))
        and "//" not in target
        and "\\" not in target
    ):
        return target
    return HOME


class SignInController(AppController):
    path = "/app"

    @get("/sign-in", opt=PUBLIC)
    async def sign_in(self, request: Request[Any, Any, Any]) -> Template:
        query = request.query_params
        return page(
            request,
            "sign_in.html",
            next=safe_next(query.get("next")),
            signed_out=query.get("signed_out") == "1",
        )

    @get("/sign-in/link/{token:str}", opt=PUBLIC)
    async def sign_in_link(
        self,
        request: Request[Any, Any, Any],
        token: Annotated[str, PathParameter(min_length=16, max_length=128)],
    ) -> Response[Any]:
        settings = request.app.state.settings
        absolute = timedelta(hours=settings.session_absolute_hours)
        session_id = await redeem_sign_in_link(request.app.state.db, token, absolute)
        if session_id is None:
            return page(request, "sign_in.html", status_code=410, next=HOME, link_refused=True)
        return Redirect(
            path=HOME,
            status_code=303,
            headers={
                "Set-Cookie": session_cookie(session_id, max_age=int(absolute.total_seconds()))
            },
        )

    @get("/account")
    async def account(self, request: Request[Any, Any, Any]) -> Template:
        user = app_user(request)
        assert user is not None
        settings = request.app.state.settings
        return page(
            request,
            "account.html",
            scopes=sorted(ROLE_SCOPES[user.role]),
            idle_minutes=settings.session_idle_minutes,
            absolute_hours=settings.session_absolute_hours,
        )

    @post("/sign-out", status_code=303)
    async def sign_out(self, request: Request[Any, Any, Any]) -> Redirect:
        user = app_user(request)
        assert user is not None
        async with request.app.state.db.begin() as conn:
            await end_session(conn, user.session_hash)
        return Redirect(
            path="/app/sign-in?signed_out=1",
            status_code=303,
            headers={"Set-Cookie": session_cookie("", max_age=0)},
        )
