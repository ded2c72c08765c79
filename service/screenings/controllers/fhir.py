"""FHIR REST over stored screenings: QuestionnaireResponse create/read, Observation read/search.

Errors are OperationOutcome (see errors.py): 400 for unparseable or base-invalid input,
422 for business rules, 412 for an ambiguous conditional create.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from itertools import combinations
from typing import Annotated, Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter, QueryParameter

from service.fhir.bundles import add_included, searchset, single
from service.fhir.params import Search
from service.fhir.search import (
    DATE_SEARCH,
    SearchError,
    date_filters,
    id_groups,
    one_named,
    parse_missing,
    parse_token,
    reference_groups,
)
from service.fhir.types import Bundle, Observation, StoredJson
from service.instruments.scoring import AnswersInvalid, Problem, score, validate
from service.instruments.service import Catalog
from service.platform.audit import audit_event, audited, mark_written, note
from service.platform.auth import scoped
from service.platform.body import document
from service.platform.credentials import Principal
from service.platform.database import new_id, utcnow
from service.platform.documented import FHIR_RESOURCE, REF, documented, link
from service.platform.errors import FHIR_JSON, ApiError, field_error
from service.platform.lookup import NotFound
from service.platform.origin import public_origin
from service.platform.params import (
    FHIR_ID,
    ID_LIST,
    ID_PATTERN,
    IDENTIFIER_LIST,
    IDENTIFIER_SEARCH,
    IF_NONE_EXIST,
    MISSING,
    TOKEN_LIST,
    reference_list,
    repeatable,
)
from service.platform.tables import questionnaire_responses
from service.screenings.controllers import provide_screenings
from service.screenings.controllers.answering import answer, key_use, refused
from service.screenings.intake import (
    VALUE_FIELDS,
    InboundQuestionnaireResponse,
    Picked,
    contains_nul,
    own_instrument,
    patient_id_of,
    pick_by_loinc,
    pick_own,
)
from service.screenings.repository import ObservationQuery, QuestionnaireResponseQuery
from service.screenings.service import (
    CREATED,
    AmbiguousMatch,
    Amendment,
    Existing,
    Recorded,
    Refusal,
    ScoredScreening,
    Screenings,
    Submission,
    check_completed_at,
    version_of,
)

FHIR_ACCEPTED = ("application/fhir+json", "application/json")

INBOUND_BODY = {"$ref": REF.format(name="InboundQuestionnaireResponse")}
CREATE_RESPONSES: dict[int, dict[str, Any]] = {
    200: {
        "description": "An existing QuestionnaireResponse matched the conditional create",
        "content": {FHIR_JSON: {"schema": FHIR_RESOURCE}},
    },
    201: {
        "description": "Stored and scored",
        "headers": {
            "Location": {"schema": {"type": "string"}},
            "ETag": {"schema": {"type": "string"}},
        },
        "content": {FHIR_JSON: {"schema": FHIR_RESOURCE}},
    },
}
"""The create's answers, built as bytes: a match of the conditional create, or stored."""
CONDITIONAL_CREATE = (
    {
        "name": "identifier",
        "in": "query",
        "required": False,
        "description": (
            "Conditional create by query string: system|value, |value (no system) or "
            "value (any system); ignored when If-None-Exist is sent"
        ),
        "schema": {"type": "string", "pattern": IDENTIFIER_SEARCH},
    },
    {
        "name": "If-None-Exist",
        "in": "header",
        "required": False,
        "description": (
            "Conditional create: a FHIR search query string, identifier=system|value "
            "(or identifier=|value, or identifier=value), percent-encoded, e.g. "
            "identifier=urn:oid:2.16.840.1.113883.3.1|A-1042. One match answers it with "
            "200, several with 412, none stores the resource."
        ),
        "schema": {
            "type": "string",
            "pattern": IF_NONE_EXIST,
            "examples": ["identifier=urn:oid:2.16.840.1.113883.3.1|A-1042"],
        },
    },
)
"""Parameters of the conditional create, read from the raw query and headers."""
CONDITIONAL_UPDATE = {
    "name": "identifier",
    "in": "query",
    "required": True,
    "description": (
        "Conditional update: the response this identifier names (system|value, |value for "
        "no system, or value for any system)"
    ),
    "schema": {"type": "string", "pattern": IDENTIFIER_SEARCH},
}
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": 'The version updated, as its ETag W/"<versionId>": 412 when newer is stored',
    "schema": {"type": "string", "pattern": '^W/"[0-9]{1,9}"$'},
}
UPDATE_RESPONSES: dict[int, dict[str, Any]] = {
    200: {
        "description": "Stored as the response's next version (or, re-sent unchanged, as is)",
        "headers": {
            "Location": {"schema": {"type": "string"}},
            "ETag": {"schema": {"type": "string"}},
        },
        "content": {FHIR_JSON: {"schema": FHIR_RESOURCE}},
    },
    201: CREATE_RESPONSES[201],
}
"""The updates' answers: a stored response corrected, or (conditional) none matched."""


