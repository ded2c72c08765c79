"""The directory's routes on /v1 and /fhir, and the service both call."""

from litestar.di import NamedDependency

from service.directory.service import Directory, DirectoryCache
from service.platform.caller import Caller


def provide_directory(
    caller: NamedDependency[Caller], directory_cache: NamedDependency[DirectoryCache]
) -> Directory:
    return Directory(caller, directory_cache)
