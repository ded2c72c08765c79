"""Screening entry over HTTP: every offered instrument's form shows its published items and
options; a submit is scored exactly as /v1 scores the same answers and stored as
POST /v1/screenings stores it; a double submit stores one; bad answers are named."""

from __future__ import annotations

import re
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient
from markupsafe import escape

from service.instruments.model import Instrument
from service.instruments.service import Catalog
from tests.conftest import Clinic
from tests.helpers import new_patient_id
from tests.signed_in import SignedIn, sign_in

SUBMISSION = re.compile(r'name="submission" value="([^"]+)"')


def offered(app: Litestar) -> list[Instrument]:
    catalog: Catalog = app.state.catalog
    return [i for i in catalog.instruments.values() if catalog.enabled(i)]


def answers_for(instrument: Instrument, shift: int = 0) -> dict[str, int]:
    """An answer (not a refusal) to every item, varied across the items."""
    definition = instrument.definition
    chosen = {}
    for n, item in enumerate(definition.items):
        options = [o for o in definition.option_sets[item.options] if not o.declined]
        chosen[item.linkId] = options[(n + shift) % len(options)].value
    return chosen


def entry_form(user: SignedIn, instrument_id: str, patient: str = "") -> str:
    query = f"?patient={patient}" if patient else ""
    response = user.get(f"/app/screenings/new/{instrument_id}{query}")
    assert response.status_code == 200, response.text
    return response.text


def submit(
    user: SignedIn,
    instrument_id: str,
    patient: str,
    answers: dict[str, Any],
    key: str | None = None,
    **fields: Any,
) -> Any:
    if key is None:
        found = SUBMISSION.search(entry_form(user, instrument_id, patient))
        assert found is not None
        key = found.group(1)
    form = {
        "patient_id": patient,
        "completed_at": "2026-03-02T14:05",
        "submission": key,
        **{f"answer-{link}": str(value) for link, value in answers.items()},
        **fields,
    }
    return user.post(f"/app/screenings/new/{instrument_id}", form)


