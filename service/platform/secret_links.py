"""Secret links: a page opened without an account, by a random token in its URL.

:func:`issue` makes one (the token is returned once; only its SHA-256 is kept);
:func:`resolve` says what a presented token opens, or why it no longer does (``gone``:
revoked, expired or used, answered 410; unknown tokens are 404); :func:`spend` uses a
single-use link once, atomically; :func:`revoke` ends every live link of a subject (and
rotation is revoke, then issue).
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import sqlalchemy as sa
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncConnection

from service.platform.credentials import Principal
from service.platform.database import Compiled, utcnow
from service.platform.sessions import hash_secret
from service.platform.tables import LINK_KINDS, secret_links

PATHS = {"inbox": "/inbox", "handout": "/h", "patient": "/p"}
"""Where each kind of link opens: ``{public base}{PATHS[kind]}/{token}``."""
TOKEN_BYTES = 32
LINK_PATTERN = r"^[A-Za-z0-9_-]{43}$"
"""What :func:`issue` makes: 32 random bytes, URL-safe base64 without padding."""


@dataclass(frozen=True, slots=True)
class SecretLink:
    clinic_id: uuid.UUID
    kind: str
    subject_id: str
    purpose: str | None
    created_at: datetime
    expires_at: datetime | None
    gone: str | None
    """None while the link works; else "revoked", "expired" or "used"."""


def url(public_base: str, kind: str, token: str) -> str:
    """The link a token opens (built on the public base URL, never the Host header)."""
    return f"{public_base.rstrip('/')}{PATHS[kind]}/{token}"


async def issue(
    conn: AsyncConnection,
    clinic_id: uuid.UUID,
    kind: str,
    subject_id: str,
    *,
    lifetime: timedelta | None,
    purpose: str | None = None,
) -> str:
    """A new link's token (``lifetime`` None: until revoked)."""
    if kind not in LINK_KINDS:
        raise ValueError(f"{kind!r} is not a kind of link")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = utcnow()
    await conn.execute(
        sa.insert(secret_links).values(
            token_hash=hash_secret(token),
            clinic_id=clinic_id,
            kind=kind,
            subject_id=subject_id,
            purpose=purpose,
            created_at=now,
            expires_at=None if lifetime is None else now + lifetime,
        )
    )
    return token


async def resolve(conn: AsyncConnection, token: str, kind: str) -> SecretLink | None:
    """What the token opens (a link of ``kind`` only), and whether it still does; None
    for a token no link of that kind has."""
    row = (
        await conn.execute(
            sa.select(secret_links).where(
                secret_links.c.token_hash == hash_secret(token), secret_links.c.kind == kind
            )
        )
    ).first()
    if row is None:
        return None
    now = utcnow()
    gone = (
        "revoked"
        if row.revoked_at is not None
        else "used"
        if row.used_at is not None
        else "expired"
        if row.expires_at is not None and row.expires_at <= now
        else None
    )
    return SecretLink(
        row.clinic_id, row.kind, row.subject_id, row.purpose, row.created_at, row.expires_at, gone
    )


async def spend(conn: AsyncConnection, token: str, kind: str) -> bool:
    """Use a single-use link: True for the one caller that used it while it worked."""
    now = utcnow()
    spent = await conn.execute(
        sa.update(secret_links)
        .where(
            secret_links.c.token_hash == hash_secret(token),
            secret_links.c.kind == kind,
            secret_links.c.revoked_at.is_(None),
            secret_links.c.used_at.is_(None),
            sa.or_(secret_links.c.expires_at.is_(None), secret_links.c.expires_at > now),
        )
        .values(used_at=now)
    )
    return spent.rowcount == 1


_SPEND_BY_HASH = Compiled(
    sa.update(secret_links)
    .where(
        secret_links.c.token_hash == sa.bindparam("token_hash"),
        secret_links.c.kind == sa.bindparam("kind"),
        secret_links.c.revoked_at.is_(None),
        secret_links.c.used_at.is_(None),
        sa.or_(
            secret_links.c.expires_at.is_(None), secret_links.c.expires_at > sa.bindparam("now")
        ),
    )
    .values(used_at=sa.bindparam("now"))
    .returning(secret_links.c.token_hash)
)


async def spend_on_driver(conn: asyncpg.Connection, token_hash: str, kind: str) -> bool:
    """:func:`spend` on a hot path's own asyncpg connection (inside the transaction it
    stores the answer in), by the token's hash."""
    values = {"token_hash": token_hash, "kind": kind, "now": utcnow()}
    return await conn.fetchval(_SPEND_BY_HASH.sql, *_SPEND_BY_HASH.args(values)) is not None


async def revoke(conn: AsyncConnection, clinic_id: uuid.UUID, kind: str, subject_id: str) -> int:
    """End every live link of the clinic's subject; how many there were."""
    revoked = await conn.execute(
        sa.update(secret_links)
        .where(
            secret_links.c.clinic_id == clinic_id,
            secret_links.c.kind == kind,
            secret_links.c.subject_id == subject_id,
            secret_links.c.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    return revoked.rowcount


LINK_STATE = "belong_secret_link"
"""Where :class:`SecretLinkMiddleware` leaves the link a request presented."""
LINK_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"x-robots-tag", b"noindex, nofollow"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
"""Every link page's headers: the token is in its address, so it is never cached, never
sent on as a referrer, never indexed, and the page is framed by no one."""


@dataclass(frozen=True, slots=True)
class PresentedLink:
    token: str
    link: SecretLink | None
    """None: no link of the route's kind has this token."""


def presented_link(scope: Scope) -> PresentedLink | None:
    """The link the request presented (set by :class:`SecretLinkMiddleware`)."""
    found = scope.get("state", {}).get(LINK_STATE)
    return found if isinstance(found, PresentedLink) else None


def link_principal(token: str, link: SecretLink) -> Principal:
    """The link as the actor: in its clinic, with no scopes, known by its token's hash."""
    return Principal(
        client_id=None, clinic_id=link.clinic_id, scopes=frozenset(), link_hash=hash_secret(token)
    )


class SecretLinkMiddleware:
    """On a route with ``opt["secret_link"] = kind`` and a ``token`` path parameter: the
    link resolved once, left for the handler (:func:`presented_link`), and, while it works,
    the request's principal: ``Principal(client_id=None, link_hash=...)`` in the link's
    clinic with no scopes, so the audit records the link as the actor. Sets
    :data:`LINK_HEADERS` on every response of such a route, refusals included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler")
        kind = handler.opt.get("secret_link") if handler is not None else None
        if kind is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = scope.get("path_params", {}).get("token")
        link = None
        if isinstance(token, str) and re.fullmatch(LINK_PATTERN, token):
            async with scope["app"].state.db.begin() as conn:
                link = await resolve(conn, token, kind)
        scope.setdefault("state", {})[LINK_STATE] = PresentedLink(str(token), link)
        if link is not None and link.gone is None:
            scope["user"] = link_principal(str(token), link)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in LINK_HEADERS}
                message["headers"] = [
                    *(h for h in message.get("headers", ()) if h[0] not in names),
                    *LINK_HEADERS,
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)
