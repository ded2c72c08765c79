"""The service's inbox: the pages a directory service opens by its secret link
(`belong services link`), with no account, to see the referrals sent to it and answer them.

The link is the credential: :class:`SecretLinkMiddleware` resolves it and makes it the
request's principal (audited as the actor). An unknown token is 404, a revoked or expired
one 410, each with a plain page. Every step goes through :meth:`Referrals.move`, the
clinic's own, so the history, the SDOHCC Task, the version and the metrics follow.

Forms are protected against cross-site posting by the browser's Fetch Metadata and Origin:
a POST whose ``Sec-Fetch-Site`` is not same-origin, or whose ``Origin`` is another than
Belong's public origin, is refused (403). The token in the address is itself the secret a
forged form would need.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import PathParameter
from litestar.response import Redirect, Template

from service.directory.model import CAPACITY_WORDS, Capacity
from service.directory.service import Directory, DirectoryCache
from service.directory.words import day, language, modality
from service.instruments.model import Signal
from service.patients.model import CONTACT_METHOD_WORDS, ContactMethod
from service.platform.audit import audited, note
from service.platform.caller import Caller
from service.platform.database import Database
from service.platform.lookup import Conflict, NotFound, Stale, Unprocessable
from service.platform.origin import public_origin
from service.platform.secret_links import presented_link
from service.referrals.model import (
    DECLINE_REASONS,
    FAIL_REASONS,
    NOTE_MAX,
    STATUS_REASON_WORDS,
    Status,
    StatusReason,
    reason_text,
    status_words,
)
from service.referrals.service import Inbox, InboxReferral
from service.web.pages import page, see_other

Token = Annotated[str, PathParameter(description="The inbox link's token")]
"""Any text: one that is no link's (LINK_PATTERN or not) is answered 404 with its page."""
ReferralId = Annotated[str, PathParameter(pattern=r"^[0-9a-f-]{36}$")]
LINK = {"exclude_from_auth": True, "secret_link": "inbox"}
DETAIL_MAX = 1500
"""A reason's detail, after its words ("At capacity: ..."), within the stored note's size."""
NEED_WORDS = {
    Signal.LONELINESS: "Loneliness",
    Signal.SOCIAL_ISOLATION: "Social isolation",
    Signal.LOW_SUPPORT: "Low social support",
}
STEP_WORDS = {
    Status.ACCEPTED: "Accept",
    Status.REJECTED: "Decline",
    Status.IN_PROGRESS: "Mark in progress",
    Status.COMPLETED: "Mark completed",
    Status.FAILED: "Mark as not able to help",
}


class InboxRefused(Exception):
    """The link opens nothing (404), no longer works (410), or the form came from another
    site (403)."""

    def __init__(self, status_code: int, title: str, detail: str) -> None:
        super().__init__(title)
        self.status_code = status_code
        self.title = title
        self.detail = detail


def _inbox(request: Request[Any, Any, Any], db: Database, cache: DirectoryCache) -> Inbox:
    """The inbox the request's link opens."""
    presented = presented_link(request.scope)
    link = presented.link if presented else None
    if link is None:
        raise InboxRefused(
            404,
            "This link opens nothing",
            "Check that the whole link was copied. If it still opens nothing, ask the "
            "clinic that sent it for a new one.",
        )
    if link.gone is not None:
        raise InboxRefused(
            410,
            "This link no longer works",
            "The clinic has replaced or withdrawn this inbox link. Ask the clinic for the new one.",
        )
    caller = Caller.of(db, request.user)
    return Inbox(caller, link.subject_id, Directory(caller, cache))


def _same_origin(request: Request[Any, Any, Any]) -> None:
    """403 for a form another site posted: its ``Sec-Fetch-Site`` says so, or its
    ``Origin`` is another. (These pages send no referrer, so a browser's own form carries
    ``Origin: null``; ``Sec-Fetch-Site`` still tells same-origin from cross-site.)"""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    foreign_origin = origin not in (None, "null", public_origin(request))
    if site not in (None, "same-origin", "none") or foreign_origin:
        raise InboxRefused(
            403,
            "This form was sent from another site",
            "Nothing was changed. Open the inbox from its link and use its own forms.",
        )


