"""The clinician app's patient pages: the worklist (the app's home) and a patient's page
(screening trends, current needs, recommended services, referrals and the matching
profile, which its form changes through the same use case as ``PUT /v1/patients``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

import msgspec
from litestar import Request, get, post
from litestar.datastructures import FormMultiDict, MultiDict
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter
from litestar.response import Redirect, Template

from service.directory.service import DirectoryCache
from service.directory.words import CATEGORIES, MODALITIES, modality
from service.instruments.model import Severity
from service.instruments.service import Catalog
from service.matching.model import SIGNAL_WORDS
from service.matching.service import RecommendationView
from service.patients.chart import format_date, format_score, trend_chart
from service.patients.controllers.words import (
    SEVERITY_WORDS,
    age_band_words,
    condition_words,
    kilometres,
    profile_facts,
)
from service.patients.model import (
    CONTACT_METHOD_WORDS,
    AgeBand,
    Modality,
    PainCondition,
    PatientProfile,
)
from service.patients.service import Patients, WorklistQuery
from service.platform.audit import audited, note
from service.platform.auth import scoped
from service.platform.caller import Caller
from service.platform.database import utcnow
from service.platform.errors import field_error
from service.platform.params import ID_PATTERN
from service.referrals.model import Status, is_overdue, next_step, status_words
from service.web.pages import AppController, page, see_other
from service.web.when import ago

T = TypeVar("T")

PatientIdParam = Annotated[str, PathParameter(pattern=ID_PATTERN, max_length=64)]

PER_INSTRUMENT = 20
"""Screenings shown (and printed) per instrument: one instrument's chart and table fill
one A4 or Letter page at most."""
RECOMMENDATIONS = 10
DEFAULT_LIMIT = 25
MAX_LIMIT = 100
MAX_OFFSET = 100_000
FLAGS = {"1": True, "true": True, "on": True, "yes": True, "0": False, "false": False, "": False}
SORTS = {"newest": True, "oldest": False}


def provide_patients(
    caller: NamedDependency[Caller], catalog: NamedDependency[Catalog]
) -> Patients:
    return Patients(caller, catalog)


# -- query parameters ------------------------------------------------------------------


def _responds(r: RecommendationView) -> str:
    """How the service answers the clinic's referrals, in words."""
    if r.acceptance_rate is None:
        return f"Too few referrals answered for a rate ({r.answered} so far)"
    words = f"Accepts {round(r.acceptance_rate * 100)}% of the {r.answered} referrals it answered"
    if r.median_days_to_accept is not None:
        words += f", in a median of {r.median_days_to_accept:g} days"
    return words


def _one(query: MultiDict[str], name: str) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise field_error(400, name, f"{name} is given more than once")
    return values[0].strip() if values else None


def _choice(
    query: MultiDict[str], name: str, choices: Mapping[str, T], default: T, allowed: str = ""
) -> T:
    value = _one(query, name)
    if value is None or value == "":
        return default
    if value not in choices:
        allowed = allowed or "one of " + ", ".join(sorted(choices))
        raise field_error(400, name, f"{name} must be {allowed}")
    return choices[value]


def _flag(query: MultiDict[str], name: str) -> bool:
    return _choice(query, name, FLAGS, False, "1 (yes) or 0 (no)")


def _whole(query: MultiDict[str], name: str, default: int, low: int, high: int) -> int:
    value = _one(query, name)
    if value is None or value == "":
        return default
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        raise field_error(400, name, f"{name} must be a whole number from {low} to {high}")
    return int(value)


# -- the profile form ------------------------------------------------------------------

LABELS = {
    "pain_conditions": "Pain conditions",
    "languages": "Languages",
    "postcode": "Postcode",
    "location.lat": "Latitude",
    "location.lon": "Longitude",
    "preferred_modalities": "Preferred ways to take part",
    "age_band": "Age band",
    "max_travel_km": "Furthest the patient can travel (km)",
    "do_not_contact": "Do not contact",
    "contact_method": "How services may get in touch",
}
REFUSED = {
    "pain_conditions": "choose only from the list, at most 6",
    "languages": "use language tags such as en, cy or pt-BR, separated by commas; at most 10",
    "postcode": "enter a postcode such as SW1A 1AA",
    "location.lat": "enter a latitude from -90 to 90",
    "location.lon": "enter a longitude from -180 to 180",
    "preferred_modalities": "choose only from the list",
    "age_band": "choose one of the age bands",
    "max_travel_km": "enter a distance in km above 0 and at most 500",
    "contact_method": "choose one of the ways to get in touch",
}
"""What to enter instead, for each field the profile refuses."""


