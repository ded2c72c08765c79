"""Needs from screenings, and matching: hard filters, ranking, reasons, exclusions.

Directories are built here, service by service, so each test shows the one fact it is
about. The rules checked are the ones written in DESIGN.md section 7 and in the
docstrings of ``service.matching.needs`` and ``service.matching.model``; where a check
needs an oracle (which filters apply, which reasons are true) it is restated here from
those words rather than read back from the code.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.directory.model import Category, DirectoryService
from service.instruments.model import Construct, Severity, Signal
from service.matching import model as matching
from service.matching.model import (
    CONDITION_POINTS,
    DISTANCE_POINTS,
    EARTH_RADIUS_KM,
    FIT,
    FROM_HOME_POINTS,
    MODALITY_POINTS,
    NEED_POINTS,
    SEVERE_COUNSELLING_POINTS,
    SEVERITY_WEIGHT,
    WAITLIST_POINTS,
    MatchResult,
    Recommendation,
    match,
    prepare,
)
from service.matching.needs import Need, Needs, ScreeningSummary, derive
from service.patients.model import AgeBand, Modality, PainCondition, PatientProfile

PROPERTY = settings(max_examples=300, deadline=None, database=None)
DAY = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
HOME = (51.5, -0.1)
DROP_CODES = {
    "not_accepting",
    "service_not_accepting",
    "no_capacity",
    "outside_age_limits",
    "no_shared_language",
    "condition_not_served",
    "outside_catchment",
    "beyond_patient_reach",
}


# -- building blocks --------------------------------------------------------------------


def destination(lat: float, lon: float, bearing: float, km: float) -> tuple[float, float]:
    """The point ``km`` along the great circle leaving (lat, lon) at ``bearing`` degrees."""
    p1, l1, theta, d = (
        math.radians(lat),
        math.radians(lon),
        math.radians(bearing),
        km / EARTH_RADIUS_KM,
    )
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(theta))
    l2 = l1 + math.atan2(
        math.sin(theta) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    return math.degrees(p2), (math.degrees(l2) + 540) % 360 - 180


def haversine(a: tuple[float, float], b: tuple[float, float]) -> float:
    (lat1, lon1), (lat2, lon2) = (tuple(map(math.radians, p)) for p in (a, b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


_ids = iter(range(1, 10**9))


def service(name: str = "Service", **fields: Any) -> DirectoryService:
    """A valid directory entry (through msgspec, as the API builds them)."""
    body: dict[str, Any] = {
        "id": fields.pop("id", f"svc-{next(_ids):05d}"),
        "name": name,
        "organization": "Org",
        "category": "support-group",
        "modalities": ["online"],
    }
    if "location" in fields and isinstance(fields["location"], tuple):
        lat, lon = fields["location"]
        fields["location"] = {"lat": lat, "lon": lon}
    body.update(fields)
    return msgspec.convert(body, DirectoryService)


def profile(**fields: Any) -> PatientProfile:
    if "location" in fields and isinstance(fields["location"], tuple):
        lat, lon = fields["location"]
        fields["location"] = {"lat": lat, "lon": lon}
    return msgspec.convert(fields, PatientProfile)


def need(
    signal: Signal = Signal.LONELINESS,
    severity: Severity = Severity.MODERATE,
    instrument: str = "UCLA-3",
) -> Need:
    return Need(
        signal=signal,
        severity=severity,
        screening_id=f"scr-{signal.value}",
        instrument=instrument.lower(),
        instrument_title=instrument,
        completed_at=DAY,
        band_label="Lonely",
    )


def needs(*items: Need, high_pain: bool = False) -> Needs:
    return Needs(tuple(items) or (need(),), high_pain, "peg-1" if high_pain else None)


def run(
    services: list[DirectoryService],
    patient: PatientProfile | None = None,
    patient_needs: Needs | None = None,
    **options: Any,
) -> MatchResult:
    return match(
        patient_needs or needs(),
        patient or PatientProfile(),
        prepare(services),
        **{"limit": 100, **options},
    )


def names(result: MatchResult) -> list[str]:
    return [r.service.name for r in result.recommendations]


def excluded_codes(result: MatchResult) -> dict[str, set[str]]:
    return {e.service.name: {r.code for r in e.reasons} for e in result.excluded}


def codes(recommendation: Recommendation) -> list[str]:
    return [r.code for r in recommendation.reasons]


# -- needs ---------------------------------------------------------------------------------


def summary(
    construct: Construct,
    at: datetime,
    *,
    positive: bool = True,
    signal: Signal | None = Signal.LONELINESS,
    severity: Severity = Severity.MODERATE,
    total: float | None = 8,
    ident: str | None = None,
    instrument: str = "ucla-3",
) -> ScreeningSummary:
    return ScreeningSummary(
        screening_id=ident or f"{instrument}-{at.isoformat()}",
        instrument=instrument,
        instrument_title=instrument.upper(),
        construct=construct,
        completed_at=at,
        total=total,
        positive=positive,
        signal=signal if positive else None,
        severity=severity if positive else Severity.NONE,
        band_label="Lonely" if positive else "Not lonely",
    )


def test_a_later_negative_screen_clears_an_earlier_positive_one() -> None:
    earlier = summary(Construct.LONELINESS, DAY)
    later = summary(
        Construct.LONELINESS, DAY + timedelta(days=30), positive=False, instrument="djg-6"
    )

    assert derive([earlier, later]).needs == ()
    assert derive([later, earlier]).needs == ()  # order of the input does not matter


def test_a_later_positive_screen_raises_the_need_again() -> None:
    first = summary(Construct.LONELINESS, DAY, ident="first")
    cleared = summary(Construct.LONELINESS, DAY + timedelta(days=1), positive=False)
    back = summary(
        Construct.LONELINESS, DAY + timedelta(days=2), severity=Severity.SEVERE, ident="back"
    )

    (only,) = derive([first, cleared, back]).needs
    assert (only.signal, only.severity, only.screening_id) == (
        Signal.LONELINESS,
        Severity.SEVERE,
        "back",
    )


def test_each_construct_keeps_its_own_latest_screening() -> None:
    lonely = summary(Construct.LONELINESS, DAY)
    isolated_then_not = [
        summary(
            Construct.SOCIAL_NETWORK,
            DAY - timedelta(days=10),
            signal=Signal.SOCIAL_ISOLATION,
            instrument="lsns-6",
        ),
        summary(
            Construct.SOCIAL_NETWORK,
            DAY + timedelta(days=10),
            positive=False,
            instrument="lsns-6",
        ),
    ]
    low_support = summary(
        Construct.SOCIAL_SUPPORT, DAY, signal=Signal.LOW_SUPPORT, instrument="osss-3"
    )

    derived = derive([lonely, *isolated_then_not, low_support])

    assert {n.signal for n in derived.needs} == {Signal.LONELINESS, Signal.LOW_SUPPORT}


def test_severity_is_the_highest_of_the_screens_raising_a_signal() -> None:
    moderate = summary(Construct.LONELINESS, DAY, severity=Severity.MODERATE, ident="mod")
    severe = summary(
        Construct.SOCIAL_NETWORK, DAY - timedelta(days=5), severity=Severity.SEVERE, ident="sev"
    )
    mild = summary(Construct.SOCIAL_SUPPORT, DAY, signal=Signal.LOW_SUPPORT, severity=Severity.MILD)

    derived = derive([moderate, severe, mild])

    assert [(n.signal, n.severity) for n in derived.needs] == [
        (Signal.LONELINESS, Severity.SEVERE),  # most severe first
        (Signal.LOW_SUPPORT, Severity.MILD),
    ]
    assert derived.needs[0].screening_id == "sev"
    assert derived.most_severe is Severity.SEVERE


@pytest.mark.parametrize(
    ("total", "high"),
    [(10.0, True), (7.0, True), (6.9, False), (0.0, False), (None, False)],
)
def test_a_peg_of_7_or_more_sets_high_pain_interference(total: float | None, high: bool) -> None:
    peg = summary(Construct.PAIN, DAY, positive=False, total=total, ident="peg-1", instrument="peg")
    lonely = summary(Construct.LONELINESS, DAY)

    derived = derive([peg, lonely])

    assert derived.high_pain_interference is high
    assert derived.pain_screening_id == ("peg-1" if high else None)
    assert [n.signal for n in derived.needs] == [Signal.LONELINESS]  # pain is not a need


def test_only_the_latest_peg_counts() -> None:
    def peg(days: int, total: float) -> ScreeningSummary:
        at = DAY + timedelta(days=days)
        return summary(Construct.PAIN, at, positive=False, total=total, instrument="peg")

    assert derive([peg(0, 8.3), peg(7, 2.0)]).high_pain_interference is False
    assert derive([peg(-7, 2.0), peg(0, 8.3)]).high_pain_interference is True


def test_no_screenings_no_needs_and_nothing_recommended() -> None:
    derived = derive([])

    assert derived == Needs(())
    assert derived.most_severe is Severity.NONE
    result = match(derived, PatientProfile(), prepare([service()]))
    assert result.recommendations == [] and result.considered == 1


# -- hard filters, one at a time ---------------------------------------------------------


FILTER_CASES = [
    pytest.param({"accepting_referrals": False}, {}, "not_accepting", id="not-accepting"),
    pytest.param(
        {"capacity_status": "not-accepting"}, {}, "service_not_accepting", id="said-not-accepting"
    ),
    pytest.param({"capacity": 0}, {}, "no_capacity", id="capacity-0"),
    pytest.param({"max_age": 30}, {"age_band": "65-74"}, "outside_age_limits", id="too-old"),
    pytest.param({"min_age": 65}, {"age_band": "45-64"}, "outside_age_limits", id="too-young"),
    pytest.param({"languages": ["fr"]}, {"languages": ["en"]}, "no_shared_language", id="lang"),
    pytest.param(
        {"conditions": ["crps"]},
        {"pain_conditions": ["fibromyalgia"]},
        "condition_not_served",
        id="condition",
    ),
    pytest.param(
        {
            "modalities": ["in-person"],
            "location": destination(*HOME, 90, 20),
            "catchment_km": 15,
        },
        {"location": HOME},
        "outside_catchment",
        id="catchment",
    ),
    pytest.param(
        {
            "modalities": ["in-person"],
            "location": destination(*HOME, 0, 20),
            "catchment_km": 40,
        },
        {"location": HOME, "max_travel_km": 10},
        "beyond_patient_reach",
        id="patient-reach",
    ),
]


@pytest.mark.parametrize(("service_fields", "patient_fields", "code"), FILTER_CASES)
def test_each_hard_filter_alone_drops_the_service_and_says_why(
    service_fields: dict[str, Any], patient_fields: dict[str, Any], code: str
) -> None:
    kept = service("Kept", **{k: v for k, v in service_fields.items() if k == "location"})
    dropped = service("Dropped", **service_fields)

    result = run([kept, dropped], profile(**patient_fields), explain_excluded=True)

    assert names(result) == ["Kept"]
    assert excluded_codes(result) == {"Dropped": {code}}
    assert result.considered == 2


def test_without_explain_the_excluded_list_is_empty() -> None:
    result = run([service("Full", capacity=0), service("Open")])

    assert names(result) == ["Open"]
    assert result.excluded == []


@pytest.mark.parametrize(
    ("limits", "band"),
    [
        ({"max_age": 29}, "18-29"),  # the band reaches the limit
        ({"min_age": 29}, "18-29"),
        ({"min_age": 18, "max_age": 25}, "18-29"),  # overlap is enough
        ({"min_age": 65}, "75+"),
        ({"max_age": 30}, None),  # age unknown: not filtered
    ],
)
def test_age_limits_that_overlap_the_patients_band_keep_the_service(
    limits: dict[str, int], band: str | None
) -> None:
    patient = profile(age_band=band) if band else PatientProfile()

    assert names(run([service("Aged", **limits)], patient)) == ["Aged"]


@pytest.mark.parametrize(
    ("offered", "spoken"),
    [
        (["es"], ["es-MX"]),
        (["es-MX"], ["es"]),
        (["es-ES"], ["es-MX"]),
        (["EN"], ["en-GB"]),
        ([], ["pl"]),  # service languages unknown
        (["pl"], []),  # patient languages unknown
        (["fr", "ur"], ["en", "ur-PK"]),
    ],
)
def test_languages_share_by_primary_subtag(offered: list[str], spoken: list[str]) -> None:
    patient = profile(languages=spoken)

    assert names(run([service("Talk", languages=offered)], patient)) == ["Talk"]


def test_the_clinics_languages_stand_in_for_a_profile_without_languages() -> None:
    directory = [
        service("Arabic Circle", languages=["ar"]),
        service("English Group", languages=["en-GB"]),
        service("Any Language Group"),
    ]
    candidates = prepare(directory)

    unknown = match(needs(), PatientProfile(), candidates, clinic_languages=("en",))
    spoken = match(needs(), profile(languages=["ar"]), candidates, clinic_languages=("en",))
    no_clinic = match(needs(), PatientProfile(), candidates)

    assert names(unknown) == ["Any Language Group", "English Group"]
    assert names(spoken) == ["Any Language Group", "Arabic Circle"]  # the patient's own win
    assert len(names(no_clinic)) == 3


def test_a_directory_in_many_languages_is_filtered_on_each() -> None:
    tags = [f"x{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(80)]
    directory = [service(f"In {tag}", languages=[tag]) for tag in tags]

    result = run(directory, profile(languages=["xab-Latn", "xcz"]), explain_excluded=True)

    assert names(result) == ["In xab", "In xcz"]
    assert len(result.excluded) == 78
    assert {r.code for e in result.excluded for r in e.reasons} == {"no_shared_language"}


def test_an_exclusion_on_the_clinics_languages_says_so() -> None:
    result = match(
        needs(),
        PatientProfile(),
        prepare([service("Arabic Circle", languages=["ar"])]),
        clinic_languages=("en", "cy"),
        explain_excluded=True,
    )

    [excluded] = result.excluded
    [reason] = excluded.reasons
    assert reason.code == "no_shared_language"
    assert "not recorded" in reason.text and "clinic's languages (en, cy)" in reason.text


def test_profile_warnings_name_each_missing_field_that_filters() -> None:
    empty = matching.profile_warnings(PatientProfile(), ("en",))
    complete = profile(languages=["fr"], age_band="30-44", location=HOME, pain_conditions=["crps"])

    assert [w.field for w in empty] == ["languages", "age_band", "location", "pain_conditions"]
    assert {w.code for w in empty} == {"missing_profile_field"}
    assert "clinic's languages (en)" in empty[0].message
    assert matching.profile_warnings(complete, ("en",)) == []
    postcode_only = matching.profile_warnings(profile(postcode="SW1A 1AA"), ("en",))
    assert "postcode" in next(w for w in postcode_only if w.field == "location").message


@pytest.mark.parametrize(
    ("served", "conditions"),
    [
        (["crps"], ["crps"]),
        (["crps", "fibromyalgia"], ["fibromyalgia", "low-back-pain"]),
        ([], ["crps"]),  # for every condition
        (["crps"], []),  # patient's condition unknown
    ],
)
def test_condition_filter_keeps_a_service_for_one_of_the_patients_conditions(
    served: list[str], conditions: list[str]
) -> None:
    patient = profile(pain_conditions=conditions)

    assert names(run([service("Group", conditions=served)], patient)) == ["Group"]


def test_a_mixed_in_person_and_online_service_beyond_reach_is_kept() -> None:
    far = destination(*HOME, 45, 80)
    mixed = service("Mixed", modalities=["in-person", "online"], location=far, catchment_km=10)
    in_person = service("In person", modalities=["in-person"], location=far, catchment_km=10)
    patient = profile(location=HOME, max_travel_km=5)

    result = run([mixed, in_person], patient, explain_excluded=True)

    assert names(result) == ["Mixed"]
    assert excluded_codes(result) == {"In person": {"outside_catchment", "beyond_patient_reach"}}
    (kept,) = result.recommendations
    assert kept.distance_km == pytest.approx(80, abs=0.05)


def test_in_person_services_are_not_filtered_by_distance_when_a_location_is_missing() -> None:
    nowhere = service("No location", modalities=["in-person"])
    located = service(
        "Located", modalities=["in-person"], location=destination(*HOME, 0, 300), catchment_km=5
    )

    assert names(run([nowhere, located], profile(max_travel_km=1))) == ["Located", "No location"]
    assert names(run([nowhere], profile(location=HOME, max_travel_km=1))) == ["No location"]


def test_catchment_and_reach_are_great_circle_kilometres() -> None:
    inside = service(
        "Inside",
        modalities=["in-person"],
        location=destination(*HOME, 123, 9.9),
        catchment_km=10,
    )
    outside = service(
        "Outside",
        modalities=["in-person"],
        location=destination(*HOME, 123, 10.1),
        catchment_km=10,
    )

    result = run([inside, outside], profile(location=HOME), explain_excluded=True)

    assert names(result) == ["Inside"]
    assert result.recommendations[0].distance_km == 9.9
    assert excluded_codes(result) == {"Outside": {"outside_catchment"}}


def test_several_failed_filters_are_all_reported() -> None:
    hopeless = service(
        "Hopeless",
        accepting_referrals=False,
        languages=["fr"],
        conditions=["crps"],
        max_age=25,
        modalities=["in-person"],
        location=destination(*HOME, 0, 50),
        catchment_km=5,
    )
    patient = profile(
        languages=["en"],
        pain_conditions=["low-back-pain"],
        age_band="45-64",
        location=HOME,
        max_travel_km=10,
    )

    result = run([hopeless], patient, explain_excluded=True)

    assert excluded_codes(result) == {
        "Hopeless": {
            "not_accepting",
            "outside_age_limits",
            "no_shared_language",
            "condition_not_served",
            "outside_catchment",
            "beyond_patient_reach",
        }
    }


# -- ranking ------------------------------------------------------------------------------


def test_a_group_for_the_patients_condition_ranks_above_a_general_one() -> None:
    general = service("A general group")
    specific = service("Z CRPS group", conditions=["crps"])

    result = run([general, specific], profile(pain_conditions=["crps"]))

    assert names(result) == ["Z CRPS group", "A general group"]
    assert "condition_specific" in codes(result.recommendations[0])
    assert "any_condition" in codes(result.recommendations[1])


def test_the_preferred_modality_ranks_above_another() -> None:
    phone = service("A by phone", modalities=["phone"])
    online = service("Z online", modalities=["online"])

    result = run([phone, online], profile(preferred_modalities=["online"]))

    assert names(result) == ["Z online", "A by phone"]
    assert "preferred_modality" in codes(result.recommendations[0])
    assert "preferred_modality" not in codes(result.recommendations[1])


def test_a_severe_need_puts_counselling_first() -> None:
    group = service("A CRPS group online", conditions=["crps"])
    counselling = service("Z counselling", category="counselling", modalities=["in-person"])
    patient = profile(pain_conditions=["crps"], preferred_modalities=["online"])

    moderate = run([group, counselling], patient, needs(need(severity=Severity.MODERATE)))
    severe = run([group, counselling], patient, needs(need(severity=Severity.SEVERE)))

    assert names(moderate) == ["A CRPS group online", "Z counselling"]
    assert names(severe) == ["Z counselling", "A CRPS group online"]
    assert "severe_need_counselling" in codes(severe.recommendations[0])
    assert "severe_need_counselling" not in codes(moderate.recommendations[1])


def test_a_severe_need_puts_counselling_first_even_against_a_perfect_support_group() -> None:
    all_severe = needs(
        need(Signal.LONELINESS, Severity.SEVERE, "DJG-6"),
        need(Signal.SOCIAL_ISOLATION, Severity.SEVERE, "PROMIS-SI-4a"),
        need(Signal.LOW_SUPPORT, Severity.SEVERE, "PROMIS-ES-4a"),
        high_pain=True,
    )
    group = service(
        "Perfect group",
        conditions=["crps"],
        modalities=["in-person", "online"],
        location=HOME,
    )
    counselling = service("Counselling", category="counselling", modalities=["in-person"])
    patient = profile(pain_conditions=["crps"], preferred_modalities=["online"], location=HOME)

    result = run([group, counselling], patient, all_severe)

    assert names(result)[0] == "Counselling"


def test_high_pain_interference_favours_services_usable_from_home() -> None:
    in_person = service("A in person", modalities=["in-person"])
    online = service("B online", modalities=["online"])
    phone = service("C phone", modalities=["phone"])
    services = [phone, online, in_person]

    calm = run(services, PatientProfile(), needs(need()))
    painful = run(services, PatientProfile(), needs(need(), high_pain=True))

    assert names(calm) == ["A in person", "B online", "C phone"]  # a tie: by name
    assert names(painful) == ["B online", "C phone", "A in person"]
    assert all("usable_from_home" in codes(r) for r in painful.recommendations[:2])
    assert "usable_from_home" not in codes(painful.recommendations[2])
    assert not any("usable_from_home" in codes(r) for r in calm.recommendations)


def test_a_nearer_in_person_service_ranks_above_a_farther_one() -> None:
    far = service(
        "A far", modalities=["in-person"], location=destination(*HOME, 200, 12), catchment_km=30
    )
    near = service(
        "B near", modalities=["in-person"], location=destination(*HOME, 10, 3), catchment_km=30
    )

    result = run([far, near], profile(location=HOME))

    assert names(result) == ["B near", "A far"]
    assert [r.distance_km for r in result.recommendations] == [3.0, 12.0]
    assert result.recommendations[0].score > result.recommendations[1].score


def test_needs_weight_categories_by_fit_and_severity() -> None:
    services = [service(c.value, category=c.value) for c in Category]
    unsupported = run(services, patient_needs=needs(need(Signal.LOW_SUPPORT, Severity.MODERATE)))

    assert names(unsupported)[:2] == ["family-communication", "support-group"]  # fit 3, by name
    assert names(unsupported)[-1] == "social-activity"  # fit 1
    scores = {r.service.name: r.score for r in unsupported.recommendations}
    assert scores["family-communication"] == 3 * 2 * NEED_POINTS


def test_ties_break_by_name_then_id() -> None:
    twins = [
        service("Same", id="svc-b"),
        service("Same", id="svc-a"),
        service("Earlier"),
        service("Same", id="svc-c"),
    ]

    result = run(twins)

    assert [(r.service.name, r.service.id) for r in result.recommendations] == [
        ("Earlier", twins[2].id),
        ("Same", "svc-a"),
        ("Same", "svc-b"),
        ("Same", "svc-c"),
    ]
    assert len({r.score for r in result.recommendations}) == 1


def test_limit_keeps_the_best() -> None:
    services = [service(f"S{i:02d}", conditions=["crps"] if i % 3 == 0 else []) for i in range(30)]

    top = run(services, profile(pain_conditions=["crps"]), limit=5)

    assert names(top) == ["S00", "S03", "S06", "S09", "S12"]
    assert top.considered == 30


# -- reasons in words -------------------------------------------------------------------

CONDITION_WORDS = {
    "crps": "CRPS",
    "chronic-headache": "chronic headache or migraine",
    "low-back-pain": "severe low back pain",
    "chronic-pain-syndrome": "chronic pain syndrome",
    "fibromyalgia": "fibromyalgia",
}
"""The pain conditions as DESIGN.md names them (CRPS, chronic headache and migraine,
severe low back pain, chronic pain syndrome), and fibromyalgia."""


def reason_text(reasons: Any, code: str) -> str:
    (text,) = [r.text for r in reasons if r.code == code]
    return str(text)


@pytest.mark.parametrize("condition", sorted(CONDITION_WORDS))
def test_a_condition_specific_reason_names_the_condition_in_words(condition: str) -> None:
    group = service("Group", conditions=[condition])

    [found] = run([group], profile(pain_conditions=[condition])).recommendations

    words = CONDITION_WORDS[condition]
    assert reason_text(found.reasons, "condition_specific") == f"A group for people with {words}"


@pytest.mark.parametrize(
    ("category", "text"),
    [
        ("support-group", "A group for people with CRPS"),
        ("social-activity", "An activity for people with CRPS"),
        ("family-communication", "Sessions for people with CRPS"),
        ("counselling", "Counselling for people with CRPS"),
    ],
)
def test_a_condition_specific_reason_names_what_the_service_is(category: str, text: str) -> None:
    offered = service("Offered", category=category, conditions=["crps"])

    [found] = run([offered], profile(pain_conditions=["crps"])).recommendations

    assert reason_text(found.reasons, "condition_specific") == text


def test_a_reason_for_several_shared_conditions_names_each() -> None:
    group = service("Group", conditions=["low-back-pain", "crps", "fibromyalgia"])

    [found] = run([group], profile(pain_conditions=["fibromyalgia", "crps"])).recommendations

    assert (
        reason_text(found.reasons, "condition_specific")
        == "A group for people with CRPS and fibromyalgia"
    )


def test_a_condition_not_served_is_named_in_words() -> None:
    group = service("Group", conditions=["chronic-headache", "crps"])

    result = run([group], profile(pain_conditions=["low-back-pain"]), explain_excluded=True)

    [excluded] = result.excluded
    assert (
        reason_text(excluded.reasons, "condition_not_served")
        == "Only for people with CRPS or chronic headache or migraine"
    )


# -- reasons are true ---------------------------------------------------------------------


def expected_drops(s: DirectoryService, p: PatientProfile) -> set[str]:
    """The hard filters, restated from the matching docstring."""
    drops = set()
    if not s.accepting_referrals:
        drops.add("not_accepting")
    elif s.capacity == 0:
        drops.add("no_capacity")
    if s.capacity_status == "not-accepting":
        drops.add("service_not_accepting")
    if p.age_band is not None:
        low, high = p.age_band.bounds
        if (s.max_age is not None and s.max_age < low) or (
            s.min_age is not None and s.min_age > high
        ):
            drops.add("outside_age_limits")
    offered = {t.split("-")[0].lower() for t in s.languages}
    spoken = {t.split("-")[0].lower() for t in p.languages}
    if offered and spoken and not offered & spoken:
        drops.add("no_shared_language")
    patient_conditions = set(p.pain_conditions) - {PainCondition.OTHER}
    if s.conditions and patient_conditions and not set(s.conditions) & patient_conditions:
        drops.add("condition_not_served")
    if set(s.modalities) == {Modality.IN_PERSON} and s.location and p.location:
        d = haversine((s.location.lat, s.location.lon), (p.location.lat, p.location.lon))
        if s.catchment_km is not None and d > s.catchment_km:
            drops.add("outside_catchment")
        if p.max_travel_km is not None and d > p.max_travel_km:
            drops.add("beyond_patient_reach")
    return drops


def check_recommendation(r: Recommendation, n: Needs, p: PatientProfile) -> None:
    """Every reason a recommendation carries is true of its service, and none is missing."""
    s = r.service
    got = codes(r)
    assert len(got) == len(set(got)), got
    assert not set(got) & DROP_CODES
    # answers_<signal>: one per need, naming severity, instrument and date.
    answered = [c.removeprefix("answers_") for c in got if c.startswith("answers_")]
    assert sorted(answered) == sorted(x.signal.value for x in n.needs)
    for reason in r.reasons:
        if reason.code.startswith("answers_"):
            (x,) = [x for x in n.needs if reason.code == f"answers_{x.signal.value}"]
            assert x.severity.value in reason.text
            assert x.instrument_title in reason.text
            assert x.completed_at.date().isoformat() in reason.text
    assert set(r.answers) == {x.signal for x in n.needs if FIT[x.signal][s.category] >= 2}

    severe = any(x.severity is Severity.SEVERE for x in n.needs)
    assert ("severe_need_counselling" in got) == (severe and s.category is Category.COUNSELLING)

    shared = set(s.conditions) & set(p.pain_conditions) - {PainCondition.OTHER}
    assert ("condition_specific" in got) == bool(shared)
    assert ("any_condition" in got) == (not s.conditions)
    if shared:
        text = next(x.text for x in r.reasons if x.code == "condition_specific")
        assert all(CONDITION_WORDS[c.value] in text for c in shared)

    preferred = set(s.modalities) & set(p.preferred_modalities)
    assert ("preferred_modality" in got) == bool(preferred)
    if preferred:
        text = next(x.text for x in r.reasons if x.code == "preferred_modality")
        assert all(m.value in text for m in preferred)

    from_home = bool({Modality.ONLINE, Modality.PHONE} & set(s.modalities))
    assert ("usable_from_home" in got) == (n.high_pain_interference and from_home)

    distance = None
    if s.location and p.location:
        distance = haversine((s.location.lat, s.location.lon), (p.location.lat, p.location.lon))
    has_distance = distance is not None and Modality.IN_PERSON in s.modalities
    assert ("distance" in got) == has_distance
    if has_distance:
        text = next(x.text for x in r.reasons if x.code == "distance")
        assert re.fullmatch(r"[0-9]+\.[0-9] km from the patient", text)
        assert float(text.split()[0]) == pytest.approx(distance, abs=0.051)
    if distance is not None:
        assert r.distance_km == pytest.approx(distance, abs=0.051)

    # The score is what the reasons add up to.
    score = sum(FIT[x.signal][s.category] * SEVERITY_WEIGHT[x.severity] for x in n.needs)
    score *= NEED_POINTS
    score += SEVERE_COUNSELLING_POINTS * ("severe_need_counselling" in got)
    score += CONDITION_POINTS * ("condition_specific" in got)
    score += MODALITY_POINTS * ("preferred_modality" in got)
    score += FROM_HOME_POINTS * ("usable_from_home" in got)
    assert ("waitlist" in got) == (s.capacity_status == "waitlist")
    score += WAITLIST_POINTS * ("waitlist" in got)
    if has_distance:
        assert distance is not None
        reach = min(x for x in (s.catchment_km, p.max_travel_km, 50.0) if x is not None)
        score += DISTANCE_POINTS * max(0.0, 1 - distance / reach)
    assert r.score == pytest.approx(round(score, 2), abs=0.006)


def expected_score(s: DirectoryService, n: Needs, p: PatientProfile) -> float:
    """A kept service's score, restated from the ranking rules in the matching docstring."""
    score = NEED_POINTS * sum(
        FIT[x.signal][s.category] * SEVERITY_WEIGHT[x.severity] for x in n.needs
    )
    if n.most_severe is Severity.SEVERE and s.category is Category.COUNSELLING:
        score += SEVERE_COUNSELLING_POINTS
    if set(s.conditions) & (set(p.pain_conditions) - {PainCondition.OTHER}):
        score += CONDITION_POINTS
    if set(s.modalities) & set(p.preferred_modalities):
        score += MODALITY_POINTS
    if n.high_pain_interference and {Modality.ONLINE, Modality.PHONE} & set(s.modalities):
        score += FROM_HOME_POINTS
    if s.capacity_status == "waitlist":
        score += WAITLIST_POINTS
    if Modality.IN_PERSON in s.modalities and s.location and p.location:
        distance = haversine((s.location.lat, s.location.lon), (p.location.lat, p.location.lon))
        reach = min(x for x in (s.catchment_km, p.max_travel_km, 50.0) if x is not None)
        score += DISTANCE_POINTS * max(0.0, 1 - distance / reach)
    return score


