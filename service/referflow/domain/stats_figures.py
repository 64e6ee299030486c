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
        counts = self.counts
        for metric, count in other.counts.items():
            if metrics is None or metric in metrics:
                counts[metric] = counts.get(metric, 0) + count
        for metric, cell in other.money.items():
            if metrics is None or metric in metrics:
                mine = self.money.setdefault(metric, {})
                for currency, amount in cell.items():
                    mine[currency] = mine.get(currency, 0) + amount

    def count(self, metric: str) -> int:
        """Return a metric's count over every currency."""
        return self.counts.get(metric, 0)

    def amounts(self, metric: str) -> dict[str, int]:
        """Return a metric's amount per currency."""
        return self.money.get(metric, {})


FUNNEL_NAMES = tuple(str(m) for m in FUNNEL)
_KINDS: dict[str, tuple[str, str]] = {}  # metric -> (its prefix, the rest), remembered


def _kind(metric: str) -> tuple[str, str]:
    found = _KINDS.get(metric)
    if found is None:
        prefix, colon, rest = metric.partition(":")
        found = _KINDS[metric] = (prefix + colon, rest)
    return found


def figures(period: Tally, as_of_end: Tally, currency: str) -> dict[str, object]:
    """Return the figures of one period (``as_of_end``: the cumulative metrics at its end)."""
    counts = period.counts
    count = counts.get
    funnel = {name: count(name, 0) for name in FUNNEL_NAMES}
    histogram: dict[int, int] = {}
    signals: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for metric, n in sorted(counts.items()):
        if n:
            prefix, name = _kind(metric)
            if prefix == HISTOGRAM:
                histogram[int(name)] = n
            elif prefix == REASON:
                (signals if name in SIGNAL_CODES else reasons)[name] = n
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
            "advocates_new": count(Metric.ADVOCATES, 0),
            "advocates_total": as_of_end.count(Metric.ADVOCATES),
            "sharing_advocates": count(Metric.SHARING, 0),
            "known_customers_new": count(Metric.KNOWN_CUSTOMERS, 0),
            "known_customers_total": as_of_end.count(Metric.KNOWN_CUSTOMERS),
        },
        "revenue": {currency: 0, **period.amounts(Metric.QUALIFIED)},
        "rewards": _rewards(period, as_of_end, currency, funnel["approved"]),
        "claim_to_reward": {"count": sum(histogram.values()), "p50_seconds": p50,
                            "p90_seconds": p90},
        "signals": signals,
        "reasons": reasons,
    }


def _rewards(period: Tally, as_of_end: Tally, currency: str,
             approved: int) -> dict[str, dict[str, int | None]]:
    committed, loss = period.amounts(Metric.APPROVED), period.amounts(Metric.REVERSED)
    issued, redeemed, voided = (period.amounts(m) for m in
                                (Metric.ISSUED, Metric.REDEEMED, Metric.VOIDED))
    ever = [as_of_end.amounts(m) for m in (Metric.ISSUED, Metric.REDEEMED, Metric.VOIDED)]
    others = {*committed, *loss, *issued, *redeemed, *voided, *ever[0]} - {currency}
    out: dict[str, dict[str, int | None]] = {}
    for cur in (currency, *sorted(others)):
        cost = committed.get(cur, 0)
        out[cur] = {
            "committed": cost, "issued": issued.get(cur, 0), "redeemed": redeemed.get(cur, 0),
            "voided": voided.get(cur, 0),
            "outstanding": ever[0].get(cur, 0) - ever[1].get(cur, 0) - ever[2].get(cur, 0),
            "loss_after_reversal": loss.get(cur, 0), "cac": cac(cost, approved),
        }
    return out


Row = tuple[str, int, str, str, int, int]  # segment, period number, metric, currency, count, amount
BaseRow = tuple[str, str, str, int, int]  # segment, metric, currency, count, amount


def tallies(rows: Iterable[Row], periods: int) -> dict[str, list[Tally]]:
    """Gather rows (one per segment, period, metric and currency) into one Tally per period."""
    out: dict[str, list[Tally]] = {}
    for segment, number, metric, cur, count, amount in rows:
        per = out.get(segment)
        if per is None:
            per = out[segment] = [Tally() for _ in range(periods)]
        tally = per[number]
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
              currency: str) -> dict[str, object]:
    """Turn rollup rows into the answer: (rows of the range, cumulative rows before it) of the
    ``total`` split, and of the split asked for by ``group_by`` (None when not grouped)."""
    periods = buckets(query.first, query.last, query.interval)
    empty = [Tally() for _ in periods]
    answer: dict[str, object] = _series(periods, tallies(total[0], len(periods)).get("", empty),
                                        bases(total[1]).get("", Tally()), currency)
    if grouped is not None:
        parts, before = tallies(grouped[0], len(periods)), bases(grouped[1])
        answer["groups"] = [
            {"key": segment or None,
             **_series(periods, parts.get(segment, empty), before.get(segment, Tally()),
                       currency)}
            for segment in sorted(set(parts) | set(before))]
    return answer


def _series(periods: list[Bucket], tallies: list[Tally], base: Tally,
            currency: str) -> dict[str, object]:
    running, whole = Tally(), Tally()
    running.merge(base, CUMULATIVE_SET)
    series = []
    for bucket, tally in zip(periods, tallies, strict=True):
        running.merge(tally, CUMULATIVE_SET)
        whole.merge(tally)
        series.append({"key": bucket.key, "start": bucket.start.isoformat(),
                       "end": bucket.end.isoformat(), **figures(tally, running, currency)})
    return {"totals": figures(whole, running, currency), "buckets": series}
