"""The referral state machine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from referflow.domain.program import ProgramConfig


class ReferralStatus(StrEnum):
    """Where a referral is in its life (stored as the value)."""

    PENDING = "pending"
    IN_REVIEW = "in_review"
    REJECTED = "rejected"
    HELD = "held"
    APPROVED = "approved"
    REWARDED = "rewarded"
    REVERSED = "reversed"


PENDING, IN_REVIEW, REJECTED = ReferralStatus.PENDING, ReferralStatus.IN_REVIEW, ReferralStatus.REJECTED
HELD, APPROVED = ReferralStatus.HELD, ReferralStatus.APPROVED
REWARDED, REVERSED = ReferralStatus.REWARDED, ReferralStatus.REVERSED
STATUSES = tuple(ReferralStatus)
# The statuses an advocate's "approved" counts (caps, tiers, counters, stats): approved, and
# approved then paid (rewarded). One home for the rule.
APPROVED_COUNTED = frozenset({APPROVED, REWARDED})

# Which status may follow which; every status change is checked against this table (move()).
# Anything else is a conflict.
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({HELD, APPROVED, IN_REVIEW, REJECTED, REVERSED}),
    IN_REVIEW: frozenset({PENDING, HELD, APPROVED, REJECTED, REVERSED}),
    # HELD -> HELD: a monthly cap defers the approval to next month (cap_deferred);
    # HELD -> REJECTED: the cap's policy is reject (cap_rejected);
    # HELD -> IN_REVIEW: a signal raised after qualifying (same card) asks a person first.
    HELD: frozenset({HELD, APPROVED, REJECTED, IN_REVIEW, REVERSED}),
    APPROVED: frozenset({REWARDED, REVERSED}),
    REWARDED: frozenset({REVERSED}),
    REJECTED: frozenset(),
    REVERSED: frozenset(),
}
QUALIFIED_STATUSES = frozenset({HELD, APPROVED, REWARDED})


def can_move(current: str, target: str) -> bool:
    """Tell whether ``current`` may move to ``target``."""
    return target in TRANSITIONS[current]


# Provider and shop clocks drift; an event dated further ahead than this did not happen yet.
CLOCK_SKEW = timedelta(days=1)


def in_the_future(occurred_at: datetime, now: datetime) -> bool:
    """Tell whether an event's time is later than any clock skew explains."""
    return occurred_at > now + CLOCK_SKEW


@dataclass(frozen=True)
class QualifyDecision:
    """Outcome of a qualifying event for a pending referral."""

    status: str
    hold_until: datetime | None
    reason: str | None = None
    message: str | None = None


def decide_qualification(
    config: ProgramConfig, event_type: str, amount: int, currency: str, occurred_at: datetime
) -> QualifyDecision:
    """Decide where a qualifying event moves a pending referral."""
    if event_type not in config.qualifying_event_types:
        return QualifyDecision(PENDING, None, "event_type_not_qualifying",
                               f"event type {event_type!r} does not qualify in this program")
    if currency != config.currency:
        return QualifyDecision(PENDING, None, "currency_mismatch",
                               f"event currency {currency} is not the program's {config.currency}")
    if amount == 0:  # a free trial's first invoice or a fully discounted order: no purchase yet
        return QualifyDecision(PENDING, None, "nothing_paid",
                               "nothing was paid (a free trial or a fully discounted order)")
    if amount < config.min_qualifying_amount:
        return QualifyDecision(PENDING, None, "below_minimum_amount",
                               f"amount {amount} is below the minimum "
                               f"{config.min_qualifying_amount}")
    if config.hold_days == 0:
        return QualifyDecision(APPROVED, None)
    return QualifyDecision(HELD, occurred_at + timedelta(days=config.hold_days))


REVERSAL_MESSAGES = {
    "chargeback": "The friend's payment was disputed (chargeback).",
    "refunded_in_hold": "The friend's payment was refunded inside the hold period.",
    "refunded_after_hold": "The friend's payment was refunded after the hold, before the reward was paid.",
    "refunded_after_reward": "The friend's payment was refunded after the reward was paid.",
    "fraud": "The referral was reversed as fraudulent.",
    "reversed": "The referral was reversed.",
}


@dataclass(frozen=True)
class ReversalDecision:
    """What a refund, chargeback or manual reversal does to a referral."""

    reverse: bool
    code: str
    message: str
    flag_advocate: bool = False


