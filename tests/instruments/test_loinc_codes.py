"""Every item and score with a LOINC code in the reference carries it, and no other.

The reference (/work/shared/reference/instruments.md, outside the repository) is quoted
here: for each instrument, the passages that state its LOINC codes, verbatim. The codes are
read out of those passages, so each one the reference gives an instrument is either carried
where the reference puts it or set aside here with the reference's reason; an instrument
carrying a code the reference does not give it, or missing one it does, fails. Where the
reference has no code, the item or score keeps Belong's local code and the definition's
notes say so. ``test_the_quotes_are_the_reference_s_words`` checks the quotes against the
reference wherever it is present.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from service.instruments.model import LOINC, Coding, Instrument

REFERENCE = Path("/work/shared/reference/instruments.md")
LOINC_CODE = re.compile(r"\b(\d{3,7})-(\d)\b")


@dataclass(frozen=True)
class Stated:
    """What the reference says of one instrument's codes."""

    quotes: tuple[str, ...]
    carried: dict[str, str]
    """Where each code goes: ``panel``, ``total``, ``item <linkId>`` or ``subscale <id>``."""
    set_aside: dict[str, str] = field(default_factory=dict)
    """Codes the quotes name that the instrument does not carry, with the reason."""


MOS_ITEMS = (
    "LOINC panel confirms E/I membership (91634-6 listen, 91655-1 information, 91635-3 advice "
    "crisis, 91637-9 confide, 91638-7 advice you want, 91640-3 private worries, 91660-1 "
    "suggestions, 91662-7 understands; score 91647-8) and Tangible (91652-8 bed, 91653-6 "
    "doctor, 91658-5 meals, …) [LOINC-91642-9]."
)
MOS_NUMBERING = (
    "2 confined to bed (T), 3 listen to you (E), 4 good advice about a crisis (E), 5 take you "
    "to the doctor (T), 6 love and affection (A), 7 good time with (P), 8 information to "
    "understand a situation (E), 9 confide in (E), 10 hugs you (A), 11 get together for "
    "relaxation (P), 12 prepare your meals (T), 13 whose advice you really want (E), 14 do "
    "things with to get your mind off things (additional item, no subscale), 15 daily chores "
    "if sick (T), 16 share most private worries and fears (E), 17 suggestions for a personal "
    "problem (E), 18 do something enjoyable with (P), 19 understands your problems (E), 20 "
    "love and make you feel wanted (A)."
)
MOS_SCORES = (
    "**LOINC**: panel **91642-9**; overall index **91663-5**; E/I score 91647-8; affectionate "
    "support 91645-2 (code seen in third-party FSH); other subscale score codes UNCONFIRMED"
)
MMOS_ITEMS = (
    "instrumental — confined to bed, take to doctor, "
    "prepare meals, daily chores; emotional — have a good time with, suggestions for "
    "personal problem, understands your problems, love and make you feel wanted"
)
MOS_ITEM_CODES = {
    "item 2": "91652-8",
    "item 5": "91653-6",
    "item 12": "91658-5",
    "item 17": "91660-1",
    "item 19": "91662-7",
}
"""The MOS-SSS items the mMOS-SS shares (linkIds are the MOS-SSS item numbers in both)."""
NONE_FOUND = ("**LOINC**: none found.",)
PROMIS_NONE = (
    "Codes for 4a/6a forms, Emotional Support SF, Companionship SF and their T-score "
    "observation codes: **UNCONFIRMED** (none found).",
)
PROMIS_8A = (
    '**77849-8** "PROMIS Social Isolation - Short Form v2.0 - 8a"; **77850-6** "PROMIS '
    'Instrumental Support - Short Form v2.0 - 8a"; **77851-4** "PROMIS Informational '
    'Support - Short Form v2.0 - 8a"',
    'the HL7 PCO IG lists them in "Target measure **score** codes",\n  not as panels.',
)
NOT_THIS_FORM = {
    "77849-8": "the Social Isolation 8a score",
    "77850-6": "the Instrumental Support 8a score",
    "77851-4": "Informational Support, not in the catalog",
}

