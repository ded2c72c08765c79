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

Reasons are data: a code and plain words each. Each rule is written once, in
:data:`FILTERS` or :data:`RANKING` (:class:`Rule`): where it holds, as numpy operations over
a directory's columns; what holding is worth; and its reason in words. A patient is matched
against the whole directory in one pass of those operations (:func:`_evaluate`); the
recommendations are then explained by the ranking rules evaluated again on them alone, and
the services excluded by the filters that dropped them, so the reasons are always the ones
that produced the score.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import numpy as np

from service.directory.model import Capacity, Category, DirectoryService
from service.instruments.model import Severity, Signal
from service.matching.needs import Need, Needs
from service.patients.model import Modality, PainCondition, PatientProfile

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
WAITLIST_POINTS = -15.0
"""A waiting list ranks a service below one as fit that takes people now."""
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


def primary_language(tag: str) -> str:
    return tag.split("-", 1)[0].lower()


CATEGORIES = tuple(Category)
COUNSELLING = CATEGORIES.index(Category.COUNSELLING)
CONDITION_BITS = {c: 1 << i for i, c in enumerate(PainCondition)}
MODALITY_BITS = {m: 1 << i for i, m in enumerate(Modality)}
FROM_HOME = frozenset({Modality.ONLINE, Modality.PHONE})
STRENGTH = {3: "strongly", 2: "well", 1: "partly"}
"""How a category with that fit answers a need, in words."""


def _bits(values: Iterable[Any], bits: Mapping[Any, int]) -> int:
    return sum(bits[v] for v in set(values))


@dataclass(frozen=True, slots=True)
class FilterColumns:
    """What the filters read of each service: one numpy array per fact, one entry per
    service (the last axis, for ``languages``)."""

    not_accepting: np.ndarray
    said_not_accepting: np.ndarray
    """The service said, through its inbox, it is not accepting referrals."""
    full: np.ndarray
    """Taking referrals, but with no places free."""
    min_age: np.ndarray
    max_age: np.ndarray
    """-1 and 10,000 where the service sets no limit."""
    languages: np.ndarray
    """One row per primary language of the directory, in ``language_rows``."""
    language_rows: dict[str, int]
    lists_languages: np.ndarray
    conditions: np.ndarray
    """Sums of CONDITION_BITS."""
    in_person_only: np.ndarray
    catchment: np.ndarray
    """Kilometres; infinite where none is set."""


@dataclass(frozen=True, slots=True)
class RankingColumns:
    """What the ranking rules read of each service, as FilterColumns."""

    category: np.ndarray
    """Positions in CATEGORIES."""
    conditions: np.ndarray
    modalities: np.ndarray
    """Sums of CONDITION_BITS and MODALITY_BITS."""
    from_home: np.ndarray
    """Can be joined online or by phone."""
    reach: np.ndarray
    """min(catchment, 50 km): the service's side of the nearness bonus."""
    waitlist: np.ndarray
    """The service said, through its inbox, it takes referrals onto a waiting list."""

    def take(self, at: np.ndarray) -> RankingColumns:
        """The columns of the services at these positions only."""
        return RankingColumns(
            self.category[at],
            self.conditions[at],
            self.modalities[at],
            self.from_home[at],
            self.reach[at],
            self.waitlist[at],
        )


