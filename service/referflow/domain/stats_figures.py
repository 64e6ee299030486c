"""Statistics' answer: rollup rows of a range become the figures of each period. Pure.

What each figure means is in domain/stats.py (and docs/api.md, "Statistics").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from referflow.domain.stats import (
    CUMULATIVE_SET,
    FUNNEL,
    HISTOGRAM,
    REASON,
    SIGNAL_CODES,
    Metric,
    cac,
    percentiles,
    ratio,
)
from referflow.domain.stats_periods import Bucket, StatsQuery, buckets


@dataclass
class Tally:
    """Counts per metric, and amounts per metric and currency, added up from rollup rows."""

    counts: dict[str, int] = field(default_factory=dict)
    money: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, metric: str, currency: str, count: int, amount: int) -> None:
        """Add one row."""
        self.counts[metric] = self.counts.get(metric, 0) + count
        if currency:
            cell = self.money.setdefault(metric, {})
            cell[currency] = cell.get(currency, 0) + amount

    def merge(self, other: Tally, metrics: Iterable[str] | None = None) -> None:
        """Add every row of ``other`` (only those of ``metrics`` when given)."""
        counts, money = self.counts, self.money
        if metrics is None:
            for metric, count in other.counts.items():
                counts[metric] = counts.get(metric, 0) + count
            cells = list(other.money.items())
        else:  # a few metrics (the cumulative ones): look them up rather than scan
            theirs = other.counts
            for metric in metrics:
                if metric in theirs:
                    counts[metric] = counts.get(metric, 0) + theirs[metric]
            cells = [(m, other.money[m]) for m in metrics if m in other.money]
        for metric, cell in cells:
            mine = money.get(metric)
            if mine is None:
                money[metric] = dict(cell)
            else:
                for currency, amount in cell.items():
                    mine[currency] = mine.get(currency, 0) + amount

    def count(self, metric: str) -> int:
        """Return a metric's count over every currency."""
        return self.counts.get(metric, 0)

    def amounts(self, metric: str) -> dict[str, int]:
        """Return a metric's amount per currency."""
        return self.money.get(metric, {})


FUNNEL_NAMES = tuple(str(m) for m in FUNNEL)
# Plain strings for the figures read per period: a StrEnum member hashes in Python, a str in C.
(_ADVOCATES, _SHARING, _KNOWN, _QUALIFIED, _APPROVED, _REVERSED, _ISSUED, _REDEEMED, _VOIDED,
 _EXPIRING) = (str(m) for m in (
    Metric.ADVOCATES, Metric.SHARING, Metric.KNOWN_CUSTOMERS, Metric.QUALIFIED, Metric.APPROVED,
    Metric.REVERSED, Metric.ISSUED, Metric.REDEEMED, Metric.VOIDED, Metric.EXPIRING))
HISTOGRAM_KIND, SIGNAL_KIND, REASON_KIND = 0, 1, 2
_KINDS: dict[str, tuple[int, str] | None] = {}  # metric -> (kind, name) or None, remembered


def _kind(metric: str) -> tuple[int, str] | None:
    """Return what a metric is beside the plain figures: a histogram bucket, a signal or reason
    code (with its number or code), or None."""
    if metric in _KINDS:
        return _KINDS[metric]
    prefix, colon, name = metric.partition(":")
    found: tuple[int, str] | None = None
    if prefix + colon == HISTOGRAM:
        found = (HISTOGRAM_KIND, name)
    elif prefix + colon == REASON:
        found = (SIGNAL_KIND if name in SIGNAL_CODES else REASON_KIND, name)
    _KINDS[metric] = found
    return found


def figures(period: Tally, as_of_end: Tally, currency: str) -> dict[str, object]:
    """Return the figures of one period (``as_of_end``: the cumulative metrics at its end)."""
    counts = period.counts
    count = counts.get
    funnel = {name: count(name, 0) for name in FUNNEL_NAMES}
    histogram: dict[int, int] = {}
    signals: dict[str, int] = {}
    reasons: dict[str, int] = {}
    kinds = _KINDS
    for metric, n in counts.items():
        found = kinds[metric] if metric in kinds else _kind(metric)
        if found is None or not n:
            continue
        kind, name = found
        if kind == HISTOGRAM_KIND:
            histogram[int(name)] = n
        else:
            (signals if kind == SIGNAL_KIND else reasons)[name] = n
    p50, p90 = percentiles(histogram, (0.5, 0.9))
    return {
        "funnel": funnel,
        "conversion": {
            "claims_per_click": ratio(funnel["claims"], funnel["clicks"]),
            "qualified_per_claim": ratio(funnel["qualified"], funnel["claims"]),
            "approved_per_qualified": ratio(funnel["approved"], funnel["qualified"]),
            "rewarded_per_approved": ratio(funnel["rewarded"], funnel["approved"]),
        },
        "participation": {
            "advocates_new": count(_ADVOCATES, 0),
            "advocates_total": as_of_end.counts.get(_ADVOCATES, 0),
            "sharing_advocates": count(_SHARING, 0),
            "known_customers_new": count(_KNOWN, 0),
            "known_customers_total": as_of_end.counts.get(_KNOWN, 0),
        },
        "revenue": {currency: 0, **period.money.get(_QUALIFIED, {})},
        "rewards": _rewards(period, as_of_end, currency, funnel["approved"]),
        "claim_to_reward": {"count": sum(histogram.values()), "p50_seconds": p50,
                            "p90_seconds": p90},
        "signals": dict(sorted(signals.items())) if len(signals) > 1 else signals,
        "reasons": dict(sorted(reasons.items())) if len(reasons) > 1 else reasons,
    }