def _missing(exc: NotFound) -> InboxRefused:
    """What the page says when the service (withdrawn: 410) or the referral (not this
    service's, or none: 404) is not found."""
    if exc.kind == "service":
        return InboxRefused(
            410,
            "This service is no longer in the clinic's directory",
            "Its inbox is closed. Ask the clinic if you think this is a mistake.",
        )
    return InboxRefused(
        404,
        "No such referral in this inbox",
        "This inbox holds only the referrals sent to this service.",
    )


def _refused(request: Request[Any, Any, Any], exc: InboxRefused) -> Template:
    return page(
        request,
        "inbox/refused.html",
        status_code=exc.status_code,
        title=exc.title,
        detail=exc.detail,
    )


def _row(referral: InboxReferral) -> dict[str, Any]:
    return {
        "id": referral.id,
        "code": referral.code,
        "status": status_words(referral.status),
        "status_code": referral.status.value,
        "need": NEED_WORDS[referral.need] if referral.need else "Not said",
        "languages": ", ".join(language(t) for t in referral.languages) or "Not recorded",
        "modalities": ", ".join(modality(m) for m in referral.modalities) or "Not recorded",
        "contact_method": (
            CONTACT_METHOD_WORDS[ContactMethod(referral.contact_method)]
            if referral.contact_method
            else "Not recorded"
        ),
        "note": referral.note,
        "status_reason": referral.status_reason,
        "outcome": referral.outcome,
        "sent": day(referral.created_at),
        "updated": day(referral.updated_at),
        "version": referral.version,
        "steps": [(s.value, STEP_WORDS[s]) for s in referral.steps],
    }


def _text(form: Any, name: str) -> str | None:
    value = form.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


