"""The instruments' application service: the catalog as the API serves it (definitions and
licence gates), and stateless scoring of a set of answers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated

import msgspec

from service.instruments.model import Instrument
from service.instruments.scoring import AnswersInvalid, AnswerValue, Problem, Score, score, validate
from service.platform.errors import ApiError, FieldError


@dataclass(frozen=True, slots=True)
class Catalog:
    instruments: Mapping[str, Instrument]
    licensed_groups: frozenset[str]

    @classmethod
    def of(cls, instruments: Mapping[str, Instrument], licensed: Iterable[str]) -> Catalog:
        return cls(instruments=dict(instruments), licensed_groups=frozenset(licensed))

    def enabled(self, instrument: Instrument) -> bool:
        return instrument.enabled(self.licensed_groups)

    def get(self, instrument_id: str) -> Instrument:
        """The instrument, or 404; described but not usable instruments pass here."""
        instrument = self.instruments.get(instrument_id)
        if instrument is None:
            raise ApiError(
                404,
                f"No instrument {instrument_id!r}",
                [FieldError("instrument_id", "unknown instrument", "unknown")],
            )
        return instrument

    def usable(self, instrument_id: str, field: str = "instrument_id") -> Instrument:
        """The instrument if this deployment may score it; 404 unknown, 403 unlicensed."""
        instrument = self.instruments.get(instrument_id)
        if instrument is None:
            raise ApiError(
                404,
                f"No instrument {instrument_id!r}",
                [FieldError(field, "unknown instrument", "unknown")],
            )
        if not self.enabled(instrument):
            group = instrument.definition.licence.licensed_group
            raise ApiError(
                403,
                f"{instrument_id} is licensed and disabled on this deployment: "
                f"{instrument.definition.licence.note.strip()} Enable it with "
                f"BELONG_LICENSED_INSTRUMENTS={group} once permission is held.",
                [FieldError(field, "licensed instrument not enabled", "unlicensed")],
            )
        return instrument


LinkIdKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class AnswerEntry(msgspec.Struct, forbid_unknown_fields=True):
    linkId: LinkIdKey
    value: AnswerValue


Answers = dict[LinkIdKey, AnswerValue] | list[AnswerEntry]
"""Answers by linkId, or a list of {linkId, value}: what scoring and screenings take."""


class Unscorable(ValueError):
    """Answers that do not fit the instrument, or that leave no total the missing-item rule
    allows: ``detail`` says which, ``problems`` name every answer at fault."""

    def __init__(self, detail: str, problems: list[Problem]) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems = problems


def answer_pairs(answers: Answers) -> list[tuple[str, AnswerValue]]:
    if isinstance(answers, dict):
        return list(answers.items())
    return [(entry.linkId, entry.value) for entry in answers]


def score_answers(instrument: Instrument, answers: Answers) -> tuple[dict[str, int], Score]:
    """Validate and score: the accepted answers and the score, or :class:`Unscorable`
    listing every problem, including a total the missing-item rule forbids."""
    try:
        accepted = validate(instrument, answer_pairs(answers))
    except AnswersInvalid as exc:
        raise Unscorable("The answers do not fit the instrument", exc.problems) from exc
    result = score(instrument, accepted)
    if result.total is None:
        problems = [
            Problem(f"answers.{link}", "not answered", "missing") for link in result.missing
        ]
        raise Unscorable(f"No total can be scored: {result.total_reason}", problems)
    return accepted, result
