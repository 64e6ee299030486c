"""Program statistics: what each figure counts, and what each fact adds to them. Pure.

A *fact* (a click, a claim, a status change, a gift-card movement...) becomes one or more
``Delta``s: a metric, a count and an amount in minor units of a currency. The rollups add the
deltas up per calendar day in the program's timezone, once per *split* (all facts; by channel;
by tier), so a read never scans referrals (stats_figures.py turns rollup rows into the answer,
stats_periods.py has the calendar and the query). Nothing here reads or writes.

Definitions (docs/api.md, "Statistics", says the same for callers):

- funnel counts are events in the period: ``clicks`` recorded, ``claims`` made (referrals
  created), ``qualified`` referrals whose qualifying purchase was recorded in the period
  (when referflow learnt of it: a late webhook counts on its day, past periods stay as read),
  ``approved``/``rewarded``/``reversed``/``rejected``/``in_review`` moves into that status;
- ``sharing_advocates``: advocates whose first click fell in the period;
- revenue: the qualifying purchase amounts of those qualified referrals;
- reward cost: ``committed`` at approval (both sides, whatever the issuer), and referflow's own
  gift cards ``issued``/``redeemed``/``voided``, ``expired`` (the balance left on cards whose
  expiry day fell in the period and that were not voided), ``outstanding`` (issued - redeemed -
  voided - expired, as of the end of the period: an expired card is no liability, as
  listGiftCards shows it ``expired``), ``loss_after_reversal`` (the redeemed value of the cards of
  referrals reversed in the period, and the value of store codes already used when a reversal
  took them back); ``cac`` = committed / approved;
- claim to reward: from a histogram with log-spaced buckets (each a factor 2^(1/4) wide), so a
  percentile is exact to within 9%.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from referflow.domain.program import DEFAULT_POLICY
from referflow.domain.referral import APPROVED, IN_REVIEW, REJECTED, REVERSED, REWARDED


class Split(StrEnum):
    """How a rollup row is split: every fact is added once to each split."""

    TOTAL = ""
    CHANNEL = "channel"
    TIER = "tier"


SPLITS = tuple(Split)


class Metric(StrEnum):
    """A rolled-up figure; ``amount`` is in minor units where the figure has one."""

    CLICKS = "clicks"
    SHARING = "sharing_advocates"
    CLAIMS = "claims"
    QUALIFIED = "qualified"  # amount: the qualifying purchase (revenue attributed)
    APPROVED = "approved"  # amount: the rewards committed at approval
    REWARDED = "rewarded"
    REVERSED = "reversed"  # amount: the loss after reversal (redeemed value of voided cards)
    REJECTED = "rejected"
    IN_REVIEW = "in_review"
    ADVOCATES = "advocates"
    KNOWN_CUSTOMERS = "known_customers"
    ISSUED = "card_issued"
    REDEEMED = "card_redeemed"
    VOIDED = "card_voided"
    # on a card's expiry day: every ledger movement moves the balance that will expire then
    EXPIRING = "card_expiring"


FUNNEL = (Metric.CLICKS, Metric.CLAIMS, Metric.QUALIFIED, Metric.APPROVED, Metric.REWARDED,
          Metric.REVERSED, Metric.REJECTED, Metric.IN_REVIEW)
# Figures given "as of" a date: summed from the first day, not only over the period.
CUMULATIVE = (Metric.ADVOCATES, Metric.KNOWN_CUSTOMERS, Metric.ISSUED, Metric.REDEEMED,
              Metric.VOIDED, Metric.EXPIRING)
CUMULATIVE_SET = frozenset(str(m) for m in CUMULATIVE)
# A move into one of these statuses is counted (a move that keeps the status is not).
STATUS_METRICS: dict[str, Metric] = {IN_REVIEW: Metric.IN_REVIEW, REJECTED: Metric.REJECTED,
                  APPROVED: Metric.APPROVED, REWARDED: Metric.REWARDED,
                  REVERSED: Metric.REVERSED}
CARD_METRICS = {"issue": Metric.ISSUED, "redeem": Metric.REDEEMED, "void": Metric.VOIDED}
HISTOGRAM = "claim_to_reward:"  # + bucket number
REASON = "reason:"  # + reason code
# The claim signals (domain/fraud.py); any other reason code is an outcome's reason.
SIGNAL_CODES = frozenset(DEFAULT_POLICY)
CODE_LENGTH = 56  # the metric column holds 64 characters


@dataclass(frozen=True)
class Delta:
    """What one fact adds to a rollup."""

    metric: str
    count: int = 1
    amount: int = 0
    currency: str = ""


@dataclass(frozen=True)
class Move:
    """A referral history entry, as the statistics see it."""

    from_status: str | None
    to_status: str | None
    reason_codes: tuple[str, ...] = ()
    seconds_since_claim: float = 0.0
    committed: int = 0  # both sides' rewards, set at approval
    currency: str = ""  # the program's
    loss: int = 0  # recorded on a reversal
    loss_currency: str = ""


def move_deltas(move: Move) -> list[Delta]:
    """Return what one history entry adds: a status reached, a reward's delay, reason codes."""
    deltas = [Delta(REASON + code[:CODE_LENGTH]) for code in move.reason_codes]
    metric = STATUS_METRICS.get(move.to_status or "")
    if move.to_status == move.from_status == REVERSED and move.loss:
        # a reward taken back after the reversal (a store code already used): more of the loss
        return [*deltas, Delta(Metric.REVERSED, count=0, amount=move.loss, currency=move.loss_currency)]
    if metric is None or move.to_status == move.from_status:
        return deltas
    if metric == Metric.APPROVED:
        deltas.append(Delta(metric, amount=move.committed, currency=move.currency))
    elif metric == Metric.REVERSED:
        deltas.append(Delta(metric, amount=move.loss, currency=move.loss_currency))
    else:
        deltas.append(Delta(metric))
    if metric == Metric.REWARDED:
        deltas.append(Delta(HISTOGRAM + str(duration_bucket(move.seconds_since_claim))))
    return deltas


