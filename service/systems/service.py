"""Systems' use cases: the SMART token endpoint, the CDS Hooks patient-view and its
feedback, and (for ``belong clients`` and ``belong systems``) registering, listing,
revoking and rotating clients and systems. Each is one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from service.instruments.service import Catalog
from service.matching.service import DirectoryCache, recommend, screening_summary
from service.patients.model import PatientProfile
from service.platform.caller import Caller
from service.platform.credentials import Principal, SystemClient
from service.platform.database import Database, utcnow
from service.platform.system_auth import verify_system_jwt
from service.referrals.fhir import draft_service_request
from service.referrals.fhir import requester as referral_requester
from service.referrals.service import Referrals
from service.screenings.service import Screenings
from service.systems.model import (
    SUGGESTED_QUESTIONNAIRES,
    TOP_SERVICES,
    Card,
    due_card,
    granted_scopes,
    positive_card,
)
from service.systems.repository import (
    ClientRecord,
    FeedbackStore,
    SystemRecord,
    client_by_id,
    create_client,
    create_system_client,
    issue_access_token,
    list_clients,
    list_systems,
    replace_keys,
    revoke_client,
    rotate_token,
    system_named,
)

ACCESS_TOKEN_SECONDS = 300
ASSERTION_MAX_SECONDS = 300


class ScopesRefused(ValueError):
    """None of the requested SMART scopes can be granted to the client."""


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    granted: list[str]
    """The SMART scopes granted, in the order asked."""


class SmartTokens:
    """SMART Backend Services: an access token for a client's signed assertion."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def issue(self, assertion: str, token_url: str, requested: str) -> AccessToken:
        """``service.platform.jwt.JwtRefused`` when the assertion is refused,
        :class:`ScopesRefused` when no requested scope can be granted."""
        principal, _ = await verify_system_jwt(
            self.db,
            assertion,
            audiences={token_url},
            max_lifetime=ASSERTION_MAX_SECONDS,
            subject_is_issuer=True,
        )
        granted, scopes = granted_scopes(requested, principal.scopes)
        if not granted:
            raise ScopesRefused
        async with self.db.begin() as conn:
            token, _ = await issue_access_token(
                conn, principal.client_id, sorted(scopes), ACCESS_TOKEN_SECONDS
            )
        return AccessToken(token, granted)


class CdsHooks:
    """The ``patient-view`` CDS service: cards for the patient, and feedback on them."""

    def __init__(
        self, caller: Caller, catalog: Catalog, directory: DirectoryCache, window_days: int
    ) -> None:
        self.caller = caller
        self.catalog = catalog
        self.directory = directory
        self.window_days = window_days

    async def patient_view(self, patient_id: str, patient: dict[str, Any], base: str) -> list[Card]:
        """A warning card for the newest recent positive social screen, an info card when
        there was no social screening in the window, else none (none for a deceased
        patient either)."""
        if patient.get("deceasedBoolean") is True or "deceasedDateTime" in patient:
            return []
        cutoff = utcnow() - timedelta(days=self.window_days)
        caller, catalog = self.caller, self.catalog
        context = await Screenings(caller).context(patient_id)
        summaries = [s for r in context.latest if (s := screening_summary(r, catalog)) is not None]
        recent = [s for s in summaries if s.construct != "pain" and s.completed_at >= cutoff]
        positive = sorted(
            (s for s in recent if s.positive and s.signal is not None),
            key=lambda s: s.completed_at,
            reverse=True,
        )
        if positive:
            recommendations = await recommend(
                caller.db,
                caller.clinic_id,
                self.directory,
                catalog,
                context.latest,
                msgspec.convert(context.profile or {}, PatientProfile),
                limit=TOP_SERVICES,
            )
            need = positive[0]
            clinic = await Referrals(caller).organization(str(caller.clinic_id))
            requester = referral_requester(str(caller.clinic_id), clinic.name, base)

            def draft(service: Any, reason: str) -> dict[str, Any]:
                resource = draft_service_request(
                    base, patient_id, service, reason, need.screening_id, requester
                )
                return dict(msgspec.to_builtins(resource))

            return [positive_card(base, patient_id, need, recommendations, draft)]
        if not recent:
            return [due_card(base, self._questionnaires(), self.window_days)]
        return []

    def _questionnaires(self) -> list[tuple[str, str]]:
        """The suggested questionnaires the clinic may use: (id, short title)."""
        found = []
        for instrument_id in SUGGESTED_QUESTIONNAIRES:
            instrument = self.catalog.instruments.get(instrument_id)
            if instrument is not None and self.catalog.enabled(instrument):
                found.append((instrument_id, instrument.definition.short_title))
        return found

    async def record_feedback(self, service_id: str, entries: list[dict[str, Any]]) -> int:
        """Store the CDS client's feedback entries (cds_feedback columns); how many."""
        async with self.caller.transaction(FeedbackStore) as store:
            return await store.record(self.caller.client_id, service_id, entries)


