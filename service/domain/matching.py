"""Needs + patient profile + directory -> ranked referrals, each with its reasons.

Deterministic and explainable. First the hard filters drop what would make a referral
useless: not taking referrals, outside the age limits, no shared language, a pain
condition the service is not for, or in person only and beyond the service's catchment
or the patient's reach. The rest are ranked by how well the category answers the needs
(weighted by severity), a group for the patient's own pain condition, the preferred
modality, services usable from home when pain is high, and distance. A severe need puts
counselling first. Ties break on name, then id.

A profile without languages is matched in the clinic's languages (``clinic_languages``), so
the language filter still applies to a patient Belong knows little about; and
:func:`profile_warnings` names what the profile lacks that would have filtered services out.

Reasons are data: a code and plain words each. The same function (:func:`_assess`)
scores a service and, when asked, explains it, so the reasons are always the ones that
produced the score.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from service.domain.directory import Category, DirectoryService
from service.domain.instruments import Severity, Signal
from service.domain.needs import Need, Needs
from service.domain.patients import Modality, PainCondition, PatientProfile

FIT: dict[Signal, dict[Category, int]] = {
    Signal.LONELINESS: {
        Category.SUPPORT_GROUP: 3,
        Category.SOCIAL_ACTIVITY: 3,
        Category.FAMILY_COMMUNICATION: 2,
        Category.COUNSELLING: 2,
    },
    Signal.SOCIAL_ISOLATION: {
        Category.SOCIAL_ACTIVITY: 3,
        Category.SUPPORT_GROUP: 3,
        Category.FAMILY_COMMUNICATION: 2,
        Category.COUNSELLING: 1,
    },
    Signal.LOW_SUPPORT: {
        Category.FAMILY_COMMUNICATION: 3,
        Category.SUPPORT_GROUP: 3,
        Category.COUNSELLING: 2,
        Category.SOCIAL_ACTIVITY: 1,
    },
}
"""How well each category answers each need, 0-3 (Belong's rule, not a published one)."""
SEVERITY_WEIGHT = {Severity.NONE: 0, Severity.MILD: 1, Severity.MODERATE: 2, Severity.SEVERE: 3}
NEED_POINTS = 5.0
CONDITION_POINTS = 20.0
MODALITY_POINTS = 8.0
FROM_HOME_POINTS = 6.0
DISTANCE_POINTS = 10.0
SEVERE_COUNSELLING_POINTS = 1000.0
"""More than every other point together (at most 3 needs x 45 + 44), so a severe need
puts counselling first whatever else a service offers."""
EARTH_RADIUS_KM = 6371.0088

CATEGORY_WORDS = {
    Category.SUPPORT_GROUP: "a support group",
    Category.SOCIAL_ACTIVITY: "a social activity",
    Category.FAMILY_COMMUNICATION: "family and carer sessions",
    Category.COUNSELLING: "counselling for chronic pain",
}
CATEGORY_NOUNS = {
    Category.SUPPORT_GROUP: "A group",
    Category.SOCIAL_ACTIVITY: "An activity",
    Category.FAMILY_COMMUNICATION: "Sessions",
    Category.COUNSELLING: "Counselling",
}
CONDITION_WORDS = {
    PainCondition.CRPS: "CRPS",
    PainCondition.CHRONIC_HEADACHE: "chronic headache or migraine",
    PainCondition.LOW_BACK_PAIN: "severe low back pain",
    PainCondition.CHRONIC_PAIN_SYNDROME: "chronic pain syndrome",
    PainCondition.FIBROMYALGIA: "fibromyalgia",
    PainCondition.OTHER: "another pain condition",
}
"""Pain conditions as reasons name them (DESIGN.md's words), in the enum's order."""
SIGNAL_WORDS = {
    Signal.LONELINESS: "loneliness",
    Signal.SOCIAL_ISOLATION: "social isolation",
    Signal.LOW_SUPPORT: "low social support",
}


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    text: str


ProfileField = Literal["languages", "age_band", "location", "pain_conditions"]
WarningCode = Literal["missing_profile_field"]
MISSING: WarningCode = "missing_profile_field"


@dataclass(frozen=True, slots=True)
class ProfileWarning:
    """A profile field matching would have used, missing: what was done without it."""

    code: WarningCode
    field: ProfileField
    message: str


@dataclass(frozen=True, slots=True)
class Recommendation:
    service: DirectoryService
    score: float
    reasons: tuple[Reason, ...]
    distance_km: float | None
    answers: tuple[Signal, ...]
    """The needs this service answers."""


@dataclass(frozen=True, slots=True)
class Excluded:
    service: DirectoryService
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class MatchResult:
    recommendations: list[Recommendation]
    excluded: list[Excluded] = field(default_factory=list)
    considered: int = 0


@dataclass(frozen=True, slots=True)
class Candidate:
    """A directory service with what matching compares, computed once."""

    service: DirectoryService
    takes_referrals: bool
    category: Category
    min_age: int | None
    max_age: int | None
    languages: frozenset[str]
    modalities: frozenset[Modality]
    conditions: frozenset[PainCondition]
    in_person: bool
    in_person_only: bool
    from_home: bool
    catchment_km: float | None
    reach_km: float
    """min(catchment, 50 km): the service's side of the nearness bonus."""
    lat: float | None
    lon: float | None


def primary_language(tag: str) -> str:
    return tag.split("-", 1)[0].lower()


def prepare(services: Iterable[DirectoryService]) -> Prepared:
    return Prepared(_candidates(services))


def _candidates(services: Iterable[DirectoryService]) -> list[Candidate]:
    return [
        Candidate(
            service=s,
            takes_referrals=s.takes_referrals,
            category=s.category,
            min_age=s.min_age,
            max_age=s.max_age,
            languages=frozenset(primary_language(t) for t in s.languages),
            modalities=frozenset(s.modalities),
            conditions=frozenset(s.conditions),
            in_person=Modality.IN_PERSON in s.modalities,
            in_person_only=set(s.modalities) == {Modality.IN_PERSON},
            from_home=bool({Modality.ONLINE, Modality.PHONE} & set(s.modalities)),
            catchment_km=s.catchment_km,
            reach_km=min(s.catchment_km, 50.0) if s.catchment_km is not None else 50.0,
            lat=math.radians(s.location.lat) if s.location else None,
            lon=math.radians(s.location.lon) if s.location else None,
        )
        for s in services
    ]


CATEGORIES = tuple(Category)
MODALITIES = tuple(Modality)
CONDITIONS = tuple(PainCondition)
MAX_LANGUAGE_BITS = 63


class Prepared(list[Candidate]):
    """The candidates, plus the same facts as numpy arrays so that one patient is scored
    against a whole directory in a few vector operations (:func:`_vector_scores`)."""

    def __init__(self, candidates: list[Candidate]) -> None:
        super().__init__(candidates)
        languages = sorted({tag for c in candidates for tag in c.languages})
        self.language_bits = {tag: 1 << i for i, tag in enumerate(languages)}
        self.vectorised = len(languages) <= MAX_LANGUAGE_BITS

        def bits(values: Iterable[Any], index: Mapping[Any, int]) -> int:
            return sum(index[v] for v in set(values))

        condition_bits = {c: 1 << i for i, c in enumerate(CONDITIONS)}
        modality_bits = {m: 1 << i for i, m in enumerate(MODALITIES)}
        nan = math.nan
        self.takes = np.array([c.takes_referrals for c in candidates], dtype=bool)
        self.category = np.array([CATEGORIES.index(c.category) for c in candidates], dtype=np.int8)
        self.min_age = np.array([c.min_age if c.min_age is not None else -1 for c in candidates])
        self.max_age = np.array(
            [c.max_age if c.max_age is not None else 10_000 for c in candidates]
        )
        self.languages = np.array(
            [bits(c.languages, self.language_bits) if self.vectorised else 0 for c in candidates],
            dtype=np.uint64,
        )
        self.conditions = np.array(
            [bits(c.conditions, condition_bits) for c in candidates], dtype=np.int64
        )
        self.modalities = np.array(
            [bits(c.modalities, modality_bits) for c in candidates], dtype=np.int64
        )
        self.in_person = np.array([c.in_person for c in candidates], dtype=bool)
        self.in_person_only = np.array([c.in_person_only for c in candidates], dtype=bool)
        self.from_home = np.array([c.from_home for c in candidates], dtype=bool)
        self.catchment = np.array(
            [c.catchment_km if c.catchment_km is not None else math.inf for c in candidates]
        )
        self.reach = np.array([c.reach_km for c in candidates])
        lat = np.array([c.lat if c.lat is not None else nan for c in candidates])
        lon = np.array([c.lon if c.lon is not None else nan for c in candidates])
        # The in-person services with a place, as points on the unit sphere side by side:
        # a patient's distances are then a chord length each (see _vector_scores).
        self.located = np.flatnonzero(self.in_person & ~np.isnan(lat))
        lat, lon = lat[self.located], lon[self.located]
        self.located_x = np.cos(lat) * np.cos(lon)
        self.located_y = np.cos(lat) * np.sin(lon)
        self.located_z = np.sin(lat)
        order = sorted(
            range(len(candidates)),
            key=lambda i: (candidates[i].service.name, candidates[i].service.id),
        )
        self.rank = np.empty(len(candidates), dtype=np.int64)
        self.rank[order] = np.arange(len(candidates))
        self.condition_bits = condition_bits
        self.modality_bits = modality_bits


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points given in radians (haversine)."""
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class _Patient:
    needs: Needs
    profile: PatientProfile
    category_points: dict[Category, float]
    answers: dict[Category, tuple[Signal, ...]]
    severe: bool
    high_pain: bool
    languages: frozenset[str]
    conditions: frozenset[PainCondition]
    modalities: frozenset[Modality]
    age: tuple[int, int] | None
    lat: float | None
    lon: float | None
    clinic_languages: tuple[str, ...]
    """Matched in instead of the patient's (unrecorded) languages; empty otherwise."""


def _patient(
    needs: Needs, profile: PatientProfile, clinic_languages: Sequence[str] = ()
) -> _Patient:
    points: dict[Category, float] = {}
    answers: dict[Category, tuple[Signal, ...]] = {}
    for category in Category:
        total = 0.0
        answered = []
        for need in needs.needs:
            fit = FIT[need.signal][category]
            total += fit * SEVERITY_WEIGHT[need.severity] * NEED_POINTS
            if fit >= 2:
                answered.append(need.signal)
        points[category] = total
        answers[category] = tuple(answered)
    location = profile.location
    stand_in = () if profile.languages else tuple(clinic_languages)
    return _Patient(
        needs=needs,
        profile=profile,
        category_points=points,
        answers=answers,
        severe=any(n.severity is Severity.SEVERE for n in needs.needs),
        high_pain=needs.high_pain_interference,
        languages=frozenset(primary_language(t) for t in profile.languages or stand_in),
        conditions=frozenset(c for c in profile.pain_conditions if c is not PainCondition.OTHER),
        modalities=frozenset(profile.preferred_modalities),
        age=profile.age_band.bounds if profile.age_band else None,
        lat=math.radians(location.lat) if location else None,
        lon=math.radians(location.lon) if location else None,
        clinic_languages=stand_in,
    )


def _condition_words(conditions: frozenset[PainCondition], joiner: str) -> str:
    return joiner.join(CONDITION_WORDS[c] for c in PainCondition if c in conditions)


def _need_words(need: Need) -> str:
    return (
        f"{SIGNAL_WORDS[need.signal]} ({need.severity.value}; {need.instrument_title}, "
        f"{need.band_label.lower()}, {need.completed_at.date().isoformat()})"
    )


def _assess(c: Candidate, p: _Patient, explain: list[Reason]) -> tuple[float | None, float | None]:
    """(score, distance) for a service, or (None, distance) when a hard filter drops it,
    with every consideration appended to ``explain`` as a Reason."""
    s = c.service
    dropped = False

    def drop(code: str, text: str) -> None:
        nonlocal dropped
        dropped = True
        explain.append(Reason(code, text))

    if not s.accepting_referrals:
        drop("not_accepting", "Not taking referrals at the moment")
    elif s.capacity == 0:
        drop("no_capacity", "No places free")
    if p.age is not None and (
        (s.max_age is not None and s.max_age < p.age[0])
        or (s.min_age is not None and s.min_age > p.age[1])
    ):
        drop(
            "outside_age_limits",
            f"For ages {s.min_age or 0}-{s.max_age or 'any'}; the patient is "
            f"{p.profile.age_band.value if p.profile.age_band else ''}",
        )
    if p.languages and c.languages and not (p.languages & c.languages):
        spoken = (
            f"the patient's languages are not recorded, so the clinic's languages "
            f"({', '.join(p.clinic_languages)}) are used"
            if p.clinic_languages
            else f"the patient speaks {', '.join(p.profile.languages)}"
        )
        drop("no_shared_language", f"Offered in {', '.join(s.languages)}; {spoken}")
    if c.conditions and p.conditions and not (c.conditions & p.conditions):
        drop(
            "condition_not_served",
            f"Only for people with {_condition_words(c.conditions, ' or ')}",
        )
    distance = None
    if c.lat is not None and c.lon is not None and p.lat is not None and p.lon is not None:
        distance = distance_km(p.lat, p.lon, c.lat, c.lon)
    if c.in_person_only and distance is not None:
        if s.catchment_km is not None and distance > s.catchment_km:
            drop(
                "outside_catchment",
                f"In person only, {distance:.1f} km away; takes people within "
                f"{s.catchment_km:g} km",
            )
        reach = p.profile.max_travel_km
        if reach is not None and distance > reach:
            drop(
                "beyond_patient_reach",
                f"In person only, {distance:.1f} km away; the patient can travel {reach:g} km",
            )
    if dropped:
        return None, distance

    score = p.category_points[s.category]
    for need in p.needs.needs:
        fit = FIT[need.signal][s.category]
        if fit:
            strength = {3: "strongly", 2: "well", 1: "partly"}[fit]
            explain.append(
                Reason(
                    f"answers_{need.signal.value}",
                    f"{CATEGORY_WORDS[s.category].capitalize()} {strength} answers "
                    f"{_need_words(need)}",
                )
            )
    if p.severe and s.category is Category.COUNSELLING:
        score += SEVERE_COUNSELLING_POINTS
        explain.append(Reason("severe_need_counselling", "A severe need puts counselling first"))
    shared = c.conditions & p.conditions
    if shared:
        score += CONDITION_POINTS
        explain.append(
            Reason(
                "condition_specific",
                f"{CATEGORY_NOUNS[s.category]} for people with {_condition_words(shared, ' and ')}",
            )
        )
    elif not c.conditions:
        explain.append(Reason("any_condition", "Open to people with any pain condition"))
    preferred = c.modalities & p.modalities
    if preferred:
        score += MODALITY_POINTS
        explain.append(
            Reason(
                "preferred_modality",
                f"Offered {', '.join(sorted(m.value for m in preferred))}, as preferred",
            )
        )
    if p.needs.high_pain_interference and c.modalities & {Modality.ONLINE, Modality.PHONE}:
        score += FROM_HOME_POINTS
        explain.append(
            Reason(
                "usable_from_home",
                "Can be joined from home (online or by phone) while pain limits travel",
            )
        )
    if distance is not None and c.in_person:
        score += DISTANCE_POINTS * max(0.0, 1.0 - distance / _reach(c, p))
        explain.append(Reason("distance", f"{distance:.1f} km from the patient"))
    return score, distance


def _fast_score(c: Candidate, p: _Patient) -> float | None:
    """The score :func:`_assess` gives, without words: the loop over a whole directory.

    Kept equal to ``_assess`` by a property test; change both together.
    """
    if not c.takes_referrals:
        return None
    age = p.age
    if age is not None and (
        (c.max_age is not None and c.max_age < age[0])
        or (c.min_age is not None and c.min_age > age[1])
    ):
        return None
    if p.languages and c.languages and p.languages.isdisjoint(c.languages):
        return None
    conditions = c.conditions
    if conditions and p.conditions and conditions.isdisjoint(p.conditions):
        return None
    distance = None
    if c.in_person and c.lat is not None and p.lat is not None:
        distance = distance_km(p.lat, p.lon, c.lat, c.lon)  # type: ignore[arg-type]
        if c.in_person_only:
            if c.catchment_km is not None and distance > c.catchment_km:
                return None
            reach = p.profile.max_travel_km
            if reach is not None and distance > reach:
                return None
    score = p.category_points[c.category]
    if p.severe and c.category is Category.COUNSELLING:
        score += SEVERE_COUNSELLING_POINTS
    if conditions and not conditions.isdisjoint(p.conditions):
        score += CONDITION_POINTS
    if p.modalities and not c.modalities.isdisjoint(p.modalities):
        score += MODALITY_POINTS
    if p.high_pain and c.from_home:
        score += FROM_HOME_POINTS
    if distance is not None:
        score += DISTANCE_POINTS * max(0.0, 1.0 - distance / _reach(c, p))
    return score


def _reach(c: Candidate, p: _Patient) -> float:
    """The distance at which the nearness bonus falls to nothing."""
    reach = c.reach_km
    travel = p.profile.max_travel_km
    return travel if travel is not None and travel < reach else reach


def _vector_scores(d: Prepared, p: _Patient) -> tuple[np.ndarray, np.ndarray]:
    """(indices kept, their scores): :func:`_fast_score` over a whole directory at once.

    Kept equal to ``_fast_score`` (to rounding) by a property test; change both together.
    """
    ok = d.takes.copy()
    if p.age is not None:
        ok &= ~((d.max_age < p.age[0]) | (d.min_age > p.age[1]))
    if p.languages:
        wanted = np.uint64(sum(d.language_bits.get(t, 0) for t in p.languages))
        ok &= (d.languages == 0) | ((d.languages & wanted) != 0)
    wanted_conditions = sum(d.condition_bits[c] for c in p.conditions)
    if wanted_conditions:
        ok &= (d.conditions == 0) | ((d.conditions & wanted_conditions) != 0)
    distance = np.full(len(d), np.nan)
    if p.lat is not None and p.lon is not None:
        # The haversine distance, from the chord between the two points on the unit sphere
        # (the same formula: haversine's h is (chord / 2) squared), without trigonometry
        # per service. Agrees with distance_km to about 1e-12 km.
        x = math.cos(p.lat) * math.cos(p.lon)
        y = math.cos(p.lat) * math.sin(p.lon)
        z = math.sin(p.lat)
        chord = np.sqrt((d.located_x - x) ** 2 + (d.located_y - y) ** 2 + (d.located_z - z) ** 2)
        distance[d.located] = 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, chord / 2))
        travel = p.profile.max_travel_km
        beyond = distance > d.catchment
        if travel is not None:
            beyond |= distance > travel
        ok &= ~(d.in_person_only & beyond)
    kept = np.flatnonzero(ok)
    points = np.array([p.category_points[c] for c in CATEGORIES])
    score = points[d.category[kept]]
    if p.severe:
        score = score + np.where(
            d.category[kept] == CATEGORIES.index(Category.COUNSELLING),
            SEVERE_COUNSELLING_POINTS,
            0.0,
        )
    if wanted_conditions:
        score = score + np.where(
            (d.conditions[kept] & wanted_conditions) != 0, CONDITION_POINTS, 0.0
        )
    wanted_modalities = sum(d.modality_bits[m] for m in p.modalities)
    if wanted_modalities:
        score = score + np.where(
            (d.modalities[kept] & wanted_modalities) != 0, MODALITY_POINTS, 0.0
        )
    if p.high_pain:
        score = score + np.where(d.from_home[kept], FROM_HOME_POINTS, 0.0)
    near = distance[kept]
    if p.lat is not None:
        reach = d.reach[kept]
        travel = p.profile.max_travel_km
        if travel is not None:
            reach = np.minimum(reach, travel)
        bonus = DISTANCE_POINTS * np.maximum(0.0, 1.0 - near / reach)
        score = score + np.where(np.isnan(near), 0.0, bonus)
    return kept, score