def _accepted(profile_field: str, value: Any) -> bool:
    """Whether the profile takes ``value`` for ``profile_field`` (the model decides)."""
    try:
        msgspec.convert({profile_field: value}, PatientProfile)
    except msgspec.ValidationError:
        return False
    return True


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass
class ProfileForm:
    """The profile form's values as entered, and what is wrong with them by field."""

    pain_conditions: list[str] = field(default_factory=list)
    languages: str = ""
    postcode: str = ""
    lat: str = ""
    lon: str = ""
    preferred_modalities: list[str] = field(default_factory=list)
    age_band: str = ""
    max_travel_km: str = ""
    do_not_contact: bool = False
    contact_method: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, profile: PatientProfile) -> ProfileForm:
        return cls(
            pain_conditions=[c.value for c in profile.pain_conditions],
            languages=", ".join(profile.languages),
            postcode=profile.postcode or "",
            lat=_plain(profile.location.lat) if profile.location else "",
            lon=_plain(profile.location.lon) if profile.location else "",
            preferred_modalities=[m.value for m in profile.preferred_modalities],
            age_band=profile.age_band.value if profile.age_band else "",
            max_travel_km=_plain(profile.max_travel_km) if profile.max_travel_km else "",
            do_not_contact=profile.do_not_contact,
            contact_method=profile.contact_method.value if profile.contact_method else "",
        )

    @classmethod
    def read(cls, form: FormMultiDict) -> ProfileForm:
        def text(name: str) -> str:
            value = form.get(name)
            return value.strip() if isinstance(value, str) else ""

        def chosen(name: str) -> list[str]:
            return [v for v in form.getall(name, []) if isinstance(v, str)]

        return cls(
            pain_conditions=chosen("pain_conditions"),
            languages=text("languages"),
            postcode=text("postcode"),
            lat=text("location.lat"),
            lon=text("location.lon"),
            preferred_modalities=chosen("preferred_modalities"),
            age_band=text("age_band"),
            max_travel_km=text("max_travel_km"),
            do_not_contact=text("do_not_contact") == "yes",
            contact_method=text("contact_method"),
        )

    def profile(self) -> PatientProfile | None:
        """The profile entered, or None with every field at fault in ``errors``."""
        values: dict[str, Any] = {}
        languages = list(dict.fromkeys(t for t in self.languages.replace(",", " ").split()))
        for name, value in (
            ("pain_conditions", self.pain_conditions),
            ("languages", languages),
            ("postcode", self.postcode.upper() or None),
            ("preferred_modalities", self.preferred_modalities),
            ("age_band", self.age_band or None),
            ("contact_method", self.contact_method or None),
        ):
            if _accepted(name, value):
                values[name] = value
            else:
                self.errors[name] = REFUSED[name]
        if self.max_travel_km:
            km = _number(self.max_travel_km)
            if km is not None and _accepted("max_travel_km", km):
                values["max_travel_km"] = km
            else:
                self.errors["max_travel_km"] = REFUSED["max_travel_km"]
        self._location(values)
        values["do_not_contact"] = self.do_not_contact
        if self.errors:
            return None
        return msgspec.convert(values, PatientProfile)

    def _location(self, values: dict[str, Any]) -> None:
        if not self.lat and not self.lon:
            return
        lat, lon = _number(self.lat), _number(self.lon)
        for name, value, other in (("lat", lat, "lon"), ("lon", lon, "lat")):
            key = f"location.{name}"
            if not (self.lat if name == "lat" else self.lon):
                self.errors[key] = f"enter the {LABELS[key].lower()} too, or neither"
            elif value is None or not _accepted("location", {name: value, other: 0.0}):
                self.errors[key] = REFUSED[key]
        if "location.lat" not in self.errors and "location.lon" not in self.errors:
            values["location"] = {"lat": lat, "lon": lon}


