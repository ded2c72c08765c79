"""The patient's handout: one page a patient takes home (or opens on a phone) about the
service they were referred to, in their language, with the code to quote and a QR code of
its own short link.

The words come from the gettext catalogue (service/platform/i18n.py); the service's own
details (its description, schedule, address, cost) are shown as the directory holds them,
and what it does not hold is said plainly ("Ask the service about cost"). The same HTML is
the page and, through WeasyPrint, the PDF (A4 or Letter, one page).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
import jinja2
import segno
from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from litestar import Request, Response

from service.directory.model import DirectoryService
from service.platform import secret_links
from service.platform.errors import ApiError, FieldError
from service.platform.i18n import LANGUAGES, Wording, primary, wording
from service.platform.origin import public_origin
from service.referrals.service import Handout, IssuedHandout
from service.web.pages import STATIC

TEMPLATE = "referrals/handout.html"
GONE_TEMPLATE = "referrals/handout_gone.html"
PAPERS = {"a4": "A4", "letter": "letter"}
"""``?paper=``: the PDF's page size (CSS ``@page size``)."""
DEFAULT_PAPER = "a4"
FORMATS = {"html": "text/html", "pdf": "application/pdf"}
LANGUAGE_TAG = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$"
DESCRIPTION_MAX = 500
"""The longest description a handout shows (cut at a word, with an ellipsis): the page
must stay one page, and the service's website has the rest."""


def reader_language(languages: list[str], asked: str | None) -> str | None:
    """The language to write in: ``asked`` (the clinician's ``?lang=``) when given, else
    the first of the patient's languages Belong has words for, else their first (English
    is then shown, saying so); None when the profile lists none."""
    if asked:
        return asked
    return next((tag for tag in languages if primary(tag) in LANGUAGES), None) or next(
        iter(languages), None
    )


def language_name(tag: str, in_language: str) -> str:
    """A language's name in another language (``es`` in English: Spanish)."""
    try:
        name = Locale.parse(tag.replace("-", "_")).get_display_name(in_language)
    except (UnknownLocaleError, ValueError):
        return tag
    return name or tag


def qr_data_uri(url: str) -> str:
    """The link as a QR code, an SVG ``data:`` URI (nothing loaded from elsewhere)."""
    return str(segno.make(url, error="m").svg_data_uri(scale=4, border=4))


def _shortened(text: str | None) -> str | None:
    if text is None or len(text) <= DESCRIPTION_MAX:
        return text
    cut = text[:DESCRIPTION_MAX].rsplit(" ", 1)[0].rstrip(" ,.;:")
    return f"{cut}…"


def _display_url(url: str) -> str:
    """A website as people type it: without ``https://`` and a trailing slash."""
    parts = urlsplit(url)
    return (parts.netloc + parts.path).rstrip("/") + (f"?{parts.query}" if parts.query else "")


@dataclass(frozen=True, slots=True)
class Where:
    modality: str
    address: str | None