def _best(kept: np.ndarray, scores: np.ndarray, rank: np.ndarray, limit: int) -> np.ndarray:
    """The ``limit`` best of ``kept``: highest score first, ties by rank. Only the scores at
    or above the limit-th highest can be among them, so just those are sorted."""
    if 0 < limit < len(scores):
        threshold = np.partition(scores, len(scores) - limit)[len(scores) - limit]
        contenders = np.flatnonzero(scores >= threshold)
        kept, scores = kept[contenders], scores[contenders]
    return kept[np.lexsort((rank[kept], -scores))[:limit]]


def match(
    needs: Needs,
    profile: PatientProfile,
    candidates: Sequence[Candidate],
    limit: int = 10,
    explain_excluded: bool = False,
    clinic_languages: Sequence[str] = (),
) -> MatchResult:
    """The ``limit`` best services for these needs, best first, with their reasons.

    ``clinic_languages`` stand in for the patient's when the profile has none."""
    if not needs.needs:
        return MatchResult([], [], len(candidates))
    p = _patient(needs, profile, clinic_languages)
    excluded: list[Excluded] = []
    if isinstance(candidates, Prepared) and candidates.vectorised and not explain_excluded:
        kept, scores = _vector_scores(candidates, p)
        best_indices = [int(i) for i in _best(kept, scores, candidates.rank, limit)]
    else:
        scored: list[tuple[float, str, str, int]] = []
        for index, c in enumerate(candidates):
            score = _fast_score(c, p)
            if score is not None:
                scored.append((-score, c.service.name, c.service.id, index))
            elif explain_excluded:
                reasons: list[Reason] = []
                _assess(c, p, reasons)
                excluded.append(Excluded(c.service, tuple(reasons)))
        best_indices = [index for *_, index in heapq.nsmallest(limit, scored)]
    recommendations = []
    for index in best_indices:
        c = candidates[index]
        reasons = []
        score, distance = _assess(c, p, reasons)
        assert score is not None
        recommendations.append(
            Recommendation(
                service=c.service,
                score=round(score, 2),
                reasons=tuple(reasons),
                distance_km=round(distance, 1) if distance is not None else None,
                answers=p.answers[c.service.category],
            )
        )
    return MatchResult(recommendations, excluded, len(candidates))


