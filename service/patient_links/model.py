"""Patient links: what a link is for, and what the patient's follow-up answer does to
their referral.

A patient link (a secret link of kind ``patient``) is single-use and expiring. Its
``purpose`` is ``screening:<instrument id>`` (the subject is the patient: answer that
instrument before the visit) or ``follow-up`` (the subject is a referral: did you get
help?).

The follow-up moves the referral as the service's own answer would, one recorded step at
a time: "got help" completes it (through accepted and in-progress where it has not got
there yet); "could not" fails it once the service had started (in-progress), and cancels
it before then (requested, accepted) or while on hold, since the patient never received
the service. Either way the reason is the patient's, in words the clinic reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import msgspec

from service.referrals.model import Status, Step

SCREENING = "screening"
FOLLOW_UP = "follow-up"
PURPOSES = (SCREENING, FOLLOW_UP)
COMMENT_MAX = 500
Comment = Annotated[str, msgspec.Meta(max_length=COMMENT_MAX, pattern=r"^[^\x00]*$")]


def screening_purpose(instrument_id: str) -> str:
    """The stored purpose of a link to answer ``instrument_id`` (fits the 32 characters:
    the longest instrument id has 22)."""
    return f"{SCREENING}:{instrument_id}"


def instrument_of(purpose: str | None) -> str | None:
    """The instrument a screening link's purpose names; None for any other purpose."""
    kind, _, instrument = (purpose or "").partition(":")
    return instrument if kind == SCREENING and instrument else None


class Answer(StrEnum):
    GOT_HELP = "got-help"
    COULD_NOT = "could-not"


class Reason(StrEnum):
    """Why the patient could not get help (a Task statusReason's text says it)."""

    NO_CONTACT = "no-contact"
    COULD_NOT_REACH = "could-not-reach"
    NOT_SUITABLE = "not-suitable"
    COULD_NOT_ATTEND = "could-not-attend"
    WAITING_LIST = "waiting-list"
    COST = "cost"
    OTHER = "other"


REASON_WORDS = {
    Reason.NO_CONTACT: "the service never got in touch",
    Reason.COULD_NOT_REACH: "they could not get in touch with the service",
    Reason.NOT_SUITABLE: "it was not right for them",
    Reason.COULD_NOT_ATTEND: "they could not get there, or the times did not suit",
    Reason.WAITING_LIST: "they are still on a waiting list",
    Reason.COST: "it cost too much",
    Reason.OTHER: "another reason",
}
"""Each reason as the clinic reads it (the patient's page words it in their language)."""


@dataclass(frozen=True, slots=True)
class FollowUp:
    """The patient's answer: got help, or could not (with why); a comment either way."""

    answer: Answer
    reason: Reason | None = None
    comment: str | None = None

    def said(self) -> str:
        """What the patient said, as the referral's history records it."""
        if self.answer is Answer.GOT_HELP:
            words = "The patient said they got help"
        else:
            assert self.reason is not None
            words = (
                f"The patient said they could not get help: {REASON_WORDS[self.reason]} "
                f"({self.reason.value})"
            )
        return f"{words}. In their words: {self.comment}" if self.comment else words


GOT_HELP_PATHS: dict[Status, tuple[Status, ...]] = {
    Status.REQUESTED: (Status.ACCEPTED, Status.IN_PROGRESS),
    Status.ACCEPTED: (Status.IN_PROGRESS,),
    Status.IN_PROGRESS: (),
    Status.ON_HOLD: (Status.IN_PROGRESS,),
}
"""The steps a referral takes on the way to completed when the patient got help."""


def steps(follow_up: FollowUp, status: Status) -> list[Step]:
    """The steps the patient's answer takes a referral in ``status`` (an open one)."""
    said = follow_up.said()
    if follow_up.answer is Answer.GOT_HELP:
        return [Step(s) for s in GOT_HELP_PATHS[status]] + [Step(Status.COMPLETED, outcome=said)]
    if status is Status.IN_PROGRESS:
        return [Step(Status.FAILED, reason=said)]
    return [Step(Status.CANCELLED, reason=said)]
