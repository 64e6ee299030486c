"""Eligibility and fraud signals on a claim: facts in, reasons out. Pure.

Every rule sees the same ``ClaimFacts`` (identifiers already keyed-hashed by the caller) and
returns a signal ``{code, message}`` or None. The program's review policy then turns signals
into one verdict: reject, review or allow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from referflow.domain.program import Review, Velocity

REJECT = "reject"
REVIEW = "review"
ALLOW = "allow"

Signal = dict[str, str]


@dataclass(frozen=True)
class ClaimFacts:
    """What is known about a claim when it is decided."""

    now: datetime
    advocate_external_id: str
    advocate_email_key: str | None
    friend_external_id: str
    friend_email_key: str | None
    code_active: bool
    click_at: datetime | None
    attribution_window_days: int
    existing_customer: str | None = None  # why the friend counts as a customer, if they do
    purchased_at: datetime | None = None
    late_claim_grace_days: int = 0
    household_matches: frozenset[str] = frozenset()  # "ip", "net", "device"
    payment_match: str | None = None  # "advocate" or "friend" (an earlier friend)
    claims_last_hour: int = 0
    claims_last_day: int = 0
    velocity: Velocity = field(default_factory=Velocity)
    disposable_domain: str | None = None
    advocate_flagged: bool = False


def _signal(code: str, message: str) -> Signal:
    return {"code": code, "message": message}


def self_referral(f: ClaimFacts) -> Signal | None:
    if f.friend_external_id == f.advocate_external_id:
        return _signal("self_referral", "The friend is the advocate (same customer id).")
    if f.friend_email_key and f.friend_email_key == f.advocate_email_key:
        return _signal("self_referral", "The friend's email is the advocate's after normalisation.")
    return None


def same_payment_method(f: ClaimFacts) -> Signal | None:
    if f.payment_match == "advocate":
        return _signal("same_payment_method", "The friend pays with the advocate's payment method.")
    if f.payment_match == "friend":
        return _signal("same_payment_method",
                       "The friend pays with the payment method of an earlier friend of this advocate.")
    return None


def same_household(f: ClaimFacts) -> Signal | None:
    if not f.household_matches:
        return None
    kinds = ", ".join(sorted({"ip": "IP address", "net": "network (/64)", "device": "device"}[k]
                             for k in f.household_matches))
    return _signal("same_household",
                   f"Same {kinds} as the advocate or an earlier friend of the advocate.")


def disposable_email(f: ClaimFacts) -> Signal | None:
    if f.disposable_domain:
        return _signal("disposable_email", f"{f.disposable_domain} is a disposable email domain.")
    return None


def velocity(f: ClaimFacts) -> Signal | None:
    if f.claims_last_hour >= f.velocity.per_hour:
        return _signal("velocity", f"The advocate already has {f.claims_last_hour} claims in the "
                                   f"last hour (limit {f.velocity.per_hour}).")
    if f.claims_last_day >= f.velocity.per_day:
        return _signal("velocity", f"The advocate already has {f.claims_last_day} claims in the "
                                   f"last day (limit {f.velocity.per_day}).")
    return None


def existing_customer(f: ClaimFacts) -> Signal | None:
    if f.existing_customer:
        return _signal("existing_customer", f"The friend is already a customer ({f.existing_customer}).")
    return None


def inactive_code(f: ClaimFacts) -> Signal | None:
    if not f.code_active:
        return _signal("inactive_code", "The referral code is no longer active.")
    return None


def outside_attribution_window(f: ClaimFacts) -> Signal | None:
    if f.click_at and f.now - f.click_at > timedelta(days=f.attribution_window_days):
        return _signal("outside_attribution_window",
                       f"The click is older than {f.attribution_window_days} days.")
    return None


def late_claim(f: ClaimFacts) -> Signal | None:
    if f.purchased_at and f.now - f.purchased_at > timedelta(days=f.late_claim_grace_days):
        return _signal("late_claim", "The code was claimed after the purchase, later than the "
                                     f"{f.late_claim_grace_days}-day grace period allows.")
    return None


def advocate_flagged(f: ClaimFacts) -> Signal | None:
    if f.advocate_flagged:
        return _signal("advocate_flagged", "The advocate was flagged after an earlier chargeback or loss.")
    return None


RULES: tuple[Callable[[ClaimFacts], Signal | None], ...] = (
    self_referral, same_payment_method, same_household, disposable_email, velocity,
    existing_customer, inactive_code, outside_attribution_window, late_claim, advocate_flagged,
)


def evaluate(facts: ClaimFacts) -> tuple[list[Signal], list[dict[str, str]]]:
    """Run every rule; return the signals raised and every rule's outcome (for the audit)."""
    signals: list[Signal] = []
    outcomes: list[dict[str, str]] = []
    for rule in RULES:
        signal = rule(facts)
        outcomes.append({"rule": rule.__name__, "outcome": signal["code"] if signal else "pass"})
        if signal:
            signals.append(signal)
    return signals, outcomes


def verdict(signals: list[Signal], review: Review | None = None) -> str:
    """Return reject, review or allow: the strictest action any signal asks for."""
    review = review or Review()
    actions = {review.action(s["code"]) for s in signals}
    for action in (REJECT, REVIEW):
        if action in actions:
            return action
    return ALLOW