def stored(client: TestClient[Litestar], clinic: Clinic, patient: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/patients/{patient}/screenings", headers=clinic.headers)
    if response.status_code == 404:
        return []
    assert response.status_code == 200, response.text
    return [s for h in response.json()["instruments"] for s in h["screenings"]]


def test_the_chooser_offers_every_enabled_instrument_and_no_licensed_off_one(
    session_client: TestClient[Litestar], clinic: Clinic
) -> None:
    user = sign_in(session_client, clinic.name)
    page = user.get("/app/screenings/new?patient=pat-7")
    assert page.status_code == 200, page.text
    enabled = offered(session_client.app)
    for instrument in enabled:
        assert f'href="/app/screenings/new/{instrument.id}?patient=pat-7"' in page.text
    catalog: Catalog = session_client.app.state.catalog
    licensed_off = [i for i in catalog.instruments.values() if not catalog.enabled(i)]
    assert licensed_off, "the default deployment has licensed instruments switched off"
    for instrument in licensed_off:
        assert f"/app/screenings/new/{instrument.id}" not in page.text
        refused = user.get(f"/app/screenings/new/{instrument.id}")
        assert refused.status_code == 404
    assert user.get("/app/screenings/new/no-such-thing").status_code == 404
    assert user.get("/app/screenings/new?patient=bad%20id").status_code == 400


def assert_every_form_shows_every_item_and_option(user: SignedIn, app: Litestar) -> None:
    for instrument in offered(app):
        html = entry_form(user, instrument.id, "pat-9")
        definition = instrument.definition
        assert 'id="patient-id" name="patient_id" value="pat-9"' in html
        assert 'type="datetime-local" id="completed-at" name="completed_at" value="20' in html
        for n, item in enumerate(definition.items, start=1):
            assert f"<legend>{n}. {escape(item.text)}</legend>" in html, (instrument.id, n)
            for option in definition.option_sets[item.options]:
                radio = (
                    f'<input type="radio" id="item-{item.linkId}-{option.value}" '
                    f'name="answer-{item.linkId}" value="{option.value}"> '
                    f"{escape(option.display)}</label>"
                )
                assert radio in html, (instrument.id, item.linkId, option.value)
        assert html.count('type="radio"') == sum(
            len(definition.option_sets[item.options]) for item in definition.items
        )
        assert " required" not in html  # items may be left unanswered
        for preamble in {item.preamble for item in definition.items if item.preamble}:
            assert escape(definition.preambles[preamble].text) in html


def test_every_offered_form_shows_every_item_and_option(
    session_client: TestClient[Litestar], clinic: Clinic
) -> None:
    assert_every_form_shows_every_item_and_option(
        sign_in(session_client, clinic.name), session_client.app
    )


def test_a_licensed_instrument_is_offered_once_enabled(
    licensed_client: TestClient[Litestar], clinic: Clinic
) -> None:
    user = sign_in(licensed_client, clinic.name)
    promis = [i for i in offered(licensed_client.app) if i.id.startswith("promis")]
    assert promis
    chooser = user.get("/app/screenings/new").text
    for instrument in promis:
        assert f'href="/app/screenings/new/{instrument.id}"' in chooser
    assert_every_form_shows_every_item_and_option(user, licensed_client.app)
    patient = new_patient_id()
    answers = answers_for(promis[0])
    assert submit(user, promis[0].id, patient, answers).status_code == 303
    [screening] = stored(licensed_client, clinic, patient)
    scored = licensed_client.post(
        f"/v1/instruments/{promis[0].id}/score", json={"answers": answers}
    ).json()
    assert screening["total"] == scored["total"]


def test_each_offered_instrument_is_scored_and_stored_as_the_api_does(
    session_client: TestClient[Litestar], clinic: Clinic
) -> None:
    user = sign_in(session_client, clinic.name)
    for shift, instrument in enumerate(offered(session_client.app)):
        patient = new_patient_id()
        answers = answers_for(instrument, shift)
        saved = submit(user, instrument.id, patient, answers, pain_conditions="crps")
        assert saved.status_code == 303, (instrument.id, saved.text)
        assert saved.headers["location"] == f"/app/patients/{patient}"
        [screening] = stored(session_client, clinic, patient)
        full = session_client.get(f"/v1/screenings/{screening['id']}", headers=clinic.headers)
        assert full.status_code == 200
        body = full.json()
        scored = session_client.post(
            f"/v1/instruments/{instrument.id}/score",
            json={"answers": answers},
            headers=clinic.headers,
        )
        assert scored.status_code == 200, scored.text
        assert body["score"] == scored.json(), instrument.id
        assert body["instrument"] == instrument.id and body["patient_id"] == patient
        assert body["completed_at"].startswith("2026-03-02T14:05:00")
        assert body["observations"]
        qr = session_client.get(
            f"/fhir/{body['questionnaire_response']}", headers=clinic.headers
        ).json()
        assert {i["linkId"] for i in qr["item"]} >= set(answers)


def test_the_same_screening_through_the_api_stores_the_same(
    session_client: TestClient[Litestar], clinic: Clinic
) -> None:
    user = sign_in(session_client, clinic.name)
    answers = {"1": 2, "2": 3, "3": 3}
    app_patient, api_patient = new_patient_id(), new_patient_id()
    assert submit(user, "ucla-3", app_patient, answers).status_code == 303
    api = session_client.post(
        "/v1/screenings",
        json={
            "patient_id": api_patient,
            "instrument": "ucla-3",
            "completed_at": "2026-03-02T14:05:00Z",
            "answers": answers,
        },
        headers=clinic.headers,
    )
    assert api.status_code == 201
    [mine] = stored(session_client, clinic, app_patient)
    [theirs] = stored(session_client, clinic, api_patient)
    mine_full = session_client.get(f"/v1/screenings/{mine['id']}", headers=clinic.headers).json()
    theirs_full = session_client.get(
        f"/v1/screenings/{theirs['id']}", headers=clinic.headers
    ).json()
    assert mine_full["score"] == theirs_full["score"]
    assert len(mine_full["observations"]) == len(theirs_full["observations"])
    assert [o["code"] for o in mine_full["observations"]] == [
        o["code"] for o in theirs_full["observations"]
    ]
    assert mine == {**theirs, "id": mine["id"]}


def test_a_double_submit_stores_one_screening(
    session_client: TestClient[Litestar], clinic: Clinic
) -> None:
    user = sign_in(session_client, clinic.name)
    patient = new_patient_id()
    found = SUBMISSION.search(entry_form(user, "ucla-3", patient))
    assert found is not None
    answers = {"1": 3, "2": 3, "3": 3}
    first = submit(user, "ucla-3", patient, answers, key=found.group(1))
    again = submit(user, "ucla-3", patient, answers, key=found.group(1))
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert len(stored(session_client, clinic, patient)) == 1

    changed = submit(user, "ucla-3", patient, {"1": 1, "2": 1, "3": 1}, key=found.group(1))
    assert changed.status_code == 409, changed.text
    assert "already sent" in changed.text
    assert len(stored(session_client, clinic, patient)) == 1

    fresh = submit(user, "ucla-3", patient, answers)  # a new form: a second screening
    assert fresh.status_code == 303
    assert len(stored(session_client, clinic, patient)) == 2


def test_bad_answers_are_422_naming_the_item_and_store_nothing(
    session_client: TestClient[Litestar], clinic: Clinic
) -> None:
    user = sign_in(session_client, clinic.name)
    patient = new_patient_id()
    not_an_option = submit(user, "ucla-3", patient, {"1": 2, "2": 9, "3": "x"})
    assert not_an_option.status_code == 422, not_an_option.text
    text = not_an_option.text
    assert 'href="#item-2">Question 2: 9 is not one of 1, 2, 3' in text
    assert 'href="#item-3">Question 3: must be an integer' in text
    assert 'id="item-1-2" name="answer-1" value="2" checked' in text  # kept as entered
    assert 'id="item-2" class="item" aria-describedby="item-2-error"' in text

    too_few = submit(user, "ucla-3", patient, {"1": 2})
    assert too_few.status_code == 422
    assert 'href="#item-2">Question 2: not answered' in too_few.text
    assert 'href="#item-3">Question 3: not answered' in too_few.text

    no_patient = submit(user, "ucla-3", "", {"1": 2, "2": 2, "3": 2})
    assert no_patient.status_code == 422
    assert 'href="#patient-id">Patient id:' in no_patient.text

    future = submit(
        user, "ucla-3", patient, {"1": 2, "2": 2, "3": 2}, completed_at="2999-01-01T00:00"
    )
    assert future.status_code == 422
    assert 'href="#completed-at">Completed at: is in the future' in future.text

    bad_condition = submit(user, "ucla-3", patient, {"1": 2}, pain_conditions="gout")
    assert bad_condition.status_code == 422
    assert 'href="#pain-conditions">Pain conditions:' in bad_condition.text
    assert stored(session_client, clinic, patient) == []


def test_a_missing_item_within_the_rule_is_scored(
    session_client: TestClient[Litestar], clinic: Clinic
) -> None:
    catalog: Catalog = session_client.app.state.catalog
    instrument = next(
        i for i in offered(session_client.app) if i.definition.scoring.missing.max_missing
    )
    assert catalog.enabled(instrument)
    user = sign_in(session_client, clinic.name)
    patient = new_patient_id()
    answers = answers_for(instrument)
    del answers[instrument.definition.items[0].linkId]
    saved = submit(user, instrument.id, patient, answers)
    assert saved.status_code == 303, saved.text
    [screening] = stored(session_client, clinic, patient)
    scored = session_client.post(
        f"/v1/instruments/{instrument.id}/score", json={"answers": answers}, headers=clinic.headers
    ).json()
    assert screening["total"] == scored["total"]


def test_the_entry_is_audited_with_the_user_as_actor(
    session_client: TestClient[Litestar], clinic: Clinic
) -> None:
    user = sign_in(session_client, clinic.name)
    patient = new_patient_id()
    assert submit(user, "ucla-3", patient, {"1": 2, "2": 3, "3": 3}).status_code == 303
    [screening] = stored(session_client, clinic, patient)
    events = session_client.get(
        "/v1/audit-events", params={"patient_id": patient, "limit": 200}, headers=clinic.headers
    ).json()["items"]
    created = [e for e in events if e["action"] == "create" and e["resource_type"] == "Screening"]
    assert [(e["resource_id"], e["client_id"]) for e in created] == [(screening["id"], None)]
    assert created[0]["user_id"]
    opened = [e for e in events if e["resource_type"] == "Questionnaire"]
    assert opened and all(e["user_id"] == created[0]["user_id"] for e in opened)
