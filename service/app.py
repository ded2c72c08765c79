"""The application factory."""

from __future__ import annotations

from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme, Server

from service.directory.controllers.app import DirectoryPages
from service.directory.controllers.fhir import HealthcareServiceController
from service.directory.controllers.v1 import DirectoryController
from service.directory.service import DirectoryCache
from service.fhir.metadata import MetadataController
from service.fhir.params import PrettyMiddleware
from service.instruments.controllers.fhir import QuestionnaireController
from service.instruments.controllers.v1 import InstrumentController
from service.instruments.loader import load_catalog
from service.instruments.service import Catalog
from service.messages.controllers.app import MessagePages
from service.messages.controllers.v1 import MessageController
from service.patient_links.controllers.app import PatientLinkAppPages
from service.patient_links.controllers.pages import PatientLinkPages
from service.patient_links.controllers.v1 import PatientLinkController
from service.patients.controllers.app import PatientPages
from service.patients.controllers.v1 import PatientController
from service.platform.audit import AuditMiddleware
from service.platform.audit_events import AuditEventController
from service.platform.audit_writer import AuditWriter
from service.platform.auth import BearerAuthentication, TokenCache
from service.platform.caller import provide_caller
from service.platform.database import Database
from service.platform.docs_page import SwaggerUiPage
from service.platform.embedded import database_url
from service.platform.errors import handle_http
from service.platform.health import HealthController
from service.platform.limits import (
    IncompleteBodyMiddleware,
    RateLimiter,
    TimeLimitMiddleware,
    check_request,
)
from service.platform.observability import MetricsController
from service.platform.observability import install as install_request_context
from service.platform.openapi import FinishedJson, FinishedYaml
from service.platform.openapi import install as install_openapi
from service.platform.secret_links import SecretLinkMiddleware
from service.platform.sessions import AppSessionMiddleware, FrameOrigins
from service.referrals.controllers.app import ReferralPages
from service.referrals.controllers.fhir import (
    OrganizationController,
    ServiceRequestController,
    TaskController,
)
from service.referrals.controllers.inbox import InboxPages
from service.referrals.controllers.links import HandoutLinkController
from service.referrals.controllers.v1 import ReferralController
from service.screenings.controllers.app import ScreeningPages
from service.screenings.controllers.fhir import (
    ObservationController,
    QuestionnaireResponseController,
)
from service.screenings.controllers.v1 import ScreeningController
from service.settings import Settings
from service.systems.controllers.cds import CdsServicesController
from service.systems.controllers.smart import SmartController
from service.web.controllers import SignInController
from service.web.launch_controllers import LaunchController
from service.web.oidc import RelyingParty
from service.web.pages import static_files, template_config
from service.web.smart_launch import SmartLaunchClient


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    catalog = Catalog.of(
        load_catalog(Path(settings.instruments_dir), settings.fhir_canonical_base),
        settings.licensed_instruments,
    )
    db = Database(
        database_url(settings.database_url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )

    def provide_catalog() -> Catalog:
        return catalog

    def provide_db() -> Database:
        return db

    directory_cache = DirectoryCache()

    def provide_directory_cache() -> DirectoryCache:
        return directory_cache

    relying_party = RelyingParty()
    app = Litestar(
        route_handlers=[
            HealthController,
            InstrumentController,
            QuestionnaireController,
            PatientController,
            PatientLinkController,
            ScreeningController,
            AuditEventController,
            DirectoryController,
            ReferralController,
            MessageController,
            MetadataController,
            QuestionnaireResponseController,
            ObservationController,
            ServiceRequestController,
            TaskController,
            OrganizationController,
            HealthcareServiceController,
            MetricsController,
            # SMART Backend Services and CDS Hooks 2.0 (systems signing their own JWTs)
            SmartController,
            CdsServicesController,
            # The clinician app (/app): server-rendered pages on the same services
            SignInController,
            LaunchController,
            PatientPages,
            ReferralPages,
            MessagePages,
            ScreeningPages,
            DirectoryPages,
            PatientLinkAppPages,
            # The patient's own pages (/p): opened by a secret link, no account
            PatientLinkPages,
            # The service's inbox (/inbox/{token}): pages opened by a secret link
            InboxPages,
            # The patient's handout by its short link (no account)
            HandoutLinkController,
            static_files(),
        ],
        dependencies={
            "catalog": Provide(provide_catalog, use_cache=True, sync_to_thread=False),
            "db": Provide(provide_db, use_cache=True, sync_to_thread=False),
            "caller": Provide(provide_caller, sync_to_thread=False),
            "directory_cache": Provide(
                provide_directory_cache, use_cache=True, sync_to_thread=False
            ),
        },
        middleware=[
            IncompleteBodyMiddleware,
            PrettyMiddleware,
            DefineMiddleware(TimeLimitMiddleware, seconds=settings.request_timeout_s),
            DefineMiddleware(BearerAuthentication, exclude=["^/schema", "^/app(/|$)"]),
            AppSessionMiddleware,
            SecretLinkMiddleware,
            AuditMiddleware,
        ],
        before_request=check_request,
        exception_handlers={HTTPException: handle_http, Exception: handle_http},
        state=State(
            {
                "catalog": catalog,
                "settings": settings,
                "db": db,
                "audit_writer": AuditWriter(db),
                "token_cache": TokenCache(),
                "directory_cache": directory_cache,
                "rate_limiter": RateLimiter(settings.rate_limit_per_minute),
                # The clinics' OpenID providers and EHRs: their discovery documents and keys
                "relying_party": relying_party,
                "smart_launch": SmartLaunchClient(relying_party),
                "frame_origins": FrameOrigins(db),
            }
        ),
        template_config=template_config(),
        on_shutdown=[db.dispose],
        request_max_body_size=settings.max_body_bytes,
        # Logging is set up by `belong serve` (JSON lines, see observability.py); unexpected
        # errors are logged once, by handle_http, without request data.
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="Belong",
            version="0.1.0",
            description=(
                "Scores loneliness and social-support questionnaires exactly as published, "
                "stores FHIR R4 Observations, and matches patients to support services."
            ),
            servers=[Server(url="/")],
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="A token from `belong clients create`",
                    )
                }
            ),
            path="/schema",
            # Only what Belong serves itself: no docs page that loads a CDN.
            render_plugins=[SwaggerUiPage(), FinishedJson(), FinishedYaml()],
        ),
        debug=settings.debug,
    )
    install_openapi(app)
    install_request_context(app)
    return app
