"""Reading the clinic's audit trail (what :mod:`service.platform.audit_writer` wrote)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from service.platform.tables import audit_events, secret_links
from service.platform.tenancy import ClinicScoped


@dataclass(frozen=True, slots=True)
class AuditQuery:
    patient_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    offset: int = 0


class AuditStore(ClinicScoped):
    async def audit_events(self, q: AuditQuery) -> tuple[list[Row[Any]], int]:
        """One page of events, newest first, and how many match in all; an event a secret
        link made says the link's kind and subject (``link_kind``, ``link_subject_id``)."""
        conditions: list[Any] = []
        if q.patient_id is not None:
            conditions.append(audit_events.c.patient_id == q.patient_id)
        if q.since is not None:
            conditions.append(audit_events.c.recorded_at >= q.since)
        if q.until is not None:
            conditions.append(audit_events.c.recorded_at < q.until)
        count = self._select(audit_events, sa.func.count()).where(*conditions)
        total = (await self.conn.execute(count)).scalar_one()
        page = (
            self._select(
                audit_events,
                *audit_events.c,
                secret_links.c.kind.label("link_kind"),
                secret_links.c.subject_id.label("link_subject_id"),
            )
            .outerjoin(secret_links, secret_links.c.token_hash == audit_events.c.link_hash)
            .where(*conditions)
            .order_by(audit_events.c.recorded_at.desc(), audit_events.c.id.desc())
            .limit(q.limit)
            .offset(q.offset)
        )
        return list((await self.conn.execute(page)).all()), total
