"""The screenings' queries: :class:`ScreeningStore` for the reads by id, and the hot paths:
what a screening's answer needs to know, writing a scored submission, and searching
Observations (a patient's referrals are service/referrals/repository.py's).

Each hot path is one round trip: a single statement on the pooled connection's own asyncpg
connection (prepared and cached by the driver). The statements are SQLAlchemy Core built on
tables.py's columns and compiled once (:class:`~service.platform.database.Compiled`). The write
is one statement of data-modifying CTEs, so it is atomic without a transaction block: the
idempotency key, the patient, the QuestionnaireResponse, its screenings and Observations and
the audit event land together or not at all. Every statement here is scoped by
``clinic_id`` as :class:`~service.platform.tenancy.ClinicScoped` queries are.
"""

from __future__ import annotations

import functools
import operator
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by, distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row

from service.fhir.types import StoredJson
from service.platform.audit import AuditEvent
from service.platform.database import Compiled, Database, json_text
from service.platform.secret_links import spend_on_driver
from service.platform.tables import (
    ENTERED_IN_ERROR,
    audit_events,
    idempotency_keys,
    observations,
    patients,
    questionnaire_responses,
    screenings,
)
from service.platform.tenancy import ClinicScoped
from service.screenings.records import (
    Correction,
    HeldKey,
    KeyRecord,
    LatestScreening,
    PatientContext,
    SubmissionRows,
    Written,
)


@dataclass(frozen=True, slots=True)
class ObservationQuery:
    patient_ids: Sequence[str] = ()
    """Any of these patients; none for any patient."""
    code_groups: Sequence[Sequence[tuple[str | None, str]]] = ()
    """Each a repeat of ``code``, every one of which must match: (system or None for any,
    code or "" for any of the system) pairs, a match on any of them counts."""
    date_filters: Sequence[tuple[str, datetime]] = ()
    """(prefix, instant) with prefix in eq, ge, gt, le, lt, applied to effective time."""
    updated_filters: Sequence[tuple[str, datetime]] = ()
    sort_descending: bool = True
    sort_by: str = "effective_at"
    limit: int = 20
    """Rows to fetch; 0 for the count alone."""
    after: tuple[datetime, str] | None = None
    """The (sort value, id) of the last row of the previous page (keyset paging)."""


@dataclass(frozen=True, slots=True)
class QuestionnaireResponseQuery:
    """A FHIR search of QuestionnaireResponses: each group (a repeat of a parameter) must
    match, by any one of its values."""

    ids: Sequence[Sequence[str]] = ()
    patient_ids: Sequence[Sequence[str]] = ()
    identifiers: Sequence[Sequence[tuple[str | None, str]]] = ()
    """(system or None for any, value or "" for any in the system)."""
    identifier_missing: bool | None = None
    authored_filters: Sequence[tuple[str, datetime]] = ()
    updated_filters: Sequence[tuple[str, datetime]] = ()
    limit: int = 20
    """Rows to fetch; 0 for the count alone."""
    after: tuple[datetime, str] | None = None
    """The (authored time, id) of the last row of the previous page (keyset paging)."""


def _identifier(system: str | None, value: str) -> sa.ColumnElement[bool]:
    """The QuestionnaireResponse has this identifier (see :class:`QuestionnaireResponseQuery`)."""
    q = questionnaire_responses.c
    return sa.and_(
        q.identifier_value.is_not(None),
        q.identifier_system == system if system is not None else sa.true(),
        q.identifier_value == value if value else sa.true(),
    )


