"""The application factory."""

from __future__ import annotations

from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, Server

from service.api.catalog import Catalog
from service.api.errors import handle_http
from service.api.fhir.questionnaire import QuestionnaireController
from service.api.health import HealthController
from service.api.v1.instruments import InstrumentController
from service.domain.instruments import load_catalog
from service.settings import Settings


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    catalog = Catalog.of(
        load_catalog(Path(settings.instruments_dir)), settings.licensed_instruments
    )

    def provide_catalog() -> Catalog:
        return catalog

    return Litestar(
        route_handlers=[HealthController, InstrumentController, QuestionnaireController],
        dependencies={"catalog": Provide(provide_catalog, use_cache=True, sync_to_thread=False)},
        exception_handlers={HTTPException: handle_http, Exception: handle_http},
        state=State({"catalog": catalog, "settings": settings}),
        request_max_body_size=settings.max_body_bytes,
        # Unexpected errors are logged once, by handle_http, without request data.
        logging_config=LoggingConfig(
            log_exceptions="never",
            root={"level": settings.log_level, "handlers": ["queue_listener"]},
        ),
        openapi_config=OpenAPIConfig(
            title="Belong",
            version="0.1.0",
            description=(
                "Scores loneliness and social-support questionnaires exactly as published, "
                "stores FHIR R4 Observations, and matches patients to support services."
            ),
            servers=[Server(url="/")],
            components=Components(),
            path="/schema",
        ),
        debug=settings.debug,
    )
