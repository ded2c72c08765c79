"""The referral state machine (the SDOHCC Task lifecycle Belong uses), and the patient's
consent a referral is made with.

requested -> accepted | rejected | cancelled
accepted -> in-progress | cancelled
in-progress -> completed | failed | on-hold
on-hold -> in-progress | cancelled
rejected, cancelled, completed and failed are final.

A completed referral's outcome may still be added or changed later (the service reports
it after the last session): that is no status step, and is recorded as completed ->
completed in the history.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

import msgspec

NOTE_MAX = 2000
Note = Annotated[str, msgspec.Meta(min_length=1, max_length=NOTE_MAX, pattern=r"^[^\x00]*$")]


class Status(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    IN_PROGRESS = "in-progress"
    ON_HOLD = "on-hold"
    COMPLETED = "completed"
    FAILED = "failed"


NEXT: dict[Status, frozenset[Status]] = {
    Status.REQUESTED: frozenset({Status.ACCEPTED, Status.REJECTED, Status.CANCELLED}),
    Status.ACCEPTED: frozenset({Status.IN_PROGRESS, Status.CANCELLED}),
    Status.IN_PROGRESS: frozenset({Status.COMPLETED, Status.FAILED, Status.ON_HOLD}),
    Status.ON_HOLD: frozenset({Status.IN_PROGRESS, Status.CANCELLED}),
    Status.REJECTED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.COMPLETED: frozenset(),
    Status.FAILED: frozenset(),
}

NEEDS_REASON = frozenset({Status.REJECTED, Status.CANCELLED, Status.FAILED, Status.ON_HOLD})
"""Steps that must say why (SDOHCC asks for statusReason on these)."""


class TransitionError(ValueError):
    def __init__(self, current: Status, wanted: Status) -> None:
        allowed = sorted(s.value for s in NEXT[current])
        self.current = current
        self.wanted = wanted
        self.allowed = allowed
        if allowed:
            message = (
                f"{current.value} cannot become {wanted.value}; next may be {', '.join(allowed)}"
            )
        else:
            message = f"{current.value} is final and cannot become {wanted.value}"
        super().__init__(message)


def check(current: Status, wanted: Status) -> None:
    if wanted not in NEXT[current]:
        raise TransitionError(current, wanted)


def is_final(status: Status) -> bool:
    return not NEXT[status]


def amends_outcome(current: Status, wanted: Status | None) -> bool:
    """Whether a change that carries an outcome only adds or changes a completed
    referral's outcome: it names no status, or completed again."""
    return current is Status.COMPLETED and wanted in (None, Status.COMPLETED)


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a referral: the status it moves to, with its reason and outcome."""

    status: Status
    reason: str | None = None
    outcome: str | None = None


class ConsentMethod(StrEnum):
    VERBAL = "verbal"
    WRITTEN = "written"
    ELECTRONIC = "electronic"


class Consent(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """The patient's consent to share their details with the service."""

    given: bool
    method: ConsentMethod
    recorded_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    recorded_by: Note | None = None


OPEN = tuple(status for status in Status if NEXT[status])
"""Referrals still under way: requested, accepted, in-progress and on-hold."""

STATUS_WORDS = {
    Status.REQUESTED: "requested",
    Status.ACCEPTED: "accepted",
    Status.REJECTED: "rejected",
    Status.CANCELLED: "cancelled",
    Status.IN_PROGRESS: "in progress",
    Status.ON_HOLD: "on hold",
    Status.COMPLETED: "completed",
    Status.FAILED: "failed",
}
"""Each status as people say it."""


def status_words(status: Status) -> str:
    """The status as a label or a sentence's start ("In progress")."""
    words = STATUS_WORDS[status]
    return words[0].upper() + words[1:]


