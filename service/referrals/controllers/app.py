"""The clinician app's referral pages: refer a patient (a recommended service, their consent,
a note), and one referral with its timeline and its allowed next steps.

Both call the use cases /v1 calls (:class:`Referrals`): the same ServiceRequest and Task,
the same state machine, the same optimistic concurrency (the form carries the version)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter
from litestar.response import Redirect, Template

from service.directory.model import Contact, DirectoryService
from service.directory.service import Directory
from service.directory.words import CATEGORIES, modality
from service.instruments.model import Signal
from service.matching.service import Recommendations, ServiceSummary, summary
from service.messages.model import Channel
from service.messages.outbox import Outbox
from service.messages.service import Messages
from service.patients.service import Patients
from service.platform.audit import audited, note
from service.platform.auth import scoped
from service.platform.caller import Caller
from service.platform.database import new_id
from service.platform.errors import ApiError, FieldError
from service.platform.i18n import LANGUAGES
from service.platform.lookup import Conflict, NotFound, Stale, Unprocessable
from service.platform.params import ID_PATTERN
from service.referrals.controllers import provide_referrals
from service.referrals.handout import (
    asked_format,
    asked_language,
    asked_paper,
    clinic_handout,
    language_name,
)
from service.referrals.model import (
    NEEDS_REASON,
    STATUS_WORDS,
    Consent,
    ConsentMethod,
    Note,
    Status,
    status_words,
)
from service.referrals.service import Referral, ReferralEvent, Referrals
from service.web.pages import AppController, app_user, page, see_other

ReferralId = Annotated[str, PathParameter(pattern=r"^[0-9a-f-]{36}$")]
PatientIdParam = Annotated[str, PathParameter(pattern=ID_PATTERN, max_length=64)]
NOTE_MAX = 2000

STEP_WORDS = {
    Status.ACCEPTED: "Accept",
    Status.REJECTED: "Reject",
    Status.CANCELLED: "Cancel the referral",
    Status.IN_PROGRESS: "Mark in progress",
    Status.ON_HOLD: "Put on hold",
    Status.COMPLETED: "Mark completed",
    Status.FAILED: "Mark failed",
}
METHOD_WORDS = {
    ConsentMethod.VERBAL: "Verbally",
    ConsentMethod.WRITTEN: "In writing",
    ConsentMethod.ELECTRONIC: "Electronically",
}
NEED_WORDS = {
    Signal.LONELINESS: "Loneliness",
    Signal.SOCIAL_ISOLATION: "Social isolation",
    Signal.LOW_SUPPORT: "Low social support",
}

LINK_ACTORS = {"patient": "The patient (by their own link)"}
"""Who recorded a step through a secret link, by the link's kind."""


def when(moment: datetime) -> str:
    """A time as people read it: 2 Mar 2026, 14:05 UTC."""
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """A form field at fault: its input's id, its label in words, what to do."""

    id: str
    label: str
    message: str


class StepForm(msgspec.Struct, forbid_unknown_fields=True):
    version: Annotated[int, msgspec.Meta(ge=1)]
    status: Status | None = None
    reason: Note | None = None
    outcome: Note | None = None


REFER_FIELDS = {
    "service_id": ("service", "Service", "Choose a service"),
    "consent_given": ("consent-given", "Consent", "Record that the patient gave their consent"),
    "consent_method": ("consent-method", "How consent was given", "Choose how it was given"),
    "consent_recorded_by": (
        "consent-recorded-by",
        "Consent recorded by",
        "Say who recorded the consent (up to 2000 characters)",
    ),
    "note": ("note", "Note", "Keep the note to 2000 characters"),
}


def _text(form: Any, name: str) -> str | None:
    value = form.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


def _note_text(value: str | None) -> bool:
    return value is None or (len(value) <= NOTE_MAX and "\x00" not in value)


def _refer_form(form: Any) -> tuple[dict[str, Any], list[FieldProblem]]:
    """The posted values as entered, and each field at fault."""
    values = {
        "service_id": _text(form, "service_id"),
        "consent_given": form.get("consent_given") == "yes",
        "consent_method": _text(form, "consent_method"),
        "consent_recorded_by": _text(form, "consent_recorded_by"),
        "note": _text(form, "note"),
    }
    valid = {
        "service_id": values["service_id"] is not None
        and re.fullmatch(ID_PATTERN, values["service_id"]) is not None,
        "consent_given": values["consent_given"],
        "consent_method": values["consent_method"] in {m.value for m in ConsentMethod},
        "consent_recorded_by": values["consent_recorded_by"] is not None
        and _note_text(values["consent_recorded_by"]),
        "note": _note_text(values["note"]),
    }
    return values, [_problem(REFER_FIELDS, name) for name, ok in valid.items() if not ok]