class Prepared:
    """A directory ready for matching: its services and, as numpy columns, what the rules
    read of them, so that one patient is matched against the whole directory in a few
    vector operations (:func:`_evaluate`)."""

    def __init__(self, services: list[DirectoryService]) -> None:
        self.services = services
        offered = [{primary_language(t) for t in s.languages} for s in services]
        rows = {tag: i for i, tag in enumerate(sorted(set().union(*offered)))}
        languages = np.zeros((len(rows), len(services)), dtype=bool)
        cells = [(rows[t], j) for j, tags in enumerate(offered) for t in tags]
        languages[[row for row, _ in cells], [column for _, column in cells]] = True
        modalities = [set(s.modalities) for s in services]
        conditions = np.array(
            [_bits(s.conditions, CONDITION_BITS) for s in services], dtype=np.int64
        )
        catchments = [s.catchment_km for s in services]
        self.filtering = FilterColumns(
            not_accepting=np.array([not s.accepting_referrals for s in services], dtype=bool),
            said_not_accepting=np.array(
                [s.capacity_status is Capacity.NOT_ACCEPTING for s in services], dtype=bool
            ),
            full=np.array(
                [s.accepting_referrals and s.capacity == 0 for s in services], dtype=bool
            ),
            min_age=np.array(
                [s.min_age if s.min_age is not None else -1 for s in services], dtype=np.int64
            ),
            max_age=np.array(
                [s.max_age if s.max_age is not None else 10_000 for s in services], dtype=np.int64
            ),
            languages=languages,
            language_rows=rows,
            lists_languages=np.any(languages, axis=0),
            conditions=conditions,
            in_person_only=np.array([m == {Modality.IN_PERSON} for m in modalities], dtype=bool),
            catchment=np.array([c if c is not None else math.inf for c in catchments]),
        )
        self.ranking = RankingColumns(
            category=np.array([CATEGORIES.index(s.category) for s in services], dtype=np.int8),
            conditions=conditions,
            modalities=np.array([_bits(m, MODALITY_BITS) for m in modalities], dtype=np.int64),
            from_home=np.array([bool(FROM_HOME & m) for m in modalities], dtype=bool),
            reach=np.array([min(c, 50.0) if c is not None else 50.0 for c in catchments]),
            waitlist=np.array(
                [s.capacity_status is Capacity.WAITLIST for s in services], dtype=bool
            ),
        )
        self.places = [
            (math.radians(s.location.lat), math.radians(s.location.lon)) if s.location else None
            for s in services
        ]
        """Each service's place in radians, for the distances of the services explained."""
        self.in_person = [Modality.IN_PERSON in m for m in modalities]
        lat = np.array([place[0] if place else math.nan for place in self.places])
        lon = np.array([place[1] if place else math.nan for place in self.places])
        # The in-person services with a place, as points on the unit sphere side by side:
        # a patient's distances to them are then a chord length each (see _chord_km).
        self.located = np.flatnonzero(np.array(self.in_person, dtype=bool) & ~np.isnan(lat))
        lat, lon = lat[self.located], lon[self.located]
        self.located_x = np.cos(lat) * np.cos(lon)
        self.located_y = np.cos(lat) * np.sin(lon)
        self.located_z = np.sin(lat)
        order = sorted(range(len(services)), key=lambda i: (services[i].name, services[i].id))
        self.rank = np.empty(len(services), dtype=np.int64)
        self.rank[order] = np.arange(len(services))

    def __len__(self) -> int:
        return len(self.services)

    def distance(self, i: int, p: _Patient) -> float | None:
        """From the patient to the place of the service at position ``i``, if both are
        known (haversine)."""
        place = self.places[i]
        if place is None or p.lat is None or p.lon is None:
            return None
        return distance_km(p.lat, p.lon, *place)


def prepare(services: Iterable[DirectoryService]) -> Prepared:
    return Prepared(list(services))


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
    category_points: np.ndarray
    """What the needs give each category (by CATEGORIES): fit x severity x NEED_POINTS."""
    answers: dict[Category, tuple[Signal, ...]]
    severe: bool
    high_pain: bool
    languages: frozenset[str]
    conditions: tuple[PainCondition, ...]
    condition_bits: int
    modalities: tuple[Modality, ...]
    """In the enums' order (tuples: membership by identity, without hashing an enum)."""
    modality_bits: int
    age: tuple[int, int] | None
    lat: float | None
    lon: float | None
    clinic_languages: tuple[str, ...]
    """Matched in instead of the patient's (unrecorded) languages; empty otherwise."""


