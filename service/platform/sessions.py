"""The clinician app's sessions, CSRF protection and security headers (everything under
``/app``).

A session is a random id in an HttpOnly, Secure, SameSite=Lax cookie (SameSite=None and
Partitioned when a SMART launch opened it in the EHR's frame), stored only as its
SHA-256 with the user, the clinic and a CSRF token. It ends at sign-out, after
``session_idle_minutes`` without a request, or ``session_absolute_hours`` after sign-in.
A signed-in user acts as a :class:`Principal` with their role's scopes, so every page calls
the same application services, under the same clinic scoping and audit, as ``/v1``.

Every form that changes something carries the session's CSRF token (``_csrf``; or the
``X-CSRF-Token`` header) and is refused with 403 without it (:func:`require_csrf`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncConnection

from service.platform.credentials import Principal
from service.platform.database import UNAVAILABLE, Database, utcnow
from service.platform.tables import clinics, ehrs, sessions, users

APP_PREFIX = "/app"
SESSION_COOKIE = "__Host-belong-session"
"""``__Host-``: the browser keeps it only if Secure, for this host alone and path ``/``."""
CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LAST_SEEN_EVERY = timedelta(seconds=30)
"""How stale ``last_seen_at`` may be before a request writes it again: the idle timeout is
exact to this much, and a busy user costs one write a minute rather than one a page."""

FRAME_ORIGINS_SECONDS = 30.0
"""How long a worker keeps the registered EHRs' frame origins before reading them again."""

ROLES = ("clinician", "coordinator", "admin")
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "clinician": frozenset(
        {"screenings:read", "screenings:write", "referrals:read", "referrals:write"}
    ),
    "coordinator": frozenset(
        {
            "screenings:read",
            "screenings:write",
            "referrals:read",
            "referrals:write",
            "directory:write",
        }
    ),
    "admin": frozenset(
        {
            "screenings:read",
            "screenings:write",
            "referrals:read",
            "referrals:write",
            "directory:write",
            "audit:read",
        }
    ),
}
"""What each role may do, as the API scopes its pages' routes require."""


@dataclass(frozen=True, slots=True)
class AppUser:
    """The signed-in user of a request (``request.auth`` under /app)."""

    principal: Principal
    name: str
    role: str
    clinic_name: str
    csrf_token: str
    session_hash: str
    embedded: bool = False
    """Opened by a SMART launch: the app lives in the EHR's frame."""
    patient_banner: bool = True
    """Whether the app shows its own patient banner (an EHR that shows one says no)."""


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


async def open_session(
    conn: AsyncConnection,
    clinic_id: uuid.UUID,
    user_id: uuid.UUID,
    absolute: timedelta,
    now: datetime | None = None,
    *,
    ehr_id: uuid.UUID | None = None,
    patient_banner: bool = True,
) -> str:
    """A new session for the user (of the EHR that launched the app, if one did): the
    cookie's value (shown once, stored hashed)."""
    now = now or utcnow()
    session_id = secrets.token_urlsafe(32)
    await conn.execute(
        sa.insert(sessions).values(
            id_hash=hash_secret(session_id),
            clinic_id=clinic_id,
            user_id=user_id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + absolute,
            ehr_id=ehr_id,
            patient_banner=patient_banner,
        )
    )
    return session_id


