"""The clinic's audit trail (scope audit:read)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from service.platform.audit_store import AuditQuery, AuditStore
from service.platform.auth import scoped
from service.platform.caller import Caller
from service.platform.params import ID_PATTERN, Instant, instant


class AuditEvent(msgspec.Struct):
    id: uuid.UUID
    client_id: uuid.UUID | None
    """The API client acting; None when ``user_id`` names the clinician app's user, or
    ``ehr_id`` a registered EHR launching the app."""
    action: str
    resource_type: str
    resource_id: str | None
    patient_id: str | None
    outcome: str
    status_code: int
    recorded_at: datetime
    user_id: uuid.UUID | None = None
    ehr_id: uuid.UUID | None = None
    """The registered EHR whose SMART launch this was (no user signed in yet)."""
    detail: str | None = None
    """Why a launch was refused."""
    link_kind: str | None = None
    """The secret link acting, when no client, user or EHR is: ``inbox`` (the directory
    service ``link_subject_id`` by its inbox link) or ``patient`` (the patient by their own
    link, ``link_subject_id`` what it was for)."""
    link_subject_id: str | None = None


class AuditEventPage(msgspec.Struct):
    items: list[AuditEvent]
    total: int
    limit: int
    offset: int


class AuditEventController(Controller):
    path = "/v1/audit-events"
    tags = ["audit"]

    @get(
        operation_id="list_audit_events",
        summary="Who read or wrote which patient's data, newest first",
        opt=scoped("audit:read"),
    )
    async def list_events(
        self,
        caller: NamedDependency[Caller],
        patient_id: Annotated[
            str | None, QueryParameter(pattern=ID_PATTERN, required=False)
        ] = None,
        since: Instant = None,
        until: Instant = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=100_000)] = 0,
    ) -> AuditEventPage:
        query = AuditQuery(
            patient_id=patient_id,
            since=instant(since, "since"),
            until=instant(until, "until"),
            limit=limit,
            offset=offset,
        )
        async with caller.transaction(AuditStore) as store:
            rows, total = await store.audit_events(query)
        items = [
            AuditEvent(
                id=row.id,
                client_id=row.client_id,
                action=row.action,
                resource_type=row.resource_type,
                resource_id=row.resource_id,
                patient_id=row.patient_id,
                outcome=row.outcome,
                status_code=row.status_code,
                recorded_at=row.recorded_at,
                user_id=row.user_id,
                ehr_id=row.ehr_id,
                detail=row.detail,
                link_kind=row.link_kind,
                link_subject_id=row.link_subject_id,
            )
            for row in rows
        ]
        return AuditEventPage(items=items, total=total, limit=limit, offset=offset)
