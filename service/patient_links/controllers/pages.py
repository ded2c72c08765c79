"""The patient's own pages, ``/p/{token}``: no account, the link is the key. A screening
link shows the instrument's items and options as published; a follow-up link asks "did
you get help?". The page words are in the patient's language (their matching profile's
first); the items stay as published (in English, and the page says so).

The link is the credential: :class:`SecretLinkMiddleware` resolves it (a read) and, while it
works, makes it the request's principal (audited as the actor), and sets the link pages'
headers. Opening a link spends nothing; the answer spends it in the transaction that stores
it (service/patient_links/service.py), then the browser is sent to a thank-you page
(Post/Redirect/Get). Unknown links answer 404; revoked, expired and used ones 410.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import ResponseHeader
from litestar.response import Redirect, Template

from service.instruments.model import Instrument
from service.instruments.scoring import Problem
from service.instruments.service import Catalog, Unscorable, score_answers
from service.patient_links.model import (
    COMMENT_MAX,
    FOLLOW_UP,
    SCREENING,
    Answer,
    FollowUp,
    Reason,
)
from service.patient_links.service import (
    LinkEnded,
    LinkUnknown,
    Opened,
    answer_follow_up,
    answer_screening,
    link_instrument,
    link_referral,
    preferred_language,
)
from service.platform.audit import audit_event, audited, mark_written, note
from service.platform.caller import Caller
from service.platform.database import new_id, utcnow
from service.platform.i18n import LANGUAGES, wording
from service.platform.observability import SCREENINGS
from service.platform.secret_links import LINK_HEADERS, presented_link
from service.referrals.model import is_final
from service.referrals.service import LinkSpent as ReferralLinkSpent
from service.screenings.service import CREATED
from service.screenings.service import LinkSpent as ScreeningLinkSpent

LINK = {"exclude_from_auth": True, "secret_link": "patient"}
OPTION_VALUE = re.compile(r"^-?[0-9]{1,9}$")
THANKS = "/p/thanks"
THANKS_HEADERS = [ResponseHeader(name=n.decode(), value=v.decode()) for n, v in LINK_HEADERS]
"""The link pages' headers on the thank-you page, which has no token of its own."""


@dataclass(frozen=True, slots=True)
class ItemProblem:
    """An item left unanswered or answered out of range: its element's id, its name in
    the patient's words, what to do."""

    id: str
    label: str
    message: str


def item_id(link_id: str) -> str:
    return f"item-{link_id}"


def answer_name(link_id: str) -> str:
    return f"answer-{link_id}"


def _page(template: str, language: str | None, status_code: int = 200, **context: Any) -> Template:
    words = wording(language)
    return Template(
        template_name=template, status_code=status_code, context={**words.context(), **context}
    )


def _unknown() -> Template:
    return _page("patient_links/ended.html", None, 404, unknown=True)


async def _ended(request: Request[Any, Any, Any], exc: LinkEnded) -> Template:
    language = await preferred_language(request.app.state.db, exc.link, request.app.state.catalog)
    return _page("patient_links/ended.html", language, 410, unknown=False)


def _opened(request: Request[Any, Any, Any]) -> Opened:
    """The patient link the request presented, acting as the request's principal (both
    set by :class:`SecretLinkMiddleware`): :class:`LinkUnknown`, :class:`LinkEnded`."""
    presented = presented_link(request.scope)
    link = presented.link if presented else None
    if presented is None or link is None:
        raise LinkUnknown()
    if link.gone is not None:
        raise LinkEnded(link, link.gone)
    return Opened(presented.token, link, Caller.of(request.app.state.db, request.user))


def _screening_form(
    opened: Opened,
    instrument: Instrument,
    language: str | None,
    answers: dict[str, str],
    problems: list[ItemProblem],
    status_code: int = 200,
) -> Template:
    definition = instrument.definition
    return _page(
        "patient_links/screening.html",
        language,
        status_code,
        token=opened.token,
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
        values={"answers": answers},
        problems=problems,
        invalid={p.id for p in problems},
        item_id=item_id,
        answer_name=answer_name,
    )


def _follow_up_form(
    opened: Opened,
    service_name: str,
    language: str | None,
    entered: dict[str, str],
    problems: set[str],
    status_code: int = 200,
) -> Template:
    return _page(
        "patient_links/follow_up.html",
        language,
        status_code,
        token=opened.token,
        service_name=service_name,
        reasons=[r.value for r in Reason],
        entered=entered,
        problems=problems,
        comment_max=COMMENT_MAX,
    )


def _problems(
    faults: list[Problem], instrument: Instrument, language: str | None
) -> list[ItemProblem]:
    """The scoring's refusals, each next to its item, in the patient's words."""
    words = wording(language)
    position = {item.linkId: n for n, item in enumerate(instrument.definition.items, start=1)}
    found = []
    for problem in faults:
        link = problem.field.removeprefix("answers.")
        if link in position:
            message = (
                words.gettext("Choose an answer")
                if problem.code == "missing"
                else words.gettext("Choose one of the answers shown")
            )
            label = words.gettext("Question %(number)s") % {"number": position[link]}
            found.append((position[link], ItemProblem(item_id(link), label, message)))
    return [problem for _, problem in sorted(found, key=lambda pair: pair[0])]


