"""The CapabilityStatement: what /fhir really supports, and nothing more."""

from __future__ import annotations

from typing import Any

from service.fhir import FHIR_VERSION

SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"


US_CORE_SEARCH = "http://hl7.org/fhir/us/core/SearchParameter/"
BASE_SEARCH = "http://hl7.org/fhir/SearchParameter/"
REFERENCE = (
    "{type}/<id>, <id> or this server's absolute URL of it, comma-separated (any); "
    "repeated, each must match"
)
CODES = "system|code, code, |code or system| (any code of the system), comma-separated (any)"
DATE = "eq ge gt le lt; repeated, each must hold"


def _search(name: str, kind: str, definition: str, documentation: str) -> dict[str, str]:
    """A searchParam: ``definition`` is the SearchParameter's canonical URL."""
    return {"name": name, "definition": definition, "type": kind, "documentation": documentation}


def _id(definition: str = f"{BASE_SEARCH}Resource-id") -> dict[str, str]:
    return _search("_id", "token", definition, "ids, comma-separated (any)")


def _last_updated(documentation: str = DATE) -> dict[str, str]:
    return _search("_lastUpdated", "date", f"{BASE_SEARCH}Resource-lastUpdated", documentation)


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
                            _search(
                                "url",
                                "uri",
                                f"{BASE_SEARCH}Questionnaire-url",
                                "The canonical, or url|version",
                            ),
                            _id(),
                            _search(
                                "code",
                                "token",
                                f"{BASE_SEARCH}Questionnaire-code",
                                "Questionnaire or item code, system|code, comma-separated (any)",
                            ),
                        ],
                    },
                    {
                        "type": "QuestionnaireResponse",
                        "interaction": [
                            {"code": "read"},
                            {"code": "vread"},
                            {"code": "create"},
                            {"code": "update"},
                            {"code": "search-type"},
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
                        "searchParam": [
                            _id(),
                            _search(
                                "patient",
                                "reference",
                                f"{BASE_SEARCH}QuestionnaireResponse-patient",
                                REFERENCE.format(type="Patient"),
                            ),
                            _search(
                                "subject",
                                "reference",
                                f"{BASE_SEARCH}QuestionnaireResponse-subject",
                                "Same as patient",
                            ),
                            _search(
                                "identifier",
                                "token",
                                f"{BASE_SEARCH}QuestionnaireResponse-identifier",
                                "system|value, value, |value or system| (any value of the "
                                "system), comma-separated (any); identifier:missing=true|false",
                            ),
                            _search(
                                "authored",
                                "date",
                                f"{BASE_SEARCH}QuestionnaireResponse-authored",
                                DATE,
                            ),
                            _last_updated(),
                        ],
                    },
                    {
                        "type": "Observation",
                        "supportedProfile": [f"{SDOHCC}SDOHCC-ObservationScreeningResponse"],
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            _search(
                                "patient",
                                "reference",
                                f"{US_CORE_SEARCH}us-core-observation-patient",
                                REFERENCE.format(type="Patient"),
                            ),
                            _search(
                                "subject",
                                "reference",
                                f"{BASE_SEARCH}Observation-subject",
                                "Same as patient",
                            ),
                            _search(
                                "code",
                                "token",
                                f"{US_CORE_SEARCH}us-core-observation-code",
                                CODES,
                            ),
                            _search(
                                "category",
                                "token",
                                f"{US_CORE_SEARCH}us-core-observation-category",
                                "survey, sdoh, social-connection; " + CODES,
                            ),
                            _search(
                                "date",
                                "date",
                                f"{US_CORE_SEARCH}us-core-observation-date",
                                "effective time; " + DATE,
                            ),
                            _last_updated(),
                        ],
                        "searchInclude": [
                            "Observation:derived-from",
                            "Observation:derived-from:QuestionnaireResponse",
                            "Observation:derived-from:Observation",
                        ],
                    },
                    {
                        "type": "ServiceRequest",
                        "supportedProfile": [f"{SDOHCC}SDOHCC-ServiceRequest"],
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            _id(f"{US_CORE_SEARCH}us-core-servicerequest-id"),
                            _search(
                                "patient",
                                "reference",
                                f"{US_CORE_SEARCH}us-core-servicerequest-patient",
                                REFERENCE.format(type="Patient"),
                            ),
                            _search(
                                "subject",
                                "reference",
                                f"{BASE_SEARCH}ServiceRequest-subject",
                                "Same as patient",
                            ),
                            _search(
                                "category",
                                "token",
                                f"{US_CORE_SEARCH}us-core-servicerequest-category",
                                "SNOMED 410606002 and SDOHCC social-connection; " + CODES,
                            ),
                            _search(
                                "code",
                                "token",
                                f"{US_CORE_SEARCH}us-core-servicerequest-code",
                                CODES,
                            ),
                            _search(
                                "authored",
                                "date",
                                f"{US_CORE_SEARCH}us-core-servicerequest-authored",
                                DATE,
                            ),
                            _search(
                                "status",
                                "token",
                                f"{US_CORE_SEARCH}us-core-servicerequest-status",
                                "draft, active, on-hold, revoked, completed, entered-in-error, "
                                "unknown, comma-separated (any); repeated, each must match",
                            ),
                            _last_updated(),
                        ],
                        "searchRevInclude": ["Task:focus"],
                    },
                    {
                        "type": "Task",
                        "supportedProfile": [f"{SDOHCC}SDOHCC-TaskForReferralManagement"],
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            _id(),
                            _search(
                                "patient",
                                "reference",
                                f"{BASE_SEARCH}Task-patient",
                                REFERENCE.format(type="Patient"),
                            ),
                            _search(
                                "focus",
                                "reference",
                                f"{BASE_SEARCH}Task-focus",
                                REFERENCE.format(type="ServiceRequest"),
                            ),
                            _search(
                                "owner",
                                "reference",
                                f"{BASE_SEARCH}Task-owner",
                                REFERENCE.format(type="HealthcareService")
                                + "; owner:missing=true|false",
                            ),
                            _search(
                                "status",
                                "token",
                                f"{BASE_SEARCH}Task-status",
                                "Task status, comma-separated (any); repeated, each must match",
                            ),
                            _last_updated(DATE + "; poll with gt"),
                        ],
                        "searchInclude": ["Task:focus"],
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
                                f"{BASE_SEARCH}HealthcareService-service-type",
                                "support-group, social-activity, family-communication, counselling",
                            ),
                        ],
                    },
                ],
            }
        ],
    }