# -- random directories --------------------------------------------------------------------

LANGUAGES = ["en", "en-GB", "es", "es-MX", "fr", "pl", "ur", "zh-Hant"]


@st.composite
def points(draw: st.DrawFn) -> tuple[float, float]:
    """Somewhere within about 150 km of HOME, so distances matter."""
    return destination(
        *HOME,
        draw(st.floats(0, 360, allow_nan=False)),
        draw(st.floats(0, 150, allow_nan=False)),
    )


@st.composite
def services(draw: st.DrawFn) -> DirectoryService:
    fields: dict[str, Any] = {
        "category": draw(st.sampled_from([c.value for c in Category])),
        "modalities": draw(
            st.lists(st.sampled_from([m.value for m in Modality]), min_size=1, unique=True)
        ),
        "conditions": draw(
            st.lists(st.sampled_from([c.value for c in PainCondition]), max_size=3, unique=True)
        ),
        "languages": draw(st.lists(st.sampled_from(LANGUAGES), max_size=3, unique=True)),
        "accepting_referrals": draw(st.booleans()),
        "capacity": draw(st.none() | st.integers(0, 5)),
        "capacity_status": draw(st.sampled_from([None, "accepting", "waitlist", "not-accepting"])),
    }
    if draw(st.booleans()):
        fields["location"] = draw(points())
        fields["catchment_km"] = draw(st.none() | st.floats(1, 120, allow_nan=False))
    low = draw(st.none() | st.integers(0, 90))
    high = draw(st.none() | st.integers(low or 0, 120))
    fields.update({k: v for k, v in (("min_age", low), ("max_age", high)) if v is not None})
    name = draw(st.sampled_from(["Alpha", "Beta", "Gamma", "Delta"]))
    return service(name, **fields)