STATED: dict[str, Stated] = {
    "ucla-3": Stated(
        quotes=(
            'Panel **106418-7** "Three-Item Loneliness scale [Three-Item Loneliness Scale]"',
            'Total score **106421-1** "Total score [Three-Item Loneliness Scale]"',
            'Item **66867-3** "How often do you feel isolated from others"',
            'Item **66855-8** "How often do you feel that you lack companionship"',
            '| 66864-0 = "How often do you feel left out" | STILL UNCONFIRMED (probable) |',
        ),
        carried={
            "panel": "106418-7",
            "total": "106421-1",
            "item 3": "66867-3",
            "item 1": "66855-8",
        },
        set_aside={"66864-0": "left out: STILL UNCONFIRMED"},
    ),
    "ucla-20": Stated(
        quotes=(
            'LOINC panel **62933-7** "PhenX - social isolation protocol 181001"',
            '66855-8=item 2, 66857-4=item 4 ("How often do you feel alone", same FSH), '
            "66867-3=item 14 (loinc.org)",
            "By the PhenX numbering pattern (item 2 → 66855-8, item 4 → 66857-4, item 14 → "
            '66867-3) UCLA v3 item 11 "left out" would be 66864-0 (valid check digit) — '
            "inferred only",
        ),
        carried={
            "panel": "62933-7",
            "item 2": "66855-8",
            "item 4": "66857-4",
            "item 14": "66867-3",
        },
        set_aside={"66864-0": "item 11: inferred only"},
    ),
    "mos-sss": Stated(
        quotes=(MOS_ITEMS, MOS_NUMBERING, MOS_SCORES),
        carried={
            "panel": "91642-9",
            "total": "91663-5",
            "subscale emotional-informational": "91647-8",
            "item 3": "91634-6",
            "item 8": "91655-1",
            "item 4": "91635-3",
            "item 9": "91637-9",
            "item 13": "91638-7",
            "item 16": "91640-3",
            **MOS_ITEM_CODES,
        },
        set_aside={"91645-2": "affectionate score: seen only in third-party FSH"},
    ),
    "mmos-ss": Stated(
        quotes=(MOS_ITEMS, MOS_NUMBERING, MMOS_ITEMS),
        carried=MOS_ITEM_CODES,
        set_aside={
            "91634-6": "listen: a MOS-SSS item the mMOS-SS does not ask",
            "91655-1": "information: not in the mMOS-SS",
            "91635-3": "advice about a crisis: not in the mMOS-SS",
            "91637-9": "confide: not in the mMOS-SS",
            "91638-7": "advice you want: not in the mMOS-SS",
            "91640-3": "private worries: not in the mMOS-SS",
            "91647-8": "the MOS-SSS emotional/informational score, over other items",
            "91642-9": "the MOS-SSS panel; the reference finds no mMOS-SS panel",
        },
    ),
    "peg": Stated(
        quotes=(
            "**91147-9** Mean score [PEG]; **75893-8** Pain severity in the past week - 0-10 "
            "numeric rating [Reported]; **91145-3** pain interfered with enjoyment of life "
            "during the past week; **91146-1** pain interfered with general activity during "
            "the past week. Panel code **91148-7** — UNCONFIRMED",
        ),
        carried={"total": "91147-9", "item P": "75893-8", "item E": "91145-3", "item G": "91146-1"},
        set_aside={"91148-7": "panel: UNCONFIRMED"},
    ),
    "ahc-isolation": Stated(
        quotes=(
            'LOINC **93159-2** "How often do you feel lonely or isolated from those around you '
            '[CMS Assessment]"',
        ),
        carried={"item 1": "93159-2"},
    ),
    "prapare-social-contact": Stated(
        quotes=(
            'LOINC **93029-7** "How often do you see or talk to people that you care about and '
            'feel close to [PRAPARE]"',
            "PRAPARE panel **93025-5**",
        ),
        carried={"item 1": "93029-7"},
        set_aside={"93025-5": "the panel of the whole PRAPARE assessment, not this one item"},
    ),
    "promis-si-8a": Stated(
        quotes=PROMIS_8A,
        carried={"total": "77849-8"},
        set_aside={k: v for k, v in NOT_THIS_FORM.items() if k != "77849-8"},
    ),
    "promis-is-8a": Stated(
        quotes=PROMIS_8A,
        carried={"total": "77850-6"},
        set_aside={k: v for k, v in NOT_THIS_FORM.items() if k != "77850-6"},
    ),
    **{
        instrument_id: Stated(quotes=NONE_FOUND, carried={})
        for instrument_id in ("djg-6", "djg-11", "lsns-6", "osss-3", "mspss")
    },
    **{
        instrument_id: Stated(quotes=PROMIS_NONE, carried={})
        for instrument_id in (
            "promis-si-4a",
            "promis-si-6a",
            "promis-is-4a",
            "promis-is-6a",
            "promis-es-4a",
            "promis-es-6a",
            "promis-es-8a",
            "promis-comp-4a",
            "promis-comp-6a",
        )
    },
}


