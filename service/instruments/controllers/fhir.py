"""Read-only FHIR Questionnaire endpoints over the instrument catalog."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from service.fhir.bundles import searchset
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
        opt=documented(bodies={200: (FHIR_JSON, Bundle)}),
    )
    async def search(
        self,
        catalog: NamedDependency[Catalog],
        request: Request[Any, Any, Any],
        count: Annotated[int, QueryParameter(name="_count", ge=1, le=100)] = 50,
        offset: Annotated[int, QueryParameter(name="_offset", ge=0, le=100_000)] = 0,
    ) -> Bundle:
        instruments = list(catalog.instruments.values())
        page = [questionnaire(i) for i in instruments[offset : offset + count]]
        return searchset(
            request, "Questionnaire", page, len(instruments), offset, count, ("_count",)
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