def _patient(
    needs: Needs, profile: PatientProfile, clinic_languages: Sequence[str] = ()
) -> _Patient:
    points = []
    answers: dict[Category, tuple[Signal, ...]] = {}
    for category in CATEGORIES:
        total = 0.0
        answered = []
        for need in needs.needs:
            fit = FIT[need.signal][category]
            total += fit * SEVERITY_WEIGHT[need.severity] * NEED_POINTS
            if fit >= 2:
                answered.append(need.signal)
        points.append(total)
        answers[category] = tuple(answered)
    location = profile.location
    stand_in = () if profile.languages else tuple(clinic_languages)
    conditions = tuple(
        c for c in PainCondition if c in profile.pain_conditions and c is not PainCondition.OTHER
    )
    modalities = tuple(m for m in Modality if m in profile.preferred_modalities)
    return _Patient(
        needs=needs,
        profile=profile,
        category_points=np.array(points),
        answers=answers,
        severe=any(n.severity is Severity.SEVERE for n in needs.needs),
        high_pain=needs.high_pain_interference,
        languages=frozenset(primary_language(t) for t in profile.languages or stand_in),
        conditions=conditions,
        condition_bits=_bits(conditions, CONDITION_BITS),
        modalities=modalities,
        modality_bits=_bits(modalities, MODALITY_BITS),
        age=profile.age_band.bounds if profile.age_band else None,
        lat=math.radians(location.lat) if location else None,
        lon=math.radians(location.lon) if location else None,
        clinic_languages=stand_in,
    )


Columns = TypeVar("Columns", FilterColumns, RankingColumns)


@dataclass(frozen=True, slots=True)
class _Facts(Generic[Columns]):
    """What the rules read: some services of a directory, and the patient."""

    c: Columns
    p: _Patient
    km: np.ndarray
    """How far the patient is from each in-person service with a place; NaN for the rest
    (for every service when the patient's location is not known)."""


Words = Callable[[DirectoryService, _Patient, float], str]


@dataclass(frozen=True, slots=True)
class Rule(Generic[Columns]):
    """A matching rule, written once.

    ``holds``: where it holds, vectorised over the services in ``_Facts`` (a bool each;
    None when it holds nowhere for this patient). ``explain``: its reasons for one service
    where it holds, given that service's distance (NaN when not known). ``points`` (ranking
    rules only): what holding is worth, or, for a graded rule, the points of each service.
    """

    code: str
    holds: Callable[[_Facts[Columns]], np.ndarray | None]
    explain: Callable[[DirectoryService, _Patient, float], tuple[Reason, ...]]
    points: float | Callable[[_Facts[Columns]], np.ndarray | None] = 0.0


def _filter(
    code: str, holds: Callable[[_Facts[FilterColumns]], np.ndarray | None], words: Words
) -> Rule[FilterColumns]:
    """A hard filter: where it holds, the service is dropped, for the reason in ``words``."""
    return Rule(code, holds, lambda s, p, km: (Reason(code, words(s, p, km)),))


def _bonus(
    code: str,
    holds: Callable[[_Facts[RankingColumns]], np.ndarray | None],
    words: Words,
    points: float | Callable[[_Facts[RankingColumns]], np.ndarray | None] = 0.0,
) -> Rule[RankingColumns]:
    """A ranking rule with one reason, in ``words``."""
    return Rule(code, holds, lambda s, p, km: (Reason(code, words(s, p, km)),), points)


def _condition_words(conditions: Container[PainCondition], joiner: str) -> str:
    return joiner.join(CONDITION_WORDS[c] for c in PainCondition if c in conditions)


def _need_words(need: Need) -> str:
    return (
        f"{SIGNAL_WORDS[need.signal]} ({need.severity.value}; {need.instrument_title}, "
        f"{need.band_label.lower()}, {need.completed_at.date().isoformat()})"
    )


def _said_on(s: DirectoryService) -> str:
    at = s.capacity_status_at
    return f" (on {at.date().isoformat()})" if at is not None else ""