def page_context(
    handout: Handout,
    words: Wording,
    *,
    link_url: str,
    expires_at: datetime | None,
    toolbar: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the handout's template shows: the words in the reader's language, the
    service's details, the code, and the short link (its QR code and until when)."""
    service: DirectoryService = handout.service
    contact = service.contact
    return {
        **words.context(),
        "asked_name": language_name(words.asked, "en"),
        "clinic_name": handout.clinic_name,
        "code": handout.code,
        "service": service,
        "category": service.category.value,
        "description": _shortened(service.description),
        "where": [
            Where(m.value, service.address if m.value == "in-person" else None)
            for m in service.modalities
        ],
        "phone": contact.phone if contact else None,
        "email": contact.email if contact else None,
        "website": contact.url if contact else None,
        "website_text": _display_url(contact.url) if contact and contact.url else None,
        "service_languages": [language_name(tag, words.language) for tag in service.languages],
        "link_url": link_url,
        "qr": qr_data_uri(link_url),
        "until": format_date(expires_at, format="long", locale=words.language)
        if expires_at
        else None,
        "toolbar": toolbar,
    }


def render(request: Request[Any, Any, Any], template: str, context: dict[str, Any]) -> str:
    """A handout template rendered to text (the page, and the PDF's source)."""
    found: jinja2.Template = request.app.template_engine.get_template(template)
    return found.render(**context)


def reader_wording(handout: Handout, asked: str | None) -> Wording:
    return wording(reader_language(handout.languages, asked))


def asked_format(request: Request[Any, Any, Any]) -> str:
    """``?format=html|pdf``, else what ``Accept`` prefers of the two (HTML when it says
    nothing); 400 naming ``format`` for another format, 406 naming ``Accept`` when it
    takes neither."""
    asked = request.query_params.get("format")
    if asked is not None:
        if asked not in FORMATS:
            raise ApiError(
                400,
                "The handout comes as html or pdf",
                [FieldError("format", "must be html or pdf", "invalid")],
            )
        return asked
    if "accept" not in request.headers:
        return "html"
    media_type = request.accept.best_match(list(FORMATS.values()))
    if media_type is None:
        raise ApiError(
            406,
            "The handout comes as text/html or application/pdf",
            [FieldError("Accept", "must accept text/html or application/pdf", "not_acceptable")],
        )
    return next(name for name, value in FORMATS.items() if value == media_type)


def asked_paper(request: Request[Any, Any, Any]) -> str:
    paper = request.query_params.get("paper", DEFAULT_PAPER)
    if paper not in PAPERS:
        raise ApiError(
            400,
            "The handout is printed on A4 or Letter paper",
            [FieldError("paper", "must be a4 or letter", "invalid")],
        )
    return paper


def asked_language(request: Request[Any, Any, Any]) -> str | None:
    """``?lang=``: a language tag (``es``, ``pt-BR``) the reader asked for, if any."""
    lang = request.query_params.get("lang")
    if lang is not None and not re.fullmatch(LANGUAGE_TAG, lang):
        raise ApiError(
            400,
            "The language must be a language tag such as es or pt-BR",
            [FieldError("lang", "not a language tag", "invalid")],
        )
    return lang


async def clinic_handout(
    request: Request[Any, Any, Any],
    issued: IssuedHandout,
    *,
    format: str,
    paper: str,
    lang: str | None,
    toolbar: dict[str, Any] | None = None,
) -> Response[Any]:
    """The handout as the clinic prints or sends it, with its new short link."""
    words = reader_wording(issued.handout, lang)
    link_url = secret_links.url(public_origin(request), "handout", issued.token)
    context = page_context(
        issued.handout, words, link_url=link_url, expires_at=issued.expires_at, toolbar=toolbar
    )
    html = render(request, TEMPLATE, {**context, "toolbar": None if format == "pdf" else toolbar})
    headers = {"Cache-Control": "no-store", "Vary": "Accept", "Content-Language": words.language}
    if format == "pdf":
        document = await anyio.to_thread.run_sync(pdf, html, paper)
        filename = f"handout-{issued.handout.code}.pdf"
        return Response(
            document,
            media_type=FORMATS["pdf"],
            headers={**headers, "Content-Disposition": f'inline; filename="{filename}"'},
        )
    return Response(html, media_type="text/html; charset=utf-8", headers=headers)


def _stylesheet(url: str) -> bytes:
    """The handout's own stylesheet from the package, by its /app/static URL; nothing
    else (no request leaves the server while a PDF is made)."""
    path = urlsplit(url).path
    name = path.removeprefix("/app/static/")
    if name == path or not re.fullmatch(r"[a-z]+\.css", name) or not (STATIC / name).is_file():
        raise ValueError(f"{url} is not one of the handout's stylesheets")
    return (STATIC / name).read_bytes()


def pdf(html: str, paper: str) -> bytes:
    """The handout's HTML as a PDF on ``paper`` (a key of :data:`PAPERS`)."""
    # Imported when a PDF is made: WeasyPrint loads Pango.
    from weasyprint import CSS, HTML
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class StaticOnly(URLFetcher):  # type: ignore[misc]
        def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
            if url.startswith("data:"):  # the QR code
                return super().fetch(url, headers)
            return URLFetcherResponse(url, _stylesheet(url), {"Content-Type": "text/css"})

    fetcher = StaticOnly()
    page_size = CSS(string=f"@page {{ size: {PAPERS[paper]}; }}", url_fetcher=fetcher)
    document = HTML(string=html, base_url="http://handout.invalid/", url_fetcher=fetcher)
    return bytes(document.write_pdf(stylesheets=[page_size]))
