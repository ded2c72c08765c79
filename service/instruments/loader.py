"""Reading instrument definitions from ``schemas/instruments/*.yaml``: each file decoded and
built into an :class:`~service.instruments.model.Instrument`; a bad file stops the load
with a message naming the file and field."""

from __future__ import annotations

from pathlib import Path

import msgspec
import yaml

from service.fhir import CANONICAL_BASE
from service.instruments.model import Definition, Instrument, InstrumentError, build


def _decode(path: Path) -> Definition:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InstrumentError(f"{path.name}: cannot read YAML: {exc}") from exc
    try:
        return msgspec.convert(raw, Definition, strict=False)
    except msgspec.ValidationError as exc:
        raise InstrumentError(f"{path.name}: {exc}") from exc


def load_file(path: Path, canonical_base: str = CANONICAL_BASE) -> Instrument:
    return build(_decode(path), path, canonical_base)


def load_catalog(directory: Path, canonical_base: str = CANONICAL_BASE) -> dict[str, Instrument]:
    """Every ``*.yaml`` under ``directory``, keyed by id, its canonical URLs under
    ``canonical_base``; the first bad file stops the load."""
    paths = sorted(directory.glob("*.yaml"))
    if not paths:
        raise InstrumentError(f"{directory}: no instrument definitions found")
    catalog = {}
    for path in paths:
        instrument = load_file(path, canonical_base)
        catalog[instrument.id] = instrument
    return catalog