def _outside_age_limits(f: _Facts[FilterColumns]) -> np.ndarray | None:
    if f.p.age is None:
        return None
    return (f.c.max_age < f.p.age[0]) | (f.c.min_age > f.p.age[1])


def _age_words(s: DirectoryService, p: _Patient, km: float) -> str:
    band = p.profile.age_band.value if p.profile.age_band else ""
    return f"For ages {s.min_age or 0}-{s.max_age or 'any'}; the patient is {band}"


def _no_shared_language(f: _Facts[FilterColumns]) -> np.ndarray | None:
    if not f.p.languages:
        return None
    rows = [f.c.language_rows[t] for t in f.p.languages if t in f.c.language_rows]
    if not rows:
        return f.c.lists_languages
    shared: np.ndarray = f.c.languages[rows[0]]
    for row in rows[1:]:
        shared = shared | f.c.languages[row]
    unshared: np.ndarray = f.c.lists_languages & ~shared
    return unshared


def _language_words(s: DirectoryService, p: _Patient, km: float) -> str:
    spoken = (
        f"the patient's languages are not recorded, so the clinic's languages "
        f"({', '.join(p.clinic_languages)}) are used"
        if p.clinic_languages
        else f"the patient speaks {', '.join(p.profile.languages)}"
    )
    return f"Offered in {', '.join(s.languages)}; {spoken}"


def _condition_not_served(f: _Facts[FilterColumns]) -> np.ndarray | None:
    wanted = f.p.condition_bits
    return (f.c.conditions != 0) & ((f.c.conditions & wanted) == 0) if wanted else None


def _outside_catchment(f: _Facts[FilterColumns]) -> np.ndarray | None:
    return f.c.in_person_only & (f.km > f.c.catchment) if f.p.lat is not None else None


def _beyond_patient_reach(f: _Facts[FilterColumns]) -> np.ndarray | None:
    travel = f.p.profile.max_travel_km
    if f.p.lat is None or travel is None:
        return None
    return f.c.in_person_only & (f.km > travel)


FILTERS: tuple[Rule[FilterColumns], ...] = (
    _filter(
        "not_accepting",
        lambda f: f.c.not_accepting,
        lambda *_: "Not taking referrals at the moment",
    ),
    _filter(
        "service_not_accepting",
        lambda f: f.c.said_not_accepting,
        lambda s, p, km: f"The service said it is not accepting referrals{_said_on(s)}",
    ),
    _filter("no_capacity", lambda f: f.c.full, lambda *_: "No places free"),
    _filter("outside_age_limits", _outside_age_limits, _age_words),
    _filter("no_shared_language", _no_shared_language, _language_words),
    _filter(
        "condition_not_served",
        _condition_not_served,
        lambda s, p, km: f"Only for people with {_condition_words(s.conditions, ' or ')}",
    ),
    _filter(
        "outside_catchment",
        _outside_catchment,
        lambda s, p, km: (
            f"In person only, {km:.1f} km away; takes people within {s.catchment_km:g} km"
        ),
    ),
    _filter(
        "beyond_patient_reach",
        _beyond_patient_reach,
        lambda s, p, km: (
            f"In person only, {km:.1f} km away; the patient can travel "
            f"{p.profile.max_travel_km:g} km"
        ),
    ),
)
"""The hard filters, in the order their reasons are given."""


def _answers(s: DirectoryService, p: _Patient, km: float) -> tuple[Reason, ...]:
    return tuple(
        Reason(
            f"answers_{need.signal.value}",
            f"{CATEGORY_WORDS[s.category].capitalize()} {STRENGTH[fit]} answers "
            f"{_need_words(need)}",
        )
        for need in p.needs.needs
        if (fit := FIT[need.signal][s.category])
    )


def _severe_counselling(f: _Facts[RankingColumns]) -> np.ndarray | None:
    return f.c.category == COUNSELLING if f.p.severe else None


def _condition_specific(f: _Facts[RankingColumns]) -> np.ndarray | None:
    wanted = f.p.condition_bits
    return (f.c.conditions & wanted) != 0 if wanted else None


