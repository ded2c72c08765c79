"""Plain rows the store reads and writes: no SQL here, so the API, service.screenings.repository
and the feature stores share them."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import msgspec

from service.platform.audit import AuditEvent


@dataclass(frozen=True, slots=True)
class LatestScreening:
    """A patient's newest screening of one instrument."""

    id: str
    instrument: str
    completed_at: datetime
    score: dict[str, Any]


@dataclass(frozen=True, slots=True)
class HeldKey:
    """An idempotency key already stored for this clinic and route."""

    fingerprint: str
    state: str
    status_code: int | None
    response: bytes | None
    response_headers: dict[str, str] | None
    resource_id: str | None


@dataclass(frozen=True, slots=True)
class PatientContext:
    profile: dict[str, Any] | None
    """The stored matching profile; None when the patient is not known yet."""
    latest: list[LatestScreening]
    """The newest screening of each instrument, by instrument."""
    held: HeldKey | None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A completed idempotency key: the response to replay for a retry."""

    route: str
    key: str
    fingerprint: str
    status_code: int
    response: bytes
    response_headers: dict[str, str]
    resource_id: str

    def columns(self) -> dict[str, Any]:
        """The idempotency_keys row's own values (without clinic, state and time)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class ScreeningRow(msgspec.Struct, frozen=True):
    """Structs, not dataclasses: the PostgreSQL write encodes them as JSON in one call."""

    id: str
    instrument: str
    total: float | None
    band_code: str | None
    positive: bool | None
    answers: dict[str, int]
    score: Any
    """The Score Struct (or its builtins)."""


class ObservationRow(msgspec.Struct, frozen=True):
    id: str
    screening_id: str
    position: int
    code_system: str
    code: str
    resource: Any
    """The Observation Struct (or its builtins)."""


@dataclass(frozen=True, slots=True)
class SubmissionRows:
    """Everything one accepted submission stores."""

    patient_id: str
    profile: dict[str, Any] | None
    """Replaces the stored profile when given; a new patient gets ``{}`` otherwise."""
    recorded_at: datetime
    completed_at: datetime
    encounter_id: str | None
    context: dict[str, Any]
    questionnaire_response_id: str
    identifier_system: str
    identifier_value: str | None
    questionnaire_response: dict[str, Any]
    screenings: Sequence[ScreeningRow]
    observations: Sequence[ObservationRow]
    key: KeyRecord | None
    audit: AuditEvent | None


class Written(enum.Enum):
    STORED = "stored"
    KEY_TAKEN = "key_taken"
    """Another request stored this idempotency key first: nothing was written."""
    IDENTIFIER_TAKEN = "identifier_taken"
    """A QuestionnaireResponse with this identifier is stored already: nothing was written."""
    LINK_GONE = "link_gone"
    """The patient's link the answer came by was used, revoked or expired: nothing was
    written."""


@dataclass(frozen=True, slots=True)
class Correction:
    """Everything one correction of a stored QuestionnaireResponse stores."""

    questionnaire_response_id: str
    patient_id: str
    status: str
    """The screenings' new status: corrected, or entered-in-error."""
    completed_at: datetime
    recorded_at: datetime
    questionnaire_response: dict[str, Any]
    """Its new version, with Belong's id and meta."""
    screenings: Sequence[ScreeningRow]
    observations: Sequence[ObservationRow]
    """Each Observation's new version; one not stored before is inserted."""
