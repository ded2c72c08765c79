"""``/v1/patients/{patient_id}/links/{purpose}``: a link for the patient to answer a
screening before the visit (``screening``, scope ``screenings:write``) or to say whether a
referral helped (``follow-up``, scope ``referrals:write``), and the patient's live links of
that purpose ended. One path per purpose, so each route carries the one scope it needs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, delete, post
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter

from service.patient_links.controllers import provide_patient_links
from service.patient_links.model import FOLLOW_UP, SCREENING
from service.patient_links.service import IssuedLink, PatientLinks
from service.platform.audit import audited, note
from service.platform.auth import scoped
from service.platform.body import decode
from service.platform.credentials import Principal
from service.platform.documented import JSON, documented
from service.platform.params import ID_PATTERN

PatientIdParam = Annotated[
    str, PathParameter(pattern=ID_PATTERN, max_length=64, description="The EHR's patient id")
]
InstrumentRef = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
ReferralRef = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f-]{36}$")]
LINKS = "/v1/patients/{patient_id:str}/links"
ONCE = (
    "The link opens a page without an account (`/p/{token}`), in the patient's language. "
    "It expires after BELONG_PATIENT_LINK_DAYS (14 by default) and takes one answer; after "
    "that, or once revoked, it answers 410 (an unknown link 404). The URL is shown only in "
    "this response: Belong keeps its hash."
)


class ScreeningLinkRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    instrument: InstrumentRef
    """The instrument the patient answers (one this deployment offers)."""


class FollowUpLinkRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    referral_id: ReferralRef
    """One of the patient's open referrals."""


class PatientLink(msgspec.Struct):
    url: str
    """Give it to the patient: it is shown only now."""
    purpose: Literal["screening", "follow-up"]
    patient_id: str
    expires_at: datetime
    instrument: str | None = None
    referral_id: str | None = None


class RevokedLinks(msgspec.Struct):
    revoked: int
    """How many live links were ended."""


def _link(issued: IssuedLink) -> Response[PatientLink]:
    return Response(msgspec.convert(issued, PatientLink, from_attributes=True), status_code=201)


class PatientLinkController(Controller):
    path = LINKS
    tags = ["patients"]
    dependencies = {"links": Provide(provide_patient_links, sync_to_thread=False)}

    @post(
        "/screening",
        operation_id="create_patient_screening_link",
        summary="A single-use link for the patient to answer a screening before the visit",
        description=ONCE,
        opt={
            **scoped("screenings:write"),
            **audited("create", "PatientLink"),
            **documented(
                errors={403, 404, 422},
                request=ScreeningLinkRequest,
                example={"instrument": "ucla-3"},
                bodies={201: (JSON, PatientLink)},
            ),
        },
    )
    async def screening(
        self,
        request: Request[Principal, Any, Any],
        patient_id: PatientIdParam,
        links: NamedDependency[PatientLinks],
    ) -> Response[PatientLink]:
        data = await decode(request, ScreeningLinkRequest)
        note(request, None, patient_id)
        return _link(await links.for_screening(patient_id, data.instrument))

    @post(
        "/follow-up",
        operation_id="create_patient_follow_up_link",
        summary='A single-use link for the patient to answer "did you get help?"',
        description=ONCE
        + " The answer moves the referral as the service's would: got help completes it "
        "(through accepted and in-progress), could not fails it once in progress and "
        "cancels it before then, with the patient's reason.",
        opt={
            **scoped("referrals:write"),
            **audited("create", "PatientLink"),
            **documented(
                errors={403, 422},
                request=FollowUpLinkRequest,
                example={"referral_id": "0190b7d2-52c4-7c61-9a5e-3c1f2d7b8e90"},
                bodies={201: (JSON, PatientLink)},
            ),
        },
    )
    async def follow_up(
        self,
        request: Request[Principal, Any, Any],
        patient_id: PatientIdParam,
        links: NamedDependency[PatientLinks],
    ) -> Response[PatientLink]:
        data = await decode(request, FollowUpLinkRequest)
        note(request, data.referral_id, patient_id)
        return _link(await links.for_follow_up(data.referral_id, patient_id))

    @delete(
        "/screening",
        operation_id="revoke_patient_screening_links",
        summary="End the patient's live screening links",
        status_code=200,
        opt={
            **scoped("screenings:write"),
            **audited("delete", "PatientLink"),
            **documented(bodies={200: (JSON, RevokedLinks)}),
        },
    )
    async def revoke_screening(
        self,
        request: Request[Principal, Any, Any],
        patient_id: PatientIdParam,
        links: NamedDependency[PatientLinks],
    ) -> RevokedLinks:
        note(request, None, patient_id)
        return RevokedLinks(await links.revoke(patient_id, (SCREENING,)))

    @delete(
        "/follow-up",
        operation_id="revoke_patient_follow_up_links",
        summary="End the patient's live follow-up links (about any of their referrals)",
        status_code=200,
        opt={
            **scoped("referrals:write"),
            **audited("delete", "PatientLink"),
            **documented(bodies={200: (JSON, RevokedLinks)}),
        },
    )
    async def revoke_follow_up(
        self,
        request: Request[Principal, Any, Any],
        patient_id: PatientIdParam,
        links: NamedDependency[PatientLinks],
    ) -> RevokedLinks:
        note(request, None, patient_id)
        return RevokedLinks(await links.revoke(patient_id, (FOLLOW_UP,)))
