"""The CapabilityStatement: what /fhir really supports, and nothing more."""

from __future__ import annotations

from typing import Any

from service.fhir import CANONICAL_BASE, FHIR_VERSION

SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"


def _search(name: str, kind: str, documentation: str) -> dict[str, str]:
    return {"name": name, "type": kind, "documentation": documentation}


def capability_statement(software_version: str, published: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "url": f"{CANONICAL_BASE}/CapabilityStatement/belong",
        "name": "Belong",
        "title": "Belong screening and referral FHIR facade",
        "status": "active",
        "date": published,
        "publisher": "Belong",
        "kind": "instance",
        "software": {"name": "Belong", "version": software_version},
        "implementation": {"description": "Belong FHIR R4 facade"},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "cors": False,
                    "description": (
                        "Every call except metadata and Questionnaire reads needs "
                        "'Authorization: Bearer <token>' issued to the clinic by "
                        "`belong clients create`; scopes screenings:read / screenings:write."
                    ),
                },
                "resource": [
                    {
                        "type": "Questionnaire",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                    },
                    {
                        "type": "QuestionnaireResponse",
                        "interaction": [{"code": "read"}, {"code": "create"}],
                        "conditionalCreate": True,
                        "documentation": (
                            "Answers to a Belong Questionnaire, or to a larger SDOH "
                            "questionnaire whose items carry LOINC codes as linkIds, are "
                            "scored into Observations. Conditional create by "
                            "If-None-Exist: identifier=system|value. A create whose "
                            "identifier is already stored returns the stored resource (200)."
                        ),
                    },
                    {
                        "type": "Observation",
                        "supportedProfile": [f"{SDOHCC}SDOHCC-ObservationScreeningResponse"],
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            _search("patient", "reference", "Patient/<id> or <id>"),
                            _search("subject", "reference", "Same as patient"),
                            _search("code", "token", "system|code, comma-separated"),
                            _search("category", "token", "survey, sdoh, social-connection"),
                            _search("date", "date", "effective time; eq ge gt le lt"),
                            _search("_lastUpdated", "date", "eq ge gt le lt"),
                        ],
                    },
                    {
                        "type": "ServiceRequest",
                        "supportedProfile": [f"{SDOHCC}SDOHCC-ServiceRequest"],
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            _search("patient", "reference", "Patient/<id> or <id>"),
                            _search("subject", "reference", "Same as patient"),
                            _search("status", "token", "active, on-hold, completed, revoked"),
                            _search("_lastUpdated", "date", "eq ge gt le lt"),
                        ],
                    },
                    {
                        "type": "Task",
                        "supportedProfile": [f"{SDOHCC}SDOHCC-TaskForReferralManagement"],
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            _search("patient", "reference", "Patient/<id> or <id>"),
                            _search("owner", "reference", "HealthcareService/<id>"),
                            _search("status", "token", "Task status, comma-separated"),
                            _search("_lastUpdated", "date", "eq ge gt le lt; poll with gt"),
                        ],
                    },
                    {
                        "type": "HealthcareService",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            _search(
                                "service-type",
                                "token",
                                "support-group, social-activity, family-communication, counselling",
                            ),
                        ],
                    },
                ],
            }
        ],
    }
