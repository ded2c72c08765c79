"""The patient links' queries, scoped to the clinic: who a link may be made for, and the
patient's live links ended."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from service.patient_links.model import FOLLOW_UP, SCREENING
from service.platform.database import utcnow
from service.platform.tables import patients, referrals, secret_links
from service.platform.tenancy import ClinicScoped


class PatientLinkStore(ClinicScoped):
    async def patient_known(self, patient_id: str) -> bool:
        query = self._select(patients, patients.c.id).where(patients.c.id == patient_id)
        return (await self.conn.execute(query)).first() is not None

    async def referral(self, referral_id: str) -> Row[Any] | None:
        query = self._select(referrals, referrals.c.patient_id, referrals.c.status).where(
            referrals.c.id == referral_id
        )
        return (await self.conn.execute(query)).first()

    async def revoke(self, patient_id: str, purposes: tuple[str, ...]) -> int:
        """End the patient's live links of these purposes (screening links name the
        patient; follow-up links one of the patient's referrals); how many there were."""
        link = secret_links.c
        subjects = []
        if SCREENING in purposes:
            subjects.append(
                sa.and_(link.purpose.startswith(f"{SCREENING}:"), link.subject_id == patient_id)
            )
        if FOLLOW_UP in purposes:
            theirs = self._select(referrals, referrals.c.id).where(
                referrals.c.patient_id == patient_id
            )
            subjects.append(sa.and_(link.purpose == FOLLOW_UP, link.subject_id.in_(theirs)))
        revoked = await self.conn.execute(
            sa.update(secret_links)
            .where(
                self._scoped(secret_links),
                link.kind == "patient",
                link.revoked_at.is_(None),
                sa.or_(*subjects),
            )
            .values(revoked_at=utcnow())
        )
        return revoked.rowcount
