"""The CapabilityStatement: what /fhir really supports, and nothing more."""

from __future__ import annotations

from typing import Any

from service.fhir import FHIR_VERSION

SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"


def _search(name: str, kind: str, documentation: str) -> dict[str, str]:
    return {"name": name, "type": kind, "documentation": documentation}


def capability_statement(
    software_version: str, published: str, canonical_base: str
) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "url": f"{canonical_base}/CapabilityStatement/belong",
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
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": (
                                        "http://terminology.hl7.org/CodeSystem/"
                                        "restful-security-service"
                                    ),
                                    "code": "SMART-on-FHIR",
                                }
                            ],
                            "text": "SMART Backend Services (client_credentials)",
                        }
                    ],
                    "description": (
                        "Every call except metadata and Questionnaire reads needs "
                        "'Authorization: Bearer <token>': either a token issued to the clinic "
                        "by `belong clients create`, or a SMART Backend Services access token "
                        "(client_credentials with a private_key_jwt assertion, RS384 or ES384; "
                        "discovery at /.well-known/smart-configuration and "
                        "/fhir/.well-known/smart-configuration; token endpoint /auth/token; "
                        "system/ scopes, v1 .read/.write and v2 .rs/.cud; tokens live 300 s). "
                        "CDS Hooks 2.0 services at /cds-services accept the CDS client's own "
                        "JWT (RS384 or ES384, aud the service URL, fresh jti) from an issuer "
                        "the clinic registered with its JWKS."
                    ),
                },
                "resource": [
                    {
                        "type": "Questionnaire",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            _search("url", "uri", "The canonical, or url|version"),
                            _search("_id", "token", "Instrument ids, comma-separated"),
                            _search("code", "token", "Questionnaire or item code, system|code"),
                        ],
                    },
                    {
                        "type": "QuestionnaireResponse",
                        "interaction": [
                            {"code": "read"},
                            {"code": "vread"},
                            {"code": "create"},
                            {"code": "update"},
                        ],
                        "versioning": "versioned-update",
                        "conditionalCreate": True,
                        "conditionalUpdate": True,
                        "updateCreate": False,
                        "documentation": (
                            "Answers to a Belong Questionnaire, or to a larger SDOH "
                            "questionnaire whose items carry LOINC codes as linkIds, are "
                            "scored into Observations. Conditional create by "
                            "If-None-Exist: identifier=system|value. A create whose "
                            "identifier is already stored returns the stored resource (200). "
                            "Corrections: an amended or entered-in-error response with a "
                            "stored identifier (POST, PUT ?identifier=system|value, or PUT "
                            "/QuestionnaireResponse/{id}, If-Match honoured) is stored as its "
                            "next version: re-scored, its Observations corrected (same ids), "
                            "or entered-in-error and counted in no needs."
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
                        "type": "Organization",
                        "interaction": [{"code": "read"}],
                        "documentation": (
                            "The caller's clinic, which its ServiceRequests and Tasks name as "
                            "requester (scope referrals:read)."
                        ),
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
