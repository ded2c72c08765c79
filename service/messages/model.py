"""The handout link message, as the patient receives it: by SMS (at most two segments) or
by email, in the patient's language, naming the clinic, the service and the referral's code
with the link, and nothing else (a phone's lock screen shows it: no patient identifier, no
diagnosis, no word on what the referral is for).

SMS length follows GSM 03.38: a text of the GSM 7-bit default alphabet takes one septet a
character (two for the extension table's), 160 in a single message or 153 per part of a
concatenated one (the user data header takes 7); any other character makes the message
UCS-2, 2 bytes a UTF-16 code unit, 70 single or 67 per part. No part splits an escape
sequence or a surrogate pair.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x20ÆæßÉ!\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
"""The GSM 03.38 default alphabet (its 128 positions less the escape to the extension)."""
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
"""The default alphabet's extension table: each is sent as escape + character, 2 septets."""
GSM7 = GSM7_BASIC | GSM7_EXTENSION
GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
SMS_MAX_SEGMENTS = 2

TRANSLITERATION = str.maketrans(
    {
        "á": "a",
        "í": "i",
        "ó": "o",
        "ú": "u",
        "Á": "A",
        "Í": "I",
        "Ó": "O",
        "Ú": "U",
        "ê": "e",
        "â": "a",
        "ô": "o",
        "ç": "Ç",
        "ï": "i",
        "ë": "e",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "…": "...",
        "\u00a0": " ",
    }
)
"""Letters outside the GSM 7-bit alphabet and their nearest in it (Spanish's á, í, ó, ú
lose their accent; é, ñ, ¿ and ¡ are in the alphabet and stay)."""

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
EMAIL_MAX = 254


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"


class Status(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    """The patient asked not to be contacted: nothing was handed to a sender."""


class Encoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


def encoding(text: str) -> Encoding:
    return Encoding.GSM7 if all(c in GSM7 for c in text) else Encoding.UCS2


def _units(text: str, kind: Encoding) -> list[int]:
    """What each character costs: septets (GSM-7) or UTF-16 code units (UCS-2)."""
    if kind is Encoding.GSM7:
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def segments(text: str) -> int:
    """How many SMS segments the text takes (0 for no text)."""
    kind = encoding(text)
    units = _units(text, kind)
    single, part = (GSM7_SINGLE, GSM7_PART) if kind is Encoding.GSM7 else (UCS2_SINGLE, UCS2_PART)
    if sum(units) <= single:
        return 1 if units else 0
    parts, used = 1, 0
    for cost in units:
        if used + cost > part:
            parts, used = parts + 1, 0
        used += cost
    return parts


def for_sms(text: str) -> str:
    """The text in the GSM 7-bit alphabet when transliterating gets it there, else as it
    is (sent as UCS-2)."""
    plain = text.translate(TRANSLITERATION)
    return plain if encoding(plain) is Encoding.GSM7 else text


def checked_recipient(channel: Channel, to: str) -> str:
    """The recipient if it is one for the channel (a phone number in E.164 for SMS, an
    email address), else ValueError saying what is expected (never echoing it)."""
    if channel is Channel.SMS:
        if not E164.fullmatch(to):
            raise ValueError("a phone number in E.164 form, e.g. +447700900000")
    elif len(to) > EMAIL_MAX or not EMAIL.fullmatch(to):
        raise ValueError("an email address, e.g. name@example.org")
    return to


class Words(Protocol):
    """A catalogue in the patient's language (service/platform/i18n.py's Wording)."""

    @property
    def language(self) -> str: ...

    def gettext(self, message: str) -> str: ...


@dataclass(frozen=True, slots=True)
class HandoutFacts:
    """What the message tells: who refers, to whom, the referral's code and the link."""

    clinic: str
    service: str
    code: str
    url: str


@dataclass(frozen=True, slots=True)
class Sms:
    text: str
    encoding: Encoding
    segments: int


@dataclass(frozen=True, slots=True)
class Email:
    subject: str
    text: str
    html: str


ELLIPSIS = "…"


class TooLong(ValueError):
    """No shortening of the names gets the SMS into two segments (a very long link)."""


def _shortened(name: str, keep: int) -> str:
    return name if keep >= len(name) else name[:keep].rstrip() + ELLIPSIS


def compose_sms(words: Words, facts: HandoutFacts) -> Sms:
    """The SMS, in at most :data:`SMS_MAX_SEGMENTS`: when it would take more, the service's
    name is shortened (then the clinic's), never the code or the link."""
    template = words.gettext(
        "%(clinic)s: your referral to %(service)s. Code %(code)s. Details: %(url)s"
    )

    def fitting(clinic: str, service: str) -> Sms | None:
        values = {"clinic": clinic, "service": service, "code": facts.code, "url": facts.url}
        text = for_sms(template % values)
        count = segments(text)
        return Sms(text, encoding(text), count) if count <= SMS_MAX_SEGMENTS else None

    for keep in range(len(facts.service), -1, -1):
        if sms := fitting(facts.clinic, _shortened(facts.service, keep)):
            return sms
    for keep in range(len(facts.clinic), -1, -1):
        if sms := fitting(_shortened(facts.clinic, keep), ELLIPSIS):
            return sms
    raise TooLong("the link and the code alone take more than two SMS segments")


def compose_email(words: Words, facts: HandoutFacts) -> Email:
    """The email: a subject with nothing about the patient, a plain text and an HTML body."""
    values = {"clinic": facts.clinic, "service": facts.service, "code": facts.code}
    subject = words.gettext("Your referral from %(clinic)s") % values
    paragraphs = [
        words.gettext("%(clinic)s has referred you to %(service)s.") % values,
        words.gettext("Your referral code is %(code)s.") % values,
    ]
    details = words.gettext("The details, and how to get in touch, are on this page:")
    private = words.gettext("The link is only for you: please do not share it.")
    text = "\n\n".join([*paragraphs, f"{details}\n{facts.url}", private]) + "\n"
    url = html.escape(facts.url)
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            f'<html lang="{html.escape(words.language)}"><head><meta charset="utf-8">'
            f"<title>{html.escape(subject)}</title></head><body>",
            *(f"<p>{html.escape(p)}</p>" for p in paragraphs),
            f'<p>{html.escape(details)}<br><a href="{url}">{url}</a></p>',
            f"<p>{html.escape(private)}</p>",
            "</body></html>",
            "",
        ]
    )
    return Email(subject, text, page)
