"""The clinician app's screening entry: choose an instrument this deployment offers, answer
its published items, and the answers are scored and stored exactly as POST /v1/screenings
does (the same validation, scoring and atomic write).

A random submission key travels in the form and is the write's idempotency key, so a
double submit stores one screening."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.params import PathParameter
from litestar.response import Redirect, Template

from service.directory.words import CONDITIONS
from service.instruments.model import Construct, Instrument
from service.instruments.service import Catalog
from service.patients.model import PainCondition
from service.platform.audit import audit_event, audited, mark_written, note
from service.platform.auth import scoped
from service.platform.database import new_id, utcnow
from service.platform.errors import ApiError, FieldError
from service.screenings.controllers.answering import (
    IDEMPOTENCY_KEY_PATTERN,
    ScreeningRequest,
    refused,
    screening_submission,
)
from service.screenings.service import (
    CREATED,
    KeyInFlight,
    KeyReused,
    KeyUse,
    Recorded,
    Refusal,
    Stored,
    record_submission,
)
from service.web.pages import AppController, page, see_other

InstrumentId = Annotated[str, PathParameter(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
PATIENT_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
OPTION_VALUE = re.compile(r"^-?[0-9]{1,9}$")
APP_ROUTE = "POST /app/screenings/new"
"""The route a form's submission key is held under (apart from the API's keys)."""

CONSTRUCT_WORDS = {
    Construct.LONELINESS: "Loneliness",
    Construct.SOCIAL_NETWORK: "Social network",
    Construct.SOCIAL_SUPPORT: "Social support",
    Construct.PAIN: "Pain",
}


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """A form field at fault: its element's id, its name in words, what to do."""

    id: str
    label: str
    message: str


def item_id(link_id: str) -> str:
    return f"item-{link_id}"


def answer_name(link_id: str) -> str:
    return f"answer-{link_id}"


def _offered(catalog: Catalog, instrument_id: str) -> Instrument:
    """The instrument, if this deployment offers it (known and, if licensed, enabled)."""
    instrument = catalog.instruments.get(instrument_id)
    if instrument is None or not catalog.enabled(instrument):
        raise ApiError(
            404,
            "There is no such questionnaire to enter here",
            [FieldError("instrument_id", "not offered", "not_found")],
        )
    return instrument


def _patient_query(request: Request[Any, Any, Any]) -> str:
    patient = request.query_params.get("patient") or ""
    if patient and not PATIENT_ID.fullmatch(patient):
        raise ApiError(
            400,
            "The patient id in the address is not a valid id",
            [FieldError("patient", "letters, digits, '-' and '.', up to 64", "invalid")],
        )
    return patient


def _now_field() -> str:
    return utcnow().strftime("%Y-%m-%dT%H:%M")


@dataclass(frozen=True, slots=True)
class Entered:
    """The form as posted: what to show again, and the request it makes."""

    values: dict[str, Any]
    problems: list[FieldProblem]
    request: ScreeningRequest | None


def _entered(form: Any, instrument: Instrument) -> Entered:
    patient_id = (form.get("patient_id") or "").strip()
    completed_text = (form.get("completed_at") or "").strip()
    conditions = [c for c in form.getall("pain_conditions", []) if c]
    answers: dict[str, Any] = {}
    for item in instrument.definition.items:
        value = form.get(answer_name(item.linkId))
        if value:
            answers[item.linkId] = int(value) if OPTION_VALUE.fullmatch(value) else value
    values = {
        "patient_id": patient_id,
        "completed_at": completed_text,
        "pain_conditions": conditions,
        "answers": {link: str(value) for link, value in answers.items()},
        "submission": form.get("submission") or "",
    }
    problems = []
    if not PATIENT_ID.fullmatch(patient_id):
        problems.append(
            FieldProblem(
                "patient-id", "Patient id", "Enter the patient's id: letters, digits, '-', '.'"
            )
        )
    completed_at = None
    try:
        completed_at = datetime.fromisoformat(completed_text)
    except ValueError:
        problems.append(
            FieldProblem(
                "completed-at", "Completed at", "Enter a date and time, like 2026-03-02 14:05"
            )
        )
    if completed_at is not None and completed_at.tzinfo is None:
        completed_at = completed_at.replace(tzinfo=UTC)
    known = {c.value for c in PainCondition}
    if any(c not in known for c in conditions) or len(conditions) > len(known):
        problems.append(
            FieldProblem("pain-conditions", "Pain conditions", "Choose from the conditions listed")
        )
    if problems or completed_at is None:
        return Entered(values, problems, None)
    data = ScreeningRequest(
        patient_id=patient_id,
        instrument=instrument.id,
        completed_at=completed_at,
        answers=answers,
        pain_conditions=[PainCondition(c) for c in dict.fromkeys(conditions)] or None,
    )
    return Entered(values, [], data)