@st.composite
def patients(draw: st.DrawFn) -> PatientProfile:
    fields: dict[str, Any] = {
        "pain_conditions": draw(
            st.lists(st.sampled_from([c.value for c in PainCondition]), max_size=2, unique=True)
        ),
        "languages": draw(st.lists(st.sampled_from(LANGUAGES), max_size=2, unique=True)),
        "preferred_modalities": draw(
            st.lists(st.sampled_from([m.value for m in Modality]), max_size=2, unique=True)
        ),
    }
    if draw(st.booleans()):
        fields["location"] = HOME
    if draw(st.booleans()):
        fields["max_travel_km"] = draw(st.floats(1, 200, allow_nan=False))
    if draw(st.booleans()):
        fields["age_band"] = draw(st.sampled_from([b.value for b in AgeBand]))
    return profile(**fields)


@st.composite
def some_needs(draw: st.DrawFn) -> Needs:
    signals = draw(st.lists(st.sampled_from(list(Signal)), min_size=1, max_size=3, unique=True))
    severities = [Severity.MILD, Severity.MODERATE, Severity.SEVERE]
    items = [need(s, draw(st.sampled_from(severities))) for s in signals]
    return needs(*items, high_pain=draw(st.booleans()))


@PROPERTY
@given(
    directory=st.lists(services(), min_size=1, max_size=12),
    patient=patients(),
    patient_needs=some_needs(),
)
def test_every_recommendation_and_exclusion_tells_the_truth(
    directory: list[DirectoryService], patient: PatientProfile, patient_needs: Needs
) -> None:
    result = run(directory, patient, patient_needs, explain_excluded=True)

    recommended = [r.service.id for r in result.recommendations]
    excluded = [e.service.id for e in result.excluded]
    assert sorted(recommended + excluded) == sorted(s.id for s in directory)
    for s in directory:
        assert (s.id in excluded) == bool(expected_drops(s, patient)), s
    for e in result.excluded:
        assert {r.code for r in e.reasons} == expected_drops(e.service, patient)
        assert all(r.text for r in e.reasons)
    for r in result.recommendations:
        check_recommendation(r, patient_needs, patient)


