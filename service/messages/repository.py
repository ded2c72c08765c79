"""The messages' queries, scoped by clinic: what a referral's message tells (the clinic,
the service, the patient's language and wish not to be contacted), and the messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from service.platform.tables import clinics, directory_services, messages, patients, referrals
from service.platform.tenancy import ClinicScoped


@dataclass(frozen=True, slots=True)
class Recipient:
    """A referral as its message needs it."""

    patient_id: str
    clinic_name: str
    service_name: str
    profile: dict[str, Any]


class MessageStore(ClinicScoped):
    async def recipient(self, referral_id: str) -> Recipient | None:
        r, p, d = referrals.c, patients.c, directory_services.c
        query = (
            self._select(referrals, r.patient_id, clinics.c.name, d.name, p.profile)
            .join(clinics, clinics.c.id == r.clinic_id)
            .join(patients, sa.and_(p.clinic_id == r.clinic_id, p.id == r.patient_id))
            .join(directory_services, sa.and_(d.clinic_id == r.clinic_id, d.id == r.service_id))
            .where(r.id == referral_id)
        )
        row = (await self.conn.execute(query)).first()
        return None if row is None else Recipient(row[0], row[1], row[2], row[3])

    async def insert_message(self, **values: Any) -> Row[Any]:
        inserted = await self.conn.execute(
            sa.insert(messages).values(self._row(**values)).returning(messages)
        )
        row: Row[Any] = inserted.one()
        return row

    async def messages_of(self, referral_id: str) -> list[Row[Any]]:
        query = (
            self._select(messages)
            .where(messages.c.referral_id == referral_id)
            .order_by(messages.c.created_at.desc(), messages.c.id)
        )
        return list((await self.conn.execute(query)).all())

    async def referral_patient(self, referral_id: str) -> str | None:
        query = self._select(referrals, referrals.c.patient_id).where(referrals.c.id == referral_id)
        patient_id: str | None = (await self.conn.execute(query)).scalar_one_or_none()
        return patient_id
