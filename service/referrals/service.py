"""Referrals' use cases: a referral made with the patient's consent, found, read, and moved
through the state machine (service/referrals/model.py) to its outcome; and a directory
service's inbox (:class:`Inbox`), through which the service takes its own steps by the same
:meth:`Referrals.move`.

Each use case runs in one transaction and refuses with domain errors
(service/platform/lookup.py); both the /v1 and the /fhir controllers call it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from service.directory.model import Capacity, DirectoryService, stored_service
from service.directory.service import Directory
from service.fhir.types import Organization
from service.instruments.model import Signal
from service.matching.service import ServiceSummary, summary
from service.platform import secret_links
from service.platform.caller import Caller
from service.platform.clinics import clinic_id_named
from service.platform.database import Database, utcnow
from service.platform.lookup import Conflict, Fault, NotFound, Stale, Unprocessable, found
from service.platform.observability import REFERRALS
from service.referrals import repository
from service.referrals.fhir import ReferralFacts, ServiceStep, organization
from service.referrals.model import (
    NEEDS_REASON,
    NEXT,
    OPEN,
    Consent,
    Status,
    Step,
    TransitionError,
    amends_outcome,
    check,
    is_final,
    referral_code,
)
from service.referrals.repository import ReferralQuery, ReferralRecord, ReferralStore


class ReferralEvent(msgspec.Struct):
    from_status: Status | None
    to_status: Status
    reason: str | None
    outcome: str | None
    client_id: uuid.UUID | None
    """The API client that recorded it, or None when ``user_id`` names the app's user or
    ``link_kind`` a secret link."""
    recorded_at: datetime
    user_id: uuid.UUID | None = None
    link_kind: str | None = None
    """The kind of secret link that recorded it when neither a client nor a user did:
    ``patient`` (the patient's own link) or ``inbox`` (the service's; ``link_subject_id``
    is then the service's id)."""
    link_subject_id: str | None = None


class Referral(msgspec.Struct):
    id: str
    patient_id: str
    service: ServiceSummary
    status: Status
    allowed_next: list[Status]
    consent: Consent
    version: int
    created_at: datetime
    updated_at: datetime
    history: list[ReferralEvent]
    screening_id: str | None = None
    need: Signal | None = None
    note: str | None = None
    status_reason: str | None = None
    outcome: str | None = None


def _view(record: ReferralRecord) -> Referral:
    row = record.referral
    return Referral(
        id=row["id"],
        patient_id=row["patient_id"],
        service=summary(stored_service(row["service_id"], record.service)),
        status=Status(row["status"]),
        allowed_next=sorted(NEXT[Status(row["status"])]),
        consent=msgspec.convert(row["consent"], Consent),
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        history=[msgspec.convert(event, ReferralEvent) for event in record.history],
        screening_id=row["screening_id"],
        need=Signal(row["need"]) if row["need"] else None,
        note=row["note"],
        status_reason=row["status_reason"],
        outcome=row["outcome"],
    )


async def patient_referrals(
    db: Database, clinic_id: uuid.UUID, patient_id: str, limit: int
) -> list[Referral]:
    """The patient's referrals, most recently changed first: one round trip, no
    transaction (it is read beside the patient's recommendations)."""
    return [_view(r) for r in await repository.patient_referrals(db, clinic_id, patient_id, limit)]


RECENTLY_CLOSED_DAYS = 30
"""The worklist shows referrals that ended (completed, failed, rejected, cancelled) this
many days back."""


@dataclass(frozen=True, slots=True)
class WorklistReferral:
    id: str
    patient_id: str
    service_id: str
    service_name: str
    status: Status
    outcome: str | None
    created_at: datetime
    updated_at: datetime
    overdue: bool
    """Requested longer ago than the clinic allows, and not yet accepted."""


@dataclass(frozen=True, slots=True)
class WorklistReferrals:
    items: list[WorklistReferral]
    """One page, by when they were requested."""
    total: int
    """How many the filters find."""
    by_status: dict[Status, int]
    """Every referral of the worklist by status (the filters on status and overdue aside)."""
    overdue: int


async def worklist_referrals(
    caller: Caller,
    *,
    overdue_after: timedelta,
    status: Status | None = None,
    instrument: str | None = None,
    overdue_only: bool = False,
    newest_first: bool = True,
    limit: int = 25,
    offset: int = 0,
) -> WorklistReferrals:
    """The referrals a clinic follows up: every open one, and those that ended in the last
    :data:`RECENTLY_CLOSED_DAYS`; a requested one not accepted within ``overdue_after`` is
    overdue. ``status``, ``instrument`` (the screening's it was made from) and
    ``overdue_only`` narrow the list; its page is ``limit`` from ``offset``."""
    now = utcnow()
    window: dict[str, Any] = {
        "open_statuses": [s.value for s in OPEN],
        "recent_since": now - timedelta(days=RECENTLY_CLOSED_DAYS),
        "overdue_before": now - overdue_after,
        "instrument": instrument,
    }
    async with caller.transaction(ReferralStore) as store:
        counts = await store.worklist_counts(**window)
        rows = await store.worklist(
            **window,
            statuses=[status.value] if status else [],
            overdue_only=overdue_only,
            newest_first=newest_first,
            limit=limit,
            offset=offset,
        )
    by_status = {Status(name): n for name, (n, _) in counts.items()}
    overdue = sum(late for _, late in counts.values())
    if overdue_only:
        total = (
            counts.get(Status.REQUESTED.value, (0, 0))[1]
            if status in (None, Status.REQUESTED)
            else 0
        )
    else:
        total = by_status.get(status, 0) if status else sum(by_status.values())
    items = [
        WorklistReferral(
            id=row.id,
            patient_id=row.patient_id,
            service_id=row.service_id,
            service_name=row.service_name,
            status=Status(row.status),
            outcome=row.outcome,
            created_at=row.created_at,
            updated_at=row.updated_at,
            overdue=bool(row.overdue),
        )
        for row in rows
    ]
    return WorklistReferrals(items, total, by_status, overdue)


class LinkSpent(Exception):
    """The single-use link an answer came by was spent (or ended) first: nothing stored."""


class _Final(Exception):
    """The referral a follow-up answers is final already: its transaction is undone."""


@dataclass(frozen=True, slots=True)
class Handout:
    """What a referral's handout shows the patient: the service's directory entry, the code
    to quote, and the clinic's name. Of the patient, only the languages their profile
    lists (preferred first), to choose the handout's words: no identifier."""

    code: str
    service: DirectoryService
    languages: list[str]
    clinic_name: str


@dataclass(frozen=True, slots=True)
class IssuedHandout:
    handout: Handout
    token: str
    """The new short link's token (shown once: only its hash is kept)."""
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LinkedHandout:
    """What a handout's short link opens: the referral's handout, whose patient the audit
    records."""

    handout: Handout
    patient_id: str


async def issue_handout_link(
    conn: AsyncConnection, clinic_id: uuid.UUID, referral_id: str, lifetime: timedelta
) -> str:
    """A new short link to the referral's handout, working for ``lifetime``: its token
    (``secret_links.url(public base, "handout", token)`` is the link)."""
    return await secret_links.issue(conn, clinic_id, "handout", referral_id, lifetime=lifetime)


async def _handout(store: ReferralStore, row: Any) -> Handout:
    services = await store.service_details([row])
    return Handout(
        code=referral_code(row.id),
        service=stored_service(row.service_id, services[row.service_id]),
        languages=await store.patient_languages(row.patient_id),
        clinic_name=await store.clinic_name(),
    )


async def handout_by_link(db: Database, link: secret_links.SecretLink) -> LinkedHandout | None:
    """The handout a resolved short link names, in the link's clinic (a revoked or expired
    link's too: its language is the refusal's); None when its referral is not found."""
    async with db.begin() as conn:
        store = ReferralStore(conn, link.clinic_id)
        row = await store.get_referral(link.subject_id)
        if row is None:
            return None
        return LinkedHandout(await _handout(store, row), row.patient_id)


CHANGED_CONCURRENTLY = "The referral was changed by another request; read it and try again"


class Referrals:
    """A clinic's referrals, as its caller makes and moves them."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller

    async def make(
        self,
        referral_id: str,
        *,
        patient_id: str,
        service_id: str,
        consent: Consent,
        screening_id: str | None,
        need: Signal | None,
        note: str | None,
    ) -> Referral:
        """Refer the patient to a service that takes referrals, the screening (when named)
        being one of theirs; ``consent`` is given (the request says so). Every target that
        is missing or closed is named at once (:class:`Unprocessable`)."""
        now = utcnow()
        async with self.caller.transaction(ReferralStore) as store:
            targets = await store.targets(patient_id, service_id, screening_id)
            faults = []
            if not targets.patient_known:
                faults.append(Fault("patient_id", "no such patient", "not_found"))
            if targets.service is None:
                faults.append(Fault("service_id", "no such service", "not_found"))
            elif not stored_service(service_id, targets.service).takes_referrals:
                faults.append(Fault("service_id", "this service is not taking referrals", "closed"))
            if screening_id is not None and targets.screening_patient != patient_id:
                faults.append(
                    Fault("screening_id", "no such screening for this patient", "not_found")
                )
            if faults:
                raise Unprocessable("The referral cannot be made", faults)
            stored_consent = msgspec.to_builtins(consent)
            stored_consent.setdefault("recorded_at", now.isoformat())
            await store.insert_referral(
                id=referral_id,
                patient_id=patient_id,
                service_id=service_id,
                screening_id=screening_id,
                need=need.value if need else None,
                note=note,
                consent=stored_consent,
                status=Status.REQUESTED.value,
                status_reason=None,
                outcome=None,
                version=1,
                requested_by=self.caller.actor_id,
                created_at=now,
                updated_at=now,
            )
            await store.insert_referral_event(
                referral_id=referral_id,
                from_status=None,
                to_status=Status.REQUESTED.value,
                reason=None,
                outcome=None,
                **self.caller.actor,
                recorded_at=now,
            )
            referral = await _current(store, referral_id)
        REFERRALS.labels(Status.REQUESTED.value).inc()
        return referral

    async def search(self, query: ReferralQuery) -> tuple[list[Referral], int]:
        """One page of the referrals ``query`` finds, and how many it finds in all."""
        async with self.caller.transaction(ReferralStore) as store:
            rows, total = await store.list_referrals(query)
            records = await store.with_history(rows)
        return [_view(record) for record in records], total

    async def read(self, referral_id: str) -> Referral:
        async with self.caller.transaction(ReferralStore) as store:
            row = found(
                await store.get_referral(referral_id), "referral", referral_id, "No such referral"
            )
            [record] = await store.with_history([row])
        return _view(record)

    async def read_with_actors(self, referral_id: str) -> tuple[Referral, dict[uuid.UUID, str]]:
        """The referral, and the name of each user and API client its history names."""
        async with self.caller.transaction(ReferralStore) as store:
            row = found(
                await store.get_referral(referral_id), "referral", referral_id, "No such referral"
            )
            [record] = await store.with_history([row])
            referral = _view(record)
            names = await store.actor_names(
                [e.user_id for e in referral.history if e.user_id is not None],
                [e.client_id for e in referral.history if e.client_id is not None],
            )
        return referral, names

    async def move(
        self,
        referral_id: str,
        *,
        status: Status | None,
        reason: str | None,
        outcome: str | None,
        if_match: str | None,
        seen: Callable[[str], None],
    ) -> Referral:
        """Take the referral's next step (with its reason and outcome), or add or change a
        completed referral's outcome (``status`` None or completed again, no reason).

        ``if_match`` is the version the caller read (an ETag's text): another refuses the
        change (:class:`Stale`). ``seen`` is told the referral's patient once it is found,
        before anything is refused. Steps the state machine forbids, and steps another
        request took first, are a :class:`Conflict`."""
        if status in NEEDS_REASON and reason is None:
            raise Unprocessable(
                f"Moving to {status.value} needs a reason",
                [Fault("reason", "required for this status", "required")],
            )
        async with self.caller.transaction(ReferralStore) as store:
            row = found(
                await store.get_referral(referral_id, for_update=True),
                "referral",
                referral_id,
                "No such referral",
            )
            now = utcnow()  # after the lock, so history times follow the order of steps
            seen(row.patient_id)
            if if_match is not None and if_match != str(row.version):
                raise Stale(
                    "The referral changed since it was read",
                    [Fault("If-Match", f"current version is {row.version}", "stale")],
                )
            # A completion sent again with a reason is a step (completed -> completed, 409),
            # not an outcome change: concurrent completions then all answer 200 or 409.
            amended = outcome if amends_outcome(Status(row.status), status) else None
            if amended is not None and reason is not None and status is None:
                raise Unprocessable(
                    "Changing a completed referral's outcome takes no reason",
                    [Fault("reason", "not allowed with only an outcome", "not_allowed")],
                )
            if amended is not None and reason is None:
                await self._amend_outcome(store, row, amended, now)
                return await _current(store, referral_id)
            if status is None:
                raise Unprocessable(
                    "A status is needed: only a completed referral's outcome changes without one",
                    [Fault("status", "required", "required")],
                )
            await self._step(store, row, Step(status, reason, outcome), now)
            referral = await _current(store, referral_id)
        REFERRALS.labels(status.value).inc()
        return referral

    async def follow_up(
        self,
        referral_id: str,
        steps_from: Callable[[Status], list[Step]],
        spend: Callable[[AsyncConnection], Awaitable[bool]],
    ) -> Referral | None:
        """Take the steps ``steps_from`` gives for the referral's status, each recorded, in
        one transaction with ``spend`` (the single-use link the answer came by): None,
        with nothing stored and the link not spent, when the referral is final already.
        The link is spent first, so of answers racing on one link every one but the first
        is :class:`LinkSpent`. Refused: :class:`NotFound`, :class:`LinkSpent`."""
        try:
            async with self.caller.transaction(ReferralStore) as store:
                row = found(
                    await store.get_referral(referral_id, for_update=True),
                    "referral",
                    referral_id,
                    "No such referral",
                )
                if not await spend(store.conn):
                    raise LinkSpent()
                if is_final(Status(row.status)):
                    raise _Final()  # rolled back: the link stays unspent
                now = utcnow()
                taken = steps_from(Status(row.status))
                for step in taken:
                    await self._step(store, row, step, now)
                    row = await store.get_referral(referral_id)
                referral = await _current(store, referral_id)
        except _Final:
            return None
        for step in taken:
            REFERRALS.labels(step.status.value).inc()
        return referral

    async def _step(self, store: ReferralStore, row: Any, step: Step, now: datetime) -> None:
        """Move the locked referral ``row`` one step, recorded in its history."""
        try:
            check(Status(row.status), step.status)
        except TransitionError as exc:
            raise Conflict(str(exc), [Fault("status", str(exc), "invalid_transition")]) from exc
        moved = await store.move_referral(
            row.id,
            from_status=row.status,
            version=row.version,
            to_status=step.status.value,
            reason=step.reason,
            outcome=step.outcome,
            now=now,
        )
        if not moved:
            raise Conflict(
                CHANGED_CONCURRENTLY, [Fault("status", "changed concurrently", "conflict")]
            )
        await store.insert_referral_event(
            referral_id=row.id,
            from_status=row.status,
            to_status=step.status.value,
            reason=step.reason,
            outcome=step.outcome,
            **self.caller.actor,
            recorded_at=now,
        )

    async def _amend_outcome(
        self, store: ReferralStore, row: Any, outcome: str, now: datetime
    ) -> None:
        """Add or change a completed referral's outcome, recorded as completed -> completed;
        the same outcome again changes nothing."""
        if outcome == row.outcome:
            return
        changed = await store.amend_outcome(
            row.id, status=row.status, version=row.version, outcome=outcome, now=now
        )
        if not changed:
            raise Conflict(
                CHANGED_CONCURRENTLY, [Fault("outcome", "changed concurrently", "conflict")]
            )
        await store.insert_referral_event(
            referral_id=row.id,
            from_status=row.status,
            to_status=row.status,
            reason=None,
            outcome=outcome,
            **self.caller.actor,
            recorded_at=now,
        )

    async def handout(
        self, referral_id: str, *, link_lifetime: timedelta, seen: Callable[[str], None]
    ) -> IssuedHandout:
        """The referral's handout with a new short link to it (its QR code's), working for
        ``link_lifetime``. ``seen`` is told the referral's patient once it is found."""
        async with self.caller.transaction(ReferralStore) as store:
            row = found(
                await store.get_referral(referral_id), "referral", referral_id, "No such referral"
            )
            seen(row.patient_id)
            handout = await _handout(store, row)
            token = await issue_handout_link(
                store.conn, self.caller.clinic_id, referral_id, link_lifetime
            )
            link = await secret_links.resolve(store.conn, token, "handout")
        assert link is not None and link.expires_at is not None
        return IssuedHandout(handout, token, link.expires_at)

    async def revoke_handout_links(self, referral_id: str, seen: Callable[[str], None]) -> int:
        """End every short link to the referral's handout; how many were not yet revoked."""
        async with self.caller.transaction(ReferralStore) as store:
            row = found(
                await store.get_referral(referral_id), "referral", referral_id, "No such referral"
            )
            seen(row.patient_id)
            return await secret_links.revoke(
                store.conn, self.caller.clinic_id, "handout", referral_id
            )

    async def facts(self, query: ReferralQuery) -> tuple[list[ReferralFacts], int]:
        """One page of the referrals ``query`` finds, as their FHIR resources tell them, and
        how many it finds in all."""
        async with self.caller.transaction(ReferralStore) as store:
            rows, total = await store.list_referrals(query)
            return await _facts(store, rows), total

    async def organization(self, organization_id: str) -> Organization:
        """The caller's clinic as the Organization its referrals name as requester; any
        other id, another clinic's included, is :class:`NotFound`."""
        clinic_id = str(self.caller.clinic_id)
        if organization_id != clinic_id:
            raise NotFound("Organization", organization_id)
        async with self.caller.transaction(ReferralStore) as store:
            return organization(clinic_id, await store.clinic_name())

    async def fact(self, referral_id: str, kind: str) -> ReferralFacts:
        """One referral as its FHIR resources tell it; :class:`NotFound` names it ``kind``
        (the resource type asked for)."""
        async with self.caller.transaction(ReferralStore) as store:
            row = found(await store.get_referral(referral_id), kind, referral_id)
            [facts] = await _facts(store, [row])
        return facts


async def _current(store: ReferralStore, referral_id: str) -> Referral:
    """The referral as it stands now in this transaction."""
    [record] = await store.with_history([await store.get_referral(referral_id)])
    return _view(record)


async def _facts(store: ReferralStore, rows: list[Any]) -> list[ReferralFacts]:
    if not rows:
        return []
    services = await store.service_details(rows)
    clinic = await store.clinic_name()
    steps: dict[str, list[ServiceStep]] = {}
    for event in await store.referral_history([row.id for row in rows]):
        if event.link_kind == "inbox" and event.from_status is not None:
            steps.setdefault(event.referral_id, []).append(
                ServiceStep(
                    Status(event.from_status),
                    Status(event.to_status),
                    event.reason,
                    event.recorded_at,
                )
            )
    facts = []
    for row in rows:
        consent = row.consent
        facts.append(
            ReferralFacts(
                id=row.id,
                patient_id=row.patient_id,
                clinic_id=str(row.clinic_id),
                clinic_name=clinic,
                service=stored_service(row.service_id, services[row.service_id]),
                status=Status(row.status),
                status_reason=row.status_reason,
                note=row.note,
                screening_id=row.screening_id,
                consent_text=(
                    f"Patient consent to share: {'given' if consent.get('given') else 'not given'}"
                    f" ({consent.get('method')}, {consent.get('recorded_at')})"
                ),
                created_at=row.created_at,
                updated_at=row.updated_at,
                outcome=row.outcome,
                service_steps=tuple(steps.get(row.id, ())),
            )
        )
    return facts


# -- the service's inbox --------------------------------------------------------------

SERVICE_STEPS: dict[Status, tuple[Status, ...]] = {
    Status.REQUESTED: (Status.ACCEPTED, Status.REJECTED),
    Status.ACCEPTED: (Status.IN_PROGRESS,),
    Status.IN_PROGRESS: (Status.COMPLETED, Status.FAILED),
}
"""The steps a service takes through its inbox (SDOHCC: the referral target's); the
clinic's own (cancel, on hold) are not offered there."""


@dataclass(frozen=True, slots=True)
class InboxReferral:
    """A referral as the service sees it: no patient id, only how to reach them well."""

    id: str
    code: str
    """:func:`service.referrals.model.referral_code`: what the patient quotes."""
    status: Status
    need: Signal | None
    note: str | None
    """The clinic's note."""
    languages: list[str]
    """The patient's languages, preferred first (their matching profile's)."""
    modalities: list[str]
    """How the patient prefers to take part: in person, online, phone."""
    contact_method: str | None
    """How the patient prefers the service to get in touch (phone, text, email, letter)."""
    status_reason: str | None
    outcome: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def steps(self) -> tuple[Status, ...]:
        return SERVICE_STEPS.get(self.status, ())


@dataclass(frozen=True, slots=True)
class InboxView:
    service_id: str
    service_name: str
    capacity: Capacity | None
    capacity_at: datetime | None
    referrals: list[InboxReferral]


def _inbox_referral(row: Any) -> InboxReferral:
    profile = row.profile or {}
    return InboxReferral(
        id=row.id,
        code=referral_code(row.id),
        status=Status(row.status),
        need=Signal(row.need) if row.need else None,
        note=row.note,
        languages=list(profile.get("languages", [])),
        modalities=list(profile.get("preferred_modalities", [])),
        contact_method=profile.get("contact_method"),
        status_reason=row.status_reason,
        outcome=row.outcome,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class Inbox:
    """One directory service's referrals, as the service moves them through its inbox link
    (the caller's ``link_hash``): only the referrals sent to that service, by the same
    :meth:`Referrals.move` as the clinic's, so history, Task, version and metrics follow."""

    def __init__(self, caller: Caller, service_id: str, directory: Directory) -> None:
        self.caller = caller
        self.service_id = service_id
        self.directory = directory

    async def view(self) -> InboxView:
        async with self.caller.transaction(ReferralStore) as store:
            service = found(await store.live_service(self.service_id), "service", self.service_id)
            rows = await store.service_referrals(self.service_id)
        return InboxView(
            self.service_id,
            service.name,
            Capacity(service.capacity) if service.capacity else None,
            service.capacity_at,
            [_inbox_referral(row) for row in rows],
        )

    async def referral(self, referral_id: str) -> InboxReferral:
        """One of the service's referrals; any other (another service's, another clinic's,
        none) is :class:`NotFound` ``referral``, and all of them once the service is
        withdrawn from the directory :class:`NotFound` ``service``."""
        async with self.caller.transaction(ReferralStore) as store:
            found(await store.live_service(self.service_id), "service", self.service_id)
            rows = await store.service_referrals(self.service_id, referral_id)
        if not rows:
            raise NotFound("referral", referral_id)
        return _inbox_referral(rows[0])

    async def move(
        self,
        referral_id: str,
        *,
        status: Status,
        reason: str | None,
        outcome: str | None,
        version: int,
        seen: Callable[[str], None],
    ) -> Referral:
        """The service's step (:data:`SERVICE_STEPS`) on one of its referrals, at the
        ``version`` its page showed."""
        current = await self.referral(referral_id)
        if status not in current.steps:
            message = f"The service cannot move a {current.status.value} referral to {status.value}"
            raise Conflict(message, [Fault("status", message, "invalid_transition")])
        return await Referrals(self.caller).move(
            referral_id,
            status=status,
            reason=reason,
            outcome=outcome,
            if_match=str(version),
            seen=seen,
        )

    async def set_capacity(self, capacity: Capacity) -> None:
        await self.directory.set_capacity(self.service_id, capacity)


async def _inbox_target(conn: Any, clinic: str, service_id: str) -> uuid.UUID:
    """The clinic's id, once its directory has that live service; else why not."""
    clinic_id = await clinic_id_named(conn, clinic)
    if await ReferralStore(conn, clinic_id).live_service(service_id) is None:
        raise LookupError(
            f"clinic {clinic!r} has no service {service_id!r} in its directory "
            "(see GET /v1/directory/services)"
        )
    return clinic_id


async def issue_inbox_link(db: Database, clinic: str, service_id: str) -> str:
    """A new inbox link's token for the clinic's service, its earlier links revoked
    (rotation): until revoked, no expiry."""
    async with db.begin() as conn:
        clinic_id = await _inbox_target(conn, clinic, service_id)
        await secret_links.revoke(conn, clinic_id, "inbox", service_id)
        return await secret_links.issue(conn, clinic_id, "inbox", service_id, lifetime=None)


async def revoke_inbox_links(db: Database, clinic: str, service_id: str) -> int:
    """End the service's inbox links; how many were live."""
    async with db.begin() as conn:
        clinic_id = await _inbox_target(conn, clinic, service_id)
        return await secret_links.revoke(conn, clinic_id, "inbox", service_id)