@PROPERTY
@given(
    directory=st.lists(services(), min_size=1, max_size=15),
    patient=patients(),
    patient_needs=some_needs(),
    limit=st.integers(1, 6),
)
def test_recommendations_are_the_best_in_order(
    directory: list[DirectoryService],
    patient: PatientProfile,
    patient_needs: Needs,
    limit: int,
) -> None:
    ranked = sorted(
        (-expected_score(s, patient_needs, patient), s.name, s.id)
        for s in directory
        if not expected_drops(s, patient)
    )

    result = run(directory, patient, patient_needs, limit=limit)

    assert [(r.service.name, r.service.id) for r in result.recommendations] == [
        (name, ident) for _, name, ident in ranked[:limit]
    ]
    scores = [r.score for r in result.recommendations]
    assert scores == sorted(scores, reverse=True)


@PROPERTY
@given(
    directory=st.lists(services(), min_size=1, max_size=15),
    patient=patients(),
    patient_needs=some_needs(),
)
def test_a_severe_need_always_puts_counselling_first(
    directory: list[DirectoryService], patient: PatientProfile, patient_needs: Needs
) -> None:
    result = run(directory, patient, patient_needs)

    categories = [r.service.category for r in result.recommendations]
    if patient_needs.most_severe is Severity.SEVERE and Category.COUNSELLING in categories:
        first_other = next(
            (i for i, c in enumerate(categories) if c is not Category.COUNSELLING), len(categories)
        )
        assert Category.COUNSELLING not in categories[first_other:], categories


