"""The database schema (SQLAlchemy Core). Alembic migrations must match it.

Every patient-data table carries ``clinic_id``; rows referring to a patient use a
composite foreign key (clinic_id, patient_id), so a row can never point at another
clinic's patient.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = JSONB()
Document = sa.JSON()
"""A FHIR resource kept as written and served back verbatim. PostgreSQL's ``json`` stores
the text, so a search returns it without conversion; ``jsonb`` would re-serialise every
resource on every read (half a search's database time) and parse it on every write."""
Timestamp = sa.DateTime(timezone=True)
Terms = ARRAY(sa.Text)

clinics = sa.Table(
    "clinics",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", Timestamp, nullable=False),
    # BCP 47 tags: matching's languages for a patient whose profile records none.
    sa.Column("languages", Json, nullable=False, server_default=sa.text("'[\"en\"]'")),
)

api_clients = sa.Table(
    "api_clients",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("clinic_id", sa.Uuid, sa.ForeignKey("clinics.id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", Json, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=True),
    sa.Column("rotated_at", Timestamp, nullable=True),
    sa.Column("revoked_at", Timestamp, nullable=True),
)
"""A clinic's client: a bearer token (``token_hash``) or, with a ``client_keys`` row, a system
that signs JWTs. ``rotated_at`` is when its token or keys were last replaced; from
``expires_at`` or ``revoked_at`` on, nothing it holds is accepted."""

patients = sa.Table(
    "patients",
    metadata,
    sa.Column("clinic_id", sa.Uuid, sa.ForeignKey("clinics.id"), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("profile", Json, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

questionnaire_responses = sa.Table(
    "questionnaire_responses",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("clinic_id", sa.Uuid, nullable=False),
    sa.Column("patient_id", sa.String(64), nullable=False),
    sa.Column("identifier_system", sa.String(255), nullable=False, server_default=""),
    sa.Column("identifier_value", sa.String(255), nullable=True),
    sa.Column("authored_at", Timestamp, nullable=False),
    sa.Column("last_updated", Timestamp, nullable=False),
    sa.Column("resource", Document, nullable=False),
    sa.ForeignKeyConstraint(["clinic_id", "patient_id"], ["patients.clinic_id", "patients.id"]),
    sa.UniqueConstraint(
        "clinic_id", "identifier_system", "identifier_value", name="uq_qr_clinic_identifier"
    ),
    sa.Index("ix_qr_clinic_patient", "clinic_id", "patient_id"),
)

ENTERED_IN_ERROR = "entered-in-error"
"""The status of a screening (and of its resources) withdrawn as recorded in error."""

screenings = sa.Table(
    "screenings",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("clinic_id", sa.Uuid, nullable=False),
    sa.Column("patient_id", sa.String(64), nullable=False),
    sa.Column(
        "questionnaire_response_id",
        sa.String(64),
        sa.ForeignKey("questionnaire_responses.id"),
        nullable=False,
    ),
    sa.Column("instrument", sa.String(64), nullable=False),
    sa.Column("completed_at", Timestamp, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("encounter_id", sa.String(64), nullable=True),
    sa.Column("total", sa.Float, nullable=True),
    sa.Column("band_code", sa.String(64), nullable=True),
    sa.Column("positive", sa.Boolean, nullable=True),
    sa.Column("answers", Json, nullable=False),
    sa.Column("score", Json, nullable=False),
    sa.Column("context", Json, nullable=False),
    # final as first scored; corrected once an amended response re-scored it;
    # entered-in-error: kept readable, counted in no needs or history.
    sa.Column("status", sa.String(16), nullable=False, server_default="final"),
    sa.ForeignKeyConstraint(["clinic_id", "patient_id"], ["patients.clinic_id", "patients.id"]),
    sa.UniqueConstraint("id", "clinic_id", "patient_id", name="uq_screenings_id_clinic_patient"),
    sa.CheckConstraint("status IN ('final', 'corrected', 'entered-in-error')", name="status"),
)
# A patient's history per instrument, newest first, in the order the reads want it: the
# newest screening of each instrument is the first entry of its run (no sort, whatever the
# length of the history).
sa.Index(
    "ix_screenings_history",
    screenings.c.clinic_id,
    screenings.c.patient_id,
    screenings.c.instrument,
    screenings.c.completed_at.desc(),
    screenings.c.id.desc(),
)
# Each patient's latest screening of any instrument (the worklist), read in order from the
# index alone: withdrawn screenings are left out, instrument and positive carried along.
sa.Index(
    "ix_screenings_latest",
    screenings.c.clinic_id,
    screenings.c.patient_id,
    screenings.c.completed_at.desc(),
    screenings.c.id.desc(),
    postgresql_include=["instrument", "positive"],
    postgresql_where=screenings.c.status != ENTERED_IN_ERROR,
)

observations = sa.Table(
    "observations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("clinic_id", sa.Uuid, nullable=False),
    sa.Column("patient_id", sa.String(64), nullable=False),
    sa.Column("screening_id", sa.String(64), nullable=False),
    sa.Column("position", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("code_system", sa.String(255), nullable=False),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("effective_at", Timestamp, nullable=False),
    sa.Column("last_updated", Timestamp, nullable=False),
    sa.Column("resource", Document, nullable=False),
    # An Observation is its screening's, for the screening's clinic and patient: one key
    # says all three (and the screening's own key says the patient exists).
    sa.ForeignKeyConstraint(
        ["screening_id", "clinic_id", "patient_id"],
        ["screenings.id", "screenings.clinic_id", "screenings.patient_id"],
    ),
    sa.Index("ix_observations_patient_date", "clinic_id", "patient_id", "effective_at"),
    sa.Index("ix_observations_code", "clinic_id", "code", "effective_at"),
    sa.Index("ix_observations_screening", "screening_id"),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("clinic_id", sa.Uuid, nullable=False),
    sa.Column("client_id", sa.Uuid, nullable=True),
    sa.Column("user_id", sa.Uuid, nullable=True),
    sa.Column("ehr_id", sa.Uuid, nullable=True),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("resource_type", sa.String(64), nullable=False),
    sa.Column("resource_id", sa.String(64), nullable=True),
    sa.Column("patient_id", sa.String(64), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("status_code", sa.SmallInteger, nullable=False),
    sa.Column("recorded_at", Timestamp, nullable=False),
    sa.Column("detail", sa.String(200), nullable=True),
    sa.Column("link_hash", sa.String(64), nullable=True),
    sa.CheckConstraint("num_nonnulls(client_id, user_id, ehr_id, link_hash) = 1", name="one_actor"),
    sa.Index("ix_audit_clinic_time", "clinic_id", "recorded_at"),
    sa.Index("ix_audit_clinic_patient_time", "clinic_id", "patient_id", "recorded_at"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("clinic_id", sa.Uuid, primary_key=True),
    sa.Column("route", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("status_code", sa.SmallInteger, nullable=True),
    sa.Column("response", sa.LargeBinary, nullable=True),
    sa.Column("response_headers", Json, nullable=True),
    sa.Column("resource_id", sa.String(64), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
)

directory_services = sa.Table(
    "directory_services",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("clinic_id", sa.Uuid, sa.ForeignKey("clinics.id"), nullable=False),
    sa.Column("source_system", sa.String(16), nullable=False),
    sa.Column("source_id", sa.String(255), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("accepting", sa.Boolean, nullable=False),
    sa.Column("conditions", Terms, nullable=False),
    sa.Column("modalities", Terms, nullable=False),
    sa.Column("languages", Terms, nullable=False),
    sa.Column("latitude", sa.Float, nullable=True),
    sa.Column("longitude", sa.Float, nullable=True),
    sa.Column("details", Json, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("deleted_at", Timestamp, nullable=True),
    sa.Column("capacity", sa.String(16), nullable=True),
    sa.Column("capacity_at", Timestamp, nullable=True),
    sa.CheckConstraint("capacity IN ('accepting', 'waitlist', 'not-accepting')", name="capacity"),
    sa.UniqueConstraint("clinic_id", "source_system", "source_id", name="uq_directory_source"),
    sa.Index("ix_directory_clinic_category", "clinic_id", "category"),
    sa.Index("ix_directory_languages", "languages", postgresql_using="gin"),
    sa.Index("ix_directory_modalities", "modalities", postgresql_using="gin"),
    sa.Index(
        "ix_directory_live_by_name",
        "clinic_id",
        "name",
        "id",
        postgresql_include=["category", "accepting", "conditions", "modalities", "languages"],
        postgresql_where=sa.text("deleted_at IS NULL"),
    ),
    sa.Index(
        "ix_directory_live_located",
        "clinic_id",
        "latitude",
        postgresql_include=["longitude", "name", "id"],
        postgresql_where=sa.text("deleted_at IS NULL"),
    ),
)
"""``conditions``, ``modalities`` and ``languages`` are the entry's terms as arrays, searched
with ``@>`` (GIN-indexed; a search by condition also takes the services that name none, so
no index serves it); ``details`` holds the whole entry. A search's page and count read the
live services in name order (``ix_directory_live_by_name``, holding the terms searched on),
or by latitude near a point (``ix_directory_live_located``, holding what measuring a
distance needs). ``capacity`` is what the service itself last said through its inbox link
(None: it has said nothing), at ``capacity_at``."""

referrals = sa.Table(
    "referrals",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("clinic_id", sa.Uuid, nullable=False),
    sa.Column("patient_id", sa.String(64), nullable=False),
    sa.Column("service_id", sa.String(64), sa.ForeignKey("directory_services.id"), nullable=False),
    sa.Column("screening_id", sa.String(64), sa.ForeignKey("screenings.id"), nullable=True),
    sa.Column("need", sa.String(32), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("consent", Json, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_reason", sa.Text, nullable=True),
    sa.Column("outcome", sa.Text, nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("requested_by", sa.Uuid, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.ForeignKeyConstraint(["clinic_id", "patient_id"], ["patients.clinic_id", "patients.id"]),
    sa.Index("ix_referrals_worklist", "clinic_id", "status", "updated_at"),
    sa.Index("ix_referrals_patient", "clinic_id", "patient_id"),
    sa.Index("ix_referrals_updated", "clinic_id", "updated_at"),
)

referral_events = sa.Table(
    "referral_events",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("clinic_id", sa.Uuid, nullable=False),
    sa.Column("referral_id", sa.String(64), sa.ForeignKey("referrals.id"), nullable=False),
    sa.Column("from_status", sa.String(16), nullable=True),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("outcome", sa.Text, nullable=True),
    sa.Column("client_id", sa.Uuid, nullable=True),
    sa.Column("user_id", sa.Uuid, nullable=True),
    sa.Column("link_hash", sa.String(64), sa.ForeignKey("secret_links.token_hash"), nullable=True),
    sa.Column("recorded_at", Timestamp, nullable=False),
    sa.CheckConstraint("num_nonnulls(client_id, user_id, link_hash) = 1", name="one_actor"),
    sa.Index("ix_referral_events_referral", "referral_id", "recorded_at"),
)

# --------------------------------------------------------------------------- SMART / CDS Hooks
# Systems that sign JWTs (SMART Backend Services clients, CDS Hooks clients) register
# their public keys here; see service/systems/controllers/smart.py and .../cds.py.

client_keys = sa.Table(
    "client_keys",
    metadata,
    sa.Column("client_id", sa.Uuid, sa.ForeignKey("api_clients.id"), primary_key=True),
    sa.Column("issuer", sa.String(255), nullable=False, unique=True),
    sa.Column("jwks", Json, nullable=True),
    sa.Column("jwks_url", sa.String(2000), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
)
"""A client's ``iss`` (its SMART client_id) and its JWKS, inline or by URL."""

used_jtis = sa.Table(
    "used_jtis",
    metadata,
    sa.Column("issuer", sa.String(255), primary_key=True),
    sa.Column("jti", sa.String(255), primary_key=True),
    sa.Column("expires_at", Timestamp, nullable=False, index=True),
)
"""JWT ids already presented: the primary key makes a replay a unique violation."""

access_tokens = sa.Table(
    "access_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("client_id", sa.Uuid, sa.ForeignKey("api_clients.id"), nullable=False),
    sa.Column("scopes", Json, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False, index=True),
    sa.Column("created_at", Timestamp, nullable=False),
)
"""SMART access tokens: random, stored as SHA-256, each living at most 300 seconds."""

cds_feedback = sa.Table(
    "cds_feedback",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("clinic_id", sa.Uuid, sa.ForeignKey("clinics.id"), nullable=False),
    sa.Column("client_id", sa.Uuid, nullable=False),
    sa.Column("service_id", sa.String(64), nullable=False),
    sa.Column("card_uuid", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("accepted_suggestions", Json, nullable=False),
    sa.Column("override_reason", Json, nullable=True),
    sa.Column("outcome_at", Timestamp, nullable=False),
    sa.Column("recorded_at", Timestamp, nullable=False),
    sa.Index("ix_cds_feedback_clinic_card", "clinic_id", "card_uuid"),
)

# --------------------------------------------------------------------------- the clinician app
# People signing in to /app: users of a clinic with a role, their server-side sessions, the
# single-use sign-in links of `belong users link`, the clinic's OpenID provider, and the
# authorization requests in flight to it.

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("clinic_id", sa.Uuid, sa.ForeignKey("clinics.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("issuer", sa.String(500), nullable=True),
    sa.Column("subject", sa.String(255), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("disabled_at", Timestamp, nullable=True),
    sa.UniqueConstraint("clinic_id", "name", name="uq_users_clinic_name"),
    sa.UniqueConstraint("clinic_id", "issuer", "subject", name="uq_users_clinic_identity"),
    sa.CheckConstraint("role IN ('clinician', 'coordinator', 'admin')", name="role"),
)
"""A clinic's staff member: ``name`` is how the clinic knows them (shown as the actor);
``issuer`` and ``subject`` their identity at the clinic's OpenID provider, once they signed
in through it."""

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("clinic_id", sa.Uuid, sa.ForeignKey("clinics.id"), nullable=False),
    sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_seen_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False, index=True),
    sa.Column("ended_at", Timestamp, nullable=True),
    sa.Column("ehr_id", sa.Uuid, sa.ForeignKey("ehrs.id", ondelete="SET NULL"), nullable=True),
    sa.Column("patient_banner", sa.Boolean, nullable=False, server_default=sa.true()),
)
"""A signed-in browser: the cookie holds a random id, stored here only as its SHA-256.
It ends at sign-out (``ended_at``), after the idle timeout since ``last_seen_at``, or at
``expires_at`` (the absolute limit from sign-in). A session opened by a SMART launch names
its EHR, and whether the EHR asked the app to show its own patient banner."""

sign_in_links = sa.Table(
    "sign_in_links",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("clinic_id", sa.Uuid, sa.ForeignKey("clinics.id"), nullable=False),
    sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Column("used_at", Timestamp, nullable=True),
)
"""Single-use sign-in links (`belong users link`): random, hashed, expiring."""

identity_providers = sa.Table(
    "identity_providers",
    metadata,
    sa.Column("clinic_id", sa.Uuid, sa.ForeignKey("clinics.id"), primary_key=True),
    sa.Column("issuer", sa.String(500), nullable=False),
    sa.Column("client_id", sa.String(255), nullable=False),
    sa.Column("secret_ref", sa.String(500), nullable=True),
    sa.Column("role_claim", sa.String(100), nullable=False),
    sa.Column("role_map", Json, nullable=False),
    sa.Column("scopes", Json, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)
"""A clinic's OpenID provider: the client Belong is registered as there, where its secret is
found (``env:NAME`` or ``file:PATH``, never the secret itself), the claim holding the user's
role and how its values map to Belong's roles."""

sign_in_flows = sa.Table(
    "sign_in_flows",
    metadata,
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("clinic_id", sa.Uuid, sa.ForeignKey("clinics.id"), nullable=False),
    sa.Column("nonce", sa.String(128), nullable=False),
    sa.Column("code_verifier", sa.String(128), nullable=False),
    sa.Column("return_to", sa.String(2000), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False, index=True),
    sa.Column("used_at", Timestamp, nullable=True),
)
"""Authorization requests in flight to a clinic's OpenID provider, by the SHA-256 of their
``state``: used once, within minutes."""

ehrs = sa.Table(
    "ehrs",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("clinic_id", sa.Uuid, sa.ForeignKey("clinics.id"), nullable=False),
    sa.Column("iss", sa.String(500), nullable=False, unique=True),
    sa.Column("client_id", sa.String(255), nullable=False),
    sa.Column("secret_ref", sa.String(500), nullable=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("patient_identifier_system", sa.String(500), nullable=True),
    sa.Column("frame_origins", Json, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.CheckConstraint("role IN ('clinician', 'coordinator', 'admin')", name="role"),
)
"""A clinic's EHR that launches the app (SMART App Launch): its FHIR base URL (``iss``), the
client Belong is registered as there (a public client, or a confidential one whose secret is
found by reference), the role its users get, the identifier system that carries Belong's
patient id in its Patient resources (none: the EHR's patient id is Belong's), and the
origins that may frame the app."""

launch_flows = sa.Table(
    "launch_flows",
    metadata,
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("ehr_id", sa.Uuid, sa.ForeignKey("ehrs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("standalone", sa.Boolean, nullable=False),
    sa.Column("nonce", sa.String(128), nullable=False),
    sa.Column("code_verifier", sa.String(128), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False, index=True),
    sa.Column("used_at", Timestamp, nullable=True),
)
"""SMART launches in flight to an EHR's authorization server, by the SHA-256 of their
``state``: used once, within minutes."""

launch_refusals = sa.Table(
    "launch_refusals",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("iss", sa.String(500), nullable=True),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("recorded_at", Timestamp, nullable=False, index=True),
)
"""Launches refused before any clinic is known (an ``iss`` no clinic registered): what an
operator reads to find a misconfigured EHR. A refusal of a registered EHR's launch is an
audit event of its clinic instead."""

LINK_KINDS = ("inbox", "handout", "patient")

secret_links = sa.Table(
    "secret_links",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("clinic_id", sa.Uuid, sa.ForeignKey("clinics.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("subject_id", sa.String(64), nullable=False),
    sa.Column("purpose", sa.String(32), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=True),
    sa.Column("revoked_at", Timestamp, nullable=True),
    sa.Column("used_at", Timestamp, nullable=True),
    sa.CheckConstraint("kind IN ('inbox', 'handout', 'patient')", name="kind"),
    sa.Index("ix_secret_links_subject", "clinic_id", "kind", "subject_id"),
)
"""Links that open a page without an account: a directory service's inbox (``subject_id``
the service), a referral's handout (the referral), a patient's page (the referral or the
patient, ``purpose`` saying which page). The token is random (256 bits), shown once, stored
only as its SHA-256; a link ends when revoked, expired or (a single-use one) used."""

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("clinic_id", sa.Uuid, nullable=False),
    sa.Column("referral_id", sa.String(64), sa.ForeignKey("referrals.id"), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("segments", sa.SmallInteger, nullable=True),
    sa.Column("error", sa.String(200), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("sent_at", Timestamp, nullable=True),
    sa.CheckConstraint("channel IN ('sms', 'email')", name="channel"),
    sa.CheckConstraint("status IN ('sent', 'failed', 'suppressed')", name="status"),
    sa.Index("ix_messages_referral", "clinic_id", "referral_id", "created_at"),
)
"""The handout link messages sent to patients (by SMS or email), each with its outcome.
The patient's phone number or address is used to send and kept nowhere: not here, not in
the audit events, not in the logs."""
