"""The instrument catalog as the API serves it: definitions, licence gates, encoded views."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from service.instruments.model import Instrument
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
