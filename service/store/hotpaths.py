"""The hot paths: what a screening's answer needs to know, writing a scored submission,
searching Observations, and a patient's referrals.

Each is one round trip: a single statement on the pooled connection's own
asyncpg connection (prepared and cached by the driver). The write is one statement of
data-modifying CTEs, so it is atomic without a transaction block: the idempotency key, the
patient, the QuestionnaireResponse, its screenings and Observations and the audit event land
together or not at all. Every statement here is scoped by ``clinic_id`` as ClinicStore's are.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import fields
from typing import Any

import asyncpg
import msgspec

from service.store.audit_writer import AUDIT_COLUMNS
from service.store.database import Database, json_text
from service.store.records import (
    HeldKey,
    KeyRecord,
    LatestScreening,
    PatientContext,
    ReferralRecord,
    StoredJson,
    SubmissionRows,
    Written,
)
from service.store.repository import ClinicStore, ObservationQuery


class _Statement:
    """SQL written with ``:name`` placeholders, numbered once for asyncpg."""

    def __init__(self, sql: str) -> None:
        self.names: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match[1]
            if name not in self.names:
                self.names.append(name)
            return f"${self.names.index(name) + 1}"

        self.sql = re.sub(r"(?<!:):([a-z_]+)", number, sql)

    def args(self, values: dict[str, Any]) -> list[Any]:
        return [values[name] for name in self.names]


_CONTEXT = _Statement(
    """
    SELECT p.profile,
           k.fingerprint, k.state, k.status_code, k.response, k.response_headers, k.resource_id,
           l.ids, l.instruments, l.completed, l.scores
    FROM (SELECT) AS one
    LEFT JOIN patients AS p ON p.clinic_id = :clinic_id AND p.id = :patient_id
    LEFT JOIN idempotency_keys AS k
        ON k.clinic_id = :clinic_id AND k.route = :route AND k.key = :key
    CROSS JOIN LATERAL (
        SELECT array_agg(s.id ORDER BY s.instrument) AS ids,
               array_agg(s.instrument ORDER BY s.instrument) AS instruments,
               array_agg(s.completed_at ORDER BY s.instrument) AS completed,
               jsonb_agg(s.score ORDER BY s.instrument) AS scores
        FROM (
            SELECT DISTINCT ON (instrument) id, instrument, completed_at, score
            FROM screenings
            WHERE clinic_id = :clinic_id AND patient_id = :patient_id
            ORDER BY instrument, completed_at DESC, id DESC
        ) AS s
    ) AS l
    """
)

_WRITE = _Statement(
    """
    WITH key_row AS (
        INSERT INTO idempotency_keys (clinic_id, route, key, fingerprint, state, status_code,
                                      response, response_headers, resource_id, created_at)
        SELECT :clinic_id, :route, :key, :fingerprint, 'done', :status_code,
               :response, :response_headers, :resource_id, :recorded_at
        WHERE :route::varchar IS NOT NULL
        ON CONFLICT DO NOTHING
        RETURNING 1
    ), go AS (
        SELECT WHERE :route::varchar IS NULL OR EXISTS (SELECT FROM key_row)
    ), patient AS (
        INSERT INTO patients (clinic_id, id, profile, created_at, updated_at)
        SELECT :clinic_id, :patient_id, coalesce(:profile::jsonb, '{}'), :recorded_at,
               :recorded_at
        FROM go
        ON CONFLICT (clinic_id, id) DO UPDATE
            SET profile = excluded.profile, updated_at = excluded.updated_at
            WHERE :profile::jsonb IS NOT NULL
    ), qr AS (
        INSERT INTO questionnaire_responses (id, clinic_id, patient_id, identifier_system,
                                             identifier_value, authored_at, last_updated,
                                             resource)
        SELECT :qr_id, :clinic_id, :patient_id, :identifier_system, :identifier_value,
               :completed_at, :recorded_at, :qr_resource
        FROM go
        RETURNING id
    ), screening AS (
        INSERT INTO screenings (id, clinic_id, patient_id, questionnaire_response_id,
                                instrument, completed_at, created_at, encounter_id, total,
                                band_code, positive, answers, score, context)
        SELECT s.id, :clinic_id, :patient_id, qr.id, s.instrument, :completed_at,
               :recorded_at, :encounter_id, s.total, s.band_code, s.positive, s.answers,
               s.score, :context
        FROM qr, json_to_recordset(:screenings::json) AS s(
            id text, instrument text, total float8, band_code text, positive boolean,
            answers jsonb, score jsonb)
        RETURNING 1
    ), observation AS (
        INSERT INTO observations (id, clinic_id, patient_id, screening_id, position,
                                  code_system, code, effective_at, last_updated, resource)
        SELECT o.id, :clinic_id, :patient_id, o.screening_id, o.position, o.code_system,
               o.code, :completed_at, :recorded_at, o.resource
        FROM qr, json_to_recordset(:observations::json) AS o(
            id text, screening_id text, position smallint, code_system text, code text,
            resource json)
        RETURNING 1
    ), audit AS (
        INSERT INTO audit_events (id, clinic_id, client_id, action, resource_type,
                                  resource_id, patient_id, outcome, status_code, recorded_at)
        SELECT :audit_id, :clinic_id, :audit_client_id, :audit_action, :audit_resource_type,
               :audit_resource_id, :audit_patient_id, :audit_outcome, :audit_status_code,
               :audit_recorded_at
        FROM qr
        WHERE :audit_id::uuid IS NOT NULL
        RETURNING 1
    )
    SELECT EXISTS (SELECT FROM go)
    """
)

QR_IDENTIFIER_CONSTRAINT = "uq_qr_clinic_identifier"


async def patient_context(
    db: Database, clinic_id: uuid.UUID, patient_id: str, key: tuple[str, str] | None = None
) -> PatientContext:
    """The patient's profile, newest screening per instrument and, given ``(route, key)``,
    the idempotency key already held."""
    route, name = key if key is not None else (None, None)
    values = {"clinic_id": clinic_id, "patient_id": patient_id, "route": route, "key": name}
    async with db.driver() as conn:
        row = await conn.fetchrow(_CONTEXT.sql, *_CONTEXT.args(values))
    assert row is not None  # the statement always answers one row
    latest = [
        LatestScreening(id=i, instrument=n, completed_at=c, score=s)
        for i, n, c, s in zip(
            row["ids"] or (),
            row["instruments"] or (),
            row["completed"] or (),
            row["scores"] or (),
            strict=True,
        )
    ]
    held = None
    if row["state"] is not None:
        held = HeldKey(
            fingerprint=row["fingerprint"],
            state=row["state"],
            status_code=row["status_code"],
            response=row["response"],
            response_headers=row["response_headers"],
            resource_id=row["resource_id"],
        )
    return PatientContext(profile=row["profile"], latest=latest, held=held)


_PATIENT_REFERRALS = _Statement(
    """
    SELECT r.*, d.details AS service_details, coalesce(h.events, '[]') AS history
    FROM (
        SELECT * FROM referrals
        WHERE clinic_id = :clinic_id AND patient_id = :patient_id
        ORDER BY updated_at DESC, id DESC
        LIMIT :limit
    ) AS r
    JOIN directory_services AS d ON d.clinic_id = :clinic_id AND d.id = r.service_id
    LEFT JOIN LATERAL (
        SELECT json_agg(json_build_object(
                   'from_status', e.from_status, 'to_status', e.to_status,
                   'reason', e.reason, 'outcome', e.outcome,
                   'client_id', e.client_id, 'recorded_at', e.recorded_at)
               ORDER BY e.recorded_at, e.id) AS events
        FROM referral_events AS e
        WHERE e.clinic_id = :clinic_id AND e.referral_id = r.id
    ) AS h ON true
    ORDER BY r.updated_at DESC, r.id DESC
    """
)


async def patient_referrals(
    db: Database, clinic_id: uuid.UUID, patient_id: str, limit: int
) -> list[ReferralRecord]:
    """The patient's referrals, most recently changed first, with services and history."""
    values = {"clinic_id": clinic_id, "patient_id": patient_id, "limit": limit}
    async with db.driver() as conn:
        rows = await conn.fetch(_PATIENT_REFERRALS.sql, *_PATIENT_REFERRALS.args(values))
    records = []
    for row in rows:
        referral = dict(row)
        records.append(
            ReferralRecord(referral, referral.pop("service_details"), referral.pop("history"))
        )
    return records


