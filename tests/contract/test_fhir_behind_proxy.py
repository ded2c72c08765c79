"""Belong behind a TLS-terminating reverse proxy, as an EHR integration runs it.

A real ``belong serve`` trusts 127.0.0.1 as its proxy (``BELONG_TRUSTED_PROXIES``). The
proxy here is a real one, on a loopback port: clients reach ``https://ehr-proxy.example``
through it (an HTTP CONNECT tunnel, as ``requests`` does for an https URL via a proxy), it
terminates TLS with a certificate for that name from a CA made for the test, and forwards
each request to Belong over plain http with ``X-Forwarded-Proto: https`` and
``X-Forwarded-Host: ehr-proxy.example``. fhirpy and fhirclient, knowing only the public
base, create a QuestionnaireResponse, follow ``next`` through every page and read the
``Location`` they were given; every link, ``fullUrl`` and ``Location`` is on the public
origin.
"""

from __future__ import annotations

import datetime as dt
import http.server
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fhir.resources.R4B.bundle import Bundle
from fhirclient import client as smart_client
from fhirclient.models.bundle import Bundle as SmartBundle
from fhirclient.models.observation import Observation as SmartObservation
from fhirpy import SyncFHIRClient

from tests.conftest import scratch_database
from tests.live import live_server

PUBLIC_HOST = "ehr-proxy.example"
PUBLIC = f"https://{PUBLIC_HOST}"
TIMEOUT = 10.0
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}
QUESTIONNAIRE = "https://belong.example/fhir/Questionnaire/ucla-3"


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for PUBLIC_HOST it signs: (ca, cert, key) files."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Belong test proxy CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PUBLIC_HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(PUBLIC_HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class _Forwarding(http.server.BaseHTTPRequestHandler):
    """One request inside the tunnel, forwarded to Belong with the forwarding headers."""

    protocol_version = "HTTP/1.1"
    upstream: str

    def _forward(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers.pop("Host", None)
        headers["X-Forwarded-Proto"] = "https"
        headers["X-Forwarded-Host"] = PUBLIC_HOST
        answer = httpx.request(
            self.command,
            f"{self.upstream}{self.path}",
            headers=headers,
            content=body,
            timeout=TIMEOUT,
        )
        self.send_response(answer.status_code)
        for name, value in answer.headers.multi_items():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_POST = do_PUT = _forward

    def log_message(self, *args: Any) -> None:
        pass


class _Tunnel(http.server.BaseHTTPRequestHandler):
    """``CONNECT ehr-proxy.example:443``: TLS terminated here, requests forwarded."""

    protocol_version = "HTTP/1.1"
    tls: ssl.SSLContext
    forwarding: type[_Forwarding]

    def do_CONNECT(self) -> None:
        assert self.path == f"{PUBLIC_HOST}:443", self.path
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        with self.tls.wrap_socket(self.connection, server_side=True) as inner:
            self.forwarding(inner, self.client_address, self.server)
        self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


@dataclass(frozen=True)
class Proxied:
    token: str
    proxy: str
    """The proxy's own URL, http://127.0.0.1:PORT"""
    ca: str
    """The CA file that trusts the proxy's certificate"""

    @property
    def requests_config(self) -> dict[str, Any]:
        return {"proxies": {"https": self.proxy}, "verify": self.ca, "timeout": TIMEOUT}

    def session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        session.proxies = {"https": self.proxy}
        session.verify = self.ca
        session.headers["Authorization"] = f"Bearer {self.token}"
        return session


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    folder = tmp_path_factory.mktemp("proxied")
    ca, cert, key = _certificates(folder)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    env = {"BELONG_TRUSTED_PROXIES": "127.0.0.1"}
    scopes = ("screenings:write", "screenings:read", "referrals:read")
    url = scratch_database("behind_proxy")
    with live_server(url, folder, scopes, clinic="behind-proxy", extra_env=env) as live:
        forwarding = type("Forwarding", (_Forwarding,), {"upstream": live.origin})
        tunnel = type("Tunnel", (_Tunnel,), {"tls": tls, "forwarding": forwarding})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), tunnel)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            host, port = server.server_address[:2]
            yield Proxied(live.token, f"http://{host}:{port}", str(ca))
        finally:
            server.shutdown()
            server.server_close()


def ucla3_response(patient: str) -> dict[str, Any]:
    often = {"system": "http://loinc.org", "code": "LA10044-8", "display": "Often"}
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": QUESTIONNAIRE,
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": "2025-06-01T09:00:00Z",
        "item": [{"linkId": str(n), "answer": [{"valueCoding": often}]} for n in (1, 2, 3)],
    }


