"""The patient links' routes: /v1 (the clinic's systems), /app (the clinician app's
buttons) and /p (the patient's own pages), and the service they call."""

from datetime import timedelta

from litestar import Request
from litestar.di import NamedDependency

from service.instruments.service import Catalog
from service.patient_links.service import PatientLinks
from service.platform.caller import Caller
from service.platform.origin import public_origin


def provide_patient_links(
    request: Request, caller: NamedDependency[Caller], catalog: NamedDependency[Catalog]
) -> PatientLinks:
    settings = request.app.state.settings
    lifetime = timedelta(days=settings.patient_link_days)
    return PatientLinks(caller, catalog, lifetime, public_origin(request))