def claim_deltas() -> list[Delta]:
    """Return what a new referral adds (its first status comes with its first history entry)."""
    return [Delta(Metric.CLAIMS)]


def qualified_deltas(amount: int | None, currency: str | None) -> list[Delta]:
    """Return what a qualification adds: one qualified referral and the revenue it brought."""
    return [Delta(Metric.QUALIFIED, amount=amount or 0, currency=currency or "")]


def card_deltas(kind: str, amount: int, currency: str) -> list[Delta]:
    """Return what a gift-card ledger entry adds (amounts counted positive)."""
    metric = CARD_METRICS.get(kind)
    return [] if metric is None else [Delta(metric, amount=abs(amount), currency=currency)]


def expiry_deltas(kind: str, amount: int, currency: str) -> list[Delta]:
    """Return what a gift-card ledger entry adds on the card's expiry day: its signed amount.

    Added up, a card's entries there are the balance it keeps until it expires: an issue adds
    it, a redemption or a void takes from it (a void after the expiry too: the card then shows
    voided, not expired). Only the days up to a period's end are read, so a card counts as
    expired from the end of its expiry day.
    """
    if kind not in CARD_METRICS or not amount:
        return []
    return [Delta(Metric.EXPIRING, count=0, amount=amount, currency=currency)]


def recorded_tier(to_status: str | None, from_status: str | None,
                  data: Mapping[str, object]) -> tuple[bool, str | None]:
    """Return (True, tier) when a history entry recorded the tier it counts under.

    An approval records the tier its reward was computed with; the tier may rise in the same
    transaction, because of this approval. Every other entry counts under the tier then.
    """
    if to_status == APPROVED and from_status != APPROVED and "tier" in data:
        tier = data["tier"]
        return True, tier if isinstance(tier, str) else None
    return False, None


def is_qualifying(data: Mapping[str, object], qualifying_event_id: str | None) -> bool:
    """Tell whether a history entry is the one that recorded the referral's qualifying event."""
    event = data.get("event")
    return (qualifying_event_id is not None and isinstance(event, dict)
            and event.get("event_id") == qualifying_event_id)


class Tiers:
    """Advocates' tiers through time, from their tier changes (rebuilds)."""

    def __init__(self, current: Mapping[str, str | None],
                 changes: Mapping[str, list[tuple[datetime, str | None, str | None]]]):
        self.current = current
        self.changes = {a: sorted(c, key=lambda change: change[0]) for a, c in changes.items()}
        self._times = {a: [c[0] for c in cs] for a, cs in self.changes.items()}

    def at(self, advocate_id: str | None, when: datetime) -> str | None:
        """Return an advocate's tier at ``when``."""
        if advocate_id is None:
            return None
        changes = self.changes.get(advocate_id)
        if not changes:
            return self.current.get(advocate_id)
        done = bisect_right(self._times[advocate_id], when)
        return changes[done - 1][2] if done else changes[0][1]


# -- the claim-to-reward histogram -------------------------------------------------------------

HIST_FIRST = 60.0  # bucket 0 holds everything under a minute
HIST_STEPS = 4  # buckets per doubling: each is 2^(1/4) (19%) wide, its middle within 9%


def duration_bucket(seconds: float) -> int:
    """Return the histogram bucket of a duration."""
    if seconds < HIST_FIRST:
        return 0
    return 1 + int(math.floor(HIST_STEPS * math.log2(seconds / HIST_FIRST) + 1e-9))


def bucket_value(bucket: int) -> int:
    """Return the duration a bucket stands for: its geometric middle (bucket 0: 30 s)."""
    if bucket <= 0:
        return int(HIST_FIRST / 2)
    return round(HIST_FIRST * 2 ** ((bucket - 0.5) / HIST_STEPS))


def percentile(histogram: Mapping[int, int], q: float) -> int | None:
    """Return the q-quantile (0 < q <= 1, nearest rank) of a histogram, or None when empty."""
    return percentiles(histogram, (q,))[0]


def percentiles(histogram: Mapping[int, int], qs: tuple[float, ...]) -> list[int | None]:
    """Return the q-quantiles (nearest rank, ``qs`` ascending) of a histogram; None when empty."""
    total = sum(histogram.values())
    if total <= 0:
        return [None for _ in qs]
    ranks = [max(1, math.ceil(q * total)) for q in qs]
    out: list[int | None] = []
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        while len(out) < len(ranks) and seen >= ranks[len(out)]:
            out.append(bucket_value(bucket))
    return out + [bucket_value(max(histogram))] * (len(ranks) - len(out))


def ratio(numerator: int, denominator: int) -> float | None:
    """Return a conversion rate rounded to 4 places, or None when nothing could convert."""
    return None if denominator == 0 else round(numerator / denominator, 4)


def cac(cost: int, approved: int) -> int | None:
    """Return the reward cost per approved friend in minor units (half up), or None."""
    return None if approved <= 0 else (cost + approved // 2) // approved


def local_day(at: datetime, timezone: str) -> date:
    """Return the calendar day of ``at`` in ``timezone``: the day a fact counts on."""
    return at.astimezone(ZoneInfo(timezone)).date()