async def held_key(db: Database, clinic_id: uuid.UUID, route: str, key: str) -> HeldKey | None:
    """The key as stored now (after a write found it taken)."""
    async with db.begin() as conn:
        return await ClinicStore(conn, clinic_id).get_idempotency_key(route, key)


async def write_submission(db: Database, clinic_id: uuid.UUID, rows: SubmissionRows) -> Written:
    key, audit = rows.key, rows.audit
    key_values = key.columns() if key is not None else dict.fromkeys(_KEY_COLUMNS)
    if key is not None:
        key_values["response_headers"] = json_text(key.response_headers)
    audit_values = audit.columns() if audit is not None else dict.fromkeys(_AUDIT_COLUMNS)
    values: dict[str, Any] = {
        "clinic_id": clinic_id,
        **key_values,
        "recorded_at": rows.recorded_at,
        "patient_id": rows.patient_id,
        "profile": json_text(rows.profile) if rows.profile is not None else None,
        "qr_id": rows.questionnaire_response_id,
        "identifier_system": rows.identifier_system,
        "identifier_value": rows.identifier_value,
        "completed_at": rows.completed_at,
        "qr_resource": json_text(rows.questionnaire_response),
        "encounter_id": rows.encounter_id,
        "context": json_text(rows.context),
        "screenings": json_text(rows.screenings),
        "observations": json_text(rows.observations),
        **{f"audit_{name}": value for name, value in audit_values.items()},
    }
    try:
        async with db.driver() as conn:
            stored = await conn.fetchval(_WRITE.sql, *_WRITE.args(values))
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name == QR_IDENTIFIER_CONSTRAINT:
            return Written.IDENTIFIER_TAKEN
        raise
    return Written.STORED if stored else Written.KEY_TAKEN