@dataclass(frozen=True)
class Refund:
    """What a refund event says about the money returned (integer minor units)."""

    amount: int | None = None  # returned by this refund
    total: int | None = None  # returned on the payment so far, when the provider says (Stripe)
    full: bool | None = None  # the provider says the payment is refunded in full
    earlier_amounts: int = 0  # the sum of the amounts of partial refunds kept before
    earlier_total: int = 0  # the largest running total reported before

    @property
    def returned(self) -> int:
        """Return how much of the payment has been returned, this refund included.

        A provider may report one refund twice, once as an amount and once as a running total
        (Stripe's refund.created and charge.refunded): the larger of the two sums is taken, so
        neither order of arrival counts it twice.
        """
        return max(self.total or 0, self.earlier_total, self.earlier_amounts + (self.amount or 0))

    @property
    def sized(self) -> bool:
        """Return True when the event says how much was returned."""
        return self.amount is not None or self.total is not None or self.full is not None


def refund_rule(value: Any) -> tuple[str, int]:
    """Return (mode, threshold) of a program's ``refunds`` setting.

    ``"full_only"`` (the default), ``"any"``, or ``{"above": N}`` (N minor units).
    """
    if isinstance(value, dict):
        return "above", int(value["above"])
    return str(value), 0


def decide_refund(rule: Any, refund: Refund, qualified_amount: int | None,
                  min_qualifying_amount: int) -> ReversalDecision:
    """Decide whether a refund counts, by the program's ``refunds`` rule.

    A full refund always counts; so does a refund that names no amount (the caller asserts a
    refund of the purchase). ``full_only`` also counts a partial refund that leaves less than the
    program's minimum qualifying amount paid; ``any`` counts every refund; ``{"above": N}`` counts
    refunds returning more than N in total. Otherwise the referral stands (``partial_refund``).
    """
    mode, above = refund_rule(rule)
    returned = refund.returned
    full = refund.full if refund.full is not None else (
        qualified_amount is None or returned >= qualified_amount)
    if not refund.sized or full:
        return ReversalDecision(True, "refund_full", "The payment was refunded in full.")
    if mode == "any" and returned > 0:
        return ReversalDecision(True, "refund_partial", f"A partial refund ({returned}) reverses "
                                "under the program's rule refunds=any.")
    if mode == "above" and returned > above:
        return ReversalDecision(True, "refund_above_threshold", f"Refunds of {returned} are above "
                                f"the program's threshold of {above}.")
    if (mode == "full_only" and qualified_amount is not None and min_qualifying_amount
            and qualified_amount - returned < min_qualifying_amount):
        return ReversalDecision(True, "refund_below_minimum", f"After refunds of {returned}, less "
                                f"than the minimum qualifying amount {min_qualifying_amount} "
                                "stays paid.")
    return ReversalDecision(False, "partial_refund", f"A partial refund ({returned} of "
                            f"{qualified_amount}) does not reverse under the program's rule "
                            f"refunds={mode if mode != 'above' else f'above {above}'}.")


def decide_reversal(reason: str, status: str, occurred_at: datetime,
                    hold_until: datetime | None, refund_after_hold: str) -> ReversalDecision:
    """Decide a reversal; a refund is judged by when it happened against the hold period."""
    if reason in ("chargeback", "fraud"):
        return ReversalDecision(True, reason, REVERSAL_MESSAGES[reason], flag_advocate=True)
    if reason != "refund":
        return ReversalDecision(True, "reversed", REVERSAL_MESSAGES["reversed"])
    inside_hold = hold_until is None or occurred_at <= hold_until
    if status == REWARDED:
        code = "refunded_in_hold" if inside_hold else "refunded_after_reward"
        return ReversalDecision(True, code, REVERSAL_MESSAGES[code], flag_advocate=True)
    if inside_hold:
        return ReversalDecision(True, "refunded_in_hold", REVERSAL_MESSAGES["refunded_in_hold"])
    if refund_after_hold == "keep":
        return ReversalDecision(False, "refund_after_hold",
                                "Refunded after the hold period; the program keeps the reward.")
    return ReversalDecision(True, "refunded_after_hold", REVERSAL_MESSAGES["refunded_after_hold"])
