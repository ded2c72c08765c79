"""Patient links' use cases: the clinic makes a link (to answer a screening before the
visit, or to say whether a referral helped) and ends the patient's live links; the
patient opens one and answers, once.

An answer goes through the screenings' and the referrals' own use cases, and spends the
link in the transaction that stores it: of two answers sent at once by one link exactly one
is stored, and the other is told the link was used (410). Opening a link spends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from service.instruments.model import Instrument
from service.instruments.service import Answers, Catalog, score_answers
from service.patient_links.model import (
    FOLLOW_UP,
    SCREENING,
    FollowUp,
    instrument_of,
    screening_purpose,
    steps,
)
from service.patient_links.repository import PatientLinkStore
from service.patients.service import Patients
from service.platform import secret_links
from service.platform.audit import AuditEvent
from service.platform.caller import Caller
from service.platform.database import Database
from service.platform.lookup import Fault, NotFound, Unprocessable
from service.platform.secret_links import SecretLink
from service.referrals.model import Status, is_final
from service.referrals.service import Referral, Referrals
from service.screenings.service import (
    ScoredScreening,
    Submission,
    record_submission,
)

KIND = "patient"


@dataclass(frozen=True, slots=True)
class IssuedLink:
    url: str
    """Shown once: only the token's hash is kept."""
    purpose: str
    expires_at: datetime
    patient_id: str
    instrument: str | None = None
    referral_id: str | None = None


class PatientLinks:
    """The links a clinic gives its patients, as its caller makes and ends them."""

    def __init__(
        self, caller: Caller, catalog: Catalog, lifetime: timedelta, public_base: str
    ) -> None:
        self.caller = caller
        self.catalog = catalog
        self.lifetime = lifetime
        self.public_base = public_base

    async def for_screening(self, patient_id: str, instrument_id: str) -> IssuedLink:
        """A link for the patient to answer ``instrument_id`` (one this deployment offers:
        else 404 or 403 naming ``instrument``); :class:`NotFound` for an unknown patient."""
        instrument = self.catalog.usable(instrument_id, field="instrument")
        async with self.caller.transaction(PatientLinkStore) as store:
            if not await store.patient_known(patient_id):
                raise NotFound("patient", patient_id)
            return await self._issue(
                store,
                patient_id,
                screening_purpose(instrument.id),
                instrument=instrument.id,
                patient_id=patient_id,
            )

    async def for_follow_up(self, referral_id: str, patient_id: str | None = None) -> IssuedLink:
        """A link for the patient to say whether the referral helped: one of the clinic's
        (and of ``patient_id``'s, when given), still open (else :class:`Unprocessable`
        naming ``referral_id``)."""
        async with self.caller.transaction(PatientLinkStore) as store:
            referral = await store.referral(referral_id)
            if referral is None or patient_id not in (None, referral.patient_id):
                raise Unprocessable(
                    "No such referral for this patient",
                    [Fault("referral_id", "no such referral for this patient", "not_found")],
                )
            if is_final(Status(referral.status)):
                raise Unprocessable(
                    "The referral is closed already",
                    [Fault("referral_id", f"the referral is {referral.status}", "closed")],
                )
            return await self._issue(
                store,
                referral_id,
                FOLLOW_UP,
                referral_id=referral_id,
                patient_id=referral.patient_id,
            )

    async def _issue(
        self, store: PatientLinkStore, subject_id: str, purpose: str, **about: str
    ) -> IssuedLink:
        token = await secret_links.issue(
            store.conn,
            self.caller.clinic_id,
            KIND,
            subject_id,
            lifetime=self.lifetime,
            purpose=purpose,
        )
        link = await secret_links.resolve(store.conn, token, KIND)
        assert link is not None and link.expires_at is not None
        return IssuedLink(
            url=secret_links.url(self.public_base, KIND, token),
            purpose=purpose.partition(":")[0],
            expires_at=link.expires_at,
            **about,
        )

    async def revoke(self, patient_id: str, purposes: tuple[str, ...]) -> int:
        """End the patient's live links of these purposes; how many there were."""
        async with self.caller.transaction(PatientLinkStore) as store:
            return await store.revoke(patient_id, purposes)


