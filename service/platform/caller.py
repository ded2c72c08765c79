"""The caller as the application services see it: the database, the clinic every query is
scoped to, and the API client or the app's user acting. One per request, built from the
authenticated principal; a use case opens its one transaction through
:meth:`Caller.transaction`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from litestar import Request
from litestar.di import NamedDependency

from service.platform.credentials import Principal
from service.platform.database import Database
from service.platform.tenancy import ClinicScoped

Store = TypeVar("Store", bound=ClinicScoped)


@dataclass(frozen=True, slots=True)
class Caller:
    db: Database
    clinic_id: uuid.UUID
    client_id: uuid.UUID | None
    user_id: uuid.UUID | None = None
    """The app's user acting (``client_id`` None), else the API client."""
    link_hash: str | None = None
    """The secret link acting (a service's inbox, a patient's own link): neither of the
    others is set."""

    @classmethod
    def of(cls, db: Database, principal: Principal) -> Caller:
        return cls(
            db, principal.clinic_id, principal.client_id, principal.user_id, principal.link_hash
        )

    @property
    def actor(self) -> dict[str, uuid.UUID | str | None]:
        """The actor columns of an event this caller records."""
        return {"client_id": self.client_id, "user_id": self.user_id, "link_hash": self.link_hash}

    @property
    def actor_id(self) -> uuid.UUID:
        actor = self.client_id or self.user_id
        assert actor is not None
        return actor

    @asynccontextmanager
    async def transaction(self, store: type[Store]) -> AsyncIterator[Store]:
        """One transaction, with ``store`` bound to it and to the caller's clinic:
        committed when the block ends, rolled back when it raises."""
        async with self.db.begin() as conn:
            yield store(conn, self.clinic_id)


def provide_caller(request: Request[Principal, Any, Any], db: NamedDependency[Database]) -> Caller:
    """The ``caller`` dependency: the request's principal, in its clinic."""
    return Caller.of(db, request.user)