class InboxPages(Controller):
    """``/inbox/{token}``: a service's referrals and its answers."""

    path = "/inbox"
    include_in_schema = False

    @get("/{token:str}", opt={**LINK, **audited("search", "Referral")})
    async def inbox(
        self,
        request: Request[Any, Any, Any],
        token: Token,
        db: NamedDependency[Database],
        directory_cache: NamedDependency[DirectoryCache],
    ) -> Template:
        try:
            inbox = _inbox(request, db, directory_cache)
            view = await inbox.view()
        except InboxRefused as exc:
            return _refused(request, exc)
        except NotFound as exc:
            return _refused(request, _missing(exc))
        note(request, None, None)
        return page(
            request,
            "inbox/inbox.html",
            base=f"/inbox/{token}",
            view=view,
            rows=[_row(r) for r in view.referrals],
            capacity=CAPACITY_WORDS[view.capacity] if view.capacity else None,
            capacity_at=day(view.capacity_at) if view.capacity_at else None,
            capacities=[(c.value, CAPACITY_WORDS[c]) for c in Capacity],
            saved=request.query_params.get("saved"),
        )

    @get(
        "/{token:str}/referrals/{referral_id:str}",
        opt={**LINK, **audited("read", "Referral")},
    )
    async def referral(
        self,
        request: Request[Any, Any, Any],
        token: Token,
        referral_id: ReferralId,
        db: NamedDependency[Database],
        directory_cache: NamedDependency[DirectoryCache],
    ) -> Template:
        try:
            inbox = _inbox(request, db, directory_cache)
            return await self._referral_page(request, inbox, token, referral_id)
        except InboxRefused as exc:
            return _refused(request, exc)

    async def _referral_page(
        self,
        request: Request[Any, Any, Any],
        inbox: Inbox,
        token: str,
        referral_id: str,
        status_code: int = 200,
        problem: str | None = None,
        failed_step: str | None = None,
    ) -> Template:
        try:
            referral = await inbox.referral(referral_id)
        except NotFound as exc:
            return _refused(request, _missing(exc))
        note(request, referral_id, None)
        return page(
            request,
            "inbox/referral.html",
            status_code=status_code,
            base=f"/inbox/{token}",
            referral=_row(referral),
            decline_reasons=[(r.value, STATUS_REASON_WORDS[r]) for r in DECLINE_REASONS],
            fail_reasons=[(r.value, STATUS_REASON_WORDS[r]) for r in FAIL_REASONS],
            problem=problem,
            failed_step=failed_step,
            note_max=NOTE_MAX,
            detail_max=DETAIL_MAX,
        )

    @post(
        "/{token:str}/referrals/{referral_id:str}/status",
        opt={**LINK, **audited("update", "Referral")},
        status_code=303,
    )
    async def move(
        self,
        request: Request[Any, Any, Any],
        token: Token,
        referral_id: ReferralId,
        db: NamedDependency[Database],
        directory_cache: NamedDependency[DirectoryCache],
    ) -> Template | Redirect:
        try:
            inbox = _inbox(request, db, directory_cache)
            _same_origin(request)
        except InboxRefused as exc:
            return _refused(request, exc)
        form = await request.form()
        step = _text(form, "status") or ""
        problem = _step_problem(form, step)
        if problem is not None:
            return await self._referral_page(request, inbox, token, referral_id, 422, problem, step)
        status = Status(step)
        code = _text(form, "reason")
        detail = _text(form, "detail")
        try:
            await inbox.move(
                referral_id,
                status=status,
                reason=reason_text(StatusReason(code), detail) if code else None,
                outcome=_text(form, "outcome"),
                version=int(_text(form, "version") or 0),
                seen=lambda patient_id: note(request, referral_id, patient_id),
            )
        except NotFound:
            return await self._referral_page(request, inbox, token, referral_id)
        except (Stale, Conflict):
            return await self._referral_page(
                request,
                inbox,
                token,
                referral_id,
                409,
                "This referral changed after you opened it, so nothing was changed. "
                "Here it is as it is now.",
            )
        except Unprocessable as exc:
            return await self._referral_page(
                request, inbox, token, referral_id, 422, exc.faults[0].message, step
            )
        return see_other(f"/inbox/{token}/referrals/{referral_id}")

    @post("/{token:str}/capacity", opt={**LINK, **audited("update", "HealthcareService")})
    async def capacity(
        self,
        request: Request[Any, Any, Any],
        token: Token,
        db: NamedDependency[Database],
        directory_cache: NamedDependency[DirectoryCache],
    ) -> Template | Redirect:
        try:
            inbox = _inbox(request, db, directory_cache)
            _same_origin(request)
        except InboxRefused as exc:
            return _refused(request, exc)
        form = await request.form()
        wanted = _text(form, "capacity")
        if wanted not in {c.value for c in Capacity}:
            return _refused(
                request,
                InboxRefused(
                    422,
                    "Choose whether you are taking referrals",
                    "Nothing was changed: go back and choose one of the three answers.",
                ),
            )
        note(request, inbox.service_id, None)
        try:
            await inbox.set_capacity(Capacity(wanted))
        except NotFound as exc:
            return _refused(request, _missing(exc))
        return see_other(f"/inbox/{token}?saved=capacity")


def _step_problem(form: Any, step: str) -> str | None:
    """What the step's form lacks, in words; None when it is complete."""
    if step not in STEP_WORDS:
        return "Choose one of the steps offered."
    version = _text(form, "version")
    if version is None or not version.isdigit() or len(version) > 9:
        return "Reload the referral and try again."
    reasons = {Status.REJECTED: DECLINE_REASONS, Status.FAILED: FAIL_REASONS}.get(Status(step))
    code = _text(form, "reason")
    if reasons is not None and code not in {r.value for r in reasons}:
        return "Choose a reason."
    if reasons is None and code is not None:
        return "This step takes no reason."
    for name, most in (("detail", DETAIL_MAX), ("outcome", NOTE_MAX)):
        value = _text(form, name)
        if value is not None and (len(value) > most or "\x00" in value):
            return f"Keep the {name} to {most} characters of plain text."
    if step == Status.COMPLETED.value and _text(form, "outcome") is None:
        return "Say what was done."
    return None
