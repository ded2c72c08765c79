"""Systems' rules, pure: which Belong scopes a SMART ``system/`` scope needs, and the CDS
Hooks cards Belong answers with (their wire shapes, summaries and draft ServiceRequests)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import msgspec

from service.fhir import CANONICAL_BASE
from service.instruments.model import Signal
from service.matching.needs import ScreeningSummary

# --------------------------------------------------------------------------- SMART scopes

RESOURCE_SCOPES: dict[str, tuple[str | None, str | None]] = {
    # resource: (scope for r/s, scope for c/u/d)
    "Observation": ("screenings:read", None),
    "QuestionnaireResponse": ("screenings:read", "screenings:write"),
    "ServiceRequest": ("referrals:read", "referrals:write"),
    "Task": ("referrals:read", "referrals:write"),
    "HealthcareService": (None, "directory:write"),
    "AuditEvent": ("audit:read", None),
}
V1 = {"read": "rs", "write": "cud"}
SMART_SCOPE = re.compile(r"^system/(?P<resource>[A-Za-z]{1,64})\.(?P<permission>[a-z]{1,5})$")
V2_PERMISSION = re.compile(r"^c?r?u?d?s?$")


def belong_scopes(smart_scope: str) -> set[str] | None:
    """The Belong scopes a SMART system scope needs; None when Belong cannot grant it."""
    match = SMART_SCOPE.match(smart_scope)
    if match is None:
        return None
    resource, permission = match["resource"], match["permission"]
    permission = V1.get(permission, permission)
    if resource not in RESOURCE_SCOPES or not V2_PERMISSION.match(permission):
        return None
    read, write = RESOURCE_SCOPES[resource]
    needed: set[str] = set()
    for letters, scope in (("rs", read), ("cud", write)):
        if any(letter in permission for letter in letters):
            if scope is None:
                return None
            needed.add(scope)
    return needed


def supported_scopes() -> list[str]:
    found = []
    for resource, (read, write) in RESOURCE_SCOPES.items():
        if read:
            found += [f"system/{resource}.rs", f"system/{resource}.read"]
        if write:
            found += [f"system/{resource}.cud", f"system/{resource}.write"]
    return found


def granted_scopes(requested: str, held: frozenset[str]) -> tuple[list[str], set[str]]:
    """The requested SMART scopes (space-separated) a client holding ``held`` is granted, in
    the order asked, and the Belong scopes they carry."""
    granted: list[str] = []
    scopes: set[str] = set()
    for smart_scope in requested.split():
        needed = belong_scopes(smart_scope)
        if needed is not None and needed <= held and smart_scope not in granted:
            granted.append(smart_scope)
            scopes |= needed
    return granted, scopes


# --------------------------------------------------------------------------- CDS cards

SUMMARY_MAX = 139
"""CDS Hooks: a card's summary is under 140 characters."""
TOP_SERVICES = 3
SUGGESTED_QUESTIONNAIRES = ("ucla-3", "lsns-6", "osss-3")
OVERRIDE_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/cds-override-reason"
SDOHCC_CODES = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
NEED_WORDS = {
    Signal.LONELINESS: "Loneliness",
    Signal.SOCIAL_ISOLATION: "Social isolation",
    Signal.LOW_SUPPORT: "Low social support",
}


class CdsCoding(msgspec.Struct, omit_defaults=True):
    code: str
    display: str
    system: str | None = None


class CardSource(msgspec.Struct, omit_defaults=True):
    label: str
    url: str | None = None
    topic: CdsCoding | None = None


class Action(msgspec.Struct, omit_defaults=True):
    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, Any] | None = None


class Suggestion(msgspec.Struct):
    label: str
    uuid: str
    isRecommended: bool
    actions: list[Action]


class Link(msgspec.Struct, omit_defaults=True):
    label: str
    url: str
    type: Literal["absolute", "smart"]
    appContext: str | None = None
    """For a ``smart`` link only: what the EHR hands the launched app in its token response."""


class Card(msgspec.Struct, omit_defaults=True):
    uuid: str
    summary: Annotated[str, msgspec.Meta(min_length=1, max_length=SUMMARY_MAX)]
    indicator: Literal["info", "warning", "critical"]
    source: CardSource
    detail: str | None = None
    suggestions: list[Suggestion] = []
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    """Present exactly when there are suggestions (CDS Hooks 2.0 requires it then)."""
    overrideReasons: list[CdsCoding] = []
    links: list[Link] = []


OVERRIDE_REASONS = [
    CdsCoding(
        code="patient-declined", display="Patient declined a referral", system=OVERRIDE_SYSTEM
    ),
    CdsCoding(
        code="already-supported", display="Already receiving support", system=OVERRIDE_SYSTEM
    ),
    CdsCoding(code="not-now", display="Not appropriate at this visit", system=OVERRIDE_SYSTEM),
]

