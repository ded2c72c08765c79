"""Request ids, metrics and logs: useful to operators, empty of patient data."""

from __future__ import annotations

import json
import logging

from prometheus_client import REGISTRY

from service.platform.observability import JsonFormatter

PATIENT = "pat-observed-4711"


def _screen(client, patient: str = PATIENT):
    return client.post(
        "/v1/screenings",
        json={
            "patient_id": patient,
            "instrument": "ucla-3",
            "completed_at": "2026-01-05T09:00:00Z",
            "answers": {"1": 3, "2": 3, "3": 2},
        },
    )


def test_request_id_is_echoed_or_made(client) -> None:
    given = client.get("/health/live", headers={"X-Request-ID": "ehr-42.a:b"})
    assert given.headers["x-request-id"] == "ehr-42.a:b"
    made = client.get("/health/live", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["x-request-id"] != "bad id with spaces"
    assert len(made.headers["x-request-id"]) == 32


def test_metrics_need_their_own_scope_and_carry_no_patient_data(client, make_clinic) -> None:
    assert _screen(client).status_code == 201
    assert client.get(f"/v1/patients/{PATIENT}").status_code == 200
    auditor = make_clinic(scopes=("audit:read",))
    assert client.get("/metrics", headers=auditor.headers).status_code == 403
    scraper = make_clinic(scopes=("metrics:read",))
    # The scraper's token reads metrics and nothing else: no audit trail, no patient.
    assert client.get("/v1/audit-events", headers=scraper.headers).status_code == 403
    assert client.get(f"/v1/patients/{PATIENT}", headers=scraper.headers).status_code == 403
    response = client.get("/metrics", headers=scraper.headers)
    assert response.status_code == 200
    text = response.text
    assert 'route="/v1/patients/{patient_id}"' in text
    assert 'belong_screenings_total{band="lonely",instrument="ucla-3"}' in text
    assert "belong_http_request_duration_seconds_bucket" in text
    assert PATIENT not in text


def _requests(method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("belong_http_requests_total", labels) or 0.0


def test_refusals_and_unknown_routes_are_logged_and_counted_as_they_were_answered(
    session_client, make_clinic, caplog
) -> None:
    """401, 403 and 404 keep their status in the access log and the metrics, carry the
    request id, and an unknown path is labelled ``unmatched``, never by the path."""
    reader = make_clinic(scopes=("screenings:read",))
    unknown = f"/v1/nowhere/{PATIENT}"
    calls = [
        ("/v1/audit-events", {}, 401, "/v1/audit-events"),
        ("/v1/audit-events", {"Authorization": "Bearer blg_not-a-token"}, 401, "/v1/audit-events"),
        ("/v1/audit-events", reader.headers, 403, "/v1/audit-events"),
        (unknown, reader.headers, 404, "unmatched"),
    ]
    before = {(route, status): _requests("GET", route, status) for _, _, status, route in calls}
    errors_before = _requests("GET", "/v1/audit-events", 500)
    with caplog.at_level(logging.INFO, logger="belong.access"):
        for number, (path, headers, status, _) in enumerate(calls):
            given = f"refused-{number}"
            response = session_client.get(path, headers={**headers, "X-Request-ID": given})
            assert response.status_code == status, (path, response.text)
            assert response.headers["x-request-id"] == given
    records = [r for r in caplog.records if r.name == "belong.access"]
    assert [(r.route, r.status) for r in records] == [(route, s) for _, _, s, route in calls]
    lines = [json.loads(JsonFormatter().format(r)) for r in records]
    assert [line["request_id"] for line in lines] == [f"refused-{n}" for n in range(len(calls))]
    assert all(PATIENT not in json.dumps(line) for line in lines)

    assert _requests("GET", "/v1/audit-events", 401) == before[("/v1/audit-events", 401)] + 2
    assert _requests("GET", "/v1/audit-events", 403) == before[("/v1/audit-events", 403)] + 1
    assert _requests("GET", "unmatched", 404) == before[("unmatched", 404)] + 1
    assert _requests("GET", "/v1/audit-events", 500) == errors_before
    scraper = make_clinic(scopes=("metrics:read",))
    assert PATIENT not in session_client.get("/metrics", headers=scraper.headers).text


def test_access_log_names_the_route_template_not_the_patient(client, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="belong.access"):
        assert _screen(client).status_code == 201
        client.get(f"/v1/patients/{PATIENT}/screenings")
    records = [r for r in caplog.records if r.name == "belong.access"]
    assert {r.route for r in records} >= {"/v1/screenings", "/v1/patients/{patient_id}/screenings"}
    lines = [JsonFormatter().format(r) for r in records]
    assert all(PATIENT not in line and "lonely" not in line for line in lines)
    parsed = json.loads(lines[0])
    assert {"time", "level", "logger", "message", "method", "route", "status"} <= set(parsed)