def _condition_specific_words(s: DirectoryService, p: _Patient, km: float) -> str:
    shared = _condition_words([c for c in p.conditions if c in s.conditions], " and ")
    return f"{CATEGORY_NOUNS[s.category]} for people with {shared}"


def _preferred_modality(f: _Facts[RankingColumns]) -> np.ndarray | None:
    wanted = f.p.modality_bits
    return (f.c.modalities & wanted) != 0 if wanted else None


def _modality_words(s: DirectoryService, p: _Patient, km: float) -> str:
    preferred = sorted(m.value for m in p.modalities if m in s.modalities)
    return f"Offered {', '.join(preferred)}, as preferred"


def _nearness(f: _Facts[RankingColumns]) -> np.ndarray | None:
    """Up to DISTANCE_POINTS, falling to nothing at the service's reach or the patient's
    travel limit, whichever is shorter."""
    if f.p.lat is None:
        return None
    reach = f.c.reach
    travel = f.p.profile.max_travel_km
    if travel is not None:
        reach = np.minimum(reach, travel)
    bonus = DISTANCE_POINTS * np.maximum(0.0, 1.0 - f.km / reach)
    return np.where(np.isnan(f.km), 0.0, bonus)


RANKING: tuple[Rule[RankingColumns], ...] = (
    Rule(
        "answers_<signal>",
        lambda f: np.ones(len(f.km), dtype=bool),
        _answers,
        lambda f: f.p.category_points[f.c.category],
    ),
    _bonus(
        "severe_need_counselling",
        _severe_counselling,
        lambda *_: "A severe need puts counselling first",
        SEVERE_COUNSELLING_POINTS,
    ),
    _bonus("condition_specific", _condition_specific, _condition_specific_words, CONDITION_POINTS),
    _bonus(
        "any_condition",
        lambda f: f.c.conditions == 0,
        lambda *_: "Open to people with any pain condition",
    ),
    _bonus("preferred_modality", _preferred_modality, _modality_words, MODALITY_POINTS),
    _bonus(
        "usable_from_home",
        lambda f: f.c.from_home if f.p.high_pain else None,
        lambda *_: "Can be joined from home (online or by phone) while pain limits travel",
        FROM_HOME_POINTS,
    ),
    _bonus(
        "waitlist",
        lambda f: f.c.waitlist,
        lambda s, p, km: f"The service said it has a waiting list{_said_on(s)}",
        WAITLIST_POINTS,
    ),
    _bonus(
        "distance",
        lambda f: ~np.isnan(f.km) if f.p.lat is not None else None,
        lambda s, p, km: f"{km:.1f} km from the patient",
        _nearness,
    ),
)
"""What ranks the services kept, in the order their reasons are given and their points
added: the needs the category answers (one reason per need answered), then the bonuses."""


def _chord_km(d: Prepared, p: _Patient) -> np.ndarray:
    """The patient's distance to each located in-person service (NaN for the others): the
    haversine distance, from the chord between the two points on the unit sphere (the same
    formula: haversine's h is (chord / 2) squared), without trigonometry per service. Agrees
    with distance_km to about 1e-12 km."""
    km = np.full(len(d), np.nan)
    if p.lat is not None and p.lon is not None:
        x = math.cos(p.lat) * math.cos(p.lon)
        y = math.cos(p.lat) * math.sin(p.lon)
        z = math.sin(p.lat)
        chord = np.sqrt((d.located_x - x) ** 2 + (d.located_y - y) ** 2 + (d.located_z - z) ** 2)
        km[d.located] = 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, chord / 2))
    return km