def inbound_components() -> dict[str, Any]:
    """The received QuestionnaireResponse, from the same Structs that decode it."""
    _, components = msgspec.json.schema_components([InboundQuestionnaireResponse], ref_template=REF)
    components["InboundQuestionnaireResponse"]["description"] = (
        "A FHIR R4 QuestionnaireResponse, stored as received. It must cite a Belong "
        "Questionnaire (its canonical url) or carry items whose linkIds are LOINC codes "
        "Belong knows; subject Patient/<id>, status completed and authored (a time with its "
        "zone) are needed to score it (422 otherwise). Primitive extensions (`_x` beside a "
        "primitive element `x`: an id and extensions) are accepted and stored; elements R4 "
        "does not define answer 400."
    )
    no_nul = {"$ref": REF.format(name="JsonWithoutNul")}
    components["JsonWithoutNul"] = {
        "description": "Any JSON value without a NUL character in a string or a key",
        "anyOf": [
            {"type": ["null", "boolean", "number"]},
            {"type": "string", "pattern": "^[^\\x00]*$"},
            {"type": "array", "items": no_nul},
            {
                "type": "object",
                "propertyNames": {"pattern": "^[^\\x00]*$"},
                "additionalProperties": no_nul,
            },
        ],
    }
    pairs = combinations(VALUE_FIELDS, 2)
    components["InboundAnswer"]["not"] = {
        "anyOf": [{"required": list(pair)} for pair in pairs],
    }
    return components


FHIR_DATE_TIME = re.compile(
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]"
    r"|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
    r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?"
)
"""The R4 dateTime regex: a time, when given, carries its zone."""
IDENTIFIER_MAX = {
    "system": questionnaire_responses.c.identifier_system.type.length,
    "value": questionnaire_responses.c.identifier_value.type.length,
}
"""The identifier is stored in columns of these sizes."""
_IF_NONE_EXIST = re.compile(IF_NONE_EXIST)
_IDENTIFIER = re.compile(IDENTIFIER_SEARCH)
PatientRefs = repeatable(reference_list("Patient"))
ResourceId = Annotated[str, PathParameter(pattern=ID_PATTERN, description="FHIR resource id")]
VersionId = Annotated[
    str, PathParameter(pattern=r"^[1-9][0-9]{0,8}$", description="FHIR version id")
]
DERIVED_FROM = r"^Observation:derived-from(:(QuestionnaireResponse|Observation))?$"
"""``_include`` of what Observations are derived from: their QuestionnaireResponse and
(for a score) the item Observations, or only the target type named."""
_DERIVED_FROM = re.compile(DERIVED_FROM)


def _derived_from_types(include: list[str] | None) -> list[str]:
    """The resource types the ``_include`` values ask for."""
    types: set[str] = set()
    for value in include or []:
        match = _DERIVED_FROM.fullmatch(value)
        if match is None:
            raise SearchError("_include", f"{value!r}: only Observation:derived-from is supported")
        types |= {match[2]} if match[2] else {"QuestionnaireResponse", "Observation"}
    return sorted(types)


SORTS = {
    "date": ("effective_at", False),
    "-date": ("effective_at", True),
    "_lastUpdated": ("last_updated", False),
    "-_lastUpdated": ("last_updated", True),
}