def profile_warnings(
    profile: PatientProfile, clinic_languages: Sequence[str]
) -> list[ProfileWarning]:
    """What the profile lacks that the hard filters use, so that services which may not fit
    the patient are recommended (or, for languages, the clinic's are assumed): languages,
    age band, location and pain conditions, in that order.

    Not warned about: preferred modalities (they only rank), the travel limit (it narrows
    in-person services further when a location is known) and the postcode (matching uses
    coordinates; a postcode alone is not geocoded).
    """
    warnings = []
    if not profile.languages:
        assumed = (
            f"matched in the clinic's languages ({', '.join(clinic_languages)})"
            if clinic_languages
            else "services in any language are included"
        )
        warnings.append(ProfileWarning(MISSING, "languages", f"No languages recorded: {assumed}"))
    if profile.age_band is None:
        warnings.append(
            ProfileWarning(
                MISSING, "age_band", "No age band recorded: services' age limits are not checked"
            )
        )
    if profile.location is None:
        postcode = " (the postcode alone is not used)" if profile.postcode else ""
        warnings.append(
            ProfileWarning(
                MISSING,
                "location",
                f"No location recorded{postcode}: in-person services are not checked against "
                "their catchment or the patient's travel limit, nor ranked by distance",
            )
        )
    if not profile.pain_conditions:
        warnings.append(
            ProfileWarning(
                MISSING,
                "pain_conditions",
                "No pain conditions recorded: services for one pain condition are not checked "
                "against the patient's",
            )
        )
    return warnings
