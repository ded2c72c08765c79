"""The referrals' routes on /v1 and /fhir, and the service both call."""

from litestar.di import NamedDependency

from service.platform.caller import Caller
from service.referrals.service import Referrals


def provide_referrals(caller: NamedDependency[Caller]) -> Referrals:
    return Referrals(caller)