def codes_in(quotes: tuple[str, ...]) -> set[str]:
    """The LOINC codes a passage names (LA answer codes do not match: no word boundary)."""
    return {match.group(0) for quote in quotes for match in LOINC_CODE.finditer(quote)}


def check_digit_holds(code: str) -> bool:
    """LOINC's mod-10 check digit (the Luhn scheme over the digits before the hyphen)."""
    number, digit = code.split("-")
    total = 0
    for position, char in enumerate(reversed(number)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value // 10 + value % 10
    return (10 - total % 10) % 10 == int(digit)


def carried(instrument: Instrument) -> tuple[dict[str, str], list[str]]:
    """The instrument's LOINC codes by where they go, and what carries a local code."""
    definition = instrument.definition
    found: dict[str, Coding | None] = {
        "total": definition.scoring.code,
        **{f"item {item.linkId}": item.code for item in definition.items},
        **{f"subscale {sub.id}": sub.code for sub in definition.subscales},
    }
    if definition.panel is not None:
        found["panel"] = definition.panel
    codes = {where: c.code for where, c in found.items() if c is not None and c.system == LOINC}
    local = [where for where, c in found.items() if c is None or c.system != LOINC]
    return codes, [where for where in local if where != "panel"]


def test_every_instrument_is_accounted_for(catalog) -> None:
    assert sorted(STATED) == sorted(catalog)


@pytest.mark.parametrize("instrument_id", sorted(STATED))
def test_every_code_the_reference_gives_is_carried_or_set_aside(instrument_id) -> None:
    stated = STATED[instrument_id]
    named = codes_in(stated.quotes)
    assert set(stated.carried.values()) | set(stated.set_aside) == named
    assert not set(stated.carried.values()) & set(stated.set_aside)


@pytest.mark.parametrize("instrument_id", sorted(STATED))
def test_the_instrument_carries_the_reference_s_codes(catalog, instrument_id) -> None:
    codes, _ = carried(catalog[instrument_id])
    assert codes == STATED[instrument_id].carried


@pytest.mark.parametrize("instrument_id", sorted(STATED))
def test_codes_have_valid_check_digits(catalog, instrument_id) -> None:
    codes, _ = carried(catalog[instrument_id])
    for code in [*codes.values(), *codes_in(STATED[instrument_id].quotes)]:
        assert check_digit_holds(code), code
    assert check_digit_holds("91652-8") and not check_digit_holds("91652-7")


@pytest.mark.parametrize("instrument_id", sorted(STATED))
def test_where_the_reference_has_no_code_the_definition_says_so(catalog, instrument_id) -> None:
    _, local = carried(catalog[instrument_id])
    if local:
        notes = " ".join(catalog[instrument_id].definition.notes)
        assert "LOINC" in notes, f"{instrument_id}: {local} carry local codes, unexplained"


@pytest.mark.skipif(not REFERENCE.exists(), reason="the reference is not on this machine")
def test_the_quotes_are_the_reference_s_words() -> None:
    text = REFERENCE.read_text()
    for instrument_id, stated in STATED.items():
        for quote in stated.quotes:
            assert quote in text, f"{instrument_id}: not in the reference: {quote[:60]}"
