"""The messages' routes on /v1 and /app, and the service both call."""

from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from service.messages.outbox import Outbox
from service.messages.service import Messages
from service.platform.caller import Caller


def provide_messages(request: Request[Any, Any, Any], caller: NamedDependency[Caller]) -> Messages:
    return Messages(caller, Outbox.of(request.app.state.settings))
