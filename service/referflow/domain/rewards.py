"""What a reversal does to a reward the referral earned, by its kind and state (pure).

The rule gift cards follow (actions/giftcards.py): what is unused is taken back, what was used
is the loss. For rewards the store holds:

- a discount code (``percent``, ``amount``) never sent to the store, or refused by it, is void
  at once; one the store has (or may have: an attempt that never heard back) is taken back in the
  background: switched off if unused, else recorded as used (the loss);
- a ``free_period`` already on the subscription is used: the loss is recorded and the customer's
  subscription is left as it is; one not applied yet is void (at once, or after the background
  job has checked that an earlier attempt did not apply it);
- a perk (``non_cash``) was granted by announcing it and stays; gift cards are the ledger's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from referflow.domain.program import DISCOUNT_TYPES

CODES = ("percent", "amount")


class OnReversal(StrEnum):
    """What to do with one reward row when its referral is reversed."""

    KEEP = "keep"  # not ours to take back (perks, gift cards), or nothing left
    VOID_NOW = "void_now"  # nothing reached the store: void without asking it
    TAKE_BACK = "take_back"  # the store has it (or may have): ask it in the background
    LOST = "lost"  # used already (a free period on the subscription): record the loss


class Outcome(StrEnum):
    """How taking a reward back ended (``reward.voided``'s ``outcome``)."""

    NOT_ISSUED = "not_issued"  # the store never had it
    DISABLED = "disabled"  # the store switched the unused code off
    USED = "used"  # already redeemed or applied: the loss


def on_reversal(kind: str, status: str, attempts: int) -> OnReversal:
    """Decide what a reversal does to a reward row (``status``: pending, issuing, issued, failed).

    A row being issued right now (``issuing``) is left to its issuer, which sees the reversal
    when it records the result and asks for the take-back itself.
    """
    if kind not in DISCOUNT_TYPES or status in ("voided", "issuing"):
        return OnReversal.KEEP
    if status == "failed" or (status == "pending" and attempts == 0):
        return OnReversal.VOID_NOW
    if kind == "free_period" and status == "issued":
        return OnReversal.LOST
    return OnReversal.TAKE_BACK


@dataclass(frozen=True)
class Voided:
    """A reward taken back: how, and the value lost (minor units; 0 when the store cannot say)."""

    outcome: Outcome
    loss: int
    loss_known: bool

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form (history and ``reward.voided``)."""
        return {"outcome": self.outcome.value, "loss_amount": self.loss,
                "loss_known": self.loss_known}


def voided(kind: str, amount: int, outcome: Outcome) -> Voided:
    """Return what taking back a reward cost: a used ``amount`` code its amount off, like a
    redeemed gift card its redeemed value; a used percent code or free period an amount the
    store does not report (recorded as unknown, 0)."""
    if outcome != Outcome.USED:
        return Voided(outcome, 0, True)
    if kind == "amount":
        return Voided(outcome, amount, True)
    return Voided(outcome, 0, False)