LAUNCH_PATH = "/app/launch"
"""Belong's SMART App Launch URL, under the public base."""
APP_CONTEXTS = ("recommendations", "screening")
"""What a card opens Belong on: the patient's recommendations, or the screening entry page."""


def open_in_belong(base: str, app_context: str, label: str) -> Link:
    """A CDS Hooks ``smart`` link: the EHR launches Belong at its launch URL and passes
    ``app_context`` to it in the token response."""
    if app_context not in APP_CONTEXTS:
        raise ValueError(f"appContext {app_context!r} is not one of {APP_CONTEXTS}")
    return Link(label=label, url=base + LAUNCH_PATH, type="smart", appContext=app_context)


# --------------------------------------------------------------------------- cards

_MARKDOWN = re.compile(r"([\\`*_\[\]<>|~])")


def md(text: str) -> str:
    """Text from the directory or the catalog, safe inside Markdown."""
    return _MARKDOWN.sub(r"\\\1", " ".join(text.split()))


def clip(text: str, limit: int = SUMMARY_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def source(base: str) -> CardSource:
    return CardSource(
        label="Belong",
        url=f"{base}/cds-services",
        topic=CdsCoding(code="social-connection", display="Social connection", system=SDOHCC_CODES),
    )


def positive_card(
    base: str,
    patient_id: str,
    need: ScreeningSummary,
    recommendations: Any,
    draft: Callable[[Any, str], dict[str, Any]],
) -> Card:
    """The warning card for a positive screen, suggesting for each matched service the
    draft ServiceRequest ``draft`` builds from the service and the need's words."""
    signal = need.signal
    words = NEED_WORDS.get(signal, "Social need") if signal is not None else "Social need"
    services = recommendations.items[:TOP_SERVICES]
    matched = f"; {len(services)} local services matched" if services else ""
    summary = clip(f"{words}: positive {need.instrument_title} screen{matched}")
    total = "not scored" if need.total is None else f"{need.total:g}"
    lines = [
        f"**{md(need.instrument_title)}** on {need.completed_at.date().isoformat()}: "
        f"score **{md(total)}**, band **{md(need.band_label or 'positive')}** "
        f"(severity {need.severity.value}).",
        "",
    ]
    if services:
        lines += ["**Recommended services**", ""]
        for index, item in enumerate(services, 1):
            reasons = "; ".join(md(r.text) for r in item.reasons) or "matches the need"
            lines.append(
                f"{index}. **{md(item.service.name)}** ({md(item.service.organization)}): {reasons}"
            )
    else:
        lines.append("No service in the clinic's directory matches this patient yet.")
    if recommendations.warnings:
        lines += [
            "",
            "**The patient's profile is incomplete**, so some matches may not fit:",
            "",
            *(f"- {md(w.message)}" for w in recommendations.warnings),
        ]
    suggestions = [
        Suggestion(
            label=clip(f"Refer to {item.service.name}", 80),
            uuid=str(uuid.uuid4()),
            isRecommended=index == 0,
            actions=[
                Action(
                    type="create",
                    description=clip(f"Draft a referral to {item.service.name}", 200),
                    resource=draft(item.service, words),
                )
            ],
        )
        for index, item in enumerate(services)
    ]
    return Card(
        uuid=str(uuid.uuid4()),
        summary=summary,
        indicator="warning",
        source=source(base),
        detail="\n".join(lines),
        suggestions=suggestions,
        selectionBehavior="any" if suggestions else None,
        overrideReasons=OVERRIDE_REASONS,
        links=[open_in_belong(base, "recommendations", "Open in Belong: recommendations")],
    )


def due_card(base: str, questionnaires: Sequence[tuple[str, str]], window_days: int) -> Card:
    """The info card for a patient not screened in ``window_days``, naming the
    ``(instrument id, short title)`` questionnaires and opening Belong's screening entry."""
    titles = ", ".join(md(short_title) for _, short_title in questionnaires)
    offered = f" Belong offers {titles}." if titles else ""
    return Card(
        uuid=str(uuid.uuid4()),
        summary=clip(f"Loneliness and social-support screening due (none in {window_days} days)"),
        indicator="info",
        source=source(base),
        detail=(
            f"No loneliness, social-isolation or social-support screening in the last "
            f"{window_days} days. Chronic pain and loneliness often travel together; a "
            f"three-item screen takes under a minute.{offered}"
        ),
        links=[open_in_belong(base, "screening", "Open in Belong: enter a screening")],
    )
