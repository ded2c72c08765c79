"""Looking a record up by its id: found, or :class:`NotFound`; and the other refusals an
application service raises (:class:`Refused`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class NotFound(LookupError):
    """No ``kind`` with this id (in the caller's clinic): the API answers 404.

    ``kind`` is what the path names: a /v1 noun (``patient``, whose id is the
    ``patient_id`` field) or a FHIR resource type. ``detail`` is the /v1 sentence.
    """

    def __init__(self, kind: str, id: str, detail: str | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.id = id
        self.detail = detail or f"No {kind} {id!r}"


def found(record: T | None, kind: str, id: str, detail: str | None = None) -> T:
    """``record``, unless the lookup found none."""
    if record is None:
        raise NotFound(kind, id, detail)
    return record


@dataclass(frozen=True, slots=True)
class Fault:
    """One field at fault in a refused request: its name, what is wrong, a short code."""

    field: str
    message: str
    code: str


class Refused(Exception):
    """A request the domain refuses: ``detail`` says why, ``faults`` name the fields.

    Raised by the application services; the API answers once for each kind below
    (service/platform/errors.py)."""

    def __init__(self, detail: str, faults: Sequence[Fault]) -> None:
        super().__init__(detail)
        self.detail = detail
        self.faults = tuple(faults)


class Unprocessable(Refused):
    """The request is well formed but cannot be carried out as asked (422)."""


class Conflict(Refused):
    """The record's state forbids this, or another request changed it first (409)."""


class Stale(Refused):
    """The record changed since the caller read it (a failed If-Match: 412)."""