_AUDIT_COLUMNS = [name for name in AUDIT_COLUMNS if name != "clinic_id"]
_KEY_COLUMNS = [f.name for f in fields(KeyRecord)]


_COMPARISONS = {"eq": "=", "ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_SORT_COLUMNS = {"effective_at": "effective_at", "last_updated": "last_updated"}


async def search_observations(
    db: Database, clinic_id: uuid.UUID, q: ObservationQuery
) -> tuple[list[StoredJson], int]:
    """A page of Observations (as stored JSON) and the number matching."""
    args: list[Any] = [clinic_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    where = ["o.clinic_id = $1"]
    if q.patient_id is not None:
        where.append(f"o.patient_id = {arg(q.patient_id)}")
    if q.codes:
        either = [
            f"o.code = {arg(code)}"
            if system is None
            else f"(o.code = {arg(code)} AND o.code_system = {arg(system)})"
            for system, code in q.codes
        ]
        where.append(f"({' OR '.join(either)})")
    for column, filters in (("effective_at", q.date_filters), ("last_updated", q.updated_filters)):
        where.extend(
            f"o.{column} {_COMPARISONS[prefix]} {arg(instant)}" for prefix, instant in filters
        )
    condition = " AND ".join(where)
    direction = "DESC" if q.sort_descending else "ASC"
    order = f"o.{_SORT_COLUMNS[q.sort_by]} {direction}, o.id {direction}"
    filters = len(args)
    # Only placeholders and the fixed column names above are written into the text.
    page = (
        f"SELECT o.id, o.resource::text, "  # noqa: S608
        f"(SELECT count(*) FROM observations AS o WHERE {condition}) AS total "
        f"FROM observations AS o WHERE {condition} ORDER BY {order} "
        f"LIMIT {arg(q.limit)} OFFSET {arg(q.offset)}"
    )
    async with db.driver() as conn:
        rows = await conn.fetch(page, *args)
        if rows or q.offset == 0:
            page_of = [StoredJson(row["id"], msgspec.Raw(row["resource"])) for row in rows]
            return page_of, rows[0]["total"] if rows else 0
        # A page past the end has no row to carry the count: ask for it.
        count = f"SELECT count(*) FROM observations AS o WHERE {condition}"  # noqa: S608
        return [], await conn.fetchval(count, *args[:filters])