class ScreeningStore(ClinicScoped):
    """Stored screenings, QuestionnaireResponses, Observations and idempotency keys, read
    by id in one transaction."""

    async def get_screening(self, screening_id: str) -> Row[Any] | None:
        query = self._select(screenings).where(screenings.c.id == screening_id)
        return (await self.conn.execute(query)).first()

    async def observations_of(self, screening_ids: Sequence[str]) -> list[Row[Any]]:
        query = (
            self._select(observations)
            .where(observations.c.screening_id.in_(screening_ids))
            .order_by(observations.c.screening_id, observations.c.position)
        )
        return list((await self.conn.execute(query)).all())

    async def get_observation(self, observation_id: str) -> Row[Any] | None:
        query = self._select(observations).where(observations.c.id == observation_id)
        return (await self.conn.execute(query)).first()

    async def find_questionnaire_responses(
        self, identifier_system: str | None, identifier_value: str
    ) -> list[Row[Any]]:
        """At most two with this identifier (the system None for any): enough to tell one
        match from several."""
        query = self._select(questionnaire_responses).where(
            _identifier(identifier_system, identifier_value)
        )
        return list((await self.conn.execute(query.limit(2))).all())

    async def search_questionnaire_responses(
        self, q: QuestionnaireResponseQuery
    ) -> tuple[list[tuple[StoredJson, datetime]], int]:
        """A page of QuestionnaireResponses, newest authored first, each with its authored
        time, and how many match."""
        c = questionnaire_responses.c
        where: list[Any] = [c.id.in_(group) for group in q.ids]
        where += [c.patient_id.in_(group) for group in q.patient_ids]
        where += [sa.or_(*(_identifier(*token) for token in group)) for group in q.identifiers]
        if q.identifier_missing is not None:
            missing = c.identifier_value.is_(None)
            where.append(missing if q.identifier_missing else sa.not_(missing))
        for column, filters in (
            ("authored_at", q.authored_filters),
            ("last_updated", q.updated_filters),
        ):
            where += [_COMPARATORS[prefix](c[column], instant) for prefix, instant in filters]
        total = (
            await self.conn.execute(
                self._select(questionnaire_responses, sa.func.count()).where(*where)
            )
        ).scalar_one()
        if not q.limit:
            return [], total
        if q.after is not None:
            where.append(sa.tuple_(c.authored_at, c.id) < sa.tuple_(*q.after))
        page = (
            self._select(questionnaire_responses, c.id, sa.cast(c.resource, sa.Text), c.authored_at)
            .where(*where)
            .order_by(c.authored_at.desc(), c.id.desc())
            .limit(q.limit)
        )
        rows = (await self.conn.execute(page)).all()
        return [(StoredJson(row[0], msgspec.Raw(row[1])), row[2]) for row in rows], total

    async def derived_from(
        self, questionnaire_response_ids: Sequence[str], observation_ids: Sequence[str]
    ) -> list[tuple[str, StoredJson]]:
        """The QuestionnaireResponses and Observations with these ids, as stored JSON:
        (resource type, resource) pairs."""
        return [
            *(
                ("QuestionnaireResponse", r)
                for r in await self._resources(questionnaire_responses, questionnaire_response_ids)
            ),
            *(("Observation", r) for r in await self._resources(observations, observation_ids)),
        ]

    async def _resources(self, table: sa.Table, ids: Sequence[str]) -> list[StoredJson]:
        query = self._select(table, table.c.id, sa.cast(table.c.resource, sa.Text)).where(
            table.c.id.in_(ids)
        )
        rows = (await self.conn.execute(query.order_by(table.c.id))).all()
        return [StoredJson(row[0], msgspec.Raw(row[1])) for row in rows]

    async def get_questionnaire_response(self, qr_id: str) -> Row[Any] | None:
        query = self._select(questionnaire_responses).where(questionnaire_responses.c.id == qr_id)
        return (await self.conn.execute(query)).first()

    async def lock_questionnaire_response(self, qr_id: str) -> Row[Any] | None:
        """The response, locked until the transaction ends: corrections of it queue."""
        query = self._select(questionnaire_responses).where(questionnaire_responses.c.id == qr_id)
        return (await self.conn.execute(query.with_for_update())).first()

    async def screenings_of_response(self, qr_id: str) -> list[Row[Any]]:
        query = (
            self._select(screenings)
            .where(screenings.c.questionnaire_response_id == qr_id)
            .order_by(screenings.c.id)
        )
        return list((await self.conn.execute(query)).all())

    async def save_correction(self, correction: Correction, audit: AuditEvent | None) -> None:
        """Store a corrected response: its new version, each screening's new status and
        score, and each Observation's new version (inserted when the correction added
        it); with the correction's audit event."""
        q = questionnaire_responses.c
        await self.conn.execute(
            sa.update(questionnaire_responses)
            .where(
                self._scoped(questionnaire_responses), q.id == correction.questionnaire_response_id
            )
            .values(
                resource=correction.questionnaire_response,
                authored_at=correction.completed_at,
                last_updated=correction.recorded_at,
            )
        )
        for row in correction.screenings:
            await self.conn.execute(
                sa.update(screenings)
                .where(self._scoped(screenings), screenings.c.id == row.id)
                .values(
                    status=correction.status,
                    completed_at=correction.completed_at,
                    total=row.total,
                    band_code=row.band_code,
                    positive=row.positive,
                    answers=row.answers,
                    score=msgspec.to_builtins(row.score),
                )
            )
        if correction.observations:
            statement = self._insert(observations).values(
                [
                    self._row(
                        id=o.id,
                        patient_id=correction.patient_id,
                        screening_id=o.screening_id,
                        position=o.position,
                        code_system=o.code_system,
                        code=o.code,
                        effective_at=correction.completed_at,
                        last_updated=correction.recorded_at,
                        resource=o.resource,
                    )
                    for o in correction.observations
                ]
            )
            await self.conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[observations.c.id],
                    set_={
                        name: statement.excluded[name]
                        for name in ("position", "effective_at", "last_updated", "resource")
                    },
                    where=observations.c.clinic_id == self.clinic_id,
                )
            )
        if audit is not None:
            await self.conn.execute(self._insert(audit_events).values(self._row(**audit.columns())))

    async def get_idempotency_key(self, route: str, key: str) -> HeldKey | None:
        query = self._select(
            idempotency_keys,
            idempotency_keys.c.fingerprint,
            idempotency_keys.c.state,
            idempotency_keys.c.status_code,
            idempotency_keys.c.response,
            idempotency_keys.c.response_headers,
            idempotency_keys.c.resource_id,
        ).where(idempotency_keys.c.route == route, idempotency_keys.c.key == key)
        found = (await self.conn.execute(query)).first()
        return HeldKey(*found) if found is not None else None


