"""Signing in to the clinician app through the clinic's OpenID provider: its configuration
(`belong clinics idp`), the sign-ins in flight (``sign_in_flows``: the state stored hashed,
spent once, within ten minutes) and the callback that turns a verified identity into a user
of that clinic, with the role the provider gives, and a session."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from service.platform.clinics import clinic_id_named
from service.platform.database import Database, new_id, utcnow
from service.platform.sessions import ROLES, hash_secret, open_session
from service.platform.tables import clinics, identity_providers, sign_in_flows, users
from service.web.oidc import (
    DEFAULT_ROLE_CLAIM,
    DEFAULT_ROLE_MAP,
    ERROR_CODE,
    AuthorizationRequest,
    IdentityProvider,
    RelyingParty,
    SignInRefused,
    checked_issuer,
    checked_secret_ref,
    display_name,
    role_of,
)
from service.web.users import checked_user_name

CALLBACK_PATH = "/app/sign-in/oidc/callback"
FLOW_MINUTES = 10
log = logging.getLogger("belong.sign_in")


@dataclass(frozen=True, slots=True)
class OfferedProvider:
    """A clinic whose users can sign in through its provider (the sign-in page's buttons)."""

    clinic_id: uuid.UUID
    clinic_name: str


@dataclass(frozen=True, slots=True)
class SignedIn:
    session_id: str
    return_to: str | None
    user_id: uuid.UUID
    role: str


class SignInNotAccepted(SignInRefused):
    """Refused by Belong's own rules rather than the protocol's: no role, a disabled user."""


class NoBelongRole(SignInNotAccepted):
    """The provider gave the user no value that maps to a Belong role."""


def checked_role_map(role_map: Mapping[str, str]) -> dict[str, str]:
    checked = {}
    for value, role in role_map.items():
        if not value or len(value) > 200:
            raise ValueError("a role value of the provider is 1 to 200 characters")
        if role not in ROLES:
            raise ValueError(f"{value}={role}: {role!r} is not one of {', '.join(ROLES)}")
        checked[value] = role
    if not checked:
        raise ValueError("the role map maps no value to a role")
    return checked


def parse_role_map(text: str) -> dict[str, str]:
    """``admin=admin,Belong.Reader=clinician`` (the provider's value = Belong's role)."""
    pairs = {}
    for item in text.split(","):
        value, sep, role = item.strip().rpartition("=")
        if not sep or not value:
            raise ValueError(f"{item.strip()!r} is not VALUE=ROLE")
        pairs[value] = role
    return checked_role_map(pairs)


def _provider(row: sa.Row[tuple[object, ...]]) -> IdentityProvider:
    m = row._mapping
    return IdentityProvider(
        issuer=m["issuer"],
        client_id=m["client_id"],
        secret_ref=m["secret_ref"],
        role_claim=m["role_claim"],
        role_map=dict(m["role_map"]),
        scopes=tuple(m["scopes"]),
    )


async def provider_of(conn: AsyncConnection, clinic_id: uuid.UUID) -> IdentityProvider | None:
    row = (
        await conn.execute(
            sa.select(identity_providers).where(identity_providers.c.clinic_id == clinic_id)
        )
    ).first()
    return _provider(row) if row is not None else None


class IdentityProviders:
    """``belong clinics idp``: a clinic's OpenID provider, set or replaced."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def configure(
        self,
        clinic: str,
        *,
        issuer: str,
        client_id: str,
        secret_ref: str,
        role_claim: str = DEFAULT_ROLE_CLAIM,
        role_map: Mapping[str, str] = DEFAULT_ROLE_MAP,
        scopes: Sequence[str] = (),
    ) -> IdentityProvider:
        if not 1 <= len(issuer) <= 500:
            raise ValueError("an issuer is at most 500 characters")
        checked_issuer(issuer)
        if not 1 <= len(client_id) <= 255 or not client_id.isprintable():
            raise ValueError("a client id is 1 to 255 printable characters")
        checked_secret_ref(secret_ref)
        if not 1 <= len(role_claim) <= 100:
            raise ValueError("a role claim's name is 1 to 100 characters")
        for scope in scopes:
            if not scope or not scope.isascii() or not scope.isprintable() or " " in scope:
                raise ValueError(f"{scope!r} is not a scope")
        values = {
            "issuer": issuer,
            "client_id": client_id,
            "secret_ref": secret_ref,
            "role_claim": role_claim,
            "role_map": checked_role_map(role_map),
            "scopes": [s for s in dict.fromkeys(scopes) if s != "openid"],
        }
        now = utcnow()
        async with self.db.begin() as conn:
            clinic_id = await clinic_id_named(conn, clinic)
            statement = insert(identity_providers).values(
                clinic_id=clinic_id, created_at=now, updated_at=now, **values
            )
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[identity_providers.c.clinic_id],
                    set_={**values, "updated_at": now},
                )
            )
            provider = await provider_of(conn, clinic_id)
        assert provider is not None
        return provider


async def offered_providers(db: Database) -> list[OfferedProvider]:
    async with db.begin() as conn:
        rows = await conn.execute(
            sa.select(clinics.c.id, clinics.c.name)
            .join(identity_providers, identity_providers.c.clinic_id == clinics.c.id)
            .order_by(clinics.c.name)
        )
        return [OfferedProvider(row.id, row.name) for row in rows]


class OidcSignIn:
    """The two halves of a sign-in: to the provider, and back."""

    def __init__(self, db: Database, relying_party: RelyingParty) -> None:
        self.db = db
        self.rp = relying_party

    async def start(
        self, clinic_id: uuid.UUID, redirect_uri: str, return_to: str | None
    ) -> AuthorizationRequest | None:
        """The request to send the browser with to the provider, its flow kept; None: the
        clinic has no provider."""
        async with self.db.begin() as conn:
            provider = await provider_of(conn, clinic_id)
        if provider is None:
            return None
        request = await self.rp.authorization_request(provider, redirect_uri)
        now = utcnow()
        async with self.db.begin() as conn:
            await conn.execute(sa.delete(sign_in_flows).where(sign_in_flows.c.expires_at < now))
            await conn.execute(
                sa.insert(sign_in_flows).values(
                    state_hash=hash_secret(request.state),
                    clinic_id=clinic_id,
                    nonce=request.nonce,
                    code_verifier=request.code_verifier,
                    return_to=return_to,
                    created_at=now,
                    expires_at=now + timedelta(minutes=FLOW_MINUTES),
                )
            )
        return request

    async def finish(
        self,
        *,
        state: str,
        code: str | None,
        iss: str | None,
        error: str | None,
        redirect_uri: str,
        absolute: timedelta,
    ) -> SignedIn:
        """The provider's redirect back: the flow spent (even when what follows fails, so a
        state is good for one try), the code exchanged, the identity verified, its user
        created or updated, a session opened."""
        now = utcnow()
        async with self.db.begin() as conn:
            flow = (
                await conn.execute(
                    sa.update(sign_in_flows)
                    .where(
                        sign_in_flows.c.state_hash == hash_secret(state),
                        sign_in_flows.c.used_at.is_(None),
                        sign_in_flows.c.expires_at > now,
                    )
                    .values(used_at=now)
                    .returning(
                        sign_in_flows.c.clinic_id,
                        sign_in_flows.c.nonce,
                        sign_in_flows.c.code_verifier,
                        sign_in_flows.c.return_to,
                    )
                )
            ).first()
            provider = None if flow is None else await provider_of(conn, flow.clinic_id)
        if flow is None or provider is None:
            raise SignInRefused("this sign-in has expired or was used already: start again")
        if error is not None:
            named = f" ({error})" if ERROR_CODE.fullmatch(error) else ""
            raise SignInRefused(f"the identity provider did not sign you in{named}")
        if not code:
            raise SignInRefused("the identity provider sent no authorization code")
        await self.rp.check_callback_issuer(provider, iss)
        identity = await self.rp.sign_in(
            provider,
            code=code,
            code_verifier=flow.code_verifier,
            nonce=flow.nonce,
            redirect_uri=redirect_uri,
        )
        try:
            role = role_of(identity, provider)
        except SignInRefused as exc:
            raise NoBelongRole(exc.reason) from None
        async with self.db.begin() as conn:
            user_id = await user_for_identity(
                conn,
                flow.clinic_id,
                identity.issuer,
                identity.subject,
                display_name(identity),
                role,
            )
            session_id = await open_session(conn, flow.clinic_id, user_id, absolute, utcnow())
        log.info(
            "signed in through the clinic's identity provider",
            extra={"clinic_id": str(flow.clinic_id), "user_id": str(user_id), "role": role},
        )
        return SignedIn(session_id, flow.return_to, user_id, role)


async def _name_is_free(
    conn: AsyncConnection, clinic_id: uuid.UUID, name: str, user_id: uuid.UUID | None
) -> bool:
    query = sa.select(users.c.id).where(users.c.clinic_id == clinic_id, users.c.name == name)
    holder = (await conn.execute(query)).scalar()
    return holder is None or holder == user_id


async def user_for_identity(
    conn: AsyncConnection,
    clinic_id: uuid.UUID,
    issuer: str,
    subject: str,
    name: str | None,
    role: str,
) -> uuid.UUID:
    """The clinic's user of that identity, its role (and name, when given and free) as the
    provider says now; a new user when there is none (named by the subject when the
    provider gives no name). A disabled user is refused."""
    existing = (
        await conn.execute(
            sa.select(users.c.id, users.c.name, users.c.disabled_at)
            .where(
                users.c.clinic_id == clinic_id,
                users.c.issuer == issuer,
                users.c.subject == subject,
            )
            .with_for_update()
        )
    ).first()
    if existing is not None and existing.disabled_at is not None:
        raise SignInNotAccepted("this user is disabled in Belong")
    user_id = None if existing is None else existing.id
    if name is None:
        name = subject[:200] if existing is None else existing.name
    name = checked_user_name(name)
    if not await _name_is_free(conn, clinic_id, name, user_id):
        # Another user of the clinic has that name: told apart by the subject.
        name = f"{name[:100]} ({subject[:96]})"
        if not await _name_is_free(conn, clinic_id, name, user_id):
            raise SignInNotAccepted("another user of this clinic has this user's name")
    if existing is not None:
        await conn.execute(
            sa.update(users).where(users.c.id == existing.id).values(role=role, name=name)
        )
        return existing.id
    created = new_id()
    await conn.execute(
        sa.insert(users).values(
            id=created,
            clinic_id=clinic_id,
            name=name,
            role=role,
            issuer=issuer,
            subject=subject,
            created_at=utcnow(),
        )
    )
    return created
