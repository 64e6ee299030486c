"""The referral state machine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from referflow.domain.program import ProgramConfig

PENDING = "pending"
IN_REVIEW = "in_review"
REJECTED = "rejected"
HELD = "held"
APPROVED = "approved"
REWARDED = "rewarded"
REVERSED = "reversed"
STATUSES = (PENDING, IN_REVIEW, REJECTED, HELD, APPROVED, REWARDED, REVERSED)

# Which status may follow which. Anything else is a conflict.
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({HELD, APPROVED, IN_REVIEW, REJECTED, REVERSED}),
    IN_REVIEW: frozenset({PENDING, HELD, APPROVED, REJECTED, REVERSED}),
    HELD: frozenset({APPROVED, REVERSED}),
    APPROVED: frozenset({REWARDED, REVERSED}),
    REWARDED: frozenset({REVERSED}),
    REJECTED: frozenset(),
    REVERSED: frozenset(),
}
QUALIFIED_STATUSES = frozenset({HELD, APPROVED, REWARDED})


def can_move(current: str, target: str) -> bool:
    """Tell whether ``current`` may move to ``target``."""
    return target in TRANSITIONS[current]


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
    if amount < config.min_qualifying_amount:
        return QualifyDecision(PENDING, None, "below_minimum_amount",
                               f"amount {amount} is below the minimum "
                               f"{config.min_qualifying_amount}")
    if config.hold_days == 0:
        return QualifyDecision(APPROVED, None)
    return QualifyDecision(HELD, occurred_at + timedelta(days=config.hold_days))


REVERSAL_MESSAGES = {
    "chargeback": "The friend's payment was disputed (chargeback).",
    "refunded_in_hold": "The friend's payment was refunded before the reward was paid.",
    "refunded_after_reward": "The friend's payment was refunded after the reward was paid.",
    "fraud": "The referral was reversed as fraudulent.",
    "reversed": "The referral was reversed.",
}


def reversal_reason(reason: str, status: str) -> tuple[str, str]:
    """Return the reason code and message recorded when a referral in ``status`` is reversed."""
    if reason == "refund":
        code = "refunded_after_reward" if status == REWARDED else "refunded_in_hold"
    elif reason in ("chargeback", "fraud"):
        code = reason
    else:
        code = "reversed"
    return code, REVERSAL_MESSAGES[code]
