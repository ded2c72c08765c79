"""Audit events written with group commit.

Every read of patient data is audited before its answer leaves, so on its own each read
would be a write transaction with a commit (a WAL flush) of its own. Here an event waits
in a queue while the batch before it is written; the next batch takes everything queued
by then, as one INSERT and one commit. Alone, a read waits for its own insert, as before;
under load, one commit carries many reads. :meth:`AuditWriter.write` returns only once
the event is committed, so no answer leaves without its audit record.

A write's own audit event is not written here: it goes into the write's statement or
transaction, so the two commit together.
"""

from __future__ import annotations

import asyncio
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from service.platform.audit import AuditEvent
from service.platform.database import UNAVAILABLE, Compiled, Database
from service.platform.tables import audit_events


def _insert_batch() -> sa.Insert:
    """One INSERT of a batch: each column's values as one array, unnested into rows."""
    columns = list(audit_events.c)
    # Arrays of unsized types: a cast to varchar(n)[] would cut a long value short.
    arrays = [
        sa.bindparam(c.name, type_=ARRAY(sa.String() if isinstance(c.type, sa.String) else c.type))
        for c in columns
    ]
    rows = sa.func.unnest(*arrays).table_valued(*(c.name for c in columns)).render_derived("batch")
    return sa.insert(audit_events).from_select([c.name for c in columns], sa.select(rows))


_INSERT_BATCH = Compiled(_insert_batch())

MAX_BATCH = 500

Queued = tuple[uuid.UUID, AuditEvent, "asyncio.Future[None]"]


class AuditWriter:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: list[Queued] = []
        self._flushing: asyncio.Task[None] | None = None

    async def write(self, clinic_id: uuid.UUID, event: AuditEvent) -> None:
        """Store ``event`` for ``clinic_id``; returns once it is committed, raises if it
        could not be."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((clinic_id, event, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                await self._insert(batch)
            except UNAVAILABLE as error:  # the database, not the events: fail them all
                _settle(batch, error)
            except Exception as error:
                if len(batch) == 1:
                    _settle(batch, error)
                    continue
                # One bad event must not cost the others their record: one at a time.
                for queued in batch:
                    try:
                        await self._insert([queued])
                    except Exception as alone:
                        _settle([queued], alone)
                    else:
                        _settle([queued], None)
            else:
                _settle(batch, None)

    async def _insert(self, batch: list[Queued]) -> None:
        rows = [{**event.columns(), "clinic_id": clinic_id} for clinic_id, event, _ in batch]
        columns = {name: [row[name] for row in rows] for name in _INSERT_BATCH.names}
        async with self.db.driver() as conn:
            await conn.execute(_INSERT_BATCH.sql, *_INSERT_BATCH.args(columns))


def _settle(batch: list[Queued], error: Exception | None) -> None:
    for _, _, future in batch:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
