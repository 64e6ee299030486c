"""Experiments: what each variant changes, who sees which, and what the results say. Pure.

- **Design**: two or more named variants with integer weights; each may change one *subject*
  (``rewards``: the reward amounts and kinds, and the friend's offer; ``message``: the ask
  message; ``moment``: the moment types that ask). A variant that changes nothing keeps the
  program's own (a control).
- **Assignment** (``choose``): a keyed HMAC of (experiment id, external id) with the install's
  secret, read as a 64-bit number and mapped onto the cumulative weights. The same person always
  gets the same variant, on every process and after every restart; nothing random is stored.
- **Intervals** (``wilson``): the Wilson score interval of a proportion (Wilson 1927; Newcombe
  1998, "method 3"), which stays inside [0, 1] and behaves at 0 and n successes.
- **Sample size** (``sample_size``): per variant, for a two-sided two-proportion z-test at
  alpha 0.05 with power 0.8 (pooled variance under the null, no continuity correction; Fleiss).
- **Stop rule** (``judge``): a winner only when every variant reached the sample size and the
  winner's interval lies wholly above every other variant's; otherwise no winner, and why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import accumulate
from typing import Any

from referflow.domain.hashing import keyed_hash
from referflow.domain.messaging import PASS, Outcome
from referflow.domain.program import REWARD_SIDES, Reward
from referflow.domain.referral import APPROVED, QUALIFIED_STATUSES, REWARDED

Z_ALPHA = 1.959964  # the standard normal quantile of 0.975: two-sided alpha 0.05
Z_POWER = 0.841621  # the quantile of 0.8: power 0.8
DEFAULT_MDE = 0.05  # five percentage points, when createExperiment names none
RULE = "experiment"  # the rule name of a moment experiment's outcome in an ask decision
HOLDOUT = "experiment_holdout"  # its skip reason: this variant is not asked at this moment


class Subject(StrEnum):
    """What an experiment's variants change; at most one running experiment per subject."""

    REWARDS = "rewards"
    MESSAGE = "message"
    MOMENT = "moment"


class Reason(StrEnum):
    """Why the stop rule names a winner, or none (stable codes)."""

    WINNER = "intervals_separate"
    NOT_ENOUGH_DATA = "not_enough_data"
    OVERLAP = "intervals_overlap"
    NO_BASELINE = "no_baseline"
    EFFECT_OUT_OF_RANGE = "effect_out_of_range"


class InvalidDesign(ValueError):
    """An experiment that cannot run as asked; ``code`` and ``path`` say what and where."""

    def __init__(self, message: str, code: str, path: str):
        super().__init__(message)
        self.code = code
        self.path = path


@dataclass(frozen=True)
class Variant:
    """One arm: its weight and what it changes (``None``: the program's own)."""

    name: str
    weight: int
    rewards: Mapping[str, Reward] | None = None
    friend_offer: str | None = None
    message: str | None = None
    moments: tuple[str, ...] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Variant:
        """Build from the JSON of createExperiment (validated by its schema first)."""
        rewards = data.get("rewards")
        return cls(name=data["name"], weight=data["weight"],
                   rewards={side: Reward(**rewards[side]) for side in REWARD_SIDES if side in rewards}
                   if rewards is not None else None,
                   friend_offer=data.get("friend_offer"), message=data.get("message"),
                   moments=tuple(data["moments"]) if data.get("moments") is not None else None)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (what is unset is null)."""
        return {"name": self.name, "weight": self.weight,
                "rewards": None if self.rewards is None else {
                    side: {k: v for k, v in vars(r).items() if v is not None}
                    for side, r in self.rewards.items()},
                "friend_offer": self.friend_offer, "message": self.message,
                "moments": None if self.moments is None else list(self.moments)}

    @property
    def subjects(self) -> set[Subject]:
        """Return the subjects this variant changes."""
        found = set()
        if self.rewards is not None or self.friend_offer is not None:
            found.add(Subject.REWARDS)
        if self.message is not None:
            found.add(Subject.MESSAGE)
        if self.moments is not None:
            found.add(Subject.MOMENT)
        return found


@dataclass(frozen=True)
class Design:
    """An experiment's variants, its subject, its scope and what its stop rule needs."""

    variants: tuple[Variant, ...]
    subject: Subject
    moment: str | None = None  # message experiments: only asks at this moment type
    minimum_detectable_effect: float = DEFAULT_MDE  # absolute: 0.05 = 5 percentage points
    baseline_rate: float | None = None  # else the control's (first variant's) observed rate

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], moment_types: Sequence[str]) -> Design:
        """Build and check a design; raise InvalidDesign for what the schema cannot say."""
        variants = tuple(Variant.from_dict(v) for v in data["variants"])
        _unique_names(variants)
        subject = _subject(variants)
        _check_moments(variants, data.get("moment"), subject, moment_types)
        mde = data.get("minimum_detectable_effect")
        return cls(variants, subject, data.get("moment"),
                   DEFAULT_MDE if mde is None else float(mde), data.get("baseline_rate"))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form stored with the experiment."""
        return {"variants": [v.to_dict() for v in self.variants], "subject": str(self.subject),
                "moment": self.moment, "minimum_detectable_effect": self.minimum_detectable_effect,
                "baseline_rate": self.baseline_rate}

    @property
    def covered_moments(self) -> frozenset[str]:
        """Return the moment types a moment experiment decides (any variant's)."""
        return frozenset(m for v in self.variants for m in v.moments or ())

    def variant(self, name: str) -> Variant:
        """Return the variant of that name (KeyError when there is none)."""
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)