def _problem(fields: dict[str, tuple[str, str, str]], name: str) -> FieldProblem:
    field_id, label, message = fields[name]
    return FieldProblem(field_id, label, message)


def _service_query(request: Request[Any, Any, Any]) -> str | None:
    """``?service=ID``: the service to preselect; 400 naming it when it is no id."""
    wanted = request.query_params.get("service")
    if wanted is not None and not re.fullmatch(ID_PATTERN, wanted):
        raise ApiError(
            400,
            "The service in the address is not a valid id",
            [FieldError("service", "not an id", "invalid")],
        )
    return wanted


@dataclass(frozen=True, slots=True)
class ServiceOption:
    service: ServiceSummary
    category: str
    modalities: str
    reasons: list[str]
    needs: list[Signal]
    screening_id: str | None


def _options(recommendations: Recommendations, extra: ServiceSummary | None) -> list[ServiceOption]:
    """The recommended services (and the one asked for, if it is not among them)."""
    screening_of = {need.signal: need.screening_id for need in recommendations.needs}
    options = [
        ServiceOption(
            service=item.service,
            category=CATEGORIES[item.service.category],
            modalities=", ".join(modality(m) for m in item.service.modalities),
            reasons=[reason.text for reason in item.reasons],
            needs=list(item.answers),
            screening_id=next((screening_of[s] for s in item.answers if s in screening_of), None),
        )
        for item in recommendations.items
    ]
    if extra is not None and all(o.service.id != extra.id for o in options):
        options.append(
            ServiceOption(
                service=extra,
                category=CATEGORIES[extra.category],
                modalities=", ".join(modality(m) for m in extra.modalities),
                reasons=[],
                needs=[],
                screening_id=None,
            )
        )
    return options


def _contact(contact: Contact | None) -> list[tuple[str, str]]:
    if contact is None:
        return []
    found = []
    if contact.phone:
        found.append(("Phone", contact.phone))
    if contact.email:
        found.append(("Email", contact.email))
    if contact.url:
        found.append(("Website", contact.url))
    return found


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    who: str
    when: str
    step: str
    reason: str | None
    outcome: str | None


def _timeline(
    history: list[ReferralEvent], names: dict[uuid.UUID, str], service_name: str
) -> list[TimelineEntry]:
    entries = []
    for event in history:
        if event.link_kind == "inbox":
            who = f"{service_name} (the service, through its inbox)"
        elif event.link_kind is not None:
            who = LINK_ACTORS.get(event.link_kind, "A secret link")
        elif event.user_id is not None:
            who = names.get(event.user_id, "A former user")
        else:
            assert event.client_id is not None
            who = f"{names.get(event.client_id, 'An API client')} (API client)"
        if event.from_status is None:
            step = "Referred"
        elif event.from_status == event.to_status:
            step = "Outcome changed"
        else:
            step = f"{status_words(event.from_status)} → {status_words(event.to_status)}"
        entries.append(
            TimelineEntry(who, when(event.recorded_at), step, event.reason, event.outcome)
        )
    return entries


@dataclass(frozen=True, slots=True)
class Step:
    status: Status
    label: str
    needs_reason: bool
    takes_outcome: bool


def _steps(referral: Referral) -> list[Step]:
    return [
        Step(
            status=status,
            label=STEP_WORDS[status],
            needs_reason=status in NEEDS_REASON,
            takes_outcome=status is Status.COMPLETED,
        )
        for status in referral.allowed_next
    ]


