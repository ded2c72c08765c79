"""The worklist and the patient page over HTTP, signed in, against the real app and
PostgreSQL: who needs action, the referrals to follow up (overdue after the clinic's days),
filters, order and paging; a patient's trends as /v1 reads them, the profile form, another
clinic's patient, and the audit of every read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient

from service.patients.chart import format_date
from service.platform.tables import audit_events, referrals
from service.web.when import ago
from tests.conftest import Clinic, MakeClinic
from tests.helpers import new_patient_id, ucla3
from tests.signed_in import SignedIn, sign_in

NOW = datetime.now(UTC)


class Page(HTMLParser):
    """A page as text, its tables by caption (rows of cell texts) and its links."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.links: list[tuple[str, str]] = []
        self.texts: list[str] = []
        self._caption: list[str] | None = None
        self._rows: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self._href: str | None = None
        self._link: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._rows = []
        elif tag == "caption":
            self._caption = []
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th") and self._rows is not None:
            self._cell = []
        elif tag == "a":
            self._href, self._link = dict(attrs).get("href"), []

    def handle_endtag(self, tag: str) -> None:
        if tag == "caption" and self._caption is not None:
            self._caption_text = " ".join("".join(self._caption).split())
            self._caption = None
        elif tag in ("td", "th") and self._cell is not None and self._rows:
            self._rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table" and self._rows is not None:
            body = [row for row in self._rows[1:] if row]
            self.tables[getattr(self, "_caption_text", "")] = body
            self._rows = None
        elif tag == "a" and self._href is not None:
            self.links.append((self._href, " ".join("".join(self._link).split())))
            self._href = None

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        for sink in (self._caption, self._cell):
            if sink is not None:
                sink.append(data)
        if self._href is not None:
            self._link.append(data)

    @property
    def text(self) -> str:
        return " ".join("".join(self.texts).split())

    def table(self, starts: str) -> list[list[str]]:
        found = [rows for caption, rows in self.tables.items() if caption.startswith(starts)]
        return found[0] if found else []


def parsed(response: Any, status: int = 200) -> Page:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    return Page(response.text)