def _follow_up(form: Any) -> tuple[dict[str, str], set[str], FollowUp | None]:
    """The answer as posted, the fields at fault (``answer``, ``reason``, ``comment``)."""
    entered = {name: (form.get(name) or "").strip() for name in ("answer", "reason", "comment")}
    problems = set()
    answer = entered["answer"] if entered["answer"] in set(Answer) else None
    if answer is None:
        problems.add("answer")
    reason = entered["reason"] if entered["reason"] in set(Reason) else None
    if answer == Answer.COULD_NOT and reason is None:
        problems.add("reason")
    comment = entered["comment"]
    if len(comment) > COMMENT_MAX or "\x00" in comment:
        problems.add("comment")
    if problems or answer is None:
        return entered, problems, None
    follow_up = FollowUp(
        Answer(answer),
        Reason(reason) if reason and answer == Answer.COULD_NOT else None,
        comment or None,
    )
    return entered, set(), follow_up


class PatientLinkPages(Controller):
    """``/p``: the pages a patient opens by their own link."""

    path = "/p"
    include_in_schema = False

    @get("/thanks", opt={"exclude_from_auth": True}, response_headers=THANKS_HEADERS)
    async def thanks(self, request: Request[Any, Any, Any]) -> Template:
        language = request.query_params.get("lang")
        purpose = request.query_params.get("purpose")
        return _page(
            "patient_links/thanks.html",
            language if language in LANGUAGES else None,
            follow_up=purpose == FOLLOW_UP,
        )

    @get("/{token:str}", opt={**LINK, **audited("read", "PatientLink")})
    async def show(self, request: Request[Any, Any, Any]) -> Template:
        catalog: Catalog = request.app.state.catalog
        try:
            opened = _opened(request)
            language = await preferred_language(opened.caller.db, opened.link, catalog)
            if opened.purpose == SCREENING:
                instrument = link_instrument(opened, catalog)
                note(request, instrument.id, opened.link.subject_id)
                return _screening_form(opened, instrument, language, {}, [])
            referral = await link_referral(opened)
        except LinkUnknown:
            return _unknown()
        except LinkEnded as exc:
            return await _ended(request, exc)
        note(request, referral.id, referral.patient_id)
        if is_final(referral.status):
            return _page("patient_links/closed.html", language, service_name=referral.service.name)
        return _follow_up_form(opened, referral.service.name, language, {}, set())

    @post(
        "/{token:str}/screening",
        opt={**LINK, **audited("create", "Screening")},
        status_code=303,
    )
    async def answer_screening(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        catalog: Catalog = request.app.state.catalog
        try:
            opened = _opened(request)
            if opened.purpose != SCREENING:
                raise LinkUnknown()
            instrument = link_instrument(opened, catalog)
        except LinkUnknown:
            return _unknown()
        except LinkEnded as exc:
            return await _ended(request, exc)
        language = await preferred_language(opened.caller.db, opened.link, catalog)
        form = await request.form()
        entered: dict[str, str] = {}
        answers: dict[str, Any] = {}
        for item in instrument.definition.items:
            value = (form.get(answer_name(item.linkId)) or "").strip()
            if value:
                entered[item.linkId] = value
                answers[item.linkId] = int(value) if OPTION_VALUE.fullmatch(value) else value
        patient_id = opened.link.subject_id
        screening_id = str(new_id())
        note(request, screening_id, patient_id)
        now = utcnow()
        unanswered = [
            Problem(f"answers.{item.linkId}", "not answered", "missing")
            for item in instrument.definition.items
            if item.linkId not in answers
        ]
        if unanswered:  # the patient is asked every question: none is left to the rule
            try:
                score_answers(instrument, answers)
                wrong: list[Problem] = []
            except Unscorable as exc:
                wrong = [p for p in exc.problems if p.code != "missing"]
            note(request, None, patient_id)
            problems = _problems(unanswered + wrong, instrument, language)
            return _screening_form(opened, instrument, language, entered, problems, 422)
        try:
            submission = await answer_screening(
                opened, instrument, answers, audit_event(request, CREATED, now), now, screening_id
            )
        except Unscorable as exc:
            note(request, None, patient_id)
            problems = _problems(exc.problems, instrument, language)
            return _screening_form(opened, instrument, language, entered, problems, 422)
        except ScreeningLinkSpent:
            return _page("patient_links/ended.html", language, 410, unknown=False)
        mark_written(request)
        band = submission.screenings[0][1].score.band
        SCREENINGS.labels(instrument.id, band.code if band else "none").inc()
        return _thanks(language, SCREENING)

    @post(
        "/{token:str}/follow-up",
        opt={**LINK, **audited("update", "Referral")},
        status_code=303,
    )
    async def answer_follow_up(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        catalog: Catalog = request.app.state.catalog
        try:
            opened = _opened(request)
            if opened.purpose != FOLLOW_UP:
                raise LinkUnknown()
            referral = await link_referral(opened)
        except LinkUnknown:
            return _unknown()
        except LinkEnded as exc:
            return await _ended(request, exc)
        note(request, referral.id, referral.patient_id)
        language = await preferred_language(opened.caller.db, opened.link, catalog)
        entered, problems, follow_up = _follow_up(await request.form())
        if follow_up is None:
            return _follow_up_form(opened, referral.service.name, language, entered, problems, 422)
        try:
            moved = await answer_follow_up(opened, follow_up)
        except ReferralLinkSpent:
            return _page("patient_links/ended.html", language, 410, unknown=False)
        if moved is None:
            return _page("patient_links/closed.html", language, service_name=referral.service.name)
        return _thanks(language, FOLLOW_UP)


def _thanks(language: str | None, purpose: str) -> Redirect:
    lang = wording(language).language
    return Redirect(path=f"{THANKS}?lang={lang}&purpose={purpose}", status_code=303)