def public_links(bundle: dict[str, Any]) -> None:
    urls = [x["url"] for x in bundle["link"]] + [e["fullUrl"] for e in bundle.get("entry", [])]
    assert urls and all(u.startswith(f"{PUBLIC}/fhir/") for u in urls), urls


def test_the_proxy_is_the_only_way_in(proxied: Proxied) -> None:
    """The public name resolves nowhere: every request below went through the proxy."""
    with pytest.raises(OSError):
        socket.getaddrinfo(PUBLIC_HOST, 443)


def test_create_answers_an_absolute_location_with_its_version(proxied: Proxied) -> None:
    session = proxied.session()
    created = session.post(
        f"{PUBLIC}/fhir/QuestionnaireResponse",
        json=ucla3_response(f"pat-{uuid.uuid4().hex[:12]}"),
        headers={"Content-Type": "application/fhir+json"},
        timeout=TIMEOUT,
    )
    assert created.status_code == 201, created.text
    qr_id = created.json()["id"]
    location = created.headers["Location"]
    assert location == f"{PUBLIC}/fhir/QuestionnaireResponse/{qr_id}/_history/1"
    assert created.headers["ETag"] == 'W/"1"'
    version = session.get(location, timeout=TIMEOUT)
    assert version.status_code == 200, version.text
    assert version.json() == created.json()
    assert version.headers["ETag"] == 'W/"1"'
    missing = session.get(location.replace("_history/1", "_history/2"), timeout=TIMEOUT)
    assert missing.status_code == 404


def test_fhirpy_counts_and_follows_next_through_the_proxy(proxied: Proxied) -> None:
    client = SyncFHIRClient(
        f"{PUBLIC}/fhir",
        authorization=f"Bearer {proxied.token}",
        requests_config=proxied.requests_config,
    )
    patient = f"pat-{uuid.uuid4().hex[:12]}"
    for _ in range(3):  # 15 Observations
        client.resource("QuestionnaireResponse", **ucla3_response(patient)).create()
    search = client.resources("Observation").search(patient=patient)
    assert search.count() == 15
    found = search.limit(4).fetch_all()  # four pages, by their next links
    ids = [o.id for o in found]
    assert len(ids) == len(set(ids)) == 15
    session = proxied.session()
    url: str | None = f"{PUBLIC}/fhir/Observation?patient={patient}&_count=4"
    pages = 0
    while url is not None and pages < 10:
        bundle = session.get(url, timeout=TIMEOUT).json()
        Bundle.model_validate(bundle)
        public_links(bundle)
        url = next((x["url"] for x in bundle["link"] if x["relation"] == "next"), None)
        pages += 1
    assert pages == 4


@pytest.mark.parametrize("resource_type", ["ServiceRequest", "Task", "HealthcareService"])
def test_every_search_links_to_the_public_origin(proxied: Proxied, resource_type: str) -> None:
    session = proxied.session()
    bundle = session.get(f"{PUBLIC}/fhir/{resource_type}?_count=1", timeout=TIMEOUT).json()
    Bundle.model_validate(bundle)
    public_links(bundle)


def test_questionnaire_search_links_to_the_public_origin(proxied: Proxied) -> None:
    session = proxied.session()
    bundle = session.get(f"{PUBLIC}/fhir/Questionnaire?_count=1", timeout=TIMEOUT).json()
    public_links(bundle)
    assert any(x["relation"] == "next" for x in bundle["link"])


def test_fhirclient_pages_through_the_proxy(proxied: Proxied) -> None:
    fhir = smart_client.FHIRClient(
        settings={"app_id": "belong-proxy-tests", "api_base": f"{PUBLIC}/fhir/"}
    )
    fhir.server.session = proxied.session()
    patient = f"pat-{uuid.uuid4().hex[:12]}"
    for _ in range(2):
        created = fhir.server.session.post(
            f"{PUBLIC}/fhir/QuestionnaireResponse",
            json=ucla3_response(patient),
            headers={"Content-Type": "application/fhir+json"},
            timeout=TIMEOUT,
        )
        assert created.status_code == 201
    bundle = SmartObservation.where(struct={"patient": patient, "_count": "3"}).perform(fhir.server)
    seen: list[str] = []
    for _ in range(10):
        assert isinstance(bundle, SmartBundle)
        assert all(
            entry.fullUrl.startswith(f"{PUBLIC}/fhir/Observation/") for entry in bundle.entry
        )
        seen.extend(entry.resource.id for entry in bundle.entry)
        following = [link.url for link in bundle.link if link.relation == "next"]
        if not following:
            break
        assert following[0].startswith(f"{PUBLIC}/fhir/Observation?")
        bundle = SmartBundle(fhir.server.request_json(following[0]))
    assert len(seen) == len(set(seen)) == 10
