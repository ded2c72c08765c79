"""fhir-kit-client (npm, pinned in tests/js) under Node against a real ``belong serve``:
``_summary=count`` and ``_count=0`` give the total without entries, and ``nextPage``
follows the next links through every page. ``make install`` runs ``npm ci`` in tests/js."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import scratch_database
from tests.live import LiveServer, live_server

SCRIPT = Path(__file__).resolve().parent.parent / "js" / "fhir_kit_client.mjs"
OFTEN = {"system": "http://loinc.org", "code": "LA10044-8", "display": "Often"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("fhir_kit_client")
    url = scratch_database("fhir_kit_client")
    scopes = ("screenings:write", "screenings:read")
    with live_server(url, folder, scopes, clinic="fhir-kit-client") as live:
        yield live


def test_fhir_kit_client_counts_and_pages(server: LiveServer) -> None:
    node = shutil.which("node")
    assert node is not None, "Node 20 runs the npm clients' tests"
    assert (SCRIPT.parent / "node_modules" / "fhir-kit-client").is_dir(), "run make install"
    patient = f"pat-{uuid.uuid4().hex[:12]}"
    for _ in range(2):  # 10 Observations
        created = httpx.post(
            f"{server.origin}/fhir/QuestionnaireResponse",
            json={
                "resourceType": "QuestionnaireResponse",
                "questionnaire": "https://belong.example/fhir/Questionnaire/ucla-3",
                "status": "completed",
                "subject": {"reference": f"Patient/{patient}"},
                "authored": "2025-06-01T09:00:00Z",
                "item": [{"linkId": str(n), "answer": [{"valueCoding": OFTEN}]} for n in (1, 2, 3)],
            },
            headers={**server.headers, "Content-Type": "application/fhir+json"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
    done = subprocess.run(
        [node, str(SCRIPT), f"{server.origin}/fhir", server.token, patient],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["summaryTotal"] == 10 and result["summaryEntries"] == 0
    assert result["zeroTotal"] == 10 and result["zeroEntries"] == 0
    assert result["pages"] == 5
    assert len(result["ids"]) == len(set(result["ids"])) == 10
