"""The message catalogue: every message the code and templates mark has its Spanish
translation, and a page renders in the reader's language or says it fell back."""

from __future__ import annotations

from pathlib import Path

import jinja2
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from service.platform import i18n

ROOT = Path(__file__).resolve().parents[2] / "service"
METHODS = [("**/templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}


def marked_messages() -> set[str]:
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        ROOT, METHODS, OPTIONS, keywords={"_": None, "gettext": None, "ngettext": (1, 2)}
    ):
        found.update([message] if isinstance(message, str) else [m for m in message if m])
    return found


def test_every_marked_message_has_a_spanish_translation() -> None:
    for language in i18n.LANGUAGES:
        if language == i18n.SOURCE_LANGUAGE:
            continue
        path = i18n.LOCALE / language / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
        with path.open("rb") as po:
            catalog = read_po(po, locale=language)
        translated = {
            m.id if isinstance(m.id, str) else m.id[0]
            for m in catalog
            if m.id and not m.fuzzy and all(m.string if isinstance(m.string, tuple) else [m.string])
        }
        missing = sorted(marked_messages() - translated)
        assert missing == [], f"{language} lacks translations for {missing}"


def test_a_template_renders_in_the_readers_language_or_says_it_fell_back() -> None:
    env = jinja2.Environment(extensions=["jinja2.ext.i18n"], autoescape=True)
    env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    template = env.from_string("{{ _('Hello, %(name)s', name=who) }}|{{ language_fallback }}")
    spanish = i18n.wording("es-MX")
    catalogue = spanish.catalogue
    assert spanish.language == "es" and not spanish.fallback
    assert template.render(who="<b>", **i18n.wording("en").context()) == "Hello, &lt;b&gt;|False"
    french = i18n.wording("fr")
    assert (french.language, french.asked, french.fallback) == ("en", "fr", True)
    assert template.render(who="A", **french.context()) == "Hello, A|True"
    assert isinstance(catalogue.gettext("Hello, %(name)s"), str)