async def end_session(conn: AsyncConnection, session_hash: str) -> None:
    await conn.execute(
        sa.update(sessions)
        .where(sessions.c.id_hash == session_hash, sessions.c.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


async def session_user(db: Database, session_id: str, idle: timedelta) -> AppUser | None:
    """The live session's user, its last-seen time moved on; None when the session is
    unknown, ended, idle too long, past its absolute limit, or its user disabled."""
    now = utcnow()
    key = hash_secret(session_id)
    async with db.begin() as conn:
        row = (
            await conn.execute(
                sa.select(
                    sessions.c.clinic_id,
                    sessions.c.user_id,
                    sessions.c.csrf_token,
                    sessions.c.last_seen_at,
                    sessions.c.ehr_id,
                    sessions.c.patient_banner,
                    users.c.name,
                    users.c.role,
                    clinics.c.name.label("clinic_name"),
                )
                .join(users, users.c.id == sessions.c.user_id)
                .join(clinics, clinics.c.id == sessions.c.clinic_id)
                .where(
                    sessions.c.id_hash == key,
                    sessions.c.ended_at.is_(None),
                    sessions.c.expires_at > now,
                    sessions.c.last_seen_at > now - idle,
                    users.c.clinic_id == sessions.c.clinic_id,
                    users.c.disabled_at.is_(None),
                )
            )
        ).first()
        if row is None:
            return None
        if now - row.last_seen_at > LAST_SEEN_EVERY:
            await conn.execute(
                sa.update(sessions).where(sessions.c.id_hash == key).values(last_seen_at=now)
            )
    principal = Principal(
        client_id=None, clinic_id=row.clinic_id, scopes=ROLE_SCOPES[row.role], user_id=row.user_id
    )
    return AppUser(
        principal,
        row.name,
        row.role,
        row.clinic_name,
        row.csrf_token,
        key,
        embedded=row.ehr_id is not None,
        patient_banner=row.patient_banner,
    )


def session_cookie(value: str, max_age: int | None = None, *, embedded: bool = False) -> str:
    """The Set-Cookie value for the session (``max_age`` 0 clears it). In the EHR's frame
    (``embedded``) the browser sends it only as a third-party cookie: SameSite=None, and
    Partitioned (CHIPS) so it is kept for that EHR's site alone, where third-party cookies
    are blocked too. The forms' CSRF tokens, not SameSite, protect its sessions."""
    attributes = [f"{SESSION_COOKIE}={value}", "Path=/", "HttpOnly", "Secure"]
    attributes += ["SameSite=None", "Partitioned"] if embedded else ["SameSite=Lax"]
    if max_age is not None:
        attributes.append(f"Max-Age={max_age}")
    return "; ".join(attributes)


def cookie_value(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            try:
                jar: SimpleCookie = SimpleCookie(value.decode("latin-1"))
            except CookieError:  # a malformed cookie header is no session
                return None
            morsel = jar.get(SESSION_COOKIE)
            if morsel is not None and 16 <= len(morsel.value) <= 128:
                return morsel.value
    return None


class FrameOrigins:
    """The origins of the clinics' registered EHRs, which may frame the app (the CSP's
    ``frame-ancestors``), read again every :data:`FRAME_ORIGINS_SECONDS`; while the
    database is out of reach, the last ones read."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._held: tuple[frozenset[str], float] = (frozenset(), 0.0)

    async def current(self) -> frozenset[str]:
        origins, until = self._held
        if until > time.monotonic():
            return origins
        try:
            async with self.db.begin() as conn:
                rows = await conn.execute(sa.select(ehrs.c.frame_origins))
                origins = frozenset(o for row in rows for o in row.frame_origins)
        except UNAVAILABLE:
            pass
        self._held = (origins, time.monotonic() + FRAME_ORIGINS_SECONDS)
        return origins


def security_headers(frame_ancestors: str) -> list[tuple[bytes, bytes]]:
    """Every /app response's: no inline script or style, nothing from another host, framed
    only by the configured origins, never cached, no referrer beyond the origin."""
    policy = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
        f"object-src 'none'; frame-ancestors {frame_ancestors}"
    )
    return [
        (b"content-security-policy", policy.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"cache-control", b"no-store"),
        (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]


class AppSessionMiddleware:
    """Under /app: the session's user as the request's principal (a page that needs one
    and has none redirects to the sign-in page, a form answers 401), the route's scope
    checked against the role (403), and the security headers on every response, with the
    server's time to the response's start (``Server-Timing: app;dur=MS``, what
    tests/perf/bench_app.py reads)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == APP_PREFIX or path.startswith("/app/")):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        settings = state.settings
        ehr_origins = await state.frame_origins.current()
        headers = security_headers(
            " ".join(
                [settings.frame_ancestors_policy, *sorted(ehr_origins - settings.frame_ancestors)]
            )
        )
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = (time.perf_counter() - started) * 1000
                message["headers"] = [
                    *(h for h in message.get("headers", ()) if h[0] != b"cache-control"),
                    *headers,
                    (b"server-timing", f"app;dur={took:.1f}".encode()),
                ]
            await send(message)

        handler = scope.get("route_handler")
        public = handler is None or handler.opt.get("exclude_from_auth", False)
        if not public:
            value = cookie_value(scope)
            user = None
            if value is not None:
                db = scope["app"].state.db
                user = await session_user(
                    db, value, timedelta(minutes=settings.session_idle_minutes)
                )
            if user is None:
                await _sign_in_needed(scope, send_with_headers)
                return
            required = handler.opt.get("scope")
            if required is not None and required not in user.principal.scopes:
                raise PermissionDeniedException(f"Your role ({user.role}) cannot do this")
            scope["user"] = user.principal
            scope["auth"] = user
        await self.app(scope, receive, send_with_headers)


async def _sign_in_needed(scope: Scope, send: Send) -> None:
    """A page asks the browser to sign in and come back; a form's answer is 401 (what it
    carried is not replayed after sign-in)."""
    if scope.get("method", "GET") in SAFE_METHODS:
        target = scope.get("path", APP_PREFIX)
        query = scope.get("query_string", b"").decode("latin-1")
        if query:
            target += "?" + query
        location = f"{APP_PREFIX}/sign-in?next={quote(target, safe='')}"
        status, body = 303, b""
        headers = [(b"location", location.encode("latin-1"))]
    else:
        status = 401
        body = (
            b"<!doctype html><html lang=en><title>Signed out</title>"
            b"<p>Your session has ended. <a href=/app/sign-in>Sign in again</a>.</p></html>"
        )
        headers = [(b"content-type", b"text/html; charset=utf-8")]
    headers.append((b"set-cookie", session_cookie("", max_age=0).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def require_csrf(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A guard for every /app route that changes something: the form's ``_csrf`` (or the
    ``X-CSRF-Token`` header) must equal the session's token."""
    if connection.scope.get("method") in SAFE_METHODS:
        return
    user = connection.scope.get("auth")
    if not isinstance(user, AppUser):
        raise PermissionDeniedException("This form needs a signed-in session")
    sent = connection.headers.get(CSRF_HEADER)
    if sent is None:
        form = await connection.form()  # type: ignore[attr-defined]
        sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not hmac.compare_digest(sent, user.csrf_token):
        raise PermissionDeniedException(
            "The form's security token is missing or out of date: reload the page and try again"
        )
