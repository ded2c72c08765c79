"""Signing in and out of the clinician app: the sign-in page, the single-use sign-in link
of `belong users link`, the clinic's OpenID provider (to it, and back), the user's own
account page and sign-out."""

from __future__ import annotations

import hmac
import logging
import uuid
from datetime import timedelta
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.datastructures import Cookie
from litestar.params import PathParameter
from litestar.response import Redirect, Response, Template

from service.platform.origin import public_origin
from service.platform.sessions import ROLE_SCOPES, end_session, session_cookie
from service.web.oidc import SecretUnavailable, SignInRefused
from service.web.oidc_sign_in import (
    CALLBACK_PATH,
    FLOW_MINUTES,
    NoBelongRole,
    OidcSignIn,
    SignInNotAccepted,
    offered_providers,
)
from service.web.pages import PUBLIC, AppController, app_user, page
from service.web.users import redeem_sign_in_link

HOME = "/app"
FLOW_COOKIE = "__Host-belong-sign-in"
"""The state of the browser's sign-in in flight to its clinic's provider: the callback
takes a state only from the browser that was sent off with it (no login CSRF)."""
log = logging.getLogger("belong.sign_in")


def flow_cookie(state: str = "", max_age: int = 0) -> Cookie:
    return Cookie(
        key=FLOW_COOKIE,
        value=state,
        max_age=max_age,
        path="/",
        secure=True,
        httponly=True,
        samesite="lax",
    )


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


def _sign_in(request: Request[Any, Any, Any]) -> OidcSignIn:
    return OidcSignIn(request.app.state.db, request.app.state.relying_party)


def _refused(request: Request[Any, Any, Any], exc: SignInRefused) -> Template:
    if isinstance(exc, SecretUnavailable):
        log.error("the identity provider's client secret is unavailable: %s", exc.reason)
        status, reason = 503, "the clinic's identity provider is not set up correctly"
    else:
        log.warning("sign-in refused: %s", exc.reason)
        status = 403 if isinstance(exc, SignInNotAccepted) else 400
        reason = exc.reason
    return page(
        request,
        "sign_in_refused.html",
        status_code=status,
        reason=reason,
        no_role=isinstance(exc, NoBelongRole),
    )


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
            providers=await offered_providers(request.app.state.db),
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

    @get("/sign-in/oidc/callback", opt=PUBLIC)
    async def oidc_callback(self, request: Request[Any, Any, Any]) -> Response[Any]:
        query = request.query_params
        state = query.get("state")
        if not state or len(state) > 512:
            return _refused(request, SignInRefused("the provider's answer has no state"))
        started = request.cookies.get(FLOW_COOKIE, "")
        if not hmac.compare_digest(started.encode(), state.encode()):
            return _refused(
                request, SignInRefused("this sign-in was not started in this browser: start again")
            )
        absolute = timedelta(hours=request.app.state.settings.session_absolute_hours)
        try:
            signed_in = await _sign_in(request).finish(
                state=state,
                code=query.get("code"),
                iss=query.get("iss"),
                error=query.get("error"),
                redirect_uri=public_origin(request) + CALLBACK_PATH,
                absolute=absolute,
            )
        except SignInRefused as exc:
            refused = _refused(request, exc)
            refused.cookies.append(flow_cookie())
            return refused
        return Redirect(
            path=safe_next(signed_in.return_to),
            status_code=303,
            headers={
                "Set-Cookie": session_cookie(
                    signed_in.session_id, max_age=int(absolute.total_seconds())
                )
            },
            cookies=[flow_cookie()],
        )

    @get("/sign-in/oidc/{clinic_id:uuid}", opt=PUBLIC)
    async def to_oidc_provider(
        self, request: Request[Any, Any, Any], clinic_id: Annotated[uuid.UUID, PathParameter()]
    ) -> Response[Any]:
        return_to = safe_next(request.query_params.get("next"))
        try:
            flow = await _sign_in(request).start(
                clinic_id, public_origin(request) + CALLBACK_PATH, return_to
            )
        except SignInRefused as exc:
            return _refused(request, exc)
        if flow is None:
            return page(
                request,
                "sign_in_refused.html",
                status_code=404,
                reason="this clinic has no identity provider set up",
            )
        return Redirect(
            path=flow.url,
            status_code=303,
            cookies=[flow_cookie(flow.state, max_age=FLOW_MINUTES * 60)],
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