class Clients:
    """Bearer-token clients of clinics (``belong clients``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        clinic: str,
        scopes: list[str],
        name: str,
        *,
        expires_at: datetime | None,
        create_clinic: bool,
    ) -> tuple[Principal, str]:
        """The new client and its token (shown once)."""
        async with self.db.begin() as conn:
            return await create_client(
                conn, clinic, scopes, name, expires_at=expires_at, create_clinic=create_clinic
            )

    async def list(self, clinic: str | None) -> list[ClientRecord]:
        async with self.db.begin() as conn:
            return await list_clients(conn, clinic)

    async def revoke(self, client_id: str) -> tuple[ClientRecord, bool]:
        """The client as it was, and whether this revoked it (False: it already was)."""
        async with self.db.begin() as conn:
            client = await _token_client(conn, client_id, "revoke")
            if client.revoked_at is not None:
                return client, False
            await revoke_client(conn, client.id)
            return client, True

    async def rotate(self, client_id: str, expires_at: datetime | None) -> tuple[ClientRecord, str]:
        """The client and its new token (shown once); the old one is refused."""
        async with self.db.begin() as conn:
            client = await _token_client(conn, client_id, "rotate")
            return client, await rotate_token(conn, client, expires_at)


async def _token_client(conn: AsyncConnection, client_id: str, action: str) -> ClientRecord:
    """The bearer-token client ``client_id``; a system is refused with the command it needs."""
    client = await client_by_id(conn, client_id)
    if client.is_system:
        raise ValueError(
            f"client {client.id} is a system that signs JWTs: use belong systems {action}"
        )
    return client


class Systems:
    """Systems that sign their own JWTs (``belong clients create --jwks``, ``belong systems``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        clinic: str,
        scopes: list[str],
        name: str,
        *,
        issuer: str | None,
        jwks: dict[str, Any] | None,
        jwks_url: str | None,
        expires_at: datetime | None,
        create_clinic: bool,
    ) -> SystemClient:
        async with self.db.begin() as conn:
            return await create_system_client(
                conn,
                clinic,
                scopes,
                name,
                issuer=issuer,
                jwks=jwks,
                jwks_url=jwks_url,
                expires_at=expires_at,
                create_clinic=create_clinic,
            )

    async def list(self, clinic: str | None) -> list[SystemRecord]:
        async with self.db.begin() as conn:
            return await list_systems(conn, clinic)

    async def revoke(self, id_or_issuer: str) -> tuple[SystemRecord, bool]:
        """The system as it was, and whether this revoked it (False: it already was)."""
        async with self.db.begin() as conn:
            system = await system_named(conn, id_or_issuer)
            if system.client.revoked_at is not None:
                return system, False
            await revoke_client(conn, system.client.id)
            return system, True

    async def replace_keys(
        self,
        id_or_issuer: str,
        *,
        jwks: dict[str, Any] | None,
        jwks_url: str | None,
        expires_at: datetime | None,
    ) -> SystemRecord:
        """New public keys for the system: what the old keys signed is refused."""
        async with self.db.begin() as conn:
            system = await system_named(conn, id_or_issuer)
            await replace_keys(conn, system, jwks=jwks, jwks_url=jwks_url, expires_at=expires_at)
            return system
