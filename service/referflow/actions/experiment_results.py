"""getExperimentResults: per variant the funnel, conversion with its interval, revenue and cost,
the sample size the stop rule asks for, and its verdict; as JSON or CSV.

Counted from the source rows every time (assignments, asks, referrals since the experiment
began), with the definitions of ``domain/experiments.Tally``; the stop rule is
``domain/experiments.judge``.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from referflow.actions.common import ProgramContext
from referflow.actions.experiments import design_of, experiment_dict, get_experiment
from referflow.domain import experiments as rules
from referflow.domain.timeutil import to_rfc3339, utcnow
from referflow.storage.models import (
    AskDecision,
    Experiment,
    ExperimentAssignment,
    MomentDecision,
    Referral,
)


def results(session: Session, ctx: ProgramContext, experiment_id: str) -> dict[str, Any]:
    """Return an experiment's results (the shape of experiment-results.json)."""
    row = get_experiment(session, ctx, experiment_id)
    design = design_of(row)
    tallies = {v.name: rules.Tally() for v in design.variants}
    _count_assignments(session, row, tallies)
    _count_asks(session, row, tallies)
    _count_referrals(session, row, tallies)
    arms = [tallies[v.name].arm(v.name) for v in design.variants]
    verdict = rules.judge(arms, design.minimum_detectable_effect, design.baseline_rate)
    currency = ctx.config.currency
    return {
        "experiment": experiment_dict(row),
        "variants": [_variant(v, tallies[v.name], arm, verdict, currency)
                     for v, arm in zip(design.variants, arms, strict=True)],
        "control": design.variants[0].name,
        "baseline_rate": _round(verdict.baseline),
        "baseline_source": "given" if design.baseline_rate is not None
        else ("control" if verdict.baseline is not None else None),
        "minimum_detectable_effect": design.minimum_detectable_effect,
        "sample_size_per_variant": verdict.sample_size,
        "winner": verdict.winner, "reason": str(verdict.reason), "message": verdict.message,
        "computed_at": to_rfc3339(utcnow()),
    }


def _variant(variant: rules.Variant, tally: rules.Tally, arm: rules.Arm, verdict: rules.Verdict,
             currency: str) -> dict[str, Any]:
    interval = arm.interval
    low, high = (interval.low, interval.high) if interval else (None, None)
    return {
        "name": variant.name, "weight": variant.weight,
        "funnel": {"assigned": tally.assigned, "asks": tally.asks, "links": tally.links,
                   "claims": tally.claims, "approved": tally.approved, "rewarded": tally.rewarded},
        "conversion": {"converted": arm.converted, "exposed": arm.exposed,
                       "rate": _round(arm.rate), "low": _round(low), "high": _round(high)},
        "revenue": dict(sorted(tally.revenue.items())),
        "reward_cost": {currency: tally.reward_cost},
        "reached_sample": variant.name in verdict.reached,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _count_assignments(session: Session, row: Experiment, tallies: dict[str, rules.Tally]) -> None:
    has_link = ExperimentAssignment.advocate_id.is_not(None)
    for name, linked, count in session.execute(
            select(ExperimentAssignment.variant, has_link, func.count())
            .where(ExperimentAssignment.experiment_id == row.id)
            .group_by(ExperimentAssignment.variant, has_link)):
        if name in tallies:
            tallies[name].assigned += count
            tallies[name].links += count if linked else 0


def _count_asks(session: Session, row: Experiment, tallies: dict[str, rules.Tally]) -> None:
    for (recorded,) in session.execute(select(MomentDecision.variants).where(
            MomentDecision.program_id == row.program_id, MomentDecision.created_at >= row.created_at,
            MomentDecision.decision == AskDecision.ASK, MomentDecision.variants.is_not(None))):
        name = rules.recorded_variant(recorded, row.id)
        if name in tallies:
            tallies[name].asks += 1


def _count_referrals(session: Session, row: Experiment, tallies: dict[str, rules.Tally]) -> None:
    query = select(Referral.variants, Referral.status, Referral.advocate_id,
                   Referral.qualified_amount, Referral.qualified_currency,
                   Referral.advocate_reward, Referral.friend_reward).where(
        Referral.program_id == row.program_id, Referral.created_at >= row.created_at,
        Referral.variants.is_not(None))
    for recorded, status, advocate_id, amount, currency, advocate, friend in \
            session.execute(query.execution_options(yield_per=2000)):
        name = rules.recorded_variant(recorded, row.id)
        if name not in tallies:
            continue
        qualified = (amount, currency) if amount is not None and currency else None
        tallies[name].add_referral(status, advocate_id, qualified, (advocate or 0) + (friend or 0))


# -- CSV ------------------------------------------------------------------------------------------

FUNNEL = ("assigned", "asks", "links", "claims", "approved", "rewarded")


def results_csv(result: dict[str, Any]) -> str:
    """Render getExperimentResults as CSV: a row per variant, the verdict on every row."""
    currencies = sorted({c for v in result["variants"] for c in v["revenue"]})
    cost_currencies = sorted({c for v in result["variants"] for c in v["reward_cost"]})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["experiment_id", "variant", "weight", *FUNNEL, "converted",
                     "conversion_rate", "conversion_low", "conversion_high", "reached_sample",
                     *(f"revenue_{c}" for c in currencies),
                     *(f"reward_cost_{c}" for c in cost_currencies),
                     "sample_size_per_variant", "winner", "reason"])
    for v in result["variants"]:
        conversion = v["conversion"]
        writer.writerow([
            result["experiment"]["id"], v["name"], v["weight"], *(v["funnel"][k] for k in FUNNEL),
            conversion["converted"], *(_cell(conversion[k]) for k in ("rate", "low", "high")),
            "yes" if v["reached_sample"] else "no",
            *(v["revenue"].get(c, 0) for c in currencies),
            *(v["reward_cost"].get(c, 0) for c in cost_currencies),
            _cell(result["sample_size_per_variant"]),
            "yes" if result["winner"] == v["name"] else "no", result["reason"]])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    return "" if value is None else str(value)