def _ranked(
    d: Prepared, at: np.ndarray, km: np.ndarray, p: _Patient, explain: bool = False
) -> tuple[np.ndarray, list[tuple[Rule[RankingColumns], np.ndarray]]]:
    """The scores of the services at these positions (``km`` away) and, when explaining,
    each ranking rule that can hold for this patient, with where."""
    f = _Facts(d.ranking.take(at), p, km)
    scores = np.zeros(len(at))
    holding = []
    for rule in RANKING:
        worth = rule.points
        holds = rule.holds(f) if explain or not callable(worth) else None
        if callable(worth):
            points = worth(f)
        elif worth and holds is not None:
            points = np.where(holds, worth, 0.0)
        else:
            points = None
        if points is not None:
            scores += points
        if explain and holds is not None:
            holding.append((rule, holds))
    return scores, holding


@dataclass(frozen=True, slots=True)
class _Evaluation:
    """One patient against a whole directory."""

    kept: np.ndarray
    """The positions of the services no filter drops."""
    scores: np.ndarray
    """Theirs, in that order."""
    drops: list[tuple[Rule[FilterColumns], np.ndarray]]
    """Each filter that can hold for this patient, with where (over the whole directory)."""


def _evaluate(d: Prepared, p: _Patient) -> _Evaluation:
    """The filters over the whole directory, then the ranking rules over the services kept."""
    km = _chord_km(d, p)
    f = _Facts(d.filtering, p, km)
    drops = [(rule, holds) for rule in FILTERS if (holds := rule.holds(f)) is not None]
    dropped = np.zeros(len(d), dtype=bool)
    for _, holds in drops:
        dropped |= holds
    kept = np.flatnonzero(~dropped)
    scores, _ = _ranked(d, kept, km[kept], p)
    return _Evaluation(kept, scores, drops)


def _in_person_km(d: Prepared, i: int, distance: float | None) -> float:
    return distance if distance is not None and d.in_person[i] else math.nan


def _recommendations(d: Prepared, at: np.ndarray, p: _Patient) -> list[Recommendation]:
    """The services at these positions, explained: the ranking rules evaluated again on them
    alone, with their distances by :func:`distance_km`."""
    positions = at.tolist()
    distances = [d.distance(i, p) for i in positions]
    km = [_in_person_km(d, i, x) for i, x in zip(positions, distances, strict=True)]
    scores, holding = _ranked(d, at, np.array(km, dtype=float), p, explain=True)
    where = [(rule, holds.tolist()) for rule, holds in holding]
    recommendations = []
    for j, (i, score, distance) in enumerate(
        zip(positions, scores.tolist(), distances, strict=True)
    ):
        s = d.services[i]
        recommendations.append(
            Recommendation(
                service=s,
                score=round(score, 2),
                reasons=tuple(
                    reason
                    for rule, holds in where
                    if holds[j]
                    for reason in rule.explain(s, p, km[j])
                ),
                distance_km=round(distance, 1) if distance is not None else None,
                answers=p.answers[s.category],
            )
        )
    return recommendations


def _excluded(d: Prepared, e: _Evaluation, p: _Patient) -> list[Excluded]:
    """The services a filter drops, in directory order, each with every filter's reason."""
    reasons: dict[int, list[Reason]] = {}
    for rule, holds in e.drops:
        for i in np.flatnonzero(holds).tolist():
            km = _in_person_km(d, i, d.distance(i, p))
            reasons.setdefault(i, []).extend(rule.explain(d.services[i], p, km))
    return [Excluded(d.services[i], tuple(reasons[i])) for i in sorted(reasons)]


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
    directory: Prepared,
    limit: int = 10,
    explain_excluded: bool = False,
    clinic_languages: Sequence[str] = (),
) -> MatchResult:
    """The ``limit`` best services for these needs, best first, with their reasons.

    ``clinic_languages`` stand in for the patient's when the profile has none."""
    if not needs.needs:
        return MatchResult([], [], len(directory))
    p = _patient(needs, profile, clinic_languages)
    e = _evaluate(directory, p)
    best = _best(e.kept, e.scores, directory.rank, limit)
    excluded = _excluded(directory, e, p) if explain_excluded else []
    return MatchResult(_recommendations(directory, best, p), excluded, len(directory))


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
