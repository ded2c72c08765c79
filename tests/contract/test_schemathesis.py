"""Schemathesis against a live server: the published document is exactly what it does.

Every operation of openapi/openapi.json (which a test keeps equal to what the app
serves) gets generated cases, valid and invalid, with a real token and seeded data,
and every check on: no server errors, status codes, content types and response bodies
conforming to the document, negative data rejected, positive data accepted. Then the
stateful phase follows the document's links from creates to reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from service.cli import OPENAPI_DIR
from service.platform.credentials import SCOPES
from tests.conftest import scratch_database
from tests.live import LiveServer, belong, live_server

EXAMPLES = int(os.environ.get("BELONG_SCHEMATHESIS_EXAMPLES", "25"))
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            # A schema-valid request may still break a documented business rule: consent
            # not given, a referral step the state machine forbids, an unknown service.
            # Those answer 409, 412 or 422 with problem+json; a 400 for schema-valid data
            # (the document looser than validation) still fails.
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "412", "422", "429"]
            }
        },
        # FHIR searches ignore parameters they do not have (lenient handling, as their
        # descriptions say; Prefer: handling=strict refuses them): a request with extra
        # query parameters is not negative data there. Everywhere else it still is.
        "operations": [
            {
                "include-operation-id-regex": "^fhir_search_",
                "generation": {"allow-extra-parameters": False},
            },
            # A QuestionnaireResponse body is FHIR's deep, mostly optional structure: the
            # coverage phase's boundary cases of every field of it took about five
            # minutes for each of its three writes, measured. The fuzzing phase still
            # sends them valid and invalid bodies.
            {
                "include-operation-id-regex": "^fhir_(create|update|conditional_update)_"
                "questionnaire_response$",
                "phases": {"coverage": {"enabled": False}},
            },
        ],
    }
)
schema = schemathesis.openapi.from_path(OPENAPI_DIR / "openapi.json", config=CONFIG)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("schemathesis")
    url = scratch_database("schemathesis")
    quiet = {"BELONG_RATE_LIMIT_PER_MINUTE": "0"}
    with live_server(url, folder, SCOPES, clinic="schemathesis", extra_env=quiet) as live:
        belong(
            "directory",
            "import",
            "--clinic",
            "schemathesis",
            "deploy/seed/directory.hsds.json",
            env=live.env,
        )
        yield live


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
)
def test_every_operation_conforms(case, server: LiveServer) -> None:
    case.call_and_validate(base_url=server.origin, headers=server.headers)


def test_stateful_links_from_creates_to_reads(server: LiveServer) -> None:
    """The stateful phase: chains of calls that follow the document's links."""

    # The handout's operations answer HTML or PDF and revoke links: the conformance phase
    # above covers them; as link targets they only reshuffle the chains drawn.
    stateful = schema.exclude(operation_id_regex="handout")

    class Workflow(stateful.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case):  # type: ignore[no-untyped-def]
            return {"base_url": server.origin, "headers": server.headers}

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=max(10, EXAMPLES // 2),
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            derandomize=True,
        )
    )
