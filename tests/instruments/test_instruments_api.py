"""The instrument catalog and stateless scoring, through Litestar's test client."""

from __future__ import annotations

import pytest

from service.instruments.model import Instrument

PROMIS = "promis-si-4a"


def test_catalog_lists_every_instrument_with_its_licence(client, catalog) -> None:
    response = client.get("/v1/instruments")
    assert response.status_code == 200
    listed = {entry["id"]: entry for entry in response.json()}
    assert set(listed) == set(catalog)
    assert listed["ucla-3"] == {
        "id": "ucla-3",
        "title": "Three-Item Loneliness Scale",
        "short_title": "UCLA-3",
        "construct": "loneliness",
        "direction": "higher-worse",
        "item_count": 3,
        "licence": listed["ucla-3"]["licence"],
        "free_use": False,
        "enabled": True,
    }
    assert listed[PROMIS]["enabled"] is False
    assert all(not e["enabled"] for i, e in listed.items() if i.startswith("promis-"))
    assert all(e["enabled"] for i, e in listed.items() if not i.startswith("promis-"))


def test_licensed_deployment_enables_promis(licensed_client) -> None:
    listed = {e["id"]: e for e in licensed_client.get("/v1/instruments").json()}
    assert listed[PROMIS]["enabled"] is True


def test_detail_gives_items_in_order_with_options(client) -> None:
    body = client.get("/v1/instruments/ucla-3").json()
    assert [item["linkId"] for item in body["items"]] == ["1", "2", "3"]
    assert body["items"][0]["text"] == "How often do you feel that you lack companionship?"
    assert body["items"][1]["options"] == [
        {"value": 1, "display": "Hardly ever"},
        {"value": 2, "display": "Some of the time", "code": "LA14733-2"},
        {"value": 3, "display": "Often", "code": "LA10044-8"},
    ]
    assert body["scoring"]["method"] == "sum"
    assert body["scoring"]["range"] == [3, 9]
    assert body["scoring"]["code"]["code"] == "106421-1"
    assert [b["code"] for b in body["scoring"]["bands"]] == ["not-lonely", "lonely"]
    assert {b["provenance"] for b in body["scoring"]["bands"]} == {"conventional"}
    assert body["panel"]["code"] == "106418-7"
    assert body["questionnaire"].endswith("/Questionnaire/ucla-3")
    assert body["sources"] and body["notes"]


def test_detail_of_subscales_and_reverse_items(client) -> None:
    djg = client.get("/v1/instruments/djg-6").json()
    assert [s["id"] for s in djg["subscales"]] == ["emotional", "social"]
    ucla20 = client.get("/v1/instruments/ucla-20").json()
    reversed_items = [i["linkId"] for i in ucla20["items"] if i.get("reverse")]
    assert reversed_items == ["1", "5", "6", "9", "10", "15", "16", "19", "20"]


def test_lsns6_items_carry_the_preamble_of_their_block(client) -> None:
    body = client.get("/v1/instruments/lsns-6").json()
    family = {
        "id": "family",
        "title": "FAMILY",
        "text": "Considering the people to whom you are related by birth, marriage, adoption, etc…",
    }
    friends = {
        "id": "friends",
        "title": "FRIENDSHIPS",
        "text": "Considering all of your friends including those who live in your neighborhood…",
    }
    assert [item["preamble"] for item in body["items"]] == [family] * 3 + [friends] * 3
    assert body["items"][3]["text"] == (
        "How many of your friends do you see or hear from at least once a month?"
    )
    assert "studylib" in body["items"][3]["wording_source"]


def test_items_without_a_preamble_carry_none(client) -> None:
    body = client.get("/v1/instruments/ucla-3").json()
    assert all("preamble" not in item for item in body["items"])


def test_detail_gives_the_meaningful_change_threshold_with_its_source(client) -> None:
    promis = client.get("/v1/instruments/promis-si-8a").json()["meaningful_change"]
    assert (promis["kind"], promis["value"], promis["provenance"]) == ("mid", 3.0, "conventional")
    assert promis["source"] and promis["note"]
    ucla = client.get("/v1/instruments/ucla-3").json()["meaningful_change"]
    assert ucla["kind"] == "none" and ucla["reason"]
    assert "value" not in ucla


def test_promis_8a_score_codes_are_score_codes_not_panels(client) -> None:
    for instrument_id, code in (("promis-si-8a", "77849-8"), ("promis-is-8a", "77850-6")):
        body = client.get(f"/v1/instruments/{instrument_id}").json()
        assert "panel" not in body, instrument_id
        assert body["scoring"]["code"]["code"] == code


