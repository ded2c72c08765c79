"""Read-only FHIR Questionnaire endpoints over the instrument catalog."""

from __future__ import annotations

from litestar import Controller, Request, get
from litestar.di import NamedDependency

from service.api.auth import PUBLIC
from service.api.catalog import Catalog
from service.api.errors import FHIR_JSON
from service.api.v1.instruments import InstrumentId
from service.fhir.questionnaire import questionnaire
from service.fhir.types import Bundle, BundleEntry, BundleLink, BundleSearch, Questionnaire


class QuestionnaireController(Controller):
    path = "/fhir/Questionnaire"
    tags = ["fhir"]
    opt = PUBLIC

    @get(
        operation_id="fhir_search_questionnaire",
        media_type=FHIR_JSON,
        summary="Every instrument as an R4 Questionnaire (searchset)",
    )
    async def search(self, catalog: NamedDependency[Catalog], request: Request) -> Bundle:
        base = str(request.base_url).rstrip("/")
        entries = [
            BundleEntry(
                fullUrl=f"{base}/fhir/Questionnaire/{instrument.id}",
                resource=questionnaire(instrument),
                search=BundleSearch(mode="match"),
            )
            for instrument in catalog.instruments.values()
        ]
        return Bundle(
            type="searchset",
            total=len(entries),
            link=[BundleLink(relation="self", url=str(request.url))],
            entry=entries,
        )

    @get(
        "/{instrument_id:str}",
        operation_id="fhir_read_questionnaire",
        media_type=FHIR_JSON,
        summary="One instrument as an R4 Questionnaire",
    )
    async def read(
        self, catalog: NamedDependency[Catalog], instrument_id: InstrumentId
    ) -> Questionnaire:
        return questionnaire(catalog.get(instrument_id))
