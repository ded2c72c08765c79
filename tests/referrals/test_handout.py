"""The patient's handout end to end: the page and the PDF a clinic prints, in the patient's
language, one page on A4 and Letter, with no patient identifier; its QR code read back from
the PDF's picture is its short link, which opens the same page until revoked or expired.

The PDF is read as a person would get it: pdftotext for its words, pdftoppm for its
picture, zxing-cpp to scan the QR code off that picture.
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
import zxingcpp
from litestar import Litestar
from litestar.testing import TestClient
from PIL import Image

from service.platform.secret_links import LINK_PATTERN
from service.platform.tables import secret_links
from service.referrals.model import CROCKFORD, referral_code
from tests.conftest import Clinic, MakeClinic
from tests.helpers import assert_problem, new_patient_id
from tests.signed_in import sign_in

HANDOUT_LINK = re.compile(r"https?://[^/\s<\"]+/h/([A-Za-z0-9_-]{43})")
LONG_SERVICE: dict[str, Any] = {
    "name": "Harbourside Chronic Pain Peer Support Circle and Evening Coffee Group",
    "organization": "Elmsbury Pain Peer Network Community Interest Company",
    "category": "support-group",
    "modalities": ["in-person", "online", "phone"],
    "languages": ["en", "es", "pl", "pt"],
    "address": "Harbourside Community Hall, first floor meeting room (lift available), "
    "12 Quayside Walk, Harbourside, Elmsbury EL14 2QH",
    "schedule": "Tuesdays 6pm to 7.30pm in person, and Thursdays 11am to 12.30pm online; "
    "not on bank holidays. New members are welcome at any meeting, and a volunteer "
    "meets newcomers at the door fifteen minutes before the start.",
    "cost": "Free. Tea, coffee and biscuits are free; bus fares can be paid back on the day "
    "if you bring the ticket.",
    "contact": {
        "phone": "+44 (0)1632 960 0100",
        "email": "harbourside-peer-circle@elmsbury-pain-peer-network.example.org",
        "url": "https://elmsbury-pain-peer-network.example.org/services/harbourside-circle",
    },
    "referral_method": "The intake worker calls within a week of the referral; you can also "
    "email them or simply come along to the next meeting and say you were referred.",
    "description": (
        "A friendly peer-led group for adults living with long-term pain of any kind. "
        "Members share what helps them pace their days, cope with flare-ups and stay in "
        "touch with other people, and a trained facilitator keeps each meeting welcoming "
        "and calm. There is no pressure to speak: many people listen for a few weeks "
        "first. Carers and family members may come to the first meeting with you. The "
        "group also runs a monthly walk at an easy pace, a book swap and an online chat "
        "for members between meetings, moderated by volunteers who live with pain "
        "themselves. Fictional sample service, listed only to demonstrate Belong. "
    )
    * 2,
}


def add_service(client: TestClient[Litestar], **fields: Any) -> str:
    body = {
        "name": "Evening Circle",
        "organization": "Community Pain Trust",
        "category": "support-group",
        "modalities": ["online"],
        **fields,
    }
    response = client.post("/v1/directory/services", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def refer(client: TestClient[Litestar], service_id: str, languages: list[str]) -> tuple[str, str]:
    """A patient whose profile lists ``languages``, referred to the service: (patient id,
    referral id)."""
    patient_id = new_patient_id()
    assert client.put(f"/v1/patients/{patient_id}", json={"languages": languages}).status_code in (
        200,
        201,
    )
    made = client.post(
        "/v1/referrals",
        json={
            "patient_id": patient_id,
            "service_id": service_id,
            "consent": {"given": True, "method": "verbal"},
        },
    )
    assert made.status_code == 201, made.text
    return patient_id, str(made.json()["id"])


def short_link(text: str) -> str:
    found = HANDOUT_LINK.findall(text)
    assert found, "no short link on the handout"
    assert len(set(found)) == 1
    return found[0]


def pdf_text(document: bytes, tmp_path: Path) -> str:
    path = tmp_path / f"{uuid.uuid4().hex}.pdf"
    path.write_bytes(document)
    done = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
    )
    return done.stdout


def pdf_pages(document: bytes, tmp_path: Path) -> int:
    path = tmp_path / f"{uuid.uuid4().hex}.pdf"
    path.write_bytes(document)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, check=True, text=True)
    return int(re.search(r"^Pages:\s+(\d+)$", info.stdout, re.M).group(1))  # type: ignore[union-attr]


def page_size_points(document: bytes, tmp_path: Path) -> tuple[float, float]:
    path = tmp_path / f"{uuid.uuid4().hex}.pdf"
    path.write_bytes(document)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, check=True, text=True)
    found = re.search(r"^Page size:\s+([\d.]+) x ([\d.]+) pts", info.stdout, re.M)
    assert found is not None
    return float(found.group(1)), float(found.group(2))


def scanned_qr(document: bytes, tmp_path: Path) -> list[str]:
    """The QR codes a phone would read off the printed page (the PDF at 150 dpi)."""
    path = tmp_path / f"{uuid.uuid4().hex}.pdf"
    path.write_bytes(document)
    prefix = tmp_path / path.stem
    subprocess.run(["pdftoppm", "-png", "-r", "150", str(path), str(prefix)], check=True)
    [png] = sorted(tmp_path.glob(f"{path.stem}*.png"))
    return [found.text for found in zxingcpp.read_barcodes(Image.open(png))]


def test_the_referral_code_is_bl_and_eight_crockford_characters_of_the_ids_sha256() -> None:
    referral_id = "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b"
    digest = hashlib.sha256(referral_id.encode()).digest()
    rfc4648 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    expected = base64.b32encode(digest)[:8].decode().translate(str.maketrans(rfc4648, CROCKFORD))
    code = referral_code(referral_id)
    assert code == f"BL-{expected[:4]}-{expected[4:]}"
    assert re.fullmatch(r"BL-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", code)
    assert referral_code(referral_id) == code
    assert referral_code(str(uuid.uuid4())) != code


def test_the_handout_page_says_what_when_where_contact_cost_and_the_code_in_english(
    client: TestClient[Litestar],
) -> None:
    service_id = add_service(
        client,
        name="Harbourside CRPS Peer Circle",
        modalities=["in-person"],
        address="12 Quayside Walk, Harbourside EL14 2QH",
        schedule="Tuesdays 6-7.30pm",
        cost="Free",
        contact={"phone": "555-0100", "email": "circle@example.org"},
        languages=["en", "es"],
    )
    patient_id, referral_id = refer(client, service_id, ["en"])
    page = client.get(f"/v1/referrals/{referral_id}/handout")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert '<html lang="en">' in html
    for shown in (
        "Your referral to Harbourside CRPS Peer Circle",
        referral_code(referral_id),
        "Tuesdays 6-7.30pm",
        "12 Quayside Walk, Harbourside EL14 2QH",
        "555-0100",
        "circle@example.org",
        "Cost",
        "Free",
        "English, Spanish",
        'src="data:image/svg+xml',
    ):
        assert shown in html, shown
    assert patient_id not in html
    assert referral_id not in html
    assert re.fullmatch(LINK_PATTERN, short_link(html))


def test_what_the_directory_does_not_hold_is_said_plainly(client: TestClient[Litestar]) -> None:
    _, referral_id = refer(client, add_service(client, modalities=["in-person"]), ["en"])
    html = client.get(f"/v1/referrals/{referral_id}/handout").text
    for plain in (
        "Ask the service when it meets.",
        "In person. Ask the service where.",
        "Ask your clinic how to contact this service.",
        "Ask the service about cost.",
        "Ask the service which languages it uses.",
    ):
        assert plain in html, plain


def test_the_pdf_is_one_page_with_its_words_and_a_qr_code_of_its_short_link(
    client: TestClient[Litestar], tmp_path: Path
) -> None:
    patient_id, referral_id = refer(client, add_service(client, **LONG_SERVICE), ["en"])
    response = client.get(f"/v1/referrals/{referral_id}/handout", params={"format": "pdf"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    document = response.content
    assert document.startswith(b"%PDF-")
    assert pdf_pages(document, tmp_path) == 1
    width, height = page_size_points(document, tmp_path)
    assert (round(width), round(height)) == (595, 842)  # A4
    text = pdf_text(document, tmp_path)
    flat = " ".join(text.split())
    assert "Harbourside Chronic Pain Peer Support Circle" in flat
    assert referral_code(referral_id) in flat
    assert "Cost" in flat and "Free. Tea, coffee and biscuits are free" in flat
    assert patient_id not in flat and referral_id not in flat
    [scanned] = scanned_qr(document, tmp_path)
    assert re.fullmatch(r"https?://[^/]+/h/[A-Za-z0-9_-]{43}", scanned)
    token = urlsplit(scanned).path.removeprefix("/h/")
    assert token in flat.replace(" ", "")

    client.headers.pop("Authorization")
    opened = client.get(urlsplit(scanned).path)
    assert opened.status_code == 200, opened.text
    assert referral_code(referral_id) in opened.text
    assert "Harbourside Chronic Pain Peer Support Circle" in opened.text
    assert patient_id not in opened.text
    assert opened.headers["cache-control"] == "no-store"
    assert opened.headers["referrer-policy"] == "no-referrer"
    assert "noindex" in opened.headers["x-robots-tag"]
    assert "img-src 'self' data:" in opened.headers["content-security-policy"]  # the QR code
    assert short_link(opened.text) == token


@pytest.mark.parametrize(
    ("paper", "languages", "size"),
    [("letter", ["en"], (612, 792)), ("a4", ["es"], (595, 842)), ("letter", ["es-MX"], (612, 792))],
)
def test_the_longest_entry_fits_one_page_on_a4_and_letter_in_english_and_spanish(
    client: TestClient[Litestar],
    tmp_path: Path,
    paper: str,
    languages: list[str],
    size: tuple[int, int],
) -> None:
    _, referral_id = refer(client, add_service(client, **LONG_SERVICE), languages)
    response = client.get(
        f"/v1/referrals/{referral_id}/handout", params={"format": "pdf", "paper": paper}
    )
    assert response.status_code == 200, response.text
    assert pdf_pages(response.content, tmp_path) == 1
    width, height = page_size_points(response.content, tmp_path)
    assert (round(width), round(height)) == size
    assert len(scanned_qr(response.content, tmp_path)) == 1


def test_a_spanish_speaking_patient_gets_the_handout_in_spanish(
    client: TestClient[Litestar], tmp_path: Path
) -> None:
    patient_id, referral_id = refer(client, add_service(client), ["es-MX", "en"])
    html = client.get(f"/v1/referrals/{referral_id}/handout").text
    assert '<html lang="es">' in html
    assert "Su derivación a Evening Circle" in html
    assert "Pregunte al servicio cuánto cuesta." in html
    assert "not yet available" not in html
    document = client.get(f"/v1/referrals/{referral_id}/handout?format=pdf").content
    flat = " ".join(pdf_text(document, tmp_path).split())
    for spanish in ("Su derivación a Evening Circle", "Su código de derivación", "Costo"):
        assert spanish in flat, spanish
    assert referral_code(referral_id) in flat
    assert patient_id not in flat
    english = client.get(f"/v1/referrals/{referral_id}/handout", params={"lang": "en"}).text
    assert "Your referral to Evening Circle" in english


def test_another_language_falls_back_to_english_and_says_so(client: TestClient[Litestar]) -> None:
    _, referral_id = refer(client, add_service(client), ["fr"])
    html = client.get(f"/v1/referrals/{referral_id}/handout").text
    assert '<html lang="en">' in html
    assert (
        "This handout is not yet available in French; it is shown in English. "
        "Ask the clinic for help reading it."
    ) in html
    asked = client.get(f"/v1/referrals/{referral_id}/handout", params={"lang": "pt-BR"}).text
    assert "not yet available in Portuguese (Brazil)" in asked


def test_accept_chooses_the_format_and_a_bad_choice_names_its_field(
    client: TestClient[Litestar],
) -> None:
    _, referral_id = refer(client, add_service(client), ["en"])
    path = f"/v1/referrals/{referral_id}/handout"
    by_accept = client.get(path, headers={"Accept": "application/pdf"})
    assert by_accept.status_code == 200
    assert by_accept.headers["content-type"] == "application/pdf"
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert (
        client.get(path, headers={"Accept": browser})
        .headers["content-type"]
        .startswith("text/html")
    )
    assert_problem(client.get(path, headers={"Accept": "image/png"}), 406, "Accept")
    assert_problem(client.get(path, params={"format": "docx"}), 400, "format")
    assert_problem(client.get(path, params={"format": "pdf", "paper": "a5"}), 400, "paper")
    assert_problem(client.get(path, params={"lang": "en\x00"}), 400, "lang")
    assert_problem(client.get(path, params={"lang": "<script>"}), 400, "lang")


def test_a_revoked_link_answers_410_in_the_handouts_language(
    client: TestClient[Litestar],
) -> None:
    _, referral_id = refer(client, add_service(client), ["es"])
    first = short_link(client.get(f"/v1/referrals/{referral_id}/handout").text)
    second = short_link(client.get(f"/v1/referrals/{referral_id}/handout").text)
    assert first != second
    revoked = client.delete(f"/v1/referrals/{referral_id}/handout-links")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json() == {"revoked": 2}
    auth = client.headers.pop("Authorization")
    try:
        for token in (first, second):
            gone = client.get(f"/h/{token}")
            assert gone.status_code == 410
            assert '<html lang="es">' in gone.text
            assert "Este enlace ya no funciona" in gone.text
            assert gone.headers["cache-control"] == "no-store"
    finally:
        client.headers["Authorization"] = auth
    third = short_link(client.get(f"/v1/referrals/{referral_id}/handout").text)
    client.headers.pop("Authorization")
    try:
        assert client.get(f"/h/{third}").status_code == 200
    finally:
        client.headers["Authorization"] = auth


def test_an_expired_link_answers_410_and_an_unknown_one_404(
    client: TestClient[Litestar], clinic: Clinic
) -> None:
    _, referral_id = refer(client, add_service(client), ["en"])
    token = short_link(client.get(f"/v1/referrals/{referral_id}/handout").text)

    async def expire() -> None:
        async with client.app.state.db.begin() as conn:
            await conn.execute(
                sa.update(secret_links)
                .where(
                    secret_links.c.clinic_id == clinic.clinic_id,
                    secret_links.c.subject_id == referral_id,
                )
                .values(expires_at=sa.func.now() - sa.text("interval '1 minute'"))
            )

    client.blocking_portal.call(expire)
    client.headers.pop("Authorization")
    gone = client.get(f"/h/{token}")
    assert gone.status_code == 410
    assert "This link no longer works" in gone.text
    unknown = client.get(f"/h/{'A' * 43}")
    assert unknown.status_code == 404
    assert "We could not find this page" in unknown.text
    assert "noindex" in unknown.headers["x-robots-tag"]
    assert unknown.headers["cache-control"] == "no-store"
    assert client.get("/h/not-a-token").status_code == 404


def test_the_handout_link_lives_as_long_as_the_setting_says(
    client: TestClient[Litestar], clinic: Clinic
) -> None:
    _, referral_id = refer(client, add_service(client), ["en"])
    client.get(f"/v1/referrals/{referral_id}/handout")

    async def lifetime() -> Any:
        async with client.app.state.db.begin() as conn:
            query = sa.select(secret_links.c.expires_at - secret_links.c.created_at).where(
                secret_links.c.clinic_id == clinic.clinic_id,
                secret_links.c.kind == "handout",
                secret_links.c.subject_id == referral_id,
            )
            return (await conn.execute(query)).scalar_one()

    days = client.app.state.settings.handout_link_days
    assert client.blocking_portal.call(lifetime).days == days


def test_another_clinics_referral_is_never_visible(
    client: TestClient[Litestar], make_clinic: MakeClinic
) -> None:
    _, referral_id = refer(client, add_service(client), ["en"])
    other = make_clinic()
    for response in (
        client.get(f"/v1/referrals/{referral_id}/handout", headers=other.headers),
        client.get(f"/v1/referrals/{referral_id}/handout?format=pdf", headers=other.headers),
        client.delete(f"/v1/referrals/{referral_id}/handout-links", headers=other.headers),
    ):
        assert_problem(response, 404)
    missing = client.get(f"/v1/referrals/{uuid.uuid4()}/handout")
    assert_problem(missing, 404)


def test_the_handout_read_and_each_open_of_its_link_are_audited(
    client: TestClient[Litestar],
) -> None:
    patient_id, referral_id = refer(client, add_service(client), ["en"])
    token = short_link(client.get(f"/v1/referrals/{referral_id}/handout").text)
    auth = client.headers.pop("Authorization")
    try:
        assert client.get(f"/h/{token}").status_code == 200
    finally:
        client.headers["Authorization"] = auth
    client.delete(f"/v1/referrals/{referral_id}/handout-links")
    client.headers.pop("Authorization")
    try:
        assert client.get(f"/h/{token}").status_code == 410
    finally:
        client.headers["Authorization"] = auth
    events = client.get("/v1/audit-events", params={"patient_id": patient_id}).json()["items"]
    reads = [
        (e["action"], e["status_code"], e["link_kind"], e["client_id"] is not None)
        for e in events
        if e["resource_id"] == referral_id
    ]
    assert ("read", 200, None, True) in reads  # the clinic's /v1 read
    assert ("update", 200, None, True) in reads  # the revocation
    assert ("read", 200, "handout", False) in reads  # the link opened
    assert ("read", 410, "handout", False) in reads  # the link refused once revoked
    by_link = [e for e in events if e["link_kind"] == "handout"]
    assert all(e["link_subject_id"] == referral_id for e in by_link)


def test_the_app_prints_the_handout_downloads_its_pdf_and_stops_its_links(
    client: TestClient[Litestar], clinic: Clinic, tmp_path: Path
) -> None:
    patient_id, referral_id = refer(client, add_service(client), ["es"])
    client.headers.pop("Authorization")
    user = sign_in(client, clinic.name)
    referral_page = user.get(f"/app/referrals/{referral_id}")
    assert referral_page.status_code == 200, referral_page.text
    path = f"/app/referrals/{referral_id}/handout"
    assert f'<a href="{path}">Print the handout</a>' in referral_page.text
    assert f'<a href="{path}?format=pdf" download>Download PDF</a>' in referral_page.text

    printed = user.get(path)
    assert printed.status_code == 200, printed.text
    assert (
        '<nav class="toolbar"' in printed.text and "Su derivación a Evening Circle" in printed.text
    )
    assert patient_id not in printed.text
    token = short_link(printed.text)
    assert "Your referral to Evening Circle" in user.get(path, params={"lang": "en"}).text
    document = user.get(path, params={"format": "pdf", "paper": "letter"})
    assert document.headers["content-type"] == "application/pdf"
    assert pdf_pages(document.content, tmp_path) == 1
    assert "Back to the referral" not in pdf_text(document.content, tmp_path)

    assert user.post(f"{path}-links/revoke", {"_csrf": "wrong"}).status_code == 403
    assert client.get(f"/h/{token}").status_code == 200
    stopped = user.post(f"{path}-links/revoke")
    assert stopped.status_code == 303
    assert stopped.headers["location"] == f"/app/referrals/{referral_id}?handout_links=revoked"
    assert "short links are stopped" in user.get(stopped.headers["location"]).text
    assert client.get(f"/h/{token}").status_code == 410
