"""Read-only FHIR Questionnaire endpoints over the instrument catalog."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency

from service.fhir.bundles import searchset
from service.fhir.params import Search
from service.fhir.types import Bundle, Questionnaire
from service.instruments.controllers.params import InstrumentId
from service.instruments.fhir import questionnaire
from service.instruments.service import Catalog
from service.platform.auth import PUBLIC
from service.platform.documented import documented
from service.platform.errors import FHIR_JSON


class QuestionnaireController(Controller):
    path = "/fhir/Questionnaire"
    tags = ["fhir"]
    opt = PUBLIC

    @get(
        operation_id="fhir_search_questionnaire",
        media_type=FHIR_JSON,
        summary="Every instrument as an R4 Questionnaire (searchset)",
        opt=documented(bodies={200: (FHIR_JSON, Bundle)}, search=True),
    )
    async def search(
        self, catalog: NamedDependency[Catalog], request: Request[Any, Any, Any]
    ) -> Bundle:
        paging = Search.of(request, "_id", default_count=50)
        instruments = sorted(catalog.instruments.values(), key=lambda i: i.id)
        following = [i for i in instruments if paging.after is None or i.id > paging.after.id]
        page, after = paging.page(following[: paging.fetch], lambda i: (None, i.id))
        return searchset(
            request,
            "Questionnaire",
            [questionnaire(i) for i in page],
            len(instruments),
            paging,
            after,
        )

    @get(
        "/{instrument_id:str}",
        operation_id="fhir_read_questionnaire",
        media_type=FHIR_JSON,
        summary="One instrument as an R4 Questionnaire",
        opt=documented(bodies={200: (FHIR_JSON, Questionnaire)}),
    )
    async def read(
        self, catalog: NamedDependency[Catalog], instrument_id: InstrumentId
    ) -> Questionnaire:
        return questionnaire(catalog.get(instrument_id))