def _unique_names(variants: Sequence[Variant]) -> None:
    seen: set[str] = set()
    for i, v in enumerate(variants):
        if v.name in seen:
            raise InvalidDesign(f"two variants are named {v.name!r}", "duplicate_variant",
                                f"/variants/{i}/name")
        seen.add(v.name)


def _subject(variants: Sequence[Variant]) -> Subject:
    subjects = set().union(*(v.subjects for v in variants))
    if len(subjects) > 1:
        raise InvalidDesign("the variants change more than one subject ("
                            + ", ".join(sorted(subjects)) + "): one experiment tests one",
                            "mixed_subjects", "/variants")
    if not subjects:
        raise InvalidDesign("no variant changes anything: give rewards, friend_offer, message "
                            "or moments", "nothing_varies", "/variants")
    return subjects.pop()


def _check_moments(variants: Sequence[Variant], scope: str | None, subject: Subject,
                   moment_types: Sequence[str]) -> None:
    if scope is not None and subject != Subject.MESSAGE:
        raise InvalidDesign("moment scopes a message experiment only", "moment_scope", "/moment")
    if scope is not None and scope not in moment_types:
        raise InvalidDesign(f"unknown moment type {scope!r}", "unknown_moment", "/moment")
    for i, v in enumerate(variants):
        if subject == Subject.MOMENT and v.moments is None:
            raise InvalidDesign("every variant of a moment experiment names its moments "
                                "([] never asks at them)", "missing_moments", f"/variants/{i}")
        unknown = sorted(set(v.moments or ()) - set(moment_types))
        if unknown:
            raise InvalidDesign(f"unknown moment types {unknown}", "unknown_moment",
                                f"/variants/{i}/moments")


# -- assignment -----------------------------------------------------------------------------------

def choose(secret: str, experiment_id: str, external_id: str, weights: Sequence[int]) -> int:
    """Return the index of the variant a person sees: deterministic, in proportion to weights.

    The first 64 bits of the keyed hash, scaled onto [0, total weight), fall into one
    variant's share of the cumulative weights (exact integer arithmetic).
    """
    digest = keyed_hash(secret, "experiment", f"{experiment_id}\n{external_id}")
    point = (int(digest[:16], 16) * sum(weights)) >> 64
    for index, bound in enumerate(accumulate(weights)):
        if point < bound:
            return index
    raise ValueError("weights must be positive")


def moment_gate(variant: Variant, covered: frozenset[str], moment_type: str) -> Outcome | None:
    """Return a moment experiment's outcome for this moment (None when it does not cover it)."""
    if moment_type not in covered:
        return None
    if moment_type in (variant.moments or ()):
        return Outcome(RULE, PASS, f"variant {variant.name} asks at {moment_type}")
    return Outcome(RULE, HOLDOUT, f"variant {variant.name} is not asked at {moment_type}")


# -- the funnel of a variant -----------------------------------------------------------------------

APPROVED_STATUSES = frozenset({APPROVED, REWARDED})


@dataclass
class Tally:
    """One variant's funnel, conversions, revenue and reward cost, counted from the records.

    ``assigned``: people exposed (stored assignments), the units of the conversion rate;
    ``links``: of them, advocates (with a share link); ``asks``: asks recorded in the variant;
    ``claims``: referrals claimed in the variant, of which ``approved`` (approved or rewarded
    now: a reversal takes one out) and ``rewarded``; ``converted``: the advocates with an
    approved one; revenue: the qualifying amounts of its qualified referrals (held, approved,
    rewarded), per currency; ``reward_cost``: the rewards committed at approval of the approved.
    """

    assigned: int = 0
    links: int = 0
    asks: int = 0
    claims: int = 0
    approved: int = 0
    rewarded: int = 0
    converted: set[str] = field(default_factory=set)
    revenue: dict[str, int] = field(default_factory=dict)
    reward_cost: int = 0

    def add_referral(self, status: str, advocate_id: str, qualified: tuple[int, str] | None,
                     committed: int) -> None:
        """Count one referral of the variant."""
        self.claims += 1
        if status in APPROVED_STATUSES:
            self.approved += 1
            self.converted.add(advocate_id)
            self.reward_cost += committed
        self.rewarded += status == REWARDED
        if qualified is not None and status in QUALIFIED_STATUSES:
            amount, currency = qualified
            self.revenue[currency] = self.revenue.get(currency, 0) + amount

    def arm(self, name: str) -> Arm:
        """Return the variant's units and conversions for the stop rule."""
        return Arm(name, self.assigned, len(self.converted))


