"""The exported OpenAPI document is what the app serves, and it is finished."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from service.cli import OPENAPI_DIR, openapi_documents


def test_exported_documents_match_the_app() -> None:
    for name, text in openapi_documents().items():
        assert (OPENAPI_DIR / name).read_text(encoding="utf-8") == text, (
            f"openapi/{name} is stale: run `make schemas`"
        )


def test_served_document_is_the_finished_one(session_client) -> None:
    served = session_client.get("/schema/openapi.json").json()
    assert served == json.loads(openapi_documents()["openapi.json"])
    screening = served["paths"]["/v1/screenings"]["post"]
    assert screening["security"] == [{"bearer": ["screenings:write"]}]
    assert set(screening["responses"]) >= {"201", "400", "401", "403", "409", "413", "415", "422"}
    problem = screening["responses"]["422"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/ProblemDetails"}
    assert "links" in screening["responses"]["201"]
    observation = served["paths"]["/fhir/Observation"]["get"]["responses"]
    assert (
        "application/fhir+json" in observation["404" if "404" in observation else "400"]["content"]
    )
    public = served["paths"]["/v1/instruments"]["get"]
    assert public["security"] == []


def test_list_item_constraints_survive(session_client) -> None:
    schemas = session_client.get("/schema/openapi.json").json()["components"]["schemas"]
    languages = schemas["PatientProfile"]["properties"]["languages"]
    assert languages["items"]["pattern"].startswith("^[A-Za-z]{2,3}")
    assert languages["maxItems"] == 10


class _Assets(HTMLParser):
    """Every URL a page makes the browser fetch: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


DOCS_PAGES = ("/schema", "/schema/swagger", "/schema/redoc", "/schema/elements", "/schema/rapidoc")


def test_the_docs_page_loads_only_assets_served_by_belong(session_client) -> None:
    """/schema works on a closed network: no CDN, every asset from the package."""
    page = session_client.get("/schema")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for path in DOCS_PAGES:
        response = session_client.get(path)
        if response.status_code == 404:
            continue
        assert response.status_code == 200, path
        parser = _Assets()
        parser.feed(response.text)
        assert parser.urls, path
        for url in parser.urls:
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc, (path, url)
            assert url.startswith("/schema/"), (path, url)
            asset = session_client.get(url)
            assert asset.status_code == 200, url
            assert asset.content, url
            if url.endswith(".css"):  # nor does a style sheet fetch fonts or images elsewhere
                assert not re.search(r"url\(\s*['\"]?(https?:)?//|@import", asset.text), url
        assert "https://" not in "".join(parser.urls)


def test_consent_is_documented_as_given(session_client) -> None:
    """A referral without consent is refused (422), so the document allows only true."""
    consent = session_client.get("/schema/openapi.json").json()["components"]["schemas"]["Consent"]
    assert consent["properties"]["given"]["const"] is True
    assert "given" in consent["required"]


SHARED = ("service.platform.", "service.fhir.")
"""What the finishing step may import: the platform and the FHIR wire types, no feature."""


def test_the_finishing_step_imports_no_controller_and_writes_no_litestar_internals() -> None:
    import ast
    import inspect

    import service.platform.openapi as finishing

    tree = ast.parse(inspect.getsource(finishing))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert [m for m in imported if m.startswith("service.") and not m.startswith(SHARED)] == []
    assert not [m for m in imported if m.startswith("litestar._")]
    private_writes = [
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and node.attr.startswith("_")
    ]
    assert private_writes == []


def test_served_yaml_is_the_finished_document(session_client) -> None:
    import yaml

    served = yaml.safe_load(session_client.get("/schema/openapi.yaml").text)
    assert served == json.loads(openapi_documents()["openapi.json"])