def _rewards(period: Tally, as_of_end: Tally, currency: str,
             approved: int) -> dict[str, dict[str, int | None]]:
    money, nothing = period.money, dict[str, int]()
    committed, loss, issued, redeemed, voided, expired = (money.get(m, nothing) for m in (
        _APPROVED, _REVERSED, _ISSUED, _REDEEMED, _VOIDED, _EXPIRING))
    ever = [as_of_end.money.get(m, nothing) for m in (_ISSUED, _REDEEMED, _VOIDED, _EXPIRING)]
    others = {*committed, *loss, *issued, *redeemed, *voided, *ever[0]} - {currency}
    out: dict[str, dict[str, int | None]] = {}
    for cur in (currency, *sorted(others)):
        cost = committed.get(cur, 0)
        out[cur] = {
            "committed": cost, "issued": issued.get(cur, 0), "redeemed": redeemed.get(cur, 0),
            "voided": voided.get(cur, 0), "expired": expired.get(cur, 0),
            "outstanding": ever[0].get(cur, 0) - ever[1].get(cur, 0) - ever[2].get(cur, 0)
            - ever[3].get(cur, 0),
            "loss_after_reversal": loss.get(cur, 0), "cac": cac(cost, approved),
        }
    return out


Row = tuple[str, int, str, str, int, int]  # segment, period number, metric, currency, count, amount
BaseRow = tuple[str, str, str, int, int]  # segment, metric, currency, count, amount


def tallies(rows: Iterable[Row], periods: int) -> dict[str, list[Tally | None]]:
    """Gather rows (one per segment, period, metric and currency) into one Tally per period
    (None: the period has no rows)."""
    out: dict[str, list[Tally | None]] = {}
    for segment, number, metric, cur, count, amount in rows:
        per = out.get(segment)
        if per is None:
            per = out[segment] = [None] * periods
        tally = per[number]
        if tally is None:
            tally = per[number] = Tally()
        counts = tally.counts
        counts[metric] = counts.get(metric, 0) + count
        if cur:
            cell = tally.money.get(metric)
            if cell is None:
                tally.money[metric] = {cur: amount}
            else:
                cell[cur] = cell.get(cur, 0) + amount
    return out


def bases(rows: Iterable[BaseRow]) -> dict[str, Tally]:
    """Gather the cumulative rows before a range, per segment."""
    out: dict[str, Tally] = {}
    for segment, metric, cur, count, amount in rows:
        out.setdefault(segment, Tally()).add(metric, cur, count, amount)
    return out


def summarise(query: StatsQuery, total: tuple[Iterable[Row], Iterable[BaseRow]],
              grouped: tuple[Iterable[Row], Iterable[BaseRow]] | None,
              currency: str, sparse: bool = True) -> dict[str, object]:
    """Turn rollup rows into the answer: (rows of the range, cumulative rows before it) of the
    ``total`` split, and of the split asked for by ``group_by`` (None when not grouped).

    With ``sparse``, a group's ``buckets`` hold only the periods in which it has facts: a year
    by day of a channel used once a month is 12 periods, not 365 (the CSV asks for them all).
    """
    periods = buckets(query.first, query.last, query.interval)
    answer: dict[str, object] = _series(
        periods, tallies(total[0], len(periods)).get("", []), bases(total[1]).get("", Tally()),
        currency)
    if grouped is not None:
        parts, before = tallies(grouped[0], len(periods)), bases(grouped[1])
        answer["groups"] = [
            {"key": segment or None,
             **_series(periods, parts.get(segment, []), before.get(segment, Tally()), currency,
                       sparse)}
            for segment in sorted(set(parts) | set(before))]
    return answer


def _series(periods: list[Bucket], tallies: list[Tally | None], base: Tally, currency: str,
            sparse: bool = False) -> dict[str, object]:
    """The figures of each period and of the whole range; ``sparse``: only of the periods that
    have facts (``tallies`` may be empty: none at all)."""
    running, whole, nothing = Tally(), Tally(), Tally()
    running.merge(base, CUMULATIVE_SET)
    series = []
    for bucket, tally in zip(periods, tallies or [None] * len(periods), strict=True):
        if tally is None or not tally.counts:
            if sparse:
                continue
            tally = nothing  # never added to: the figures of an empty period
        running.merge(tally, CUMULATIVE_SET)
        whole.merge(tally)
        series.append({"key": bucket.key, "start": bucket.start.isoformat(),
                       "end": bucket.end.isoformat(), **figures(tally, running, currency)})
    return {"totals": figures(whole, running, currency), "buckets": series}