def recorded_variant(recorded: Sequence[Mapping[str, Any]] | None, experiment_id: str) -> str | None:
    """Return the variant of one experiment among the variants recorded on a referral or ask."""
    return next((v["name"] for v in recorded or () if v.get("experiment_id") == experiment_id), None)


# -- statistics -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    """A confidence interval of a proportion."""

    low: float
    high: float


def wilson(successes: int, trials: int, z: float = Z_ALPHA) -> Interval | None:
    """Return the Wilson score interval of successes/trials (None with no trials)."""
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError("successes must lie between 0 and trials")
    p = successes / trials
    z2 = z * z
    centre = p + z2 / (2 * trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    scale = 1 + z2 / trials
    return Interval(max(0.0, (centre - half) / scale), min(1.0, (centre + half) / scale))


def sample_size(p1: float, p2: float, z_alpha: float = Z_ALPHA, z_power: float = Z_POWER) -> int:
    """Return the size per group to tell p1 from p2 (two-sided z-test, equal groups)."""
    if p1 == p2 or not (0 <= p1 <= 1 and 0 <= p2 <= 1):
        raise ValueError("p1 and p2 must differ and lie in [0, 1]")
    mean = (p1 + p2) / 2
    root = (z_alpha * math.sqrt(2 * mean * (1 - mean))
            + z_power * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2)))
    return math.ceil(root * root / ((p1 - p2) ** 2) - 1e-9)


def required_sample(baseline: float, mde: float) -> int | None:
    """Return the sample per variant to detect a change of ``mde`` from ``baseline``.

    The effect is added (``baseline + mde``), or taken off when that passes 1; None when
    neither stays within [0, 1].
    """
    for target in (baseline + mde, baseline - mde):
        if 0 <= target <= 1 and target != baseline:
            return sample_size(baseline, target)
    return None


@dataclass(frozen=True)
class Arm:
    """One variant's units (people exposed) and conversions (people who converted)."""

    name: str
    exposed: int
    converted: int

    @property
    def rate(self) -> float | None:
        """Return the conversion rate (None before anyone was exposed)."""
        return self.converted / self.exposed if self.exposed else None

    @property
    def interval(self) -> Interval | None:
        """Return the 95 % Wilson interval of the rate."""
        return wilson(self.converted, self.exposed)


@dataclass(frozen=True)
class Verdict:
    """What the stop rule says: the winner or None, a reason code and the numbers it used."""

    winner: str | None
    reason: Reason
    message: str
    baseline: float | None
    sample_size: int | None
    reached: tuple[str, ...] = field(default_factory=tuple)  # variants at the sample size


def judge(arms: Sequence[Arm], mde: float, baseline_rate: float | None = None) -> Verdict:
    """Apply the stop rule: every variant at the sample size, and separated intervals."""
    baseline = baseline_rate if baseline_rate is not None else arms[0].rate
    if baseline is None:
        return Verdict(None, Reason.NO_BASELINE, f"no baseline yet: the control ({arms[0].name}) "
                       "has nobody exposed and none was given at creation", None, None)
    needed = required_sample(baseline, mde)
    if needed is None:
        return Verdict(None, Reason.EFFECT_OUT_OF_RANGE, f"a change of {mde} from {baseline:.4f} "
                       "leaves [0, 1]", baseline, None)
    reached = tuple(a.name for a in arms if a.exposed >= needed)
    short = [f"{a.name} ({a.exposed}/{needed})" for a in arms if a.exposed < needed]
    if short:
        return Verdict(None, Reason.NOT_ENOUGH_DATA, "not every variant reached the sample size: "
                       + ", ".join(short), baseline, needed, reached)
    best = _separated(arms)
    if best is None:
        return Verdict(None, Reason.OVERLAP, "the 95 % intervals overlap: no variant is clearly "
                       "better", baseline, needed, reached)
    return Verdict(best.name, Reason.WINNER, f"{best.name}'s 95 % interval lies above every "
                   "other variant's", baseline, needed, reached)


def _separated(arms: Sequence[Arm]) -> Arm | None:
    """Return the arm whose interval lies wholly above every other arm's, if one does."""
    for arm in arms:
        mine = arm.interval
        others = [o.interval for o in arms if o is not arm]
        if mine is not None and all(o is not None and mine.low > o.high for o in others):
            return arm
    return None
