"""Engine, transactions and time handling shared by PostgreSQL and SQLite."""

from __future__ import annotations

import os
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
from sqlalchemy import event, exc
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


def as_utc(value: datetime) -> datetime:
    """Aware UTC; a naive value (as SQLite returns) is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utc_field(value: datetime, field: str) -> datetime:
    """``as_utc`` for a client's value; :class:`OutOfRange` names the field when the instant
    cannot be expressed in UTC (years 1 and 9999 with an offset)."""
    try:
        return as_utc(value)
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


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def ensure_sqlite_directory(url: str) -> None:
    """SQLite creates the file but not its folder (the default is ./var/belong.db)."""
    path = sa.engine.make_url(url).database
    if is_sqlite(url) and path and path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


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
        kwargs: dict[str, Any] = {
            "hide_parameters": True,
            "pool_pre_ping": False,
            "json_serializer": json_text,
            "json_deserializer": msgspec.json.decode,
        }
        if is_sqlite(url):
            ensure_sqlite_directory(url)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=pool_timeout,
                connect_args={
                    "timeout": pool_timeout,
                    "command_timeout": statement_timeout_ms / 1000,
                    "server_settings": {"statement_timeout": str(statement_timeout_ms)},
                },
            )
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if is_sqlite(url):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

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

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection's own asyncpg connection, for the hot paths: prepared
        statements without SQLAlchemy's per-statement work. No transaction is open, so
        each statement commits on its own. PostgreSQL only.

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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Transactions are begun explicitly (see _sqlite_begin), so writers queue on the
    # busy timeout instead of failing on a lock upgrade.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")
