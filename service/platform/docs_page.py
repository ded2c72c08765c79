"""The API docs page at /schema: Swagger UI from the package's own pinned copy.

Litestar's render plugins load their scripts, styles, fonts and favicon from CDNs, which
leaves the page blank on a closed clinic network. This page loads nothing but what Belong
serves: the unmodified files of the npm package ``swagger-ui-dist`` (version below) in
``static/swagger-ui``, and the document from /schema/openapi.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

SWAGGER_UI_VERSION = "5.35.0"
ASSETS = Path(__file__).resolve().parent / "static" / "swagger-ui"
ASSETS_PATH = "/static"
"""Where the assets are served, under the OpenAPI router's path (/schema)."""


class SwaggerUiPage(OpenAPIRenderPlugin):
    """Swagger UI at /schema (and /schema/swagger), its assets at /schema/static."""

    def __init__(self) -> None:
        super().__init__(path=["/", "/swagger"], favicon="", style="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        document = self.get_openapi_json_route(request)
        assets = document.rsplit("/", 1)[0] + ASSETS_PATH
        title = openapi_schema["info"]["title"]
        # validatorUrl null: Swagger UI would otherwise send the document to its public
        # validator for a badge.
        return f"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{title} API</title>
    <link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
    <link rel="stylesheet" href="{assets}/swagger-ui.css">
    <style>body {{ margin: 0 }}</style>
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="{assets}/swagger-ui-bundle.js"></script>
    <script>
      window.ui = SwaggerUIBundle({{
        url: "{document}",
        dom_id: "#swagger-ui",
        deepLinking: true,
        validatorUrl: null,
        presets: [SwaggerUIBundle.presets.apis],
        layout: "BaseLayout",
      }});
    </script>
  </body>
</html>
""".encode()

    def receive_router(self, router: Router) -> None:
        router.register(
            create_static_files_router(
                path=ASSETS_PATH,
                directories=[ASSETS],
                name="swagger-ui-assets",
                include_in_schema=False,
            )
        )
