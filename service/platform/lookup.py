"""Looking a record up by its id: found, or :class:`NotFound`."""

from __future__ import annotations

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
