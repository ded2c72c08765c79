"""Closed-loop referrals: made with the patient's consent, followed to their outcome."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, HeaderParameter, PathParameter, QueryParameter

from service.instruments.model import Signal
from service.patients.model import PatientId
from service.platform.audit import audited, note
from service.platform.auth import scoped
from service.platform.body import decode
from service.platform.credentials import Principal
from service.platform.database import new_id
from service.platform.documented import documented, link
from service.platform.errors import ApiError, FieldError
from service.platform.params import ID_PATTERN, Instant, instant
from service.referrals.controllers import provide_referrals
from service.referrals.handout import (
    DEFAULT_PAPER,
    FORMATS,
    LANGUAGE_TAG,
    PAPERS,
    asked_format,
    asked_language,
    asked_paper,
    clinic_handout,
)
from service.referrals.model import Consent, Note, Status
from service.referrals.repository import ReferralQuery
from service.referrals.service import Referral, Referrals

ReferralId = Annotated[
    str, PathParameter(pattern=r"^[0-9a-f-]{36}$", description="Referral id (a UUID)")
]
Id64 = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]


class ReferralRequest(msgspec.Struct, forbid_unknown_fields=True):
    patient_id: PatientId
    service_id: Id64
    consent: Consent
    screening_id: Id64 | None = None
    """The screening that raised the need this referral answers."""
    need: Signal | None = None
    note: Note | None = None


class StatusChange(msgspec.Struct, forbid_unknown_fields=True):
    status: Status | None = None
    """The next status. Required, except to add or change a completed referral's outcome
    (leave it out, or send completed again)."""
    reason: Note | None = None
    """Why; required for rejected, cancelled, failed and on-hold."""
    outcome: Note | None = None
    """What came of it, e.g. attended 6 of 8 sessions; may be added or changed once
    completed."""


class ReferralPage(msgspec.Struct):
    items: list[Referral]
    total: int
    limit: int
    offset: int


class HandoutLinksRevoked(msgspec.Struct):
    revoked: int
    """How many of the referral's handout links were live (not yet revoked) and now end."""


