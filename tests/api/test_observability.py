"""Request ids, metrics and logs: useful to operators, empty of patient data."""

from __future__ import annotations

import json
import logging

from service.api.observability import JsonFormatter

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


def test_metrics_need_audit_scope_and_carry_no_patient_data(client, make_clinic) -> None:
    assert _screen(client).status_code == 201
    assert client.get(f"/v1/patients/{PATIENT}").status_code == 200
    reader = make_clinic(scopes=("screenings:read",))
    assert client.get("/metrics", headers=reader.headers).status_code == 403
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert 'route="/v1/patients/{patient_id}"' in text
    assert 'belong_screenings_total{band="lonely",instrument="ucla-3"}' in text
    assert "belong_http_request_duration_seconds_bucket" in text
    assert PATIENT not in text


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