def screen(client: TestClient[Litestar], clinic: Clinic, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/screenings", json=body, headers=clinic.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def positive(
    client: TestClient[Litestar], clinic: Clinic, patient: str, days_ago: float
) -> dict[str, Any]:
    """A UCLA-3 of 9 (Lonely) completed ``days_ago``."""
    at = (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return screen(client, clinic, ucla3(patient, completed_at=at, answers={"1": 3, "2": 3, "3": 3}))


def negative(
    client: TestClient[Litestar], clinic: Clinic, patient: str, days_ago: float
) -> dict[str, Any]:
    at = (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return screen(client, clinic, ucla3(patient, completed_at=at, answers={"1": 1, "2": 1, "3": 1}))


def service(client: TestClient[Litestar], clinic: Clinic, name: str) -> str:
    response = client.post(
        "/v1/directory/services",
        json={
            "name": name,
            "organization": "Test Trust",
            "category": "support-group",
            "modalities": ["online"],
        },
        headers=clinic.headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def refer(client: TestClient[Litestar], clinic: Clinic, patient: str, service_id: str) -> str:
    response = client.post(
        "/v1/referrals",
        json={
            "patient_id": patient,
            "service_id": service_id,
            "consent": {"given": True, "method": "verbal"},
        },
        headers=clinic.headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def move(client: TestClient[Litestar], clinic: Clinic, referral: str, **change: Any) -> None:
    response = client.patch(f"/v1/referrals/{referral}", json=change, headers=clinic.headers)
    assert response.status_code == 200, response.text


def run(client: TestClient[Litestar], statement: sa.Executable) -> list[Any]:
    async def execute() -> list[Any]:
        async with client.app.state.db.begin() as conn:
            result = await conn.execute(statement)
            return list(result.all()) if result.returns_rows else []

    return client.blocking_portal.call(execute)


def requested_days_ago(client: TestClient[Litestar], referral: str, days: float) -> None:
    run(
        client,
        sa.update(referrals)
        .where(referrals.c.id == referral)
        .values(created_at=NOW - timedelta(days=days)),
    )


def needs_action(user: SignedIn, query: str = "") -> list[list[str]]:
    return parsed(user.get("/app" + query)).table("Patients needing action")


def referral_rows(user: SignedIn, query: str = "") -> list[list[str]]:
    return parsed(user.get("/app" + query)).table("Referrals to follow up")


@pytest.fixture
def user(session_client: TestClient[Litestar], clinic: Clinic) -> SignedIn:
    return sign_in(session_client, clinic.name)


# -- the worklist ----------------------------------------------------------------------


def test_a_positive_screen_needs_action_until_a_referral_is_under_way(
    session_client: TestClient[Litestar], clinic: Clinic, user: SignedIn
) -> None:
    lonely, fine, recovered = new_patient_id(), new_patient_id(), new_patient_id()
    positive(session_client, clinic, lonely, days_ago=3)
    negative(session_client, clinic, fine, days_ago=1)
    positive(session_client, clinic, recovered, days_ago=10)
    negative(session_client, clinic, recovered, days_ago=2)  # the latest counts

    page = parsed(user.get("/app"))
    assert page.table("Patients needing action") == [
        [lonely, "UCLA-3", "9", "Positive Lonely", f"3 days ago ({_date(3)})"]
    ]
    assert (f"/app/patients/{lonely}", lonely) in page.links
    assert "Needs action (1)" in page.text

    referral = refer(session_client, clinic, lonely, service(session_client, clinic, "Circle"))
    page = parsed(user.get("/app"))
    assert page.table("Patients needing action") == []
    assert "No patient needs action" in page.text
    assert page.table("Referrals to follow up") == [
        [
            lonely,
            "Circle",
            "Requested",
            f"just now ({_date(0)})",
            "Waiting for the service to accept",
        ]
    ]
    assert (f"/app/referrals/{referral}", "Circle") in page.links

    move(session_client, clinic, referral, status="accepted")
    move(session_client, clinic, referral, status="in-progress")
    [row] = referral_rows(user)
    assert row[2:] == [
        "In progress",
        f"just now ({_date(0)})",
        "Follow up: is the patient attending?",
    ]
    move(session_client, clinic, referral, status="completed")
    [row] = referral_rows(user)
    assert (row[2], row[4]) == ("Completed", "Record the outcome")
    # Completed, the referral is no longer under way: the positive screen needs action again.
    assert [r[0] for r in needs_action(user)] == [lonely]


def test_a_requested_referral_is_overdue_after_the_clinics_days(
    session_client: TestClient[Litestar], clinic: Clinic, user: SignedIn
) -> None:
    days = session_client.app.state.settings.referral_overdue_days
    late, recent = new_patient_id(), new_patient_id()
    circle = service(session_client, clinic, "Circle")
    for patient in (late, recent):
        positive(session_client, clinic, patient, days_ago=20)
    late_referral = refer(session_client, clinic, late, circle)
    refer(session_client, clinic, recent, circle)
    requested_days_ago(session_client, late_referral, days + 0.5)

    rows = {row[0]: row for row in referral_rows(user)}
    assert rows[late][2] == "Requested Overdue"
    assert rows[late][4] == "Chase the service: it has not accepted yet"
    assert rows[recent][2] == "Requested"
    assert [row[0] for row in referral_rows(user, "?overdue=1")] == [late]
    assert "Overdue 1" in parsed(user.get("/app")).text

    move(session_client, clinic, late_referral, status="accepted")  # accepted: no longer late
    assert referral_rows(user, "?overdue=1") == []
    patient_page = parsed(user.get(f"/app/patients/{late}"))
    assert patient_page.table("Referrals of patient")[0][1] == "Accepted"


def test_ended_referrals_stay_on_the_worklist_for_thirty_days(
    session_client: TestClient[Litestar], clinic: Clinic, user: SignedIn
) -> None:
    patient = new_patient_id()
    positive(session_client, clinic, patient, days_ago=40)
    circle = service(session_client, clinic, "Circle")
    recent = refer(session_client, clinic, patient, circle)
    old = refer(session_client, clinic, patient, circle)
    for referral in (recent, old):
        move(session_client, clinic, referral, status="cancelled", reason="Moved away")
    run(
        session_client,
        sa.update(referrals)
        .where(referrals.c.id == old)
        .values(updated_at=NOW - timedelta(days=31)),
    )
    rows = referral_rows(user)
    assert [(r[2], r[4]) for r in rows] == [("Cancelled", "Nothing: the referral was cancelled")]
    assert ("/app/referrals/" + recent, "Circle") in parsed(user.get("/app")).links


def test_the_worklist_filters_orders_and_pages(
    session_client: TestClient[Litestar], clinic: Clinic, user: SignedIn
) -> None:
    first, second, third = (new_patient_id() for _ in range(3))
    positive(session_client, clinic, first, days_ago=9)
    positive(session_client, clinic, second, days_ago=5)
    positive(session_client, clinic, third, days_ago=1)
    isolated = new_patient_id()
    answers = {str(i): 0 for i in range(1, 7)}
    at = (NOW - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    screen(
        session_client,
        clinic,
        {"patient_id": isolated, "instrument": "lsns-6", "completed_at": at, "answers": answers},
    )
    circle = service(session_client, clinic, "Circle")
    helper = new_patient_id()
    positive(session_client, clinic, helper, days_ago=30)
    accepted = refer(session_client, clinic, helper, circle)
    move(session_client, clinic, accepted, status="accepted")

    assert [r[0] for r in needs_action(user)] == [third, isolated, second, first]
    assert [r[0] for r in needs_action(user, "?sort=oldest")] == [first, second, isolated, third]
    assert [r[0] for r in needs_action(user, "?instrument=lsns-6")] == [isolated]
    assert [r[1] for r in needs_action(user, "?instrument=lsns-6")] == ["LSNS-6"]

    page = parsed(user.get("/app?limit=2"))
    assert [r[0] for r in page.table("Patients needing action")] == [third, isolated]
    assert "Page 1 of 2" in page.text
    assert ("/app?limit=2&offset=2", "Next page") in page.links
    page = parsed(user.get("/app?limit=2&offset=2"))
    assert [r[0] for r in page.table("Patients needing action")] == [second, first]
    assert ("/app?limit=2", "Previous page") in page.links
    assert not [link for link in page.links if link[1] == "Next page"]

    assert [r[2] for r in referral_rows(user, "?status=accepted")] == ["Accepted"]
    assert referral_rows(user, "?status=requested") == []
    assert referral_rows(user, "?instrument=lsns-6") == []
    assert "Accepted: 1" in parsed(user.get("/app")).text


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=lost", "status"),
        ("instrument=no-such-scale", "instrument"),
        ("overdue=maybe", "overdue"),
        ("sort=sideways", "sort"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("status=requested&status=accepted", "status"),
    ],
)
def test_a_bad_worklist_parameter_is_400_naming_it(user: SignedIn, query: str, field: str) -> None:
    page = parsed(user.get("/app?" + query), 400)
    assert f"{field}:" in page.text


# -- the patient page ------------------------------------------------------------------


def promis_si_4a(patient_id: str, raw: int, day: int) -> dict[str, Any]:
    """PROMIS Social Isolation 4a with the given raw score (4..20)."""
    values = [raw // 4 + (1 if i < raw % 4 else 0) for i in range(4)]
    links = ("UCLA11x2", "UCLA13x3", "UCLA14x2", "UCLA18x2")
    return {
        "patient_id": patient_id,
        "instrument": "promis-si-4a",
        "completed_at": f"2024-07-{day:02d}T08:00:00Z",
        "answers": dict(zip(links, values, strict=True)),
    }


@pytest.fixture
def licensed(licensed_app: Litestar) -> Any:
    with TestClient(licensed_app) as test_client:
        yield test_client


def test_the_patient_page_shows_every_screening_as_the_api_reads_it(
    licensed: TestClient[Litestar], clinic: Clinic
) -> None:
    patient = new_patient_id()
    for day, raw in enumerate((12, 13, 15, 12), start=1):
        screen(licensed, clinic, promis_si_4a(patient, raw, day))
    for day, answers in ((5, {"1": 1, "2": 2, "3": 1}), (6, {"1": 3, "2": 3, "3": 3})):
        at = f"2024-07-{day:02d}T08:00:00Z"
        screen(licensed, clinic, ucla3(patient, completed_at=at, answers=answers))
    history = licensed.get(f"/v1/patients/{patient}/screenings", headers=clinic.headers).json()
    user = sign_in(licensed, clinic.name)

    page = parsed(user.get(f"/app/patients/{patient}"))

    for instrument in history["instruments"]:
        title = instrument["title"]
        rows = page.table(f"{_short(licensed, instrument['instrument'])} screenings")
        assert len(rows) == len(instrument["screenings"]), title
        for row, screening in zip(rows, instrument["screenings"], strict=True):
            date, score, result, _change, trend = row
            completed = datetime.fromisoformat(screening["completed_at"])
            assert date == format_date(completed)
            assert float(score) == screening["total"]
            assert result.startswith(screening["band"]["label"])
            assert ("Positive" in result) == screening["band"]["positive"]
            expected = screening["trend"] or (
                "no threshold published" if screening["change"] is not None else "first screening"
            )
            assert trend.lower() == expected, (title, row)
    promis = page.table("PROMIS SI 4a screenings")
    assert [row[4] for row in promis] == [
        "Better",
        "Worse",
        "No meaningful change",
        "First screening",
    ]
    assert [row[3] for row in promis] == ["\u22125.9", "+3.9", "+2.0", "\u2013"]
    html = user.get(f"/app/patients/{patient}").text
    assert html.count("<figure>") == 2 and html.count('class="print-page instrument"') == 2
    assert '<link rel="stylesheet" href="/app/static/chart.css">' in html
    assert "Better since 3 Jul 2024: 62.0 to 56.1" in page.text  # the latest change in words


def test_the_patient_page_shows_needs_recommendations_and_referrals_in_words(
    session_client: TestClient[Litestar], clinic: Clinic, user: SignedIn
) -> None:
    patient = new_patient_id()
    assert (
        session_client.put(
            f"/v1/patients/{patient}", json={"languages": ["en"]}, headers=clinic.headers
        ).status_code
        == 201
    )
    positive(session_client, clinic, patient, days_ago=2)
    circle = service(session_client, clinic, "Friendship Circle")
    phone = service(session_client, clinic, "Phone Friends")
    referral = refer(session_client, clinic, patient, phone)

    page = parsed(user.get(f"/app/patients/{patient}"))
    assert f"Moderate loneliness: UCLA-3 on {_date(2)}, Lonely" in page.text
    assert (f"/app/patients/{patient}/refer?service={circle}", "Refer to Friendship Circle") in (
        page.links
    )
    assert "Why it fits:" in page.text
    assert "support_group" not in page.text and "support-group" not in page.text
    assert page.table("Referrals of patient") == [
        [
            "Phone Friends",
            "Requested",
            f"just now ({_date(0)})",
            "Waiting for the service to accept",
        ]
    ]
    assert (f"/app/referrals/{referral}", "Phone Friends") in page.links
    assert "<details" not in user.get(f"/app/patients/{patient}").text
    explained = user.get(f"/app/patients/{patient}?explain=1").text
    assert '<details class="why-not">' in explained
    assert parsed(user.get(f"/app/patients/{patient}?explain=perhaps"), 400).text.count("explain")


def test_a_patient_without_screenings_is_offered_a_screening(
    session_client: TestClient[Litestar], clinic: Clinic, user: SignedIn
) -> None:
    patient = new_patient_id()
    session_client.put(f"/v1/patients/{patient}", json={}, headers=clinic.headers)
    page = parsed(user.get(f"/app/patients/{patient}"))
    assert "No screening is recorded for this patient yet." in page.text
    assert (f"/app/screenings/new?patient={patient}", "Enter a screening") in page.links
    assert (
        'type="checkbox" name="pain_conditions" value="crps">'
        in user.get(f"/app/patients/{patient}").text
    )  # an empty form: nothing ticked


def test_the_profile_form_round_trips_to_the_api(
    session_client: TestClient[Litestar], clinic: Clinic, user: SignedIn
) -> None:
    patient = new_patient_id()
    session_client.put(f"/v1/patients/{patient}", json={}, headers=clinic.headers)
    form = {
        "pain_conditions": ["crps", "fibromyalgia"],
        "languages": "en, pl",
        "postcode": "sw1a 1aa",
        "location.lat": "51.52",
        "location.lon": "-0.12",
        "preferred_modalities": ["online", "phone"],
        "age_band": "45-64",
        "max_travel_km": "12.5",
        "contact_method": "letter",
    }
    response = user.post(f"/app/patients/{patient}/profile", form)
    assert response.status_code == 303
    assert response.headers["location"] == f"/app/patients/{patient}?saved=1#profile"

    stored = session_client.get(f"/v1/patients/{patient}", headers=clinic.headers).json()
    assert stored["profile"] == {
        "pain_conditions": ["crps", "fibromyalgia"],
        "languages": ["en", "pl"],
        "postcode": "SW1A 1AA",
        "location": {"lat": 51.52, "lon": -0.12},
        "preferred_modalities": ["online", "phone"],
        "age_band": "45-64",
        "max_travel_km": 12.5,
        "contact_method": "letter",
    }
    page = parsed(user.get(f"/app/patients/{patient}?saved=1"))
    assert "The matching profile is saved." in page.text
    for words in (
        "CRPS, Fibromyalgia",
        "English, Polish",
        "SW1A 1AA",
        "45 to 64",
        "up to 12.5 km",
        "letter",
    ):
        assert words in page.text, words

    cleared = user.post(f"/app/patients/{patient}/profile", {"age_band": ""})
    assert cleared.status_code == 303
    assert (
        session_client.get(f"/v1/patients/{patient}", headers=clinic.headers).json()["profile"]
        == {}
    )


def test_a_refused_profile_is_422_naming_each_field_and_stores_nothing(
    session_client: TestClient[Litestar], clinic: Clinic, user: SignedIn
) -> None:
    patient = new_patient_id()
    session_client.put(
        f"/v1/patients/{patient}", json={"languages": ["cy"]}, headers=clinic.headers
    )
    before = session_client.get(f"/v1/patients/{patient}", headers=clinic.headers).json()
    form = {
        "pain_conditions": ["crps", "gout"],
        "languages": "english!!",
        "location.lat": "95",
        "location.lon": "",
        "age_band": "12-17",
        "max_travel_km": "900",
        "postcode": "SW1A 1AA",
        "contact_method": "pigeon",
    }
    response = user.post(f"/app/patients/{patient}/profile", form)
    parsed(response, 422)
    html = response.text
    summary = Page(html.split('class="error-summary', 1)[1].split("</div>", 1)[0]).text
    assert "The profile was not saved" in summary
    for label in (
        "Pain conditions",
        "Languages",
        "Latitude",
        "Longitude",
        "Age band",
        "Furthest the patient can travel (km)",
        "How services may get in touch",
    ):
        assert label in summary, label
    assert "Postcode" not in summary
    assert 'value="english!!"' in html and 'value="SW1A 1AA"' in html  # kept as entered
    assert (
        'id="field-languages" name="languages" value="english!!" autocomplete="off" '
        'aria-describedby="hint-languages error-languages" aria-invalid="true"' in html
    )
    assert 'id="error-max_travel_km"' in html
    after = session_client.get(f"/v1/patients/{patient}", headers=clinic.headers).json()
    assert after == before


def test_another_clinics_patient_is_not_found(
    session_client: TestClient[Litestar], clinic: Clinic, make_clinic: MakeClinic
) -> None:
    patient = new_patient_id()
    positive(session_client, clinic, patient, days_ago=1)
    stranger = sign_in(session_client, make_clinic().name)
    theirs = parsed(stranger.get(f"/app/patients/{patient}"), 404)
    missing = parsed(stranger.get(f"/app/patients/{new_patient_id()}"), 404)
    assert "Not found" in theirs.text and "Not found" in missing.text
    assert patient not in [row[0] for row in needs_action(stranger)]
    refused = stranger.post(f"/app/patients/{patient}/profile", {"languages": "en"})
    assert refused.status_code == 404
    mine = sign_in(session_client, clinic.name)
    assert parsed(mine.get(f"/app/patients/{patient}")).table("UCLA-3 screenings")


def test_reading_the_patient_page_is_audited_as_the_user(
    session_client: TestClient[Litestar], clinic: Clinic, user: SignedIn
) -> None:
    patient = new_patient_id()
    positive(session_client, clinic, patient, days_ago=1)
    assert user.get(f"/app/patients/{patient}").status_code == 200
    assert user.post(f"/app/patients/{patient}/profile", {"languages": "en"}).status_code == 303

    rows = run(
        session_client,
        sa.select(audit_events).where(
            audit_events.c.clinic_id == clinic.clinic_id, audit_events.c.patient_id == patient
        ),
    )
    events = {(r.action, r.resource_type): r for r in rows if r.user_id is not None}
    read = events[("read", "Patient")]
    assert (read.resource_id, read.status_code, read.client_id) == (patient, 200, None)
    assert isinstance(read.user_id, uuid.UUID)
    assert events[("update", "Patient")].status_code == 303


def _date(days_ago: float) -> str:
    return format_date(NOW - timedelta(days=days_ago))


def _short(client: TestClient[Litestar], instrument: str) -> str:
    return str(client.app.state.catalog.get(instrument).definition.short_title)


def test_a_profile_form_without_its_security_token_is_refused(
    session_client: TestClient[Litestar], clinic: Clinic, user: SignedIn
) -> None:
    patient = new_patient_id()
    session_client.put(f"/v1/patients/{patient}", json={}, headers=clinic.headers)
    refused = user.post(f"/app/patients/{patient}/profile", {"_csrf": "", "languages": "en"})
    assert refused.status_code == 403
    stored = session_client.get(f"/v1/patients/{patient}", headers=clinic.headers).json()
    assert stored["profile"] == {}


@pytest.mark.parametrize(
    ("before", "words"),
    [
        (timedelta(seconds=59), "just now"),
        (timedelta(minutes=1), "1 minute ago"),
        (timedelta(minutes=59), "59 minutes ago"),
        (timedelta(hours=23), "23 hours ago"),
        (timedelta(days=1), "yesterday"),
        (timedelta(days=3, hours=5), "3 days ago"),
        (timedelta(days=20), "2 weeks ago"),
        (timedelta(days=90), "2 months ago"),
        (timedelta(days=400), "13 months ago"),
        (timedelta(days=800), "2 years ago"),
        (timedelta(seconds=-30), "just now"),
    ],
)
def test_ages_are_in_words(before: timedelta, words: str) -> None:
    assert ago(NOW - before, NOW) == words
