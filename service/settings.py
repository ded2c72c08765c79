"""Settings: one Struct, read once from ``BELONG_*`` environment variables."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import msgspec

from service.fhir import CANONICAL_BASE

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LIST_SETTINGS = frozenset({"licensed_instruments", "trusted_proxies", "frame_ancestors"})
"""Settings given as a comma-separated list."""
BOOL_SETTINGS = frozenset({"debug", "smtp_starttls"})
REFERENCE_FORM = r"env:[A-Za-z_][A-Za-z0-9_]*|file:/.+"


def _private_enough(url: str) -> bool:
    """An https URL, or http to the loopback: a phone number never crosses a network bare."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    try:
        return (
            parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname or "").is_loopback
        )
    except ValueError:
        return False


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    """A PostgreSQL URL (``postgresql+asyncpg://...``); unset, an embedded PostgreSQL keeps
    its data under ./var/pg (see :mod:`service.platform.embedded`)."""
    instruments_dir: Path = PROJECT_ROOT / "schemas" / "instruments"
    licensed_instruments: frozenset[str] = frozenset()
    """Licensed instrument groups the deployment holds permission for (e.g. ``promis``)."""
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 1_048_576
    db_pool_size: Annotated[int, msgspec.Meta(ge=1, le=200)] = 6
    db_max_overflow: Annotated[int, msgspec.Meta(ge=0, le=200)] = 0
    db_pool_timeout: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0
    """Seconds to wait for a pooled connection (or a new one) before answering 503."""
    db_statement_timeout_ms: Annotated[int, msgspec.Meta(ge=100, le=600_000)] = 10_000
    rate_limit_per_minute: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 1200
    """Requests a minute per API client and worker process; 0 turns the limit off."""
    request_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 30.0
    debug: bool = False
    public_base_url: (
        Annotated[str, msgspec.Meta(pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$")] | None
    ) = None
    """The external origin (https://belong.example.org): every absolute URL Belong writes
    (Bundle links, fullUrl, Location, SMART and CDS URLs) and the ``aud`` it requires of a
    client's JWT are built from it. Unset, see :func:`service.platform.origin.public_origin`."""
    fhir_canonical_base: Annotated[
        str, msgspec.Meta(pattern=r"^https?://[^/?#\s|]+(/[^?#\s|]*)?[^/?#\s|]$")
    ] = CANONICAL_BASE
    """Base of the canonical URLs of the instruments' Questionnaires and code systems and of
    the CapabilityStatement (e.g. the public base URL + ``/fhir``); no trailing slash."""
    trusted_proxies: frozenset[str] = frozenset()
    """Addresses or networks (``10.0.0.0/8``) of the proxies whose ``Forwarded`` /
    ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` headers name the public origin when
    ``public_base_url`` is unset; from any other peer those headers are ignored."""
    cds_screening_window_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 180
    """CDS Hooks: a patient with no screening in this many days gets a "screening due" card."""
    session_idle_minutes: Annotated[int, msgspec.Meta(ge=1, le=24 * 60)] = 15
    """The clinician app: a session ends after this many minutes without a request..."""
    session_absolute_hours: Annotated[int, msgspec.Meta(ge=1, le=7 * 24)] = 12
    """...and this many hours after sign-in, however busy."""
    frame_ancestors: frozenset[
        Annotated[str, msgspec.Meta(pattern=r"^(https?://[^/?#\s;,']+|'self')$")]
    ] = frozenset()
    """Origins allowed to show the app in a frame (an EHR's), besides Belong itself."""
    referral_overdue_days: Annotated[int, msgspec.Meta(ge=1, le=365)] = 7
    """The worklist flags a requested referral not accepted within this many days."""
    handout_link_days: Annotated[int, msgspec.Meta(ge=1, le=365)] = 30
    """A handout's short link (its QR code, the message sent to the patient) works this long."""
    patient_link_days: Annotated[int, msgspec.Meta(ge=1, le=90)] = 14
    """A patient link (a screening before the visit, "did you get help?") works this long."""
    smtp_url: Annotated[str, msgspec.Meta(pattern=r"^smtps?://[^/?#\s@]+$")] | None = None
    """The mail server handout link emails go through: ``smtp://host:587`` (STARTTLS, see
    ``smtp_starttls``) or ``smtps://host:465`` (TLS from the start); unset, no email."""
    smtp_starttls: bool = True
    """On ``smtp://``: require STARTTLS before anything is sent (off only for a relay on
    the loopback or the pod's own network)."""
    smtp_user: Annotated[str, msgspec.Meta(min_length=1, max_length=320)] | None = None
    smtp_password_ref: str | None = None
    """The SMTP password: ``env:VARIABLE`` or ``file:/run/secrets/name`` (read at each send)."""
    mail_from: Annotated[str, msgspec.Meta(min_length=3, max_length=320)] | None = None
    """The From of the emails (``Belong <no-reply@clinic.example.org>``); needed with
    ``smtp_url``."""
    sms_webhook_url: Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s#]+$")] | None = None
    """The SMS gateway's webhook: Belong POSTs JSON ``{"to", "body"}`` signed with
    ``sms_webhook_secret_ref``; a 2xx answer means sent. Unset, no SMS."""
    sms_webhook_secret_ref: str | None = None
    """The HMAC-SHA256 key of the webhook's ``X-Belong-Signature``: ``env:`` or ``file:``."""
    message_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=120)] = 10.0
    """How long sending one message (SMTP or the webhook) may take before it failed."""
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        for name in ("smtp_password_ref", "sms_webhook_secret_ref"):
            reference = getattr(self, name)
            if reference is not None and not re.fullmatch(REFERENCE_FORM, reference):
                raise ValueError(f"{name}: a secret reference is env:VARIABLE or file:/path")
        if self.smtp_url is not None and self.mail_from is None:
            raise ValueError("mail_from: needed when smtp_url is set")
        if self.sms_webhook_url is not None and not _private_enough(self.sms_webhook_url):
            raise ValueError("sms_webhook_url: https (http only on the loopback)")
        if self.sms_webhook_url is not None and self.sms_webhook_secret_ref is None:
            raise ValueError("sms_webhook_secret_ref: needed when sms_webhook_url is set")
        for entry in self.trusted_proxies:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an IP address or network"
                ) from None

    @property
    def frame_ancestors_policy(self) -> str:
        """The CSP ``frame-ancestors`` of every /app page."""
        return " ".join(["'self'", *sorted(self.frame_ancestors - {"'self'"})])

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``BELONG_<FIELD>`` variables; an unparseable value stops start-up."""
        environ = os.environ if environ is None else environ
        raw: dict[str, object] = {}
        for name in cls.__struct_fields__:
            value = environ.get(f"BELONG_{name.upper()}")
            if value is None:
                continue
            if name in LIST_SETTINGS:
                raw[name] = [part.strip() for part in value.split(",") if part.strip()]
            elif name == "public_base_url" and not value.strip():
                continue
            elif name in BOOL_SETTINGS:
                raw[name] = value.strip().lower() in {"1", "true", "yes", "on"}
            else:
                raw[name] = value
        try:
            return msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SystemExit(f"invalid setting: {exc} (from BELONG_* environment)") from exc