def _param(column: sa.Column[Any], name: str | None = None) -> sa.BindParameter[Any]:
    """A parameter of the column's type (``$n::TYPE``), named after it unless ``name``."""
    return sa.bindparam(name or column.name, type_=column.type)


def _record(table: sa.Table, *names: str) -> list[sa.ColumnClause[Any]]:
    """Columns of a JSON recordset, typed as the table's."""
    return [sa.column(name, table.c[name].type) for name in names]


_CLINIC = _param(patients.c.clinic_id)
_PATIENT = _param(patients.c.id, "patient_id")
_ROUTE = _param(idempotency_keys.c.route)
_RECORDED = _param(idempotency_keys.c.created_at, "recorded_at")
_COMPLETED = _param(screenings.c.completed_at)


_WITHDRAWN = sa.literal_column(f"'{ENTERED_IN_ERROR}'", sa.String)
"""A constant of the compiled statement, not a parameter."""


def _context_statement() -> sa.Select[Any]:
    s = screenings.c
    newest = (
        sa.select(s.id, s.instrument, s.completed_at, s.score)
        .ext(distinct_on(s.instrument))
        .where(s.clinic_id == _CLINIC, s.patient_id == _PATIENT, s.status != _WITHDRAWN)
        .order_by(s.instrument, s.completed_at.desc(), s.id.desc())
        .subquery("s")
    )

    def by_instrument(aggregate: Any, column: sa.ColumnElement[Any], label: str) -> Any:
        return aggregate(aggregate_order_by(column, newest.c.instrument)).label(label)

    latest = sa.select(
        by_instrument(sa.func.array_agg, newest.c.id, "ids"),
        by_instrument(sa.func.array_agg, newest.c.instrument, "instruments"),
        by_instrument(sa.func.array_agg, newest.c.completed_at, "completed"),
        by_instrument(sa.func.jsonb_agg, newest.c.score, "scores"),
    ).lateral("l")
    one = sa.select(sa.literal_column("1").label("one")).subquery("one")
    p, k = patients.alias("p"), idempotency_keys.alias("k")
    held = [k.c[f.name] for f in fields(HeldKey)]
    return sa.select(
        p.c.profile, *held, latest.c.ids, latest.c.instruments, latest.c.completed, latest.c.scores
    ).select_from(
        one.outerjoin(p, sa.and_(p.c.clinic_id == _CLINIC, p.c.id == _PATIENT))
        .outerjoin(
            k,
            sa.and_(k.c.clinic_id == _CLINIC, k.c.route == _ROUTE, k.c.key == _param(k.c.key)),
        )
        .join(latest, sa.true())
    )


_CONTEXT = Compiled(_context_statement())

_KEY_COLUMNS = [f.name for f in fields(KeyRecord)]
_AUDIT_COLUMNS = [c.name for c in audit_events.c if c.name != "clinic_id"]