def next_step(status: Status, outcome: str | None = None, overdue: bool = False) -> str:
    """What the clinic does next about a referral in ``status``, in words."""
    if status is Status.REQUESTED:
        if overdue:
            return "chase the service: it has not accepted yet"
        return "waiting for the service to accept"
    if status is Status.ACCEPTED:
        return "follow up: has the patient started?"
    if status is Status.IN_PROGRESS:
        return "follow up: is the patient attending?"
    if status is Status.ON_HOLD:
        return "follow up: can the patient carry on?"
    if status is Status.COMPLETED:
        return "record the outcome" if outcome is None else "nothing: the outcome is recorded"
    if status in (Status.REJECTED, Status.FAILED):
        return "consider another service"
    return "nothing: the referral was cancelled"


def is_overdue(status: Status, requested_at: datetime, now: datetime, after: timedelta) -> bool:
    """Requested longer than ``after`` ago and not yet accepted (the worklist's query asks
    the same of the database)."""
    return status is Status.REQUESTED and requested_at < now - after


CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base32 alphabet: no I, L, O or U, so a code read aloud is not misheard."""


def referral_code(referral_id: str) -> str:
    """The code a patient and a service read out to name a referral: ``BL-XXXX-XXXX``, the
    first 40 bits of the SHA-256 of its id in Crockford base32 (no id, nothing else)."""
    number = int.from_bytes(hashlib.sha256(referral_id.encode()).digest()[:5], "big")
    chars = "".join(CROCKFORD[(number >> (35 - 5 * i)) & 31] for i in range(8))
    return f"BL-{chars[:4]}-{chars[4:]}"


class StatusReason(StrEnum):
    """Why a service declines a referral, or why one failed: Belong's codes for the SDOHCC
    Task's ``statusReason`` (the IG binds it to no value set; the code system is
    :data:`STATUS_REASON_SYSTEM`, and ``statusReason.text`` always carries the words)."""

    AT_CAPACITY = "at-capacity"
    NOT_ELIGIBLE = "not-eligible"
    CANNOT_CONTACT = "cannot-contact"
    PATIENT_DECLINED = "patient-declined"
    NOT_SUITABLE = "not-suitable"
    STOPPED_ATTENDING = "stopped-attending"
    OTHER = "other"


STATUS_REASON_WORDS = {
    StatusReason.AT_CAPACITY: "At capacity",
    StatusReason.NOT_ELIGIBLE: "Not eligible",
    StatusReason.CANNOT_CONTACT: "Cannot contact the patient",
    StatusReason.PATIENT_DECLINED: "The patient declined",
    StatusReason.NOT_SUITABLE: "Not suitable for the patient's needs",
    StatusReason.STOPPED_ATTENDING: "The patient stopped attending",
    StatusReason.OTHER: "Other",
}
DECLINE_REASONS = (
    StatusReason.AT_CAPACITY,
    StatusReason.NOT_ELIGIBLE,
    StatusReason.CANNOT_CONTACT,
    StatusReason.PATIENT_DECLINED,
    StatusReason.NOT_SUITABLE,
    StatusReason.OTHER,
)
FAIL_REASONS = (
    StatusReason.CANNOT_CONTACT,
    StatusReason.PATIENT_DECLINED,
    StatusReason.STOPPED_ATTENDING,
    StatusReason.NOT_SUITABLE,
    StatusReason.OTHER,
)


def reason_text(code: StatusReason, detail: str | None) -> str:
    """The stored ``status_reason`` of a coded reason: its words, then ": " and the detail
    given, if any ("At capacity: next intake in March")."""
    words = STATUS_REASON_WORDS[code]
    return f"{words}: {detail}" if detail else words


def reason_code(text: str | None) -> StatusReason | None:
    """The code a stored ``status_reason`` starts with (see :func:`reason_text`), if any:
    what the FHIR Task's ``statusReason.coding`` says."""
    if text is None:
        return None
    for code, words in STATUS_REASON_WORDS.items():
        if text == words or text.startswith(f"{words}: "):
            return code
    return None
