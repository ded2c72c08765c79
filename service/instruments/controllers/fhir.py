"""Read-only FHIR Questionnaire endpoints over the instrument catalog."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from service.fhir.bundles import searchset
from service.fhir.params import Search
from service.fhir.search import SearchError, parse_token
from service.fhir.types import Bundle, Questionnaire
from service.instruments.controllers.params import InstrumentId
from service.instruments.fhir import cites, coded, questionnaire
from service.instruments.model import Instrument
from service.instruments.service import Catalog
from service.platform.auth import PUBLIC
from service.platform.documented import documented
from service.platform.errors import FHIR_JSON, field_error
from service.platform.params import FHIR_ID, TOKEN_LIST

CANONICAL = r"^[^\x00-\x20\x7f|,]{1,1000}(\|[^\x00-\x20\x7f|,]{1,64})?$"
"""A canonical URL, with ``|version`` or without: no space or control character. Spelled
out: a regex whitespace class means more to Python (NEL, say) than to JSON Schema."""
ID_LIST = rf"^{FHIR_ID}(,{FHIR_ID}){{0,49}}$"


def _matching(
    instrument: Instrument,
    url: str | None,
    ids: list[str] | None,
    codes: list[tuple[str | None, str]] | None,
) -> bool:
    """Every parameter given matches; ``_id`` and ``code`` list alternatives."""
    return (
        (url is None or cites(instrument, url))
        and (ids is None or instrument.id in ids)
        and (codes is None or any(coded(instrument, system, value) for system, value in codes))
    )


class QuestionnaireController(Controller):
    path = "/fhir/Questionnaire"
    tags = ["fhir"]
    opt = PUBLIC

    @get(
        operation_id="fhir_search_questionnaire",
        media_type=FHIR_JSON,
        summary="The instruments as R4 Questionnaires (searchset), by url, _id or code",
        description=(
            "`url` is a canonical, `url|version` also matching the version; `_id` instrument "
            "ids and `code` tokens (`system|code`; the Questionnaire's or an item's code) "
            "take comma-separated alternatives. What matches nothing answers an empty "
            "searchset."
        ),
        opt=documented(bodies={200: (FHIR_JSON, Bundle)}, search=True),
    )
    async def search(
        self,
        catalog: NamedDependency[Catalog],
        request: Request[Any, Any, Any],
        url: Annotated[str | None, QueryParameter(required=False, pattern=CANONICAL)] = None,
        _id: Annotated[str | None, QueryParameter(required=False, pattern=ID_LIST)] = None,
        code: Annotated[str | None, QueryParameter(required=False, pattern=TOKEN_LIST)] = None,
    ) -> Bundle:
        try:
            codes = parse_token("code", code) if code is not None else None
        except SearchError as exc:
            raise field_error(exc.status, exc.parameter, exc.message) from exc
        wanted = _id.split(",") if _id is not None else None
        paging = Search.of(request, "_id", default_count=50)
        instruments = sorted(
            (i for i in catalog.instruments.values() if _matching(i, url, wanted, codes)),
            key=lambda i: i.id,
        )
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
