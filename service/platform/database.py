"""Engine, transactions and time handling (PostgreSQL, through asyncpg)."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util.concurrency import greenlet_spawn


class Unavailable(Exception):
    """The database connection failed while the driver was used directly."""


UNAVAILABLE = (exc.OperationalError, exc.InterfaceError, Unavailable, OSError, TimeoutError)
"""Errors meaning the database cannot be reached now (answered 503, never 500)."""

_DRIVER_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, statement timeout
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    # A connection killed under an operation is left in it ("cannot switch to state 12"):
    # unusable, but the database may be fine a moment later.
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def utc_field(value: datetime, field: str) -> datetime:
    """A client's instant in UTC (a naive one is taken to be UTC already); :class:`OutOfRange`
    names the field when the instant cannot be expressed in UTC (years 1 and 9999 with an
    offset)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise OutOfRange(field) from None


class OutOfRange(ValueError):
    def __init__(self, field: str) -> None:
        super().__init__(f"{field}: beyond the range of dates Belong can store")
        self.field = field


def new_id() -> uuid.UUID:
    """A time-ordered UUID (version 7 layout), so new rows land at the end of indexes."""
    millis = time.time_ns() // 1_000_000
    value = (millis << 80) | (secrets.randbits(76) & ((1 << 76) - 1))
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)


def json_text(value: Any) -> str:
    """JSON as text, as json/jsonb parameters take it."""
    return msgspec.json.encode(value).decode()


_ASYNCPG = asyncpg_dialect()


class Compiled:
    """A SQLAlchemy Core statement compiled once (at import) to asyncpg's ``$n`` SQL, for
    :meth:`Database.driver`'s connection: the columns are named only in tables.py and the
    statement, and a request pays neither compilation nor SQLAlchemy's execution work."""

    def __init__(self, statement: sa.ClauseElement) -> None:
        compiled = statement.compile(dialect=_ASYNCPG)
        self.sql = compiled.string
        self.names = list(compiled.positiontup or ())

    def args(self, values: dict[str, Any]) -> list[Any]:
        """The parameters in ``$n`` order, from their bind names."""
        return [values[name] for name in self.names]


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 6,
        max_overflow: int = 0,
        pool_timeout: float = 5.0,
        statement_timeout_ms: int = 10_000,
    ) -> None:
        self.url = url
        # No pre-ping: it costs a round trip per checkout. A connection found dead fails one
        # request (503, Retry-After) and SQLAlchemy then discards the pool's connections.
        # hide_parameters: an error's text names the statement, never its values (patient
        # ids, answers, free text).
        self.engine: AsyncEngine = create_async_engine(
            url,
            hide_parameters=True,
            pool_pre_ping=False,
            json_serializer=json_text,
            json_deserializer=msgspec.json.decode,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            connect_args={
                "timeout": pool_timeout,
                "command_timeout": statement_timeout_ms / 1000,
                "server_settings": {"statement_timeout": str(statement_timeout_ms)},
            },
        )

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed on success, rolled back on any error.

        As with :meth:`driver`, a connection that cannot be had (refused, the server starting
        up or out of connections, the pool timed out) and a driver error meaning the database
        cannot serve now raise :class:`Unavailable`; SQLAlchemy reports most of them as a
        plain ``DBAPIError``."""
        conn = self.engine.connect()
        try:
            await conn.start()
        except Exception as error:
            raise Unavailable(type(error).__name__) from error
        try:
            async with conn.begin():
                yield conn
        except exc.DBAPIError as error:
            cause = error.orig.__cause__ if error.orig is not None else None
            if isinstance(cause, _DRIVER_UNAVAILABLE):
                # SQLAlchemy keeps a connection it does not see closed: drop it.
                await conn.invalidate()
                raise Unavailable(type(cause).__name__) from error
            raise
        finally:
            await conn.close()

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection's own asyncpg connection, for the hot paths: prepared
        statements without SQLAlchemy's per-statement work. No transaction is open, so
        each statement commits on its own.

        ``json``/``jsonb`` parameters take JSON text and results come back decoded (the
        codecs SQLAlchemy installs on each connection)."""
        try:
            pooled = await greenlet_spawn(self.engine.sync_engine.raw_connection)
        except Exception as error:  # cannot connect, or the pool timed out
            raise Unavailable(type(error).__name__) from error
        try:
            yield pooled.driver_connection
        except _DRIVER_UNAVAILABLE as error:
            # The pool does not see errors raised past SQLAlchemy: drop the connection.
            await greenlet_spawn(pooled.invalidate)
            raise Unavailable(type(error).__name__) from error
        finally:
            # No transaction was begun through SQLAlchemy, so returning the connection
            # needs no round trip (and no greenlet).
            pooled.close()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