def test_unknown_instrument_is_404_problem(client) -> None:
    response = client.get("/v1/instruments/nope")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["field"] == "instrument_id"


def test_score_ucla3(client) -> None:
    response = client.post(
        "/v1/instruments/ucla-3/score", json={"answers": {"1": 2, "2": 2, "3": 2}}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 6
    assert body["raw"] == 6
    assert body["missing"] == []
    assert body["band"] == {
        "code": "lonely",
        "label": "Lonely",
        "positive": True,
        "severity": "moderate",
        "signal": "loneliness",
        "provenance": "conventional",
    }


def test_score_accepts_list_form(client) -> None:
    answers = [
        {"linkId": "1", "value": 1},
        {"linkId": "2", "value": 1},
        {"linkId": "3", "value": 1},
    ]
    response = client.post("/v1/instruments/ucla-3/score", json={"answers": answers})
    assert response.status_code == 200
    assert response.json()["band"]["code"] == "not-lonely"


def test_score_lists_every_problem_by_item(client) -> None:
    answers = [
        {"linkId": "1", "value": 7},
        {"linkId": "1", "value": 2},
        {"linkId": "9", "value": 1},
        {"linkId": "2", "value": "often"},
        {"linkId": "3", "value": True},
    ]
    response = client.post("/v1/instruments/ucla-3/score", json={"answers": answers})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = {(e["field"], e["code"]) for e in response.json()["errors"]}
    assert errors == {
        ("answers.1", "not_an_option"),
        ("answers.1", "duplicate"),
        ("answers.9", "unknown_item"),
        ("answers.2", "type"),
        ("answers.3", "type"),
    }


def test_missing_items_forbidding_a_total_are_named(client) -> None:
    response = client.post("/v1/instruments/ucla-3/score", json={"answers": {"1": 2, "3": None}})
    assert response.status_code == 422
    body = response.json()
    assert {(e["field"], e["code"]) for e in body["errors"]} == {
        ("answers.2", "missing"),
        ("answers.3", "missing"),
    }
    assert "2 of 3 items unanswered" in body["detail"]


def test_djg6_scores_with_one_missing_item_and_withholds_the_subscale(client) -> None:
    answers = {"3": 3, "4": 3, "7": 3, "8": 3, "9": 3}
    body = client.post("/v1/instruments/djg-6/score", json={"answers": answers}).json()
    assert body["total"] == 5
    assert body["missing"] == ["10"]
    assert body["subscales"] == {"emotional": None, "social": 3}
    assert "emotional" in body["subscale_reasons"]


def test_disabled_licensed_instrument_is_403_with_reason(client) -> None:
    response = client.post(f"/v1/instruments/{PROMIS}/score", json={"answers": {}})
    assert response.status_code == 403
    body = response.json()
    assert "BELONG_LICENSED_INSTRUMENTS=promis" in body["detail"]
    assert body["errors"][0]["code"] == "unlicensed"


def test_licensed_instrument_scores_a_t_score(licensed_client, catalog) -> None:
    instrument: Instrument = catalog[PROMIS]
    answers = dict.fromkeys(instrument.link_ids, 3)
    body = licensed_client.post(f"/v1/instruments/{PROMIS}/score", json={"answers": answers}).json()
    assert body["raw"] == 12
    assert body["total"] == 56.1
    assert body["standard_error"] == 2.6
    assert body["band"]["code"] == "mild"


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b'{"answers": {"1": 1}', "body"),
        (b'{"answers": {"1": 1}, "extra": 1}', "extra"),
        (b'{"answer": {"1": 1}}', "answer"),
        (b'{"answers": {"1": [1]}}', "answers"),
        (b"[]", "body"),
    ],
)
def test_malformed_bodies_are_400_naming_the_field(client, content, field) -> None:
    response = client.post(
        "/v1/instruments/ucla-3/score",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 400
    assert body["errors"]
    assert any(e["field"].startswith(field) for e in body["errors"])


def test_oversized_body_is_413(client) -> None:
    content = b'{"answers": {"1": 1}, "pad": "' + b"x" * 2_000_000 + b'"}'
    response = client.post(
        "/v1/instruments/ucla-3/score",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")


def test_health(client) -> None:
    assert client.get("/health/live").json() == {"status": "ok", "checks": {}}
    assert client.get("/health/ready").status_code == 200