def _item_problems(error: ApiError, instrument: Instrument) -> list[FieldProblem]:
    """The scoring's and the screenings' refusals, each next to its item or field."""
    position = {item.linkId: n for n, item in enumerate(instrument.definition.items, start=1)}
    problems = []
    for fault in error.errors:
        link = fault.field.removeprefix("answers.")
        if fault.field.startswith("answers.") and link in position:
            problems.append(
                FieldProblem(item_id(link), f"Question {position[link]}", fault.message)
            )
        elif fault.field == "completed_at":
            problems.append(FieldProblem("completed-at", "Completed at", fault.message))
        else:
            problems.append(FieldProblem("answers", "Answers", fault.message))
    if not problems:
        problems.append(FieldProblem("answers", "Answers", error.detail))
    return problems


def _render(recorded: Recorded, _: Any) -> tuple[bytes, dict[str, str]]:
    """What the submission key holds: where the screening is."""
    screening_id = recorded.submission.screenings[0][0]
    return msgspec.json.encode({"id": screening_id}), {"Location": f"/v1/screenings/{screening_id}"}


class ScreeningPages(AppController):
    path = "/app/screenings"

    @get("/new", opt={**scoped("screenings:write"), **audited("read", "Questionnaire")})
    async def choose(self, request: Request[Any, Any, Any]) -> Template:
        catalog: Catalog = request.app.state.catalog
        patient = _patient_query(request)
        note(request, None, patient or None)
        offered = sorted(
            (i for i in catalog.instruments.values() if catalog.enabled(i)),
            key=lambda i: (list(Construct).index(i.definition.construct), i.definition.title),
        )
        groups: dict[str, list[Instrument]] = {}
        for instrument in offered:
            groups.setdefault(CONSTRUCT_WORDS[instrument.definition.construct], []).append(
                instrument
            )
        return page(request, "screenings/choose.html", groups=groups, patient=patient)

    def _form(
        self,
        request: Request[Any, Any, Any],
        instrument: Instrument,
        values: dict[str, Any],
        problems: list[FieldProblem],
        status_code: int = 200,
    ) -> Template:
        definition = instrument.definition
        return page(
            request,
            "screenings/entry.html",
            status_code=status_code,
            definition=definition,
            items=[
                (
                    n,
                    item,
                    definition.option_sets[item.options],
                    definition.preambles.get(item.preamble or ""),
                )
                for n, item in enumerate(definition.items, start=1)
            ],
            max_missing=definition.scoring.missing.max_missing,
            pain_conditions=[(c.value, CONDITIONS[c]) for c in PainCondition],
            values=values,
            problems=problems,
            invalid={p.id for p in problems},
            item_id=item_id,
            answer_name=answer_name,
        )

    @get(
        "/new/{instrument_id:str}",
        opt={**scoped("screenings:write"), **audited("read", "Questionnaire")},
    )
    async def entry(self, request: Request[Any, Any, Any], instrument_id: InstrumentId) -> Template:
        instrument = _offered(request.app.state.catalog, instrument_id)
        patient = _patient_query(request)
        note(request, instrument_id, patient or None)
        values = {
            "patient_id": patient,
            "completed_at": _now_field(),
            "pain_conditions": [],
            "answers": {},
            "submission": secrets.token_urlsafe(24),
        }
        return self._form(request, instrument, values, [])

    @post(
        "/new/{instrument_id:str}",
        opt={**scoped("screenings:write"), **audited("create", "Screening")},
        status_code=303,
    )
    async def record(
        self, request: Request[Any, Any, Any], instrument_id: InstrumentId
    ) -> Template | Redirect:
        catalog: Catalog = request.app.state.catalog
        instrument = _offered(catalog, instrument_id)
        entered = _entered(await request.form(), instrument)
        if entered.request is None:
            return self._form(request, instrument, entered.values, entered.problems, 422)
        data = entered.request
        note(request, None, data.patient_id)
        screening_id = str(new_id())
        now = utcnow()
        try:
            submission = screening_submission(data, catalog, screening_id, now)
        except ApiError as exc:
            if exc.status_code != 422:
                raise
            problems = _item_problems(exc, instrument)
            return self._form(request, instrument, entered.values, problems, 422)
        key = None
        submitted = entered.values["submission"]
        if submitted and re.fullmatch(IDEMPOTENCY_KEY_PATTERN, submitted):
            fingerprint = hashlib.sha256(msgspec.json.encode(data)).hexdigest()
            key = KeyUse(APP_ROUTE, submitted, fingerprint)
        note(request, screening_id, data.patient_id)
        audit = audit_event(request, CREATED, now)
        try:
            outcome = await record_submission(
                request.app.state.db, request.user.clinic_id, submission, now, key, _render, audit
            )
        except (KeyReused, KeyInFlight) as exc:
            return page(
                request,
                "screenings/sent.html",
                status_code=409,
                title="This form was already sent",
                detail=(
                    "This form was already sent with other answers, so nothing more was saved. "
                    "Open a new form to enter another screening."
                    if isinstance(exc, KeyReused)
                    else "It is still being saved: wait a moment, then open the patient's page."
                ),
                patient_id=data.patient_id,
                instrument_id=instrument_id,
            )
        except Refusal as exc:
            raise refused(exc) from exc
        if isinstance(outcome, Stored):
            mark_written(request)
        else:
            note(request, outcome.resource_id, data.patient_id)
        return see_other(f"/app/patients/{data.patient_id}")