class LinkUnknown(Exception):
    """No patient link has this token (404)."""


class LinkEnded(Exception):
    """The link was revoked, has expired, or was used (410)."""

    def __init__(self, link: SecretLink, why: str) -> None:
        super().__init__(why)
        self.link = link
        self.why = why


@dataclass(frozen=True, slots=True)
class Opened:
    """A patient link that still works, and the caller it acts as: the link itself
    (``link_hash``), in the link's clinic (every read and write through it is scoped to
    that clinic)."""

    token: str
    link: SecretLink
    caller: Caller

    @property
    def purpose(self) -> str:
        return SCREENING if instrument_of(self.link.purpose) else FOLLOW_UP


async def preferred_language(db: Database, link: SecretLink, catalog: Catalog) -> str | None:
    """The first language of the matching profile of the patient the link is for (None:
    none given), a link that ended included: its page says so in their language."""
    caller = Caller(db, link.clinic_id, None)
    patient_id = link.subject_id
    try:
        if instrument_of(link.purpose) is None:
            patient_id = (await Referrals(caller).read(link.subject_id)).patient_id
        row = await Patients(caller, catalog).profile(patient_id)
    except NotFound:
        return None
    languages = (row.profile or {}).get("languages") or []
    return languages[0] if languages else None


def link_instrument(opened: Opened, catalog: Catalog) -> Instrument:
    """The instrument a screening link asks; one no longer offered ends the link."""
    instrument = catalog.instruments.get(instrument_of(opened.link.purpose) or "")
    if instrument is None or not catalog.enabled(instrument):
        raise LinkEnded(opened.link, "unavailable")
    return instrument


async def answer_screening(
    opened: Opened,
    instrument: Instrument,
    answers: Answers,
    audit: AuditEvent | None,
    now: datetime,
    screening_id: str,
) -> Submission:
    """Score and store the patient's answers as any screening is (the patient the
    QuestionnaireResponse's author), spending the link in the same write. Refused:
    ``Unscorable`` (the answers), ``LinkSpent`` (the link was used first)."""
    accepted, score = score_answers(instrument, answers)
    submission = Submission(
        patient_id=opened.link.subject_id,
        profile=None,
        completed_at=now,
        encounter_id=None,
        context={"pain_conditions": []},
        questionnaire_response_id=screening_id,
        questionnaire_response=None,
        identifier_system="",
        identifier_value=None,
        screenings=[(screening_id, ScoredScreening(instrument, accepted, score))],
        by_patient=True,
    )
    await record_submission(
        opened.caller.db,
        opened.link.clinic_id,
        submission,
        now,
        None,
        _nothing_to_replay,
        audit,
        spending=opened.caller.link_hash,
    )
    return submission


def _nothing_to_replay(_recorded: Any, _prepared: Any) -> tuple[bytes, dict[str, str]]:
    """A link's answer holds no idempotency key (the link is spent once instead)."""
    return b"", {}


async def link_referral(opened: Opened) -> Referral:
    """The referral a follow-up link asks about (in the link's clinic)."""
    return await Referrals(opened.caller).read(opened.link.subject_id)


async def answer_follow_up(opened: Opened, follow_up: FollowUp) -> Referral | None:
    """Move the referral as the patient's answer says, spending the link in the same
    transaction; None (nothing stored) when the referral was final already. Refused:
    ``LinkSpent``."""

    async def spend(conn: Any) -> bool:
        return await secret_links.spend(conn, opened.token, KIND)

    return await Referrals(opened.caller).follow_up(
        opened.link.subject_id, lambda status: steps(follow_up, status), spend
    )