def _write_statement() -> sa.Select[Any]:
    k = idempotency_keys.c
    key_row = (
        pg_insert(idempotency_keys)
        .from_select(
            ["clinic_id", *_KEY_COLUMNS, "state", "created_at"],
            sa.select(
                _CLINIC,
                *(_ROUTE if name == "route" else _param(k[name]) for name in _KEY_COLUMNS),
                sa.literal_column("'done'"),
                _RECORDED,
            ).where(_ROUTE.is_not(None)),
        )
        .on_conflict_do_nothing()
        .returning(sa.literal_column("1"))
        .cte("key_row")
    )
    go = (
        sa.select(sa.literal_column("1").label("go"))
        .where(sa.or_(_ROUTE.is_(None), sa.exists().select_from(key_row)))
        .cte("go")
    )
    profile = _param(patients.c.profile)
    new_patient = pg_insert(patients).from_select(
        ["clinic_id", "id", "profile", "created_at", "updated_at"],
        sa.select(
            _CLINIC, _PATIENT, sa.func.coalesce(profile, sa.text("'{}'")), _RECORDED, _RECORDED
        ).select_from(go),
    )
    patient = new_patient.on_conflict_do_update(
        index_elements=[patients.c.clinic_id, patients.c.id],
        set_={
            "profile": new_patient.excluded.profile,
            "updated_at": new_patient.excluded.updated_at,
        },
        where=profile.is_not(None),
    ).cte("patient")
    q = questionnaire_responses.c
    qr = (
        pg_insert(questionnaire_responses)
        .from_select(
            [
                "id",
                "clinic_id",
                "patient_id",
                "identifier_system",
                "identifier_value",
                "authored_at",
                "last_updated",
                "resource",
            ],
            sa.select(
                _param(q.id, "qr_id"),
                _CLINIC,
                _PATIENT,
                _param(q.identifier_system),
                _param(q.identifier_value),
                _COMPLETED,
                _RECORDED,
                _param(q.resource, "qr_resource"),
            ).select_from(go),
        )
        .returning(q.id)
        .cte("qr")
    )
    scored = ("id", "instrument", "total", "band_code", "positive", "answers", "score")
    s = (
        sa.func.json_to_recordset(sa.bindparam("screenings", type_=sa.JSON))
        .table_valued(*_record(screenings, *scored))
        .render_derived(name="s", with_types=True)
    )
    screening = (
        pg_insert(screenings)
        .from_select(
            [
                *scored,
                "clinic_id",
                "patient_id",
                "questionnaire_response_id",
                "completed_at",
                "created_at",
                "encounter_id",
                "context",
            ],
            sa.select(
                *(s.c[name] for name in scored),
                _CLINIC,
                _PATIENT,
                qr.c.id,
                _COMPLETED,
                _RECORDED,
                _param(screenings.c.encounter_id),
                _param(screenings.c.context),
            ).select_from(qr, s),
        )
        .cte("screening")
    )
    resulting = ("id", "screening_id", "position", "code_system", "code", "resource")
    o = (
        sa.func.json_to_recordset(sa.bindparam("observations", type_=sa.JSON))
        .table_valued(*_record(observations, *resulting))
        .render_derived(name="o", with_types=True)
    )
    observation = (
        pg_insert(observations)
        .from_select(
            [*resulting, "clinic_id", "patient_id", "effective_at", "last_updated"],
            sa.select(
                *(o.c[name] for name in resulting), _CLINIC, _PATIENT, _COMPLETED, _RECORDED
            ).select_from(qr, o),
        )
        .cte("observation")
    )
    audit_params = {
        c.name: _CLINIC if c.name == "clinic_id" else _param(c, f"audit_{c.name}")
        for c in audit_events.c
    }
    audit = (
        pg_insert(audit_events)
        .from_select(
            list(audit_params),
            sa.select(*audit_params.values())
            .select_from(qr)
            .where(audit_params["id"].is_not(None)),
        )
        .cte("audit")
    )
    return sa.select(sa.exists().select_from(go)).add_cte(
        key_row, go, patient, qr, screening, observation, audit
    )


_WRITE = Compiled(_write_statement())

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


async def held_key(db: Database, clinic_id: uuid.UUID, route: str, key: str) -> HeldKey | None:
    """The key as stored now (after a write found it taken)."""
    async with db.begin() as conn:
        return await ScreeningStore(conn, clinic_id).get_idempotency_key(route, key)


async def write_submission(
    db: Database, clinic_id: uuid.UUID, rows: SubmissionRows, spending: str | None = None
) -> Written:
    """Store the submission in one statement; with ``spending`` (a patient link's token
    hash), that link is spent first in the same transaction, and nothing is stored unless
    this write is the one that spent it."""
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
            if spending is None:
                stored = await conn.fetchval(_WRITE.sql, *_WRITE.args(values))
            else:
                async with conn.transaction():
                    if not await spend_on_driver(conn, spending, "patient"):
                        return Written.LINK_GONE
                    stored = await conn.fetchval(_WRITE.sql, *_WRITE.args(values))
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name == QR_IDENTIFIER_CONSTRAINT:
            return Written.IDENTIFIER_TAKEN
        raise
    return Written.STORED if stored else Written.KEY_TAKEN


