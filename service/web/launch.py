"""Opening the clinician app from a clinic's EHR (SMART App Launch): the EHRs a clinic
registered (`belong ehrs`), the launches in flight to them (``launch_flows``: the state
stored hashed, spent once, within ten minutes), and the redirect back that turns the EHR's
user into a session of its clinic on the patient in front of them.

Every refusal is recorded, never a session: an audit event of the EHR's clinic (the EHR as
actor, the reason as detail), or, when no clinic registered the ``iss``, a
``launch_refusals`` row for the operator.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote, urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from service.platform.audit import AuditEvent
from service.platform.clinics import clinic_id_named
from service.platform.database import Database, new_id, utcnow
from service.platform.sessions import hash_secret, open_session
from service.platform.tables import (
    audit_events,
    ehrs,
    launch_flows,
    launch_refusals,
    patients,
    sessions,
)
from service.web.oidc import (
    IdentityProvider,
    SignInRefused,
    checked_issuer,
    checked_secret_ref,
    display_name,
)
from service.web.oidc_sign_in import SignInNotAccepted, user_for_identity
from service.web.smart_launch import SmartLaunchClient
from service.web.users import checked_role

LAUNCH_PATH = "/app/launch"
CALLBACK_PATH = "/app/launch/callback"
FLOW_MINUTES = 10
log = logging.getLogger("belong.launch")


@dataclass(frozen=True, slots=True)
class Ehr:
    id: uuid.UUID
    clinic_id: uuid.UUID
    iss: str
    client_id: str
    secret_ref: str | None
    role: str
    patient_identifier_system: str | None
    frame_origins: tuple[str, ...]

    @property
    def client(self) -> IdentityProvider:
        """Belong as the EHR's client, for the token request."""
        return IdentityProvider(
            issuer=self.iss, client_id=self.client_id, secret_ref=self.secret_ref
        )


@dataclass(frozen=True, slots=True)
class Launched:
    session_id: str
    go_to: str


class LaunchRefused(SignInRefused):
    """A launch that opens no session; ``status`` is the refusal page's."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def checked_frame_origin(origin: str) -> str:
    parts = urlsplit(origin)
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or any(c in origin for c in " ;,'\"")
    ):
        raise ValueError(f"{origin!r} is not an origin (https://ehr.example.org)")
    checked_issuer(origin_of(origin))
    return origin_of(origin)


def _ehr(row: sa.Row[tuple[object, ...]]) -> Ehr:
    m = row._mapping
    return Ehr(
        id=m["id"],
        clinic_id=m["clinic_id"],
        iss=m["iss"],
        client_id=m["client_id"],
        secret_ref=m["secret_ref"],
        role=m["role"],
        patient_identifier_system=m["patient_identifier_system"],
        frame_origins=tuple(m["frame_origins"]),
    )


async def ehr_of(conn: AsyncConnection, iss: str) -> Ehr | None:
    row = (await conn.execute(sa.select(ehrs).where(ehrs.c.iss == iss))).first()
    return _ehr(row) if row is not None else None


class Ehrs:
    """``belong ehrs``: the EHRs that may launch the app into a clinic."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        clinic: str,
        *,
        iss: str,
        client_id: str,
        secret_ref: str | None = None,
        role: str = "clinician",
        patient_identifier_system: str | None = None,
        frame_origins: Sequence[str] = (),
    ) -> Ehr:
        """Register the EHR of ``iss`` for the clinic, or change its registration. An
        ``iss`` launches into one clinic only."""
        iss = iss.rstrip("/")
        if not 1 <= len(iss) <= 500:
            raise ValueError("an iss is at most 500 characters")
        checked_issuer(iss)
        if not 1 <= len(client_id) <= 255 or not client_id.isprintable():
            raise ValueError("a client id is 1 to 255 printable characters")
        if secret_ref is not None:
            checked_secret_ref(secret_ref)
        checked_role(role)
        if patient_identifier_system is not None and not (
            1 <= len(patient_identifier_system) <= 500 and patient_identifier_system.isprintable()
        ):
            raise ValueError("an identifier system is 1 to 500 printable characters")
        origins = list(
            dict.fromkeys(checked_frame_origin(o) for o in (*frame_origins, origin_of(iss)))
        )
        values = {
            "client_id": client_id,
            "secret_ref": secret_ref,
            "role": role,
            "patient_identifier_system": patient_identifier_system,
            "frame_origins": origins,
        }
        now = utcnow()
        async with self.db.begin() as conn:
            clinic_id = await clinic_id_named(conn, clinic)
            held = await ehr_of(conn, iss)
            if held is not None and held.clinic_id != clinic_id:
                raise ValueError(f"{iss} is registered for another clinic")
            statement = insert(ehrs).values(
                id=new_id(), clinic_id=clinic_id, iss=iss, created_at=now, updated_at=now, **values
            )
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[ehrs.c.iss], set_={**values, "updated_at": now}
                )
            )
            ehr = await ehr_of(conn, iss)
        assert ehr is not None
        return ehr

    async def remove(self, clinic: str, iss: str) -> int:
        """Unregister the clinic's EHR of ``iss``: it launches nothing more, and the sessions
        it opened end now. How many sessions ended."""
        now = utcnow()
        async with self.db.begin() as conn:
            clinic_id = await clinic_id_named(conn, clinic)
            ehr = await ehr_of(conn, iss.rstrip("/"))
            if ehr is None or ehr.clinic_id != clinic_id:
                raise LookupError(f"{iss} is not an EHR of clinic {clinic!r}")
            ended = await conn.execute(
                sa.update(sessions)
                .where(sessions.c.ehr_id == ehr.id, sessions.c.ended_at.is_(None))
                .values(ended_at=now)
            )
            await conn.execute(sa.delete(ehrs).where(ehrs.c.id == ehr.id))
        return ended.rowcount

    async def list(self, clinic: str) -> list[Ehr]:
        async with self.db.begin() as conn:
            clinic_id = await clinic_id_named(conn, clinic)
            rows = await conn.execute(
                sa.select(ehrs).where(ehrs.c.clinic_id == clinic_id).order_by(ehrs.c.iss)
            )
            return [_ehr(row) for row in rows]


