"""The screenings' routes on /v1 and /fhir, and the service both call."""

from litestar.di import NamedDependency

from service.platform.caller import Caller
from service.screenings.service import Screenings


def provide_screenings(caller: NamedDependency[Caller]) -> Screenings:
    return Screenings(caller)
