"""The clinician app's buttons for patient links: "Give the patient a link to answer
before the visit" (the patient's page: choose the questionnaire) and "Ask the patient if
they got help" (an open referral's page). Each shows the new link once: Belong keeps only
its hash."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter
from litestar.response import Template

from service.instruments.model import Construct
from service.instruments.service import Catalog
from service.patient_links.controllers import provide_patient_links
from service.patient_links.service import IssuedLink, PatientLinks
from service.platform.audit import audited, note
from service.platform.auth import scoped
from service.platform.errors import ApiError, FieldError
from service.platform.params import ID_PATTERN
from service.web.pages import AppController, page

PatientIdParam = Annotated[str, PathParameter(pattern=ID_PATTERN, max_length=64)]
ReferralId = Annotated[str, PathParameter(pattern=r"^[0-9a-f-]{36}$")]


def _issued(request: Request[Any, Any, Any], issued: IssuedLink, title: str) -> Template:
    return page(
        request,
        "patient_links/issued.html",
        status_code=201,
        title=title,
        issued=issued,
        expires=f"{issued.expires_at.day} {issued.expires_at:%b %Y, %H:%M} UTC",
    )


class PatientLinkAppPages(AppController):
    path = "/app"
    dependencies = {"links": Provide(provide_patient_links, sync_to_thread=False)}

    @get(
        "/patients/{patient_id:str}/links/new",
        opt={**scoped("screenings:write"), **audited("read", "Patient")},
    )
    async def choose(self, request: Request[Any, Any, Any], patient_id: PatientIdParam) -> Template:
        catalog: Catalog = request.app.state.catalog
        note(request, None, patient_id)
        offered = sorted(
            (i for i in catalog.instruments.values() if catalog.enabled(i)),
            key=lambda i: (list(Construct).index(i.definition.construct), i.definition.title),
        )
        return page(
            request,
            "patient_links/choose.html",
            patient_id=patient_id,
            instruments=offered,
            link_days=request.app.state.settings.patient_link_days,
        )

    @post(
        "/patients/{patient_id:str}/links",
        opt={**scoped("screenings:write"), **audited("create", "PatientLink")},
    )
    async def screening_link(
        self,
        request: Request[Any, Any, Any],
        patient_id: PatientIdParam,
        links: NamedDependency[PatientLinks],
    ) -> Template:
        instrument = ((await request.form()).get("instrument") or "").strip()
        if not instrument:
            raise ApiError(
                422, "Choose a questionnaire", [FieldError("instrument", "required", "required")]
            )
        note(request, None, patient_id)
        issued = await links.for_screening(patient_id, instrument)
        return _issued(request, issued, "A link to answer before the visit")

    @post(
        "/referrals/{referral_id:str}/patient-link",
        opt={**scoped("referrals:write"), **audited("create", "PatientLink")},
    )
    async def follow_up_link(
        self,
        request: Request[Any, Any, Any],
        referral_id: ReferralId,
        links: NamedDependency[PatientLinks],
    ) -> Template:
        issued = await links.for_follow_up(referral_id)
        note(request, referral_id, issued.patient_id)
        return _issued(request, issued, "A link to ask the patient if they got help")
