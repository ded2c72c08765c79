"""A test EHR for SMART App Launch 2.x: tests/js/smart_ehr.mjs (the npm package oidc-provider
as the EHR's authorization server, a small FHIR server, an EHR page that frames the app)
under Node, started on a free loopback port and stopped after; and the calls that steer it
(a launch, the standalone context, a tampered id_token)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from service.settings import PROJECT_ROOT
from tests.node_peer import running_node_peer

SCRIPT = PROJECT_ROOT / "tests" / "js" / "smart_ehr.mjs"
REDIRECT_URI = "https://belong.test/app/launch/callback"
PUBLIC_CLIENT_ID = "belong-smart-public"
CONFIDENTIAL_CLIENT_ID = "belong-smart"
CLIENT_SECRET = "a-client-secret-of-belong-at-the-test-ehr"
CLINICIAN = {"sub": "dr-lee", "fhirUser": "Practitioner/123", "name": "Dr Lee"}
PATIENTS = {
    "p-1": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN-0001"}],
    "p-2": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN-0002"}],
}
STANDALONE_CONTEXT = {"patient": "p-2"}


def smart_clients(redirect_uri: str = REDIRECT_URI) -> list[dict[str, Any]]:
    """A public client (PKCE, no secret) and a confidential one, both redirecting to
    ``redirect_uri``."""
    return [
        {
            "client_id": PUBLIC_CLIENT_ID,
            "token_endpoint_auth_method": "none",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
        },
        {
            "client_id": CONFIDENTIAL_CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
        },
    ]


@dataclass(frozen=True)
class TestEhr:
    """A running smart_ehr.mjs. ``issuer`` is its authorization server's (the id_tokens'
    ``iss``), ``fhir_base`` the ``iss`` of a launch; ``plain_fhir_base`` a FHIR base of the
    same EHR whose smart-configuration offers ``plain`` PKCE."""

    __test__ = False  # not a test class, whatever its name

    origin: str
    issuer: str
    fhir_base: str
    plain_fhir_base: str
    port: int
    process: subprocess.Popen[str]

    def _control(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.origin}/control/{name}", json=body)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def new_launch(self, **context: Any) -> str:
        """A launch id carrying ``context`` (patient, and encounter, need_patient_banner,
        smart_style_url, appContext if given) into the token response."""
        launch: str = self._control("launch", context)["launch"]
        return launch

    def launch_page(self, app_launch_url: str, **context: Any) -> str:
        """The URL of the EHR page framing ``app_launch_url`` in a new launch of ``context``."""
        launch = self.new_launch(**context)
        query = httpx.QueryParams(launch_url=app_launch_url, iss=self.fhir_base, launch=launch)
        return f"{self.origin}/ehr?{query}"

    def set_standalone(self, **context: Any) -> None:
        """The context of the standalone launches (scope launch/patient) from now on."""
        self._control("standalone", context)

    def tamper_next_id_token(self, **claims: Any) -> None:
        """The next token response's id_token re-signed with ``claims`` overridden; also
        ``exp_offset`` (seconds from now), ``drop`` (True: no id_token; a list: claims
        removed), ``unpublished_key`` (True: signed by a key missing from the JWKS)."""
        self._control("next-id-token", claims)

    def reset(self) -> None:
        """Forget the launches, issued codes and tampering; the standalone context as
        configured."""
        self._control("reset", {})


@contextlib.contextmanager
def running_ehr(**config: Any) -> Iterator[TestEhr]:
    """smart_ehr.mjs with ``config`` (its fields: see the script) over defaults (the clients
    of :func:`smart_clients`, :data:`CLINICIAN`, :data:`PATIENTS`, :data:`STANDALONE_CONTEXT`),
    until the block ends."""
    config = {
        "clients": smart_clients(),
        "accounts": [CLINICIAN],
        "patients": PATIENTS,
        "standalone_context": STANDALONE_CONTEXT,
        **config,
    }
    with running_node_peer(SCRIPT, config, "the test EHR") as (ready, process):
        origin = ready["origin"]
        yield TestEhr(
            origin=origin,
            issuer=ready["issuer"],
            fhir_base=f"{origin}/fhir",
            plain_fhir_base=f"{origin}/fhir-plain",
            port=ready["port"],
            process=process,
        )