def _plain(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


# -- the pages -------------------------------------------------------------------------


def _worklist_query(query: MultiDict[str], catalog: Catalog) -> WorklistQuery:
    statuses = {s.value: s for s in Status}
    instruments = {i: i for i in catalog.instruments}
    return WorklistQuery(
        status=_choice(query, "status", statuses, None),
        instrument=_choice(query, "instrument", instruments, None),
        overdue_only=_flag(query, "overdue"),
        newest_first=_choice(query, "sort", SORTS, True),
        limit=_whole(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=_whole(query, "offset", 0, 0, MAX_OFFSET),
    )


def _worklist_link(q: WorklistQuery, **changes: Any) -> str:
    values = {
        "status": q.status.value if q.status else None,
        "instrument": q.instrument,
        "overdue": "1" if q.overdue_only else None,
        "sort": None if q.newest_first else "oldest",
        "limit": q.limit if q.limit != DEFAULT_LIMIT else None,
        "offset": q.offset or None,
        **changes,
    }
    shown = {k: v for k, v in values.items() if v is not None}
    return "/app" + ("?" + urlencode(shown) if shown else "")


def _capitalised(words: str) -> str:
    return words[:1].upper() + words[1:]


@dataclass(frozen=True, slots=True)
class Pager:
    previous: str | None
    next: str | None
    page: int
    pages: int


class PatientPages(AppController):
    path = "/app"
    dependencies = {"patients": Provide(provide_patients, sync_to_thread=False)}

    @get("/", opt={**scoped("screenings:read"), **audited("search", "Patient")})
    async def worklist(
        self,
        request: Request[Any, Any, Any],
        patients: NamedDependency[Patients],
        catalog: NamedDependency[Catalog],
    ) -> Template:
        q = _worklist_query(request.query_params, catalog)
        settings = request.app.state.settings
        overdue_days = settings.referral_overdue_days
        worklist = await patients.worklist(q, timedelta(days=overdue_days))
        now = utcnow()
        referrals = worklist.referrals
        most = max(worklist.needs_action_total, referrals.total)
        pager = Pager(
            previous=_worklist_link(q, offset=max(q.offset - q.limit, 0) or None)
            if q.offset
            else None,
            next=_worklist_link(q, offset=q.offset + q.limit)
            if q.offset + q.limit < most
            else None,
            page=q.offset // q.limit + 1,
            pages=max(math.ceil(most / q.limit), 1),
        )
        instruments = sorted(
            (i.definition for i in catalog.instruments.values() if catalog.enabled(i)),
            key=lambda d: d.short_title.lower(),
        )
        return page(
            request,
            "patients/worklist.html",
            q=q,
            needs=[
                {
                    "patient_id": n.patient_id,
                    "instrument": n.definition.short_title,
                    "score": format_score(n.total, n.definition.scoring.decimals)
                    if n.total is not None
                    else "not scored",
                    "band": n.band_label or "",
                    "ago": ago(n.completed_at, now),
                    "date": format_date(n.completed_at),
                    "at": n.completed_at.isoformat(),
                }
                for n in worklist.needs_action
            ],
            needs_total=worklist.needs_action_total,
            referrals=[
                {
                    "id": r.id,
                    "patient_id": r.patient_id,
                    "service": r.service_name,
                    "status": status_words(r.status),
                    "ago": ago(r.created_at, now),
                    "date": format_date(r.created_at),
                    "at": r.created_at.isoformat(),
                    "overdue": r.overdue,
                    "next_step": _capitalised(next_step(r.status, r.outcome, r.overdue)),
                }
                for r in referrals.items
            ],
            referrals_total=referrals.total,
            status_counts=[
                {
                    "words": status_words(status),
                    "count": referrals.by_status.get(status, 0),
                    "link": _worklist_link(q, status=status.value, offset=None),
                    "current": q.status is status,
                }
                for status in Status
                if referrals.by_status.get(status)
            ],
            overdue_total=referrals.overdue,
            overdue_link=_worklist_link(q, overdue="1", offset=None),
            overdue_days=overdue_days,
            statuses=[(s.value, status_words(s)) for s in Status],
            instruments=[(d.id, d.short_title) for d in instruments],
            pager=pager,
            filtered=q.status is not None or q.instrument is not None or q.overdue_only,
        )

    @get(
        "/patients/{patient_id:str}",
        opt={**scoped("screenings:read"), **audited("read", "Patient")},
    )
    async def patient(
        self,
        request: Request[Any, Any, Any],
        patient_id: PatientIdParam,
        patients: NamedDependency[Patients],
        catalog: NamedDependency[Catalog],
        directory_cache: NamedDependency[DirectoryCache],
    ) -> Template:
        query = request.query_params
        explain, saved = _flag(query, "explain"), _flag(query, "saved")
        note(request, patient_id, patient_id)
        return await _patient_page(
            request, patients, catalog, directory_cache, patient_id, explain, saved=saved
        )

    @post(
        "/patients/{patient_id:str}/profile",
        opt={**scoped("screenings:write"), **audited("update", "Patient")},
    )
    async def save_profile(
        self,
        request: Request[Any, Any, Any],
        patient_id: PatientIdParam,
        patients: NamedDependency[Patients],
        catalog: NamedDependency[Catalog],
        directory_cache: NamedDependency[DirectoryCache],
    ) -> Template | Redirect:
        note(request, patient_id, patient_id)
        await patients.profile(patient_id)  # the page's patient only: never a new one
        form = ProfileForm.read(await request.form())
        profile = form.profile()
        if profile is None:
            return await _patient_page(
                request, patients, catalog, directory_cache, patient_id, False, form=form
            )
        await patients.put_profile(patient_id, profile)
        return see_other(f"/app/patients/{patient_id}?saved=1#profile")


async def _patient_page(
    request: Request[Any, Any, Any],
    patients: Patients,
    catalog: Catalog,
    cache: DirectoryCache,
    patient_id: str,
    explain: bool,
    form: ProfileForm | None = None,
    saved: bool = False,
) -> Template:
    """The patient's page; with ``form``, the profile form as entered and refused (422)."""
    stored = await patients.profile(patient_id)
    profile = msgspec.convert(stored.profile, PatientProfile)
    histories = await patients.history(patient_id, per_instrument=PER_INSTRUMENT)
    recommendations, made = await patients.referrals(patient_id, cache, RECOMMENDATIONS, explain)
    now = utcnow()
    overdue_after = timedelta(days=request.app.state.settings.referral_overdue_days)
    instruments = []
    for history in histories:
        definition = history.definition
        chart = trend_chart(
            history,
            score_range=catalog.get(definition.id).score_range(),
            reasons={s.id: s.total_reason for s in history.screenings if s.total_reason},
        )
        instruments.append({"definition": definition, "chart": chart})
    form = form or ProfileForm.of(profile)
    return page(
        request,
        "patients/patient.html",
        status_code=422 if form.errors else 200,
        patient_id=patient_id,
        printed=format_date(now),
        saved=saved,
        facts=profile_facts(profile),
        form=form,
        labels=LABELS,
        pain_choices=[(c.value, condition_words(c)) for c in PainCondition],
        modality_choices=[(m.value, MODALITIES[m]) for m in Modality],
        age_choices=[(b.value, age_band_words(b)) for b in AgeBand],
        contact_choices=[(m.value, words) for m, words in CONTACT_METHOD_WORDS.items()],
        instruments=instruments,
        per_instrument=PER_INSTRUMENT,
        needs=[
            {
                "words": _capitalised(
                    " ".join(w for w in (SEVERITY_WORDS[n.severity], SIGNAL_WORDS[n.signal]) if w)
                ),
                "severe": n.severity is Severity.SEVERE,
                "instrument": catalog.get(n.instrument).definition.short_title,
                "band": n.band,
                "date": format_date(n.completed_at),
            }
            for n in recommendations.needs
        ],
        high_pain_interference=recommendations.high_pain_interference,
        warnings=[w.message for w in recommendations.warnings],
        recommendations=[
            {
                "id": r.service.id,
                "name": r.service.name,
                "organization": r.service.organization,
                "category": CATEGORIES[r.service.category],
                "modalities": ", ".join(modality(m) for m in r.service.modalities),
                "distance": kilometres(r.distance_km) if r.distance_km is not None else None,
                "reasons": [reason.text for reason in r.reasons],
                "responds": _responds(r),
            }
            for r in recommendations.items
        ],
        considered=recommendations.considered,
        explain=explain,
        excluded=[
            {"name": e.service.name, "reasons": [reason.text for reason in e.reasons]}
            for e in recommendations.excluded or []
        ],
        referrals=[
            {
                "id": r.id,
                "service": r.service.name,
                "status": status_words(r.status),
                "ago": ago(r.created_at, now),
                "date": format_date(r.created_at),
                "at": r.created_at.isoformat(),
                "overdue": (late := is_overdue(r.status, r.created_at, now, overdue_after)),
                "next_step": _capitalised(next_step(r.status, r.outcome, late)),
            }
            for r in made
        ],
    )