HANDOUT_PARAMETERS = (
    {
        "name": "format",
        "in": "query",
        "required": False,
        "description": "html or pdf; without it, what Accept prefers (HTML by default)",
        "schema": {"type": "string", "enum": list(FORMATS)},
    },
    {
        "name": "paper",
        "in": "query",
        "required": False,
        "description": f"The PDF's paper (default {DEFAULT_PAPER})",
        "schema": {"type": "string", "enum": list(PAPERS)},
    },
    {
        "name": "lang",
        "in": "query",
        "required": False,
        "description": (
            "The language to print in (BCP 47), instead of the patient's: English with a "
            "note when Belong has no words in it"
        ),
        "schema": {"type": "string", "pattern": LANGUAGE_TAG},
    },
)
HANDOUT_RESPONSES: dict[int, dict[str, Any]] = {
    200: {
        "description": (
            "One page for the patient: the service, when and where, how to contact it, "
            "cost, the referral code, and a QR code of a new short link to this page"
        ),
        "content": {
            "text/html": {"schema": {"type": "string"}},
            "application/pdf": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


class ReferralController(Controller):
    path = "/v1/referrals"
    tags = ["referrals"]
    dependencies = {"referrals": Provide(provide_referrals, sync_to_thread=False)}

    @post(
        operation_id="create_referral",
        summary="Refer a patient to a directory service, with their consent",
        opt={
            **scoped("referrals:write"),
            **audited("create", "Referral"),
            **documented(
                errors={422},
                request=ReferralRequest,
                example={
                    "patient_id": "pat-1042",
                    "service_id": "01a213cc-3899-769f-979a-40a09bb72e88",
                    "need": "loneliness",
                    "consent": {"given": True, "method": "verbal"},
                    "note": "Prefers evening online groups",
                },
                schemas=(Referral,),
                links={
                    "GetReferral": link("get_referral", referral_id="$response.body#/id"),
                    "UpdateReferral": link(
                        "update_referral_status", referral_id="$response.body#/id"
                    ),
                    "ReadTask": link("fhir_read_task", resource_id="$response.body#/id"),
                },
            ),
        },
    )
    async def create(
        self, request: Request[Principal, Any, Any], referrals: NamedDependency[Referrals]
    ) -> Response[Referral]:
        data = await decode(request, ReferralRequest)
        if not data.consent.given:
            raise ApiError(
                422,
                "A referral needs the patient's consent to share their details",
                [FieldError("consent.given", "must be true", "consent_required")],
            )
        referral_id = str(new_id())
        note(request, referral_id, data.patient_id)
        referral = await referrals.make(
            referral_id,
            patient_id=data.patient_id,
            service_id=data.service_id,
            consent=data.consent,
            screening_id=data.screening_id,
            need=data.need,
            note=data.note,
        )
        return Response(
            referral, status_code=201, headers={"Location": f"/v1/referrals/{referral_id}"}
        )

    @get(
        operation_id="list_referrals",
        summary="The clinic's referral worklist, most recently changed first",
        opt={
            **scoped("referrals:read"),
            **audited("search", "Referral"),
            **documented(schemas=(ReferralPage,)),
        },
    )
    async def worklist(
        self,
        request: Request[Principal, Any, Any],
        referrals: NamedDependency[Referrals],
        status: FromQuery[Status | None] = None,
        patient_id: Annotated[
            str | None, QueryParameter(pattern=ID_PATTERN, required=False)
        ] = None,
        service_id: Annotated[
            str | None, QueryParameter(pattern=ID_PATTERN, required=False)
        ] = None,
        updated_since: Instant = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=100_000)] = 0,
    ) -> ReferralPage:
        note(request, None, patient_id)
        query = ReferralQuery(
            statuses=[status.value] if status else [],
            patient_id=patient_id,
            service_id=service_id,
            updated_since=instant(updated_since, "updated_since"),
            limit=limit,
            offset=offset,
        )
        items, total = await referrals.search(query)
        return ReferralPage(items=items, total=total, limit=limit, offset=offset)

    @get(
        "/{referral_id:str}",
        operation_id="get_referral",
        summary="One referral with its history",
        opt={**scoped("referrals:read"), **audited("read", "Referral")},
    )
    async def read(
        self,
        request: Request[Principal, Any, Any],
        referral_id: ReferralId,
        referrals: NamedDependency[Referrals],
    ) -> Response[Referral]:
        referral = await referrals.read(referral_id)
        note(request, referral_id, referral.patient_id)
        return Response(referral, headers={"ETag": f'"{referral.version}"'})

    @patch(
        "/{referral_id:str}",
        operation_id="update_referral_status",
        summary="Move a referral to its next status, or add its outcome once completed",
        description=(
            "Steps follow the SDOHCC Task lifecycle; any other step answers 409 naming the "
            "allowed next states. A completed referral stays completed, but its outcome may "
            "be added or changed later: send only `outcome` (or `status: completed` with it); "
            "the change is kept in the history and audited. Send `If-Match` with the "
            "referral's ETag to be sure no one changed it since you read it (412 otherwise)."
        ),
        opt={
            **scoped("referrals:write"),
            **audited("update", "Referral"),
            **documented(
                errors={409, 412, 422},
                request=StatusChange,
                example={"status": "completed", "outcome": "Attended 6 of 8 sessions"},
            ),
        },
    )
    async def move(
        self,
        request: Request[Principal, Any, Any],
        referral_id: ReferralId,
        referrals: NamedDependency[Referrals],
        if_match: Annotated[
            str | None,
            HeaderParameter(name="If-Match", required=False, pattern=r'^((W/)?"[0-9]{1,9}")?$'),
        ] = None,
    ) -> Response[Referral]:
        data = await decode(request, StatusChange)
        referral = await referrals.move(
            referral_id,
            status=data.status,
            reason=data.reason,
            outcome=data.outcome,
            if_match=if_match.removeprefix("W/").strip('"') if if_match else None,
            seen=lambda patient_id: note(request, referral_id, patient_id),
        )
        return Response(referral, headers={"ETag": f'"{referral.version}"'})

    @get(
        "/{referral_id:str}/handout",
        operation_id="get_referral_handout",
        summary="The patient's handout, as HTML or PDF, with a new short link to it",
        description=(
            "In the patient's language (the first of their profile's languages Belong has "
            "words for; `lang` overrides), else in English with a note saying so. Each call "
            "issues a new short link (`/h/{token}`, its QR code's), working for "
            "BELONG_HANDOUT_LINK_DAYS days; no patient identifier is on the page."
        ),
        opt={
            **scoped("referrals:read"),
            **audited("read", "Referral"),
            **documented(
                errors={400, 406},
                responses=HANDOUT_RESPONSES,
                parameters=HANDOUT_PARAMETERS,
            ),
        },
    )
    async def handout(
        self,
        request: Request[Principal, Any, Any],
        referral_id: ReferralId,
        referrals: NamedDependency[Referrals],
    ) -> Response[Any]:
        format, paper, lang = asked_format(request), asked_paper(request), asked_language(request)
        days = request.app.state.settings.handout_link_days
        issued = await referrals.handout(
            referral_id,
            link_lifetime=timedelta(days=days),
            seen=lambda patient_id: note(request, referral_id, patient_id),
        )
        return await clinic_handout(request, issued, format=format, paper=paper, lang=lang)

    @delete(
        "/{referral_id:str}/handout-links",
        operation_id="revoke_referral_handout_links",
        summary="End every short link to the referral's handout (they answer 410 from now on)",
        status_code=200,
        opt={**scoped("referrals:write"), **audited("update", "Referral")},
    )
    async def revoke_handout_links(
        self,
        request: Request[Principal, Any, Any],
        referral_id: ReferralId,
        referrals: NamedDependency[Referrals],
    ) -> HandoutLinksRevoked:
        revoked = await referrals.revoke_handout_links(
            referral_id, seen=lambda patient_id: note(request, referral_id, patient_id)
        )
        return HandoutLinksRevoked(revoked=revoked)