def _etag_headers(
    request: Request[Any, Any, Any], resource_id: str, version: str
) -> dict[str, str]:
    """The version's ETag, and its absolute ``Location`` (on the public origin, with
    ``_history/N``, which :meth:`QuestionnaireResponseController.vread` serves)."""
    location = (
        f"{public_origin(request)}/fhir/QuestionnaireResponse/{resource_id}/_history/{version}"
    )
    return {"ETag": etag(version), "Location": location}


def etag(version: str) -> str:
    """The weak ETag of a resource version (FHIR http.html#versioning)."""
    return f'W/"{version}"'


_IF_MATCH = re.compile(r'^W/"([0-9]{1,9})"$')
CORRECTING = ("amended", "entered-in-error")
"""The statuses that correct a stored response with the same identifier."""


def _if_match(request: Request[Any, Any, Any]) -> str | None:
    """The version an ``If-Match`` header names (None without one)."""
    header = request.headers.get("if-match")
    if not header:
        return None
    matched = _IF_MATCH.fullmatch(header.strip())
    if matched is None:
        raise field_error(400, "If-Match", 'must be a version\'s ETag, W/"<versionId>"')
    return matched.group(1)


async def _received(
    request: Request[Any, Any, Any],
) -> tuple[dict[str, Any], InboundQuestionnaireResponse]:
    """The request's QuestionnaireResponse, as received and as decoded."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in FHIR_ACCEPTED:
        raise field_error(415, "Content-Type", "send application/fhir+json or application/json")
    return _decode_resource(await request.body())


def _decode_resource(request_body: bytes) -> tuple[dict[str, Any], InboundQuestionnaireResponse]:
    try:
        raw = document(request_body)
    except msgspec.DecodeError as exc:
        raise field_error(400, "body", f"not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise field_error(
            400, "body", "a QuestionnaireResponse resource (a JSON object) is expected"
        )
    nul_at = contains_nul(raw, "QuestionnaireResponse")
    if nul_at is not None:
        raise field_error(400, nul_at, "NUL characters are not allowed")
    if raw.get("resourceType") != "QuestionnaireResponse":
        raise field_error(
            400, "QuestionnaireResponse.resourceType", "must be QuestionnaireResponse"
        )
    try:
        qr = msgspec.convert(raw, InboundQuestionnaireResponse)
    except msgspec.ValidationError as exc:
        message = str(exc)
        where = message.rpartition(" - at `")[2].rstrip("`") if " - at `" in message else ""
        expression = (
            "QuestionnaireResponse" + where.removeprefix("$")
            if where
            else ("QuestionnaireResponse")
        )
        raise field_error(400, expression, f"not valid FHIR R4: {message}") from exc
    if qr.identifier is not None:
        for part in ("system", "value"):
            text = getattr(qr.identifier, part)
            if text is not None and len(text) > IDENTIFIER_MAX[part]:
                raise field_error(
                    400,
                    f"QuestionnaireResponse.identifier.{part}",
                    f"at most {IDENTIFIER_MAX[part]} characters",
                    "too_long",
                )
    return raw, qr


def _score_picked(picked: list[Picked]) -> tuple[list[ScoredScreening], list[Problem]]:
    scored: list[ScoredScreening] = []
    problems: list[Problem] = []
    for pick in picked:
        problems.extend(pick.problems)
        try:
            accepted = validate(pick.instrument, pick.answers)
        except AnswersInvalid as exc:
            problems.extend(
                Problem(
                    pick.locations.get(p.field.removeprefix("answers."), "QuestionnaireResponse"),
                    p.message,
                    p.code,
                )
                for p in exc.problems
            )
            continue
        result = score(pick.instrument, accepted)
        if result.total is None:
            problems.append(
                Problem(
                    "QuestionnaireResponse.item",
                    f"{pick.instrument.id}: no total can be scored: {result.total_reason}",
                    "missing",
                )
            )
            continue
        scored.append(ScoredScreening(pick.instrument, accepted, result))
    return scored, problems


def _condition(request: Request[Any, Any, Any]) -> tuple[str | None, str] | None:
    """The identifier a conditional create names, from If-None-Exist or the query string:
    (system, value), the system None for a bare value (any system). An empty If-None-Exist
    is no condition, as when it is not sent."""
    header = request.headers.get("if-none-exist")
    if header:
        if not _IF_NONE_EXIST.fullmatch(header):
            raise field_error(
                400,
                "If-None-Exist",
                "must be the search query identifier=system|value (or |value, or value), "
                "percent-encoded",
            )
        token = parse_qsl(header)[0][1]
    else:
        token = request.query_params.get("identifier")
        if token is None:
            return None
    return _identifier_token(token)


def _identifier_token(token: str) -> tuple[str | None, str]:
    """``system|value`` as (system, value), the system None for a bare value (any)."""
    if not _IDENTIFIER.fullmatch(token):
        raise field_error(400, "identifier", "must be system|value, |value or value")
    system, bar, value = token.partition("|")
    return (system, value) if bar else (None, token)


class QuestionnaireResponseController(Controller):
    path = "/fhir/QuestionnaireResponse"
    tags = ["fhir"]
    dependencies = {"screenings": Provide(provide_screenings, sync_to_thread=False)}

    @post(
        operation_id="fhir_create_questionnaire_response",
        summary="Store and score a QuestionnaireResponse (conditional create by identifier)",
        media_type=FHIR_JSON,
        opt={
            **scoped("screenings:write"),
            **audited("create", "QuestionnaireResponse"),
            **documented(
                errors={403, 409, 412, 422},
                request=INBOUND_BODY,
                request_media=FHIR_ACCEPTED,
                responses=CREATE_RESPONSES,
                parameters=CONDITIONAL_CREATE,
                components=inbound_components(),
                links={
                    "ReadQuestionnaireResponse": link(
                        "fhir_read_questionnaire_response", resource_id="$response.body#/id"
                    ),
                },
            ),
        },
    )
    async def create(
        self,
        request: Request[Principal, Any, Any],
        catalog: NamedDependency[Catalog],
        screenings: NamedDependency[Screenings],
    ) -> Response[bytes]:
        raw, qr = await _received(request)
        condition = _condition(request)
        correcting = qr.status in CORRECTING
        if condition is None and correcting and qr.identifier and qr.identifier.value:
            # A correction names the response it corrects by the identifier it carries.
            condition = (qr.identifier.system or "", qr.identifier.value)
        if condition is not None:
            try:
                existing = await screenings.matching_response(*condition)
            except AmbiguousMatch:
                raise field_error(
                    412, "If-None-Exist", "more than one resource matches", "duplicate"
                ) from None
            if existing is not None:
                if correcting:
                    return await self._correct(request, existing, raw, qr, catalog, screenings)
                return self._existing(request, existing)
        return await self._store(request, raw, qr, catalog, screenings)

    @put(
        operation_id="fhir_conditional_update_questionnaire_response",
        summary="Correct the QuestionnaireResponse an identifier names (conditional update)",
        description=(
            "One match: stored as its next version (re-scored, or entered-in-error: its "
            "screening then counts in no needs or history), 200. No match: created, 201. "
            "Several: 412."
        ),
        media_type=FHIR_JSON,
        opt={
            **scoped("screenings:write"),
            **audited("update", "QuestionnaireResponse"),
            **documented(
                errors={403, 404, 409, 412, 422},
                request=INBOUND_BODY,
                request_media=FHIR_ACCEPTED,
                responses=UPDATE_RESPONSES,
                parameters=(CONDITIONAL_UPDATE, IF_MATCH),
                components=inbound_components(),
            ),
        },
    )
    async def conditional_update(
        self,
        request: Request[Principal, Any, Any],
        catalog: NamedDependency[Catalog],
        screenings: NamedDependency[Screenings],
    ) -> Response[bytes]:
        token = request.query_params.get("identifier")
        if token is None:
            raise field_error(400, "identifier", "a conditional update names system|value")
        condition = _identifier_token(token)
        raw, qr = await _received(request)
        try:
            existing = await screenings.matching_response(*condition)
        except AmbiguousMatch:
            raise field_error(
                412, "identifier", "more than one resource matches", "duplicate"
            ) from None
        if existing is None:
            return await self._store(request, raw, qr, catalog, screenings)
        return await self._correct(request, existing, raw, qr, catalog, screenings)

    @put(
        "/{resource_id:str}",
        operation_id="fhir_update_questionnaire_response",
        summary="Correct a stored QuestionnaireResponse",
        description=(
            "Stored as its next version: re-scored (its Observations corrected, same ids), "
            "or entered-in-error (its screening then counts in no needs or history). "
            'If-Match W/"<versionId>" refuses a stale update (412).'
        ),
        media_type=FHIR_JSON,
        opt={
            **scoped("screenings:write"),
            **audited("update", "QuestionnaireResponse"),
            **documented(
                errors={403, 409, 412, 422},
                request=INBOUND_BODY,
                request_media=FHIR_ACCEPTED,
                responses={200: UPDATE_RESPONSES[200]},
                parameters=(IF_MATCH,),
                components=inbound_components(),
            ),
        },
    )
    async def update(
        self,
        request: Request[Principal, Any, Any],
        resource_id: ResourceId,
        catalog: NamedDependency[Catalog],
        screenings: NamedDependency[Screenings],
    ) -> Response[bytes]:
        row = await screenings.questionnaire_response(resource_id)
        raw, qr = await _received(request)
        if raw.get("id") not in (None, resource_id):
            raise field_error(400, "QuestionnaireResponse.id", "must be the id in the URL")
        existing = Existing(row.id, row.patient_id, row.resource)
        return await self._correct(request, existing, raw, qr, catalog, screenings)

    async def _correct(
        self,
        request: Request[Principal, Any, Any],
        existing: Existing,
        raw: dict[str, Any],
        qr: InboundQuestionnaireResponse,
        catalog: Catalog,
        screenings: Screenings,
    ) -> Response[bytes]:
        """Store the received resource as the next version of ``existing`` (200)."""
        now = utcnow()
        amendment = self._amendment(raw, qr, catalog, now, _if_match(request))
        note(request, existing.id, existing.patient_id)
        audit = audit_event(request, 200, now)
        if audit is not None:
            audit = dataclasses.replace(audit, action="update")
        try:
            stored, changed = await screenings.correct_questionnaire_response(
                existing.id, amendment, now, audit
            )
        except Refusal as exc:
            raise refused(exc) from exc
        if changed and audit is not None:
            mark_written(request)
        return Response(
            msgspec.json.encode(stored.resource),
            status_code=200,
            media_type=FHIR_JSON,
            headers=_etag_headers(request, stored.id, stored.version),
        )

    def _amendment(
        self,
        raw: dict[str, Any],
        qr: InboundQuestionnaireResponse,
        catalog: Catalog,
        now: datetime,
        expected_version: str | None,
    ) -> Amendment:
        if qr.status == "entered-in-error":
            patient_id = patient_id_of(qr.subject) if qr.subject else None
            return Amendment(raw, patient_id, None, (), expected_version)
        submission = self._submission(raw, qr, catalog, now)
        scored = [s for _, s in submission.screenings]
        return Amendment(
            raw, submission.patient_id, submission.completed_at, scored, expected_version
        )

    async def _store(
        self,
        request: Request[Principal, Any, Any],
        raw: dict[str, Any],
        qr: InboundQuestionnaireResponse,
        catalog: Catalog,
        screenings: Screenings,
    ) -> Response[bytes]:
        """Store and score a response no stored one matched (201)."""
        if qr.status == "entered-in-error":
            raise field_error(
                422,
                "QuestionnaireResponse.status",
                "entered-in-error withdraws a stored response, and none matches",
            )
        now = utcnow()
        submission = self._submission(raw, qr, catalog, now)
        note(request, submission.questionnaire_response_id, submission.patient_id)
        key = await key_use(request, "POST /fhir/QuestionnaireResponse")

        def render(recorded: Recorded, _: object) -> tuple[bytes, dict[str, str]]:
            resource_id = recorded.submission.questionnaire_response_id
            body = msgspec.json.encode(recorded.questionnaire_response)
            return body, _etag_headers(request, resource_id, "1")

        audit = audit_event(request, CREATED, now)
        try:
            outcome = await screenings.create_questionnaire_response(
                submission, now, key, render, audit
            )
        except Refusal as exc:
            raise refused(exc) from exc
        if isinstance(outcome, Existing):
            return self._existing(request, outcome)
        return answer(request, outcome, submission, audit, FHIR_JSON)

    @staticmethod
    def _existing(request: Request[Any, Any, Any], existing: Existing) -> Response[bytes]:
        note(request, existing.id, existing.patient_id)
        return Response(
            msgspec.json.encode(existing.resource),
            status_code=200,
            media_type=FHIR_JSON,
            headers=_etag_headers(request, existing.id, existing.version),
        )

    @staticmethod
    def _submission(
        raw: dict[str, Any], qr: InboundQuestionnaireResponse, catalog: Catalog, now: datetime
    ) -> Submission:
        if qr.status not in ("completed", "amended"):
            raise field_error(
                422,
                "QuestionnaireResponse.status",
                "only completed or amended responses are scored (entered-in-error withdraws "
                "a stored one)",
            )
        patient_id = patient_id_of(qr.subject)
        if patient_id is None or not _is_fhir_id(patient_id):
            raise field_error(
                422, "QuestionnaireResponse.subject", "a Patient/<id> reference is required"
            )
        if not qr.authored:
            raise field_error(
                422, "QuestionnaireResponse.authored", "when it was completed is required"
            )
        if not FHIR_DATE_TIME.fullmatch(qr.authored):
            raise field_error(400, "QuestionnaireResponse.authored", "not a FHIR dateTime")
        if "T" not in qr.authored:
            raise field_error(
                422,
                "QuestionnaireResponse.authored",
                "a screening is dated to the second: give a time with a zone",
            )
        try:
            authored = datetime.fromisoformat(qr.authored.replace("Z", "+00:00"))
        except ValueError:
            raise field_error(
                400, "QuestionnaireResponse.authored", "not a FHIR dateTime"
            ) from None
        try:
            completed_at = check_completed_at(authored, "QuestionnaireResponse.authored", now)
        except Refusal as exc:
            raise refused(exc) from exc
        usable = [i for i in catalog.instruments.values() if catalog.enabled(i)]
        own = own_instrument(qr.questionnaire, catalog.instruments)
        if own is not None:
            catalog.usable(own.id, field="QuestionnaireResponse.questionnaire")
            picked = [pick_own(own, qr)]
        else:
            picked = pick_by_loinc(qr, usable)
        scored, problems = _score_picked(picked)
        if not scored:
            problems = problems or [
                Problem(
                    "QuestionnaireResponse.questionnaire",
                    "neither a Belong Questionnaire nor items Belong knows by LOINC code",
                    "unknown_questionnaire",
                )
            ]
            raise ApiError(422, "Nothing in this QuestionnaireResponse could be scored", problems)
        if own is not None and problems:
            raise ApiError(422, "The answers do not fit the instrument", problems)
        encounter = encounter_id_of(qr)
        identifier = qr.identifier
        qr_id = str(new_id())
        return Submission(
            patient_id=patient_id,
            profile=None,
            completed_at=completed_at,
            encounter_id=encounter,
            context={"source": "fhir"},
            questionnaire_response_id=qr_id,
            questionnaire_response=raw,
            identifier_system=(identifier.system or "") if identifier else "",
            identifier_value=identifier.value if identifier else None,
            screenings=[(str(new_id()), s) for s in scored],
        )

    @get(
        operation_id="fhir_search_questionnaire_response",
        media_type=FHIR_JSON,
        summary="Search QuestionnaireResponses by _id, patient, identifier and authored",
        opt={
            **scoped("screenings:read"),
            **audited("search", "QuestionnaireResponse"),
            **documented(errors={422}, bodies={200: (FHIR_JSON, Bundle)}, search=True),
        },
    )
    async def search(
        self,
        request: Request[Principal, Any, Any],
        screenings: NamedDependency[Screenings],
        ids: repeatable(ID_LIST, "_id") = None,
        patient: PatientRefs = None,
        subject: PatientRefs = None,
        identifier: repeatable(IDENTIFIER_LIST) = None,
        identifier_missing: Annotated[
            str | None,
            QueryParameter(
                name="identifier:missing", required=False, schema_extra={"pattern": MISSING}
            ),
        ] = None,
        authored: repeatable(DATE_SEARCH) = None,
        last_updated: repeatable(DATE_SEARCH, "_lastUpdated") = None,
    ) -> Response[Bundle]:
        paging = Search.of(request, "-authored")
        base = f"{public_origin(request)}/fhir"
        try:
            patients = reference_groups("patient", patient, "Patient", base)
            patients += reference_groups("subject", subject, "Patient", base)
            missing = identifier_missing
            query = QuestionnaireResponseQuery(
                ids=id_groups(ids),
                patient_ids=patients,
                identifiers=[_identifiers(value) for value in identifier or []],
                identifier_missing=None
                if missing is None
                else parse_missing("identifier:missing", missing),
                authored_filters=date_filters("authored", authored),
                updated_filters=date_filters("_lastUpdated", last_updated),
                limit=paging.fetch,
                after=paging.keyset,
            )
        except SearchError as exc:
            raise field_error(exc.status, exc.parameter, exc.message) from exc
        note(request, None, one_named(patients))
        found, total = await screenings.search_questionnaire_responses(query)
        rows, after = paging.page(found, lambda row: (row[1].isoformat(), row[0].id))
        resources = [resource for resource, _ in rows]
        bundle = searchset(request, "QuestionnaireResponse", resources, total, paging, after)
        return Response(bundle, media_type=FHIR_JSON)

    @get(
        "/{resource_id:str}",
        operation_id="fhir_read_questionnaire_response",
        media_type=FHIR_JSON,
        summary="Read a stored QuestionnaireResponse",
        opt={
            **scoped("screenings:read"),
            **audited("read", "QuestionnaireResponse"),
            **documented(bodies={200: (FHIR_JSON, FHIR_RESOURCE)}),
        },
    )
    async def read(
        self,
        request: Request[Principal, Any, Any],
        resource_id: ResourceId,
        screenings: NamedDependency[Screenings],
    ) -> Response[bytes]:
        row = await screenings.questionnaire_response(resource_id)
        note(request, row.id, row.patient_id)
        return Response(
            msgspec.json.encode(row.resource),
            media_type=FHIR_JSON,
            headers={"ETag": etag(version_of(row.resource))},
        )

    @get(
        "/{resource_id:str}/_history/{version_id:str}",
        operation_id="fhir_vread_questionnaire_response",
        media_type=FHIR_JSON,
        summary="Read a version of a stored QuestionnaireResponse (the current one)",
        opt={
            **scoped("screenings:read"),
            **audited("read", "QuestionnaireResponse"),
            **documented(bodies={200: (FHIR_JSON, FHIR_RESOURCE)}),
        },
    )
    async def vread(
        self,
        request: Request[Principal, Any, Any],
        resource_id: ResourceId,
        version_id: VersionId,
        screenings: NamedDependency[Screenings],
    ) -> Response[bytes]:
        row = await screenings.questionnaire_response(resource_id)
        note(request, row.id, row.patient_id)
        current = version_of(row.resource)
        if version_id != current:  # only the current version is kept readable
            raise NotFound("QuestionnaireResponse", f"{resource_id}/_history/{version_id}")
        return Response(
            msgspec.json.encode(row.resource),
            media_type=FHIR_JSON,
            headers={"ETag": etag(current)},
        )


def _identifiers(value: str) -> list[tuple[str | None, str]]:
    """An identifier token list: ``system|value``, ``|value``, ``value`` or ``system|``
    (any value of the system), comma-separated, any one of which may match."""
    tokens: list[tuple[str | None, str]] = []
    for part in value.split(","):
        system, bar, ident = part.partition("|")
        if not bar:
            system, ident = "", part
        if (
            not (ident or system)
            or "\x00" in part
            or len(system) > IDENTIFIER_MAX["system"]
            or len(ident) > IDENTIFIER_MAX["value"]
        ):
            raise SearchError("identifier", f"{part!r} is not an identifier (system|value)")
        tokens.append((system if bar else None, ident))
    return tokens


def _is_fhir_id(value: str) -> bool:
    return re.fullmatch(FHIR_ID, value) is not None


def encounter_id_of(qr: InboundQuestionnaireResponse) -> str | None:
    reference = qr.encounter.reference if qr.encounter else None
    if not reference or not reference.startswith("Encounter/"):
        return None
    ident = reference.removeprefix("Encounter/")
    return ident if _is_fhir_id(ident) else None


class ObservationController(Controller):
    path = "/fhir/Observation"
    tags = ["fhir"]
    dependencies = {"screenings": Provide(provide_screenings, sync_to_thread=False)}

    @get(
        "/{resource_id:str}",
        operation_id="fhir_read_observation",
        media_type=FHIR_JSON,
        summary="Read one Observation",
        opt={
            **scoped("screenings:read"),
            **audited("read", "Observation"),
            **documented(bodies={200: (FHIR_JSON, Observation)}),
        },
    )
    async def read(
        self,
        request: Request[Principal, Any, Any],
        resource_id: ResourceId,
        screenings: NamedDependency[Screenings],
    ) -> Response[bytes]:
        row = await screenings.observation(resource_id)
        note(request, row.id, row.patient_id)
        return Response(
            msgspec.json.encode(row.resource),
            media_type=FHIR_JSON,
            headers={"ETag": etag(version_of(row.resource))},
        )

    @get(
        operation_id="fhir_search_observation",
        media_type=FHIR_JSON,
        summary="Search Observations by patient, code, category, date and _lastUpdated",
        opt={
            **scoped("screenings:read"),
            **audited("search", "Observation"),
            **documented(errors={422}, bodies={200: (FHIR_JSON, Bundle)}, search=True),
        },
    )
    async def search(
        self,
        request: Request[Principal, Any, Any],
        screenings: NamedDependency[Screenings],
        patient: PatientRefs = None,
        subject: PatientRefs = None,
        code: repeatable(TOKEN_LIST) = None,
        category: repeatable(TOKEN_LIST) = None,
        date: Annotated[list[str] | None, QueryParameter(required=False, max_items=4)] = None,
        last_updated: Annotated[
            list[str] | None, QueryParameter(name="_lastUpdated", required=False, max_items=4)
        ] = None,
        sort: Annotated[
            str, QueryParameter(name="_sort", pattern=r"^-?(date|_lastUpdated)$")
        ] = "-date",
        include: repeatable(DERIVED_FROM, "_include", most=2) = None,
    ) -> Response[Bundle]:
        single(request, ("_sort",))
        paging = Search.of(request, sort)
        base = f"{public_origin(request)}/fhir"
        try:
            patients = reference_groups("patient", patient, "Patient", base)
            patients += reference_groups("subject", subject, "Patient", base)
            code_groups = [parse_token("code", value) for value in code or []]
            dates = date_filters("date", date)
            updated = date_filters("_lastUpdated", last_updated)
            categories = [parse_token("category", value) for value in category or []]
            derived_from = _derived_from_types(include)
        except SearchError as exc:
            raise field_error(exc.status, exc.parameter, exc.message) from exc
        # An Observation has one subject: the patients every repeat names, in their order.
        patient_ids = (
            [p for p in dict.fromkeys(patients[0]) if all(p in g for g in patients)]
            if patients
            else []
        )
        note(request, None, patient_ids[0] if len(patient_ids) == 1 else None)
        sort_by, descending = SORTS[sort]
        query = ObservationQuery(
            patient_ids=patient_ids,
            code_groups=code_groups,
            date_filters=dates,
            updated_filters=updated,
            sort_by=sort_by,
            sort_descending=descending,
            limit=paging.fetch,
            after=paging.keyset,
        )
        found: list[tuple[StoredJson, datetime]] = []
        total = 0  # the patients named have no one in common
        if not patients or patient_ids:
            found, total = await screenings.search_observations(query, categories)
        rows, after = paging.page(found, lambda row: (row[1].isoformat(), row[0].id))
        resources = [resource for resource, _ in rows]
        bundle = searchset(request, "Observation", resources, total, paging, after)
        if derived_from:
            add_included(request, bundle, await screenings.derived_from(resources, derived_from))
        return Response(bundle, media_type=FHIR_JSON)