_COMPARATORS = {
    "eq": operator.eq,
    "ge": operator.ge,
    "gt": operator.gt,
    "le": operator.le,
    "lt": operator.lt,
}


@functools.lru_cache(maxsize=256)
def _observation_search(
    patients: int,
    code_shapes: tuple[tuple[tuple[bool, bool], ...], ...],
    date_prefixes: tuple[str, ...],
    updated_prefixes: tuple[str, ...],
    sort_by: str,
    descending: bool,
    after: bool,
) -> tuple[Compiled, Compiled]:
    """The page (with the count) and the count alone for one shape of search: which
    filters it has, not their values: how many patients, and per repeat of ``code`` and
    per token in it, whether its system and its code are given (``system|`` is any code of
    the system); ``after``, whether the page starts after a (sort value, id) (keyset paging:
    rows inserted meanwhile neither repeat nor shift it). Compiled on the shape's first
    use."""

    def matching(table: sa.FromClause) -> list[sa.ColumnElement[bool]]:
        o = table.c
        where = [o.clinic_id == _CLINIC]
        if patients:
            where.append(
                sa.or_(
                    *(
                        o.patient_id == _param(observations.c.patient_id, f"patient_{n}")
                        for n in range(patients)
                    )
                )
            )
        for g, group in enumerate(code_shapes):
            either = []
            for n, (has_system, has_code) in enumerate(group):
                code = o.code == _param(observations.c.code, f"code_{g}_{n}")
                system = o.code_system == _param(observations.c.code_system, f"system_{g}_{n}")
                either.append(
                    sa.and_(*([system] if has_system else []), *([code] if has_code else []))
                )
            where.append(sa.or_(*either))
        for column, prefixes in (
            ("effective_at", date_prefixes),
            ("last_updated", updated_prefixes),
        ):
            where.extend(
                _COMPARATORS[prefix](o[column], _param(observations.c[column], f"{column}_{n}"))
                for n, prefix in enumerate(prefixes)
            )
        return where

    counted = observations.alias("counted")
    count = sa.select(sa.func.count()).select_from(counted).where(*matching(counted))
    o = observations.c
    order = (o[sort_by].desc(), o.id.desc()) if descending else (o[sort_by].asc(), o.id.asc())
    where = matching(observations)
    if after:
        key = sa.tuple_(o[sort_by], o.id)
        last = sa.tuple_(
            _param(observations.c[sort_by], "after_value"), _param(observations.c.id, "after_id")
        )
        where.append(key < last if descending else key > last)
    page = (
        sa.select(
            o.id,
            sa.cast(o.resource, sa.Text).label("resource"),
            o[sort_by].label("sort_key"),
            count.scalar_subquery().label("total"),
        )
        .where(*where)
        .order_by(*order)
        .limit(sa.bindparam("limit", type_=sa.Integer))
    )
    return Compiled(page), Compiled(count)


async def search_observations(
    db: Database, clinic_id: uuid.UUID, q: ObservationQuery
) -> tuple[list[tuple[StoredJson, datetime]], int]:
    """A page of Observations (as stored JSON, each with its sort value) and the number
    matching."""
    page, count = _observation_search(
        len(q.patient_ids),
        tuple(
            tuple((system is not None, code != "") for system, code in group)
            for group in q.code_groups
        ),
        tuple(prefix for prefix, _ in q.date_filters),
        tuple(prefix for prefix, _ in q.updated_filters),
        q.sort_by,
        q.sort_descending,
        q.after is not None,
    )
    values: dict[str, Any] = {"clinic_id": clinic_id, "limit": q.limit}
    if q.after is not None:
        values["after_value"], values["after_id"] = q.after
    values.update((f"patient_{n}", patient) for n, patient in enumerate(q.patient_ids))
    for g, group in enumerate(q.code_groups):
        for n, (system, code) in enumerate(group):
            values[f"code_{g}_{n}"], values[f"system_{g}_{n}"] = code, system
    for column, filters in (("effective_at", q.date_filters), ("last_updated", q.updated_filters)):
        values.update((f"{column}_{n}", instant) for n, (_, instant) in enumerate(filters))
    async with db.driver() as conn:
        rows = await conn.fetch(page.sql, *page.args(values)) if q.limit else []
        if rows:
            page_of = [
                (StoredJson(row["id"], msgspec.Raw(row["resource"])), row["sort_key"])
                for row in rows
            ]
            return page_of, rows[0]["total"]
        # No row to carry the count (the count alone, or the end passed): ask for it.
        return [], await conn.fetchval(count.sql, *count.args(values))
