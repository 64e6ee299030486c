"""Eligibility and fraud signals on a claim: facts in, reasons out. Pure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

REJECT = "reject"
REVIEW = "review"
ALLOW = "allow"

# What each signal does unless the program says otherwise.
DEFAULT_POLICY: dict[str, str] = {
    "self_referral": REJECT,
    "existing_customer": REJECT,
    "inactive_code": REJECT,
    "outside_attribution_window": REJECT,
}


@dataclass(frozen=True)
class ClaimFacts:
    """What is known about a claim when it is decided (identifiers already keyed-hashed)."""

    now: datetime
    advocate_external_id: str
    advocate_email_key: str | None
    friend_external_id: str
    friend_email_key: str | None
    code_active: bool
    click_at: datetime | None
    attribution_window_days: int
    existing_customer: bool = False


Signal = dict[str, str]
Rule = Callable[[ClaimFacts], Signal | None]


def _self_referral(f: ClaimFacts) -> Signal | None:
    if f.friend_external_id == f.advocate_external_id:
        return {"code": "self_referral", "message": "The friend is the advocate (same customer id)."}
    if f.friend_email_key and f.friend_email_key == f.advocate_email_key:
        return {"code": "self_referral",
                "message": "The friend's email is the advocate's after normalisation."}
    return None


def _existing_customer(f: ClaimFacts) -> Signal | None:
    if f.existing_customer:
        return {"code": "existing_customer", "message": "The friend is already a customer."}
    return None


def _inactive_code(f: ClaimFacts) -> Signal | None:
    if not f.code_active:
        return {"code": "inactive_code", "message": "The referral code is no longer active."}
    return None


def _attribution_window(f: ClaimFacts) -> Signal | None:
    if f.click_at and f.now - f.click_at > timedelta(days=f.attribution_window_days):
        return {"code": "outside_attribution_window",
                "message": f"The click is older than {f.attribution_window_days} days."}
    return None


RULES: tuple[Rule, ...] = (_self_referral, _existing_customer, _inactive_code,
                           _attribution_window)


def evaluate(facts: ClaimFacts) -> list[Signal]:
    """Run every rule and return the signals raised, in rule order."""
    return [signal for rule in RULES if (signal := rule(facts)) is not None]


def verdict(signals: list[Signal], policy: dict[str, str] | None = None) -> str:
    """Return reject, review or allow: the strictest action any signal asks for."""
    rules = {**DEFAULT_POLICY, **(policy or {})}
    actions = {rules.get(s["code"], REVIEW) for s in signals}
    for action in (REJECT, REVIEW):
        if action in actions:
            return action
    return ALLOW
