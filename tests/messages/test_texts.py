"""The message texts, pure: GSM 03.38 against UCS-2, segment counts by the rules (GSM-7 160
single and 153 a part, UCS-2 70 and 67, no escape or surrogate pair split), Spanish kept in
GSM-7 where it can be, the SMS at most two segments whatever the names, the referral code."""

from __future__ import annotations

import hashlib
import math
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.messages.model import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    Channel,
    Encoding,
    HandoutFacts,
    checked_recipient,
    compose_email,
    compose_sms,
    encoding,
    for_sms,
    segments,
)
from service.platform.i18n import wording
from service.referrals.model import referral_code

BASIC = "".join(sorted(GSM7_BASIC))
EXTENSION = "".join(sorted(GSM7_EXTENSION))
URL = "https://belong.example.org/h/" + "x" * 43
CODE = "BL-7K3Q-9X2M"


def expected(units: int, single: int, part: int) -> int:
    """The count for a text whose characters each cost one unit."""
    return 0 if units == 0 else 1 if units <= single else math.ceil(units / part)


def test_the_default_alphabet_is_gsm_03_38() -> None:
    assert len(GSM7_BASIC) == 127 and "\x1b" not in GSM7_BASIC  # 128 less the escape
    assert set(EXTENSION) == set("\f^{}\\[~]|€")
    spanish_in_basic = set("ÄÖÑÜäöñüàéèùìòÇØøÅåÉßÆæ¿¡")
    assert spanish_in_basic <= GSM7_BASIC
    assert not set("áíóúÁÍÓÚ") & GSM7_BASIC
    assert encoding("¿Qué tal? ¡Año!") is Encoding.GSM7
    assert encoding("canción") is Encoding.UCS2


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("", 0),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # 160 septets
        ("€" * 80 + "a", 2),
        ("a" * 152 + "€" + "a" * 152, 3),  # 306 septets, but the escape does not split
        ("á" * 70, 1),
        ("á" * 71, 2),
        ("á" * 134, 2),
        ("á" * 135, 3),
        ("😀" * 35, 1),  # 70 UTF-16 units
        ("😀" * 36, 2),
        ("a" * 66 + "😀" + "a" * 66, 3),  # 134 units; the pair does not split
    ],
)
def test_segment_counts_at_the_boundaries(text: str, count: int) -> None:
    assert segments(text) == count


@given(st.text(alphabet=BASIC, max_size=700))
def test_gsm7_basic_text_counts_160_single_and_153_a_part(text: str) -> None:
    assert encoding(text) is Encoding.GSM7
    assert segments(text) == expected(len(text), 160, 153)


@given(st.text(alphabet=BASIC + EXTENSION, max_size=500))
def test_gsm7_with_extension_characters_costs_two_septets_each(text: str) -> None:
    septets = len(text) + sum(c in GSM7_EXTENSION for c in text)
    count = segments(text)
    if septets <= 160:
        assert count == (1 if text else 0)
    else:  # a part holds 153 septets, or 152 where an escape sequence would be cut
        assert math.ceil(septets / 153) <= count <= math.ceil(septets / 152)


@given(
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFFFF, exclude_categories=["Cs"]),
        max_size=400,
    ).filter(lambda t: encoding(t) is Encoding.UCS2)
)
def test_other_text_is_ucs2_70_single_and_67_a_part(text: str) -> None:
    assert segments(text) == expected(len(text), 70, 67)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz ABCÁÉÍÓÚÑÜáéíóúñü¿¡?!.,:0123456789"))
def test_spanish_is_kept_in_gsm7_losing_only_the_accents_it_has_not(text: str) -> None:
    plain = for_sms(text)
    assert encoding(plain) is Encoding.GSM7 and len(plain) == len(text)
    for kept in "éñ¿¡ÉÑüÜ":
        assert plain.count(kept) == text.count(kept)
    assert not set("áíóúÁÍÓÚ") & set(plain)


def test_text_that_cannot_be_gsm7_stays_as_it_is() -> None:
    dash = "\u2013"
    assert for_sms(f"Grupo “Ánimo” {dash} 日本") == f"Grupo “Ánimo” {dash} 日本"
    assert for_sms(f"Grupo “Ánimo” {dash} café") == 'Grupo "Animo" - café'


@given(
    clinic=st.text(min_size=1, max_size=200),
    service=st.text(min_size=1, max_size=200),
    language=st.sampled_from(["en", "es", "fr"]),
)
def test_the_sms_never_takes_more_than_two_segments_and_keeps_code_and_link(
    clinic: str, service: str, language: str
) -> None:
    sms = compose_sms(wording(language), HandoutFacts(clinic, service, CODE, URL))
    assert 1 <= sms.segments == segments(sms.text) <= 2
    assert sms.encoding is encoding(sms.text)
    assert f"{CODE}." in sms.text and sms.text.endswith(URL)


def test_a_name_is_shortened_only_when_needed() -> None:
    short = compose_sms(wording("en"), HandoutFacts("Clinic", "Walking Group", CODE, URL))
    assert short.text == f"Clinic: your referral to Walking Group. Code {CODE}. Details: {URL}"
    assert short.segments == 1
    long = compose_sms(wording("en"), HandoutFacts("Clinic", "Walking " * 60, CODE, URL))
    assert long.segments == 2 and "Walking Walking" in long.text and "..." in long.text


def test_the_email_names_no_patient_and_escapes_the_names() -> None:
    facts = HandoutFacts("A & B <Clinic>", 'Group "One"', CODE, URL)
    mail = compose_email(wording("en"), facts)
    assert mail.subject == "Your referral from A & B <Clinic>"
    assert 'A & B <Clinic> has referred you to Group "One".' in mail.text
    assert "A &amp; B &lt;Clinic&gt;" in mail.html and "<Clinic>" not in mail.html
    assert f'<a href="{URL}">' in mail.html and '<html lang="en">' in mail.html


def test_the_referral_code_is_crockford_base32_of_the_ids_sha256() -> None:
    referral_id = str(uuid.UUID(int=42))
    digest = int.from_bytes(hashlib.sha256(referral_id.encode()).digest(), "big")
    bits = f"{digest:0256b}"[:40]
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    chars = "".join(alphabet[int(bits[i : i + 5], 2)] for i in range(0, 40, 5))
    assert referral_code(referral_id) == f"BL-{chars[:4]}-{chars[4:]}"
    assert referral_code(referral_id) != referral_code(str(uuid.UUID(int=43)))


@pytest.mark.parametrize(
    ("channel", "to", "ok"),
    [
        (Channel.SMS, "+447700900123", True),
        (Channel.SMS, "+1555010447", True),
        (Channel.SMS, "+0447700900123", False),
        (Channel.SMS, "447700900999", False),
        (Channel.SMS, "+44770090012345678", False),
        (Channel.EMAIL, "name@example.org", True),
        (Channel.EMAIL, "first.last+tag@sub.example.co.uk", True),
        (Channel.EMAIL, "name@localhost", False),
        (Channel.EMAIL, "name@example.org\nBcc: other@example.org", False),
        (Channel.EMAIL, "a" * 250 + "@example.org", False),
    ],
)
def test_recipients_are_checked_per_channel(channel: Channel, to: str, ok: bool) -> None:
    if ok:
        assert checked_recipient(channel, to) == to
    else:
        with pytest.raises(ValueError) as refused:
            checked_recipient(channel, to)
        assert to not in str(refused.value)
