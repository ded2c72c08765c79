"""The definition loader: a broken file stops start-up naming the file and field."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
import yaml

from service.cli import INSTRUMENT_SCHEMA, _instrument_schema_text
from service.instruments.loader import load_catalog, load_file
from service.instruments.model import InstrumentError
from service.settings import Settings
from tests.conftest import INSTRUMENTS_DIR

EXPECTED_IDS = {
    "ucla-3", "ucla-20", "djg-6", "djg-11", "lsns-6", "osss-3", "mspss", "mos-sss",
    "mmos-ss", "peg", "ahc-isolation", "prapare-social-contact",
    "promis-si-4a", "promis-si-6a", "promis-si-8a", "promis-es-4a", "promis-es-6a",
    "promis-es-8a", "promis-is-4a", "promis-is-6a", "promis-is-8a", "promis-comp-4a",
    "promis-comp-6a",
}  # fmt: skip


def test_catalog_has_every_contract_id(catalog) -> None:
    assert set(catalog) == EXPECTED_IDS


def test_only_promis_is_licensed(catalog) -> None:
    gated = {i for i, inst in catalog.items() if inst.definition.licence.licensed_group}
    assert gated == {i for i in EXPECTED_IDS if i.startswith("promis-")}
    assert all(catalog[i].definition.licence.licensed_group == "promis" for i in gated)
    assert not catalog["promis-si-4a"].enabled([])
    assert catalog["promis-si-4a"].enabled(["promis"])


def test_every_band_names_provenance_and_source(catalog) -> None:
    for instrument in catalog.values():
        bands = [*instrument.definition.bands]
        for sub in instrument.definition.subscales:
            bands.extend(sub.bands)
        for band in bands:
            assert band.source.strip(), instrument.id
            assert band.provenance.value in {"published", "conventional"}
            assert (band.signal is not None) == band.positive, (instrument.id, band.code)


def test_instrument_schema_is_current() -> None:
    assert INSTRUMENT_SCHEMA.read_text(encoding="utf-8") == _instrument_schema_text(), (
        "schemas/instrument.schema.json is stale: run `make schemas`"
    )
    assert json.loads(INSTRUMENT_SCHEMA.read_text())["title"] == "Belong instrument definition"


PREAMBLE = {"title": "BLOCK", "text": "Considering the people you meet"}


def _preamble_on(data: dict, *indexes: int) -> None:
    data["preambles"] = {"block": PREAMBLE}
    for index in indexes:
        data["items"][index]["preamble"] = "block"


def rci(**change: object) -> dict[str, object]:
    """A reliable change index: 1.96 x 2.0 x sqrt(2) x sqrt(1 - 0.8) = 2.479."""
    return {
        "kind": "rci",
        "value": 2.48,
        "sd": 2.0,
        "sd_source": "A norm study",
        "reliability": 0.8,
        "reliability_source": "A test-retest study",
        "provenance": "published",
        "note": "1.96 x 2.0 x sqrt(2) x sqrt(1 - 0.8) = 2.48",
        **change,
    }


def test_a_reliable_change_index_whose_arithmetic_holds_loads(tmp_path) -> None:
    instrument = load_file(_broken_copy(tmp_path, lambda d: d.update(meaningful_change=rci())))
    change = msgspec.to_builtins(instrument.definition.meaningful_change)
    assert (change["kind"], change["value"], change["reliability"]) == ("rci", 2.48, 0.8)


def test_consecutive_items_may_share_a_preamble(tmp_path) -> None:
    instrument = load_file(_broken_copy(tmp_path, lambda d: _preamble_on(d, 1, 2)))
    assert [item.preamble for item in instrument.definition.items] == [None, "block", "block"]


def _broken_copy(tmp_path: Path, change) -> Path:
    data = yaml.safe_load((INSTRUMENTS_DIR / "ucla-3.yaml").read_text())
    change(data)
    path = tmp_path / "ucla-3.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("title"), "missing required field `title`"),
        (lambda d: d["items"][1].update(options="nope"), "items[1].options"),
        (lambda d: d["items"][0].update(linkId="2"), "items[1].linkId"),
        (lambda d: d["bands"][0].update(range="[3, 4]"), "score 5"),
        (lambda d: d["bands"][0].update(range="[3, 6]"), "falls in 2 bands"),
        (lambda d: d["bands"][0].update(severity="awful"), "$.bands[0].severity"),
        (lambda d: d["scoring"].update(method="median"), "$.scoring.method"),
        (lambda d: d.update(id="ucla-4"), "must match the file name"),
        (lambda d: d.update(colour="blue"), "unknown field `colour`"),
        (lambda d: d.pop("meaningful_change"), "missing required field `meaningful_change`"),
        (lambda d: d["items"][0].update(preamble="nope"), "items[0].preamble"),
        (
            lambda d: d.update(preambles={"1": PREAMBLE}),
            "preambles.1: the id is also an item linkId",
        ),
        (lambda d: d.update(preambles={"block": PREAMBLE}), "preambles.block: no item shows it"),
        (lambda d: _preamble_on(d, 0, 2), "items[2].preamble: items sharing a preamble"),
        (lambda d: d.update(meaningful_change=rci(value=2.5)), "meaningful_change.value"),
        (
            lambda d: d.update(meaningful_change={"kind": "mid", "value": 1}),
            "missing required field `source` - at `$.meaningful_change`",
        ),
    ],
)
def test_broken_definition_names_file_and_field(tmp_path, change, message) -> None:
    path = _broken_copy(tmp_path, change)
    with pytest.raises(InstrumentError) as error:
        load_file(path)
    assert str(error.value).startswith("ucla-3.yaml: ")
    assert message in str(error.value)


def test_unreadable_yaml_names_the_file(tmp_path) -> None:
    (tmp_path / "ucla-3.yaml").write_text("id: [unclosed")
    with pytest.raises(InstrumentError, match=r"^ucla-3\.yaml: cannot read YAML"):
        load_catalog(tmp_path)


def test_app_refuses_to_start_on_a_broken_file(tmp_path) -> None:
    from service.app import create_app

    _broken_copy(tmp_path, lambda d: d["items"][0].pop("text"))
    with pytest.raises(InstrumentError, match=r"ucla-3\.yaml: .*text"):
        create_app(
            Settings(
                instruments_dir=tmp_path, database_url="postgresql+asyncpg://unused@localhost/none"
            )
        )


def test_settings_from_environment() -> None:
    settings = Settings.from_env(
        {"BELONG_LICENSED_INSTRUMENTS": "promis, other", "BELONG_MAX_BODY_BYTES": "4096"}
    )
    assert settings.licensed_instruments == frozenset({"promis", "other"})
    assert settings.max_body_bytes == 4096
    with pytest.raises(SystemExit, match="max_body_bytes"):
        Settings.from_env({"BELONG_MAX_BODY_BYTES": "lots"})