def test_distance_km_is_the_haversine_great_circle() -> None:
    one_degree = 2 * math.pi * EARTH_RADIUS_KM / 360
    radians = math.radians

    assert matching.distance_km(0, 0, radians(1), 0) == pytest.approx(one_degree)
    assert matching.distance_km(0, radians(179.9), 0, radians(-179.9)) == pytest.approx(
        0.2 * one_degree
    )
    for bearing in (0, 45, 90, 180, 270):
        for km in (0.5, 9.9, 10.1, 500):
            lat, lon = destination(69.65, 18.96, bearing, km)
            assert haversine((69.65, 18.96), (lat, lon)) == pytest.approx(km, rel=1e-9)


@PROPERTY
@given(
    directory=st.lists(services(), min_size=1, max_size=15),
    patient=patients(),
    patient_needs=some_needs(),
    clinic=st.sampled_from([(), ("en",), ("fr", "pl")]),
)
def test_the_explanation_is_the_rules_that_ranked_and_filtered(
    directory: list[DirectoryService],
    patient: PatientProfile,
    patient_needs: Needs,
    clinic: tuple[str, ...],
) -> None:
    """Each rule is written once, in ``matching.FILTERS`` or ``matching.RANKING``. The
    explanation evaluates the ranking rules again on the services explained (with haversine
    distances, where the whole-directory pass uses chords): every service's explained score
    is the one it was ranked by, and the services excluded are exactly those the pass
    dropped, each for the reasons of the filters that hold for it."""
    prepared = prepare(directory)
    p = matching._patient(patient_needs, patient, clinic)
    evaluation = matching._evaluate(prepared, p)
    kept = evaluation.kept.tolist()

    explained = matching._recommendations(prepared, evaluation.kept, p)
    result = match(
        patient_needs, patient, prepared, limit=100, explain_excluded=True, clinic_languages=clinic
    )

    assert [r.service.id for r in explained] == [directory[i].id for i in kept]
    for r, score in zip(explained, evaluation.scores.tolist(), strict=True):
        assert math.isclose(r.score, score, abs_tol=0.0051)
    assert [e.service.id for e in result.excluded] == [
        s.id for i, s in enumerate(directory) if i not in kept
    ]
    filter_codes = {rule.code for rule in matching.FILTERS}
    assert filter_codes == DROP_CODES
    assert all(r.code in filter_codes for e in result.excluded for r in e.reasons)
    ranking_codes = {rule.code for rule in matching.RANKING}
    for r in result.recommendations:
        for reason in r.reasons:
            assert reason.code in ranking_codes or reason.code.startswith("answers_")


@PROPERTY
@given(
    directory=st.lists(services(), min_size=1, max_size=15),
    patient=patients(),
    patient_needs=some_needs(),
    limit=st.integers(min_value=1, max_value=6),
)
def test_asking_for_exclusions_does_not_change_the_recommendations(
    directory: list[DirectoryService], patient: PatientProfile, patient_needs: Needs, limit: int
) -> None:
    prepared = prepare(directory)
    plain = match(patient_needs, patient, prepared, limit=limit)
    explained = match(patient_needs, patient, prepared, limit=limit, explain_excluded=True)
    assert plain.recommendations == explained.recommendations