def where_to(patient_id: str | None, app_context: str | None, known: bool = True) -> str:
    """The page the launch opens: the patient's (at its recommendations when the card
    asked for them), their screening entry (asked for, or a patient Belong has not seen:
    there is nothing else to show yet), or the worklist without a patient."""
    if patient_id is None:
        return "/app"
    if app_context == "screening" or not known:
        return f"/app/screenings/new?patient={quote(patient_id, safe='')}"
    page = f"/app/patients/{quote(patient_id, safe='')}"
    return page + "#recommendations" if app_context == "recommendations" else page


class Launches:
    """The two halves of a launch: to the EHR's authorization server, and back."""

    def __init__(self, db: Database, client: SmartLaunchClient) -> None:
        self.db = db
        self.client = client

    async def _refuse(
        self,
        reason: str,
        *,
        ehr: Ehr | None = None,
        iss: str | None = None,
        status: int = 400,
        patient_id: str | None = None,
    ) -> LaunchRefused:
        """The refusal recorded (audited for the EHR's clinic, else for the operator)."""
        now = utcnow()
        async with self.db.begin() as conn:
            if ehr is None:
                await conn.execute(
                    sa.insert(launch_refusals).values(
                        id=new_id(),
                        iss=(iss or None) and iss[:500],
                        reason=reason[:200],
                        recorded_at=now,
                    )
                )
            else:
                event = AuditEvent(
                    client_id=None,
                    action="launch",
                    resource_type="Session",
                    resource_id=None,
                    patient_id=patient_id,
                    status_code=status,
                    at=now,
                    ehr_id=ehr.id,
                    detail=reason[:200],
                )
                await conn.execute(
                    sa.insert(audit_events).values(clinic_id=ehr.clinic_id, **event.columns())
                )
        log.warning(
            "launch refused: %s",
            reason,
            extra={
                "ehr_id": str(ehr.id) if ehr else None,
                "clinic_id": str(ehr.clinic_id) if ehr else None,
            },
        )
        return LaunchRefused(reason, status)

    async def refuse_missing_iss(self) -> LaunchRefused:
        return await self._refuse("the EHR did not say which EHR it is (no iss)")

    async def start(self, iss: str, launch: str | None, redirect_uri: str) -> tuple[str, str]:
        """The URL to send the browser to, and the state to bind to it; the flow kept."""
        async with self.db.begin() as conn:
            ehr = await ehr_of(conn, iss.rstrip("/"))
        if ehr is None:
            raise await self._refuse("this EHR (iss) is not registered with Belong", iss=iss)
        try:
            config = await self.client.configuration(ehr.iss)
            request = self.client.authorization_request(
                config,
                ehr.client_id,
                redirect_uri,
                launch=launch,
                read_patient=ehr.patient_identifier_system is not None,
            )
        except SignInRefused as exc:
            raise await self._refuse(exc.reason, ehr=ehr, status=502) from None
        now = utcnow()
        async with self.db.begin() as conn:
            await conn.execute(sa.delete(launch_flows).where(launch_flows.c.expires_at < now))
            await conn.execute(
                sa.insert(launch_flows).values(
                    state_hash=hash_secret(request.state),
                    ehr_id=ehr.id,
                    standalone=launch is None,
                    nonce=request.nonce,
                    code_verifier=request.code_verifier,
                    created_at=now,
                    expires_at=now + timedelta(minutes=FLOW_MINUTES),
                )
            )
        return request.url, request.state

    async def _spend(self, state: str) -> tuple[sa.Row[tuple[object, ...]] | None, Ehr | None]:
        """The flow of ``state``, spent now (None when unknown, used or expired), and its
        EHR (known for a used or expired flow too, whose refusal is then its clinic's)."""
        now = utcnow()
        key = hash_secret(state)
        async with self.db.begin() as conn:
            flow = (
                await conn.execute(
                    sa.update(launch_flows)
                    .where(
                        launch_flows.c.state_hash == key,
                        launch_flows.c.used_at.is_(None),
                        launch_flows.c.expires_at > now,
                    )
                    .values(used_at=now)
                    .returning(
                        launch_flows.c.ehr_id,
                        launch_flows.c.nonce,
                        launch_flows.c.code_verifier,
                    )
                )
            ).first()
            ehr_id = (
                flow.ehr_id
                if flow is not None
                else (
                    await conn.execute(
                        sa.select(launch_flows.c.ehr_id).where(launch_flows.c.state_hash == key)
                    )
                ).scalar()
            )
            row = (
                None
                if ehr_id is None
                else (await conn.execute(sa.select(ehrs).where(ehrs.c.id == ehr_id))).first()
            )
        return flow, None if row is None else _ehr(row)

    async def refuse_unbound(self, started: str | None) -> LaunchRefused:
        """The redirect's state is not the one this browser was sent off with (tampered,
        or brought from another browser): the browser's own flow is spent too."""
        ehr = None
        if started:
            _, ehr = await self._spend(started)
        return await self._refuse(
            "this launch was not started in this browser, or its state was changed: "
            "open Belong from the EHR again",
            ehr=ehr,
        )

    async def finish(
        self,
        *,
        state: str,
        code: str | None,
        error: str | None,
        redirect_uri: str,
        absolute: timedelta,
    ) -> Launched:
        """The authorization server's redirect back: the flow spent (even when what follows
        fails), the code exchanged, the id_token verified, the patient mapped and checked
        to be this clinic's, the user's session opened."""
        flow, ehr = await self._spend(state)
        if flow is None or ehr is None:
            raise await self._refuse(
                "this launch has expired or was used already: open Belong from the EHR again",
                ehr=ehr,
            )
        if error is not None:
            safe = error if error.replace("_", "").isalnum() and len(error) <= 64 else "error"
            raise await self._refuse(f"the EHR did not authorize the launch ({safe})", ehr=ehr)
        if not code or len(code) > 2000:
            raise await self._refuse("the EHR sent no authorization code", ehr=ehr)
        try:
            config = await self.client.configuration(ehr.iss)
            context = await self.client.token(
                config,
                ehr.client,
                code=code,
                code_verifier=flow.code_verifier,
                redirect_uri=redirect_uri,
            )
            verifier = IdentityProvider(
                issuer=config.metadata.issuer, client_id=ehr.client_id, secret_ref=None
            )
            identity = await self.client.rp.verify(
                verifier, context.id_token, nonce=flow.nonce, metadata=config.metadata
            )
            fhir_user = identity.claims.get("fhirUser")
            if not isinstance(fhir_user, str) or not 1 <= len(fhir_user) <= 255:
                raise SignInRefused("the EHR named no user (fhirUser) in the id_token")
            if context.patient is None:
                raise SignInRefused("the EHR gave no patient in the launch context")
            patient_id = context.patient
            if ehr.patient_identifier_system is not None:
                patient_id = await self.client.patient_identifier(
                    ehr.iss, context.patient, context.access_token, ehr.patient_identifier_system
                )
        except SignInRefused as exc:
            raise await self._refuse(exc.reason, ehr=ehr) from None
        now = utcnow()
        async with self.db.begin() as conn:
            elsewhere = (
                await conn.execute(
                    sa.select(
                        sa.func.bool_or(patients.c.clinic_id == ehr.clinic_id),
                        sa.func.count(),
                    ).where(patients.c.id == patient_id)
                )
            ).one()
            known = bool(elsewhere[0])
            if elsewhere[1] and not known:
                refusal = "this patient is known to another clinic in Belong, not to this one"
            else:
                refusal = None
                try:
                    user_id = await user_for_identity(
                        conn, ehr.clinic_id, ehr.iss, fhir_user, display_name(identity), ehr.role
                    )
                except SignInNotAccepted as exc:
                    refusal = exc.reason
            if refusal is None:
                session_id = await open_session(
                    conn,
                    ehr.clinic_id,
                    user_id,
                    absolute,
                    now,
                    ehr_id=ehr.id,
                    patient_banner=context.need_patient_banner,
                )
                event = AuditEvent(
                    client_id=None,
                    action="launch",
                    resource_type="Session",
                    resource_id=None,
                    patient_id=patient_id,
                    status_code=303,
                    at=now,
                    user_id=user_id,
                )
                await conn.execute(
                    sa.insert(audit_events).values(clinic_id=ehr.clinic_id, **event.columns())
                )
        if refusal is not None:
            raise await self._refuse(refusal, ehr=ehr, status=403, patient_id=patient_id)
        log.info(
            "launched from the EHR",
            extra={"clinic_id": str(ehr.clinic_id), "user_id": str(user_id), "ehr_id": str(ehr.id)},
        )
        return Launched(session_id, where_to(patient_id, context.app_context, known))