class ReferralPages(AppController):
    path = "/app"
    dependencies = {"referrals": Provide(provide_referrals, sync_to_thread=False)}

    async def _refer_page(
        self,
        request: Request[Any, Any, Any],
        caller: Caller,
        patient_id: str,
        status_code: int = 200,
        values: dict[str, Any] | None = None,
        problems: list[FieldProblem] | None = None,
    ) -> Template:
        wanted = _service_query(request) if values is None else values["service_id"]
        options = await self._service_options(request, caller, patient_id, wanted)
        user = app_user(request)
        return page(
            request,
            "referrals/refer.html",
            status_code=status_code,
            patient_id=patient_id,
            options=options,
            methods=[(m.value, METHOD_WORDS[m]) for m in ConsentMethod],
            values=values
            or {
                "service_id": wanted,
                "consent_given": False,
                "consent_method": None,
                "consent_recorded_by": user.name if user else "",
                "note": None,
            },
            problems=problems or [],
            invalid={p.id for p in problems or []},
        )

    async def _service_options(
        self, request: Request[Any, Any, Any], caller: Caller, patient_id: str, wanted: Any
    ) -> list[ServiceOption]:
        cache = request.app.state.directory_cache
        patients = Patients(caller, request.app.state.catalog)
        recommendations, _ = await patients.referrals(patient_id, cache, limit=10, explain=False)
        extra = None
        if (
            isinstance(wanted, str)
            and wanted
            and wanted not in {item.service.id for item in recommendations.items}
        ):
            try:
                entry = await Directory(caller, cache).read(wanted)
            except NotFound:
                entry = None  # withdrawn since the link was made: nothing preselected
            if entry is not None:
                fields = DirectoryService.__struct_fields__
                extra = summary(DirectoryService(**{f: getattr(entry, f) for f in fields}))
        return _options(recommendations, extra)

    @get(
        "/patients/{patient_id:str}/refer",
        opt={**scoped("referrals:write"), **audited("read", "Patient")},
    )
    async def refer(
        self,
        request: Request[Any, Any, Any],
        patient_id: PatientIdParam,
        caller: NamedDependency[Caller],
    ) -> Template:
        note(request, patient_id, patient_id)
        return await self._refer_page(request, caller, patient_id)

    @post(
        "/patients/{patient_id:str}/referrals",
        opt={**scoped("referrals:write"), **audited("create", "Referral")},
        status_code=303,
    )
    async def make(
        self,
        request: Request[Any, Any, Any],
        patient_id: PatientIdParam,
        caller: NamedDependency[Caller],
        referrals: NamedDependency[Referrals],
    ) -> Template | Redirect:
        form = await request.form()
        values, problems = _refer_form(form)
        note(request, None, patient_id)
        if problems:
            return await self._refer_page(request, caller, patient_id, 422, values, problems)
        service_id = values["service_id"]
        options = await self._service_options(request, caller, patient_id, service_id)
        chosen = next((o for o in options if o.service.id == service_id), None)
        referral_id = str(new_id())
        note(request, referral_id, patient_id)
        try:
            await referrals.make(
                referral_id,
                patient_id=patient_id,
                service_id=service_id,
                consent=Consent(
                    given=True,
                    method=ConsentMethod(values["consent_method"]),
                    recorded_by=values["consent_recorded_by"],
                ),
                screening_id=chosen.screening_id if chosen else None,
                need=chosen.needs[0] if chosen and chosen.needs else None,
                note=values["note"],
            )
        except Unprocessable as exc:
            refused = [
                FieldProblem(
                    *REFER_FIELDS.get(f.field, REFER_FIELDS["service_id"])[:2],
                    f.message[:1].upper() + f.message[1:],
                )
                for f in exc.faults
            ]
            return await self._refer_page(request, caller, patient_id, 422, values, refused)
        return see_other(f"/app/referrals/{referral_id}")

    async def _referral_page(
        self,
        request: Request[Any, Any, Any],
        referrals: Referrals,
        referral_id: str,
        status_code: int = 200,
        failed_step: str | None = None,
        problems: list[FieldProblem] | None = None,
        entered: dict[str, str] | None = None,
    ) -> Template:
        referral, names = await referrals.read_with_actors(referral_id)
        note(request, referral_id, referral.patient_id)
        messages = Messages(referrals.caller, Outbox.of(request.app.state.settings))
        sent = await messages.of_referral(referral_id)
        shown = request.query_params.get("message")
        return page(
            request,
            "referrals/referral.html",
            status_code=status_code,
            referral=referral,
            status=status_words(referral.status),
            category=CATEGORIES[referral.service.category],
            contact=_contact(referral.service.contact),
            consent_method=METHOD_WORDS[referral.consent.method],
            consent_when=when(referral.consent.recorded_at)
            if referral.consent.recorded_at
            else None,
            need=NEED_WORDS[referral.need] if referral.need else None,
            timeline=_timeline(referral.history, names, referral.service.name),
            steps=_steps(referral),
            failed_step=failed_step,
            problems=problems or [],
            entered=entered or {},
            created=when(referral.created_at),
            handout_messages=sent,
            message_result=next((m for m in sent if str(m.id) == shown), None),
            channels=[c for c in Channel if c in messages.outbox.senders],
            links_revoked=request.query_params.get("handout_links") == "revoked",
        )

    @get(
        "/referrals/{referral_id:str}",
        opt={**scoped("referrals:read"), **audited("read", "Referral")},
    )
    async def referral(
        self,
        request: Request[Any, Any, Any],
        referral_id: ReferralId,
        referrals: NamedDependency[Referrals],
    ) -> Template:
        return await self._referral_page(request, referrals, referral_id)

    @get(
        "/referrals/{referral_id:str}/handout",
        opt={**scoped("referrals:read"), **audited("read", "Referral")},
    )
    async def handout(
        self,
        request: Request[Any, Any, Any],
        referral_id: ReferralId,
        referrals: NamedDependency[Referrals],
    ) -> Response[Any]:
        """The patient's handout to print (the app's toolbar hidden in print) or as PDF,
        with a new short link to it."""
        format, paper, lang = asked_format(request), asked_paper(request), asked_language(request)
        issued = await referrals.handout(
            referral_id,
            link_lifetime=timedelta(days=request.app.state.settings.handout_link_days),
            seen=lambda patient_id: note(request, referral_id, patient_id),
        )
        path = f"/app/referrals/{referral_id}/handout"
        toolbar = {
            "back": f"/app/referrals/{referral_id}",
            "pdf": f"{path}?format=pdf" + (f"&lang={lang}" if lang else ""),
            "path": path,
            "languages": [(tag, language_name(tag, tag).capitalize()) for tag in LANGUAGES],
        }
        return await clinic_handout(
            request, issued, format=format, paper=paper, lang=lang, toolbar=toolbar
        )

    @post(
        "/referrals/{referral_id:str}/handout-links/revoke",
        opt={**scoped("referrals:write"), **audited("update", "Referral")},
        status_code=303,
    )
    async def revoke_handout_links(
        self,
        request: Request[Any, Any, Any],
        referral_id: ReferralId,
        referrals: NamedDependency[Referrals],
    ) -> Redirect:
        await referrals.revoke_handout_links(
            referral_id, seen=lambda patient_id: note(request, referral_id, patient_id)
        )
        return see_other(f"/app/referrals/{referral_id}?handout_links=revoked")

    @post(
        "/referrals/{referral_id:str}/status",
        opt={**scoped("referrals:write"), **audited("update", "Referral")},
        status_code=303,
    )
    async def move(
        self,
        request: Request[Any, Any, Any],
        referral_id: ReferralId,
        referrals: NamedDependency[Referrals],
    ) -> Template | Redirect:
        form = await request.form()
        entered = {name: _text(form, name) or "" for name in ("status", "reason", "outcome")}
        step = entered["status"] or "outcome"
        values: dict[str, Any] = {k: v for k, v in entered.items() if v}
        values["version"] = _text(form, "version")
        try:
            data = msgspec.convert(values, StepForm, strict=False)
        except msgspec.ValidationError as exc:
            problems = _step_problems(str(exc), step)
            return await self._referral_page(
                request, referrals, referral_id, 422, step, problems, entered
            )
        try:
            await referrals.move(
                referral_id,
                status=data.status,
                reason=data.reason,
                outcome=data.outcome,
                if_match=str(data.version),
                seen=lambda patient_id: note(request, referral_id, patient_id),
            )
        except Stale:
            return page(
                request,
                "referrals/refused.html",
                status_code=409,
                title="Someone changed this referral",
                detail=(
                    "Someone changed this referral after you opened it, so nothing was "
                    "changed: reload the referral to see it as it is now."
                ),
                back=f"/app/referrals/{referral_id}",
            )
        except Conflict as exc:
            return page(
                request,
                "referrals/refused.html",
                status_code=409,
                title="That step is not possible now",
                detail=await self._why_not(referrals, referral_id, exc),
                back=f"/app/referrals/{referral_id}",
            )
        except Unprocessable as exc:
            problems = [
                _step_problem(f.field, step, None if f.code == "required" else f.message)
                for f in exc.faults
                if f.field in STEP_FIELDS
            ]
            return await self._referral_page(
                request, referrals, referral_id, 422, step, problems, entered
            )
        return see_other(f"/app/referrals/{referral_id}")

    async def _why_not(self, referrals: Referrals, referral_id: str, exc: Conflict) -> str:
        referral = await referrals.read(referral_id)
        current = status_words(referral.status)
        if any(f.message == "changed concurrently" for f in exc.faults):
            return (
                "Someone changed this referral at the same moment, so nothing was changed: "
                "reload the referral to see it as it is now."
            )
        if not referral.allowed_next:
            return f"This referral is {current.lower()}, which is final: nothing changed."
        allowed = ", ".join(STATUS_WORDS[s] for s in referral.allowed_next)
        return (
            f"This referral is {current.lower()}; it can next become: {allowed}. Nothing changed."
        )


STEP_FIELDS = {
    "status": ("Step", "Choose one of the steps offered"),
    "reason": ("Reason", "Say why this step is taken (up to 2000 characters)"),
    "outcome": ("Outcome", "Describe the outcome (up to 2000 characters)"),
    "version": ("Version", "Reload the referral and try again"),
}


def _step_problem(name: str, step: str, message: str | None = None) -> FieldProblem:
    label, default = STEP_FIELDS[name]
    return FieldProblem(f"{name}-{step}", label, message or default)


def _step_problems(error: str, step: str) -> list[FieldProblem]:
    """The field msgspec names (``... - at `$.reason```), as the step's form field."""
    named = next((name for name in STEP_FIELDS if f"$.{name}`" in error), None)
    if named is None and "missing required field `version`" in error:
        named = "version"
    return [_step_problem(named or "status", step)]
