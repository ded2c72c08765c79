"""The words patients read, in their language: one gettext catalogue per language,
``service/locale/<language>/LC_MESSAGES/belong.po``, read with Babel when first needed
(no compiled ``.mo`` files to keep in step). English is the source text itself.

Templates use the Jinja ``i18n`` extension (``{% trans %}`` and ``_()``); a page renders
in one language by taking :meth:`Wording.context` into its template context. A language
Belong has no complete catalogue for is shown in English, and :attr:`Wording.fallback`
says so, so the page can tell the reader honestly.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup

LOCALE = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "belong"
SOURCE_LANGUAGE = "en"
LANGUAGES = ("en", "es")
"""The languages whose catalogue is complete (a test fails when a message lacks one)."""


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The catalogue of one of :data:`LANGUAGES` (English: the source text)."""
    if language == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    with (LOCALE / language / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def _newstyle(func: Callable[..., str]) -> Callable[..., str]:
    """A gettext function as Jinja's newstyle ``i18n`` calls it: escaped, then formatted
    with the keyword arguments."""

    @pass_eval_context
    def call(eval_ctx: EvalContext, *args: Any, **variables: Any) -> str:
        text = func(*args)
        if eval_ctx.autoescape:
            text = Markup(text)  # noqa: S704 - the catalogue is ours; variables are escaped by %
        return text % variables

    return call


@dataclass(frozen=True, slots=True)
class Wording:
    language: str
    """The language the words are in (a BCP 47 primary tag: ``en``, ``es``)."""
    asked: str
    """The language the reader prefers, as asked for."""
    catalogue: gettext.NullTranslations

    @property
    def fallback(self) -> bool:
        """Whether the reader asked for a language Belong cannot show (English instead)."""
        return primary(self.asked) != self.language

    def gettext(self, message: str) -> str:
        return self.catalogue.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.catalogue.ngettext(singular, plural, n)

    def context(self) -> dict[str, Any]:
        """What a template needs to render in this language."""
        return {
            "gettext": _newstyle(self.gettext),
            "_": _newstyle(self.gettext),
            "ngettext": _newstyle(self.ngettext),
            "language": self.language,
            "language_fallback": self.fallback,
            "language_asked": self.asked,
        }


def primary(tag: str) -> str:
    """The primary language of a BCP 47 tag, lower case (``es-MX`` -> ``es``)."""
    return tag.replace("_", "-").split("-", 1)[0].strip().lower()


def wording(preferred: str | None) -> Wording:
    """The words for a reader who prefers ``preferred`` (None: English)."""
    asked = preferred or SOURCE_LANGUAGE
    language = primary(asked)
    if language not in LANGUAGES:
        language = SOURCE_LANGUAGE
    return Wording(language, asked, translations(language))
