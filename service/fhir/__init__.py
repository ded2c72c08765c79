"""FHIR R4 (4.0.1) wire types as msgspec Structs, and builders from domain objects."""

CANONICAL_BASE = "https://belong.example/fhir"
"""Base of the canonical URLs Belong mints (Questionnaires, local code systems): the default
of ``BELONG_FHIR_CANONICAL_BASE``, which the instruments' URLs and the CapabilityStatement's
follow, so that stored data and existing clients keep working."""
FHIR_VERSION = "4.0.1"
