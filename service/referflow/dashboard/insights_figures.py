"""What the analytics pages show, made from what the use cases return: KPI tiles and charts from
getProgramStats' answer, and a referral's history told in plain words. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from referflow.dashboard import charts
from referflow.dashboard.charts import Chart, Series
from referflow.domain.money import exponent, to_major
from referflow.storage.models import ReferralHistory

FUNNEL = (("clicks", "Clicks"), ("claims", "Claims"), ("qualified", "Qualified"),
          ("approved", "Approved"), ("rewarded", "Rewarded"))
NO_CHANNEL = "(no channel)"


@dataclass(frozen=True)
class Tile:
    """One KPI: a label, the figure, and a line that says what it counts."""

    key: str
    label: str
    value: str
    note: str = ""


def money(minor: int | None, currency: str) -> str:
    """Format minor units for people: ``EUR 1,234.50``."""
    if minor is None:
        return "–"
    return f"{currency} {to_major(minor, currency):,.{exponent(currency)}f}"


def duration(seconds: int | None) -> str:
    """Format a duration for people, to the coarsest unit that still says something."""
    if seconds is None:
        return "–"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            amount = seconds / size
            shown = f"{amount:.1f}".rstrip("0").rstrip(".") if amount < 10 else f"{amount:.0f}"
            return f"{shown} {unit}{'' if shown == '1' else 's'}"
    return f"{seconds} seconds"


def percent(ratio: float | None) -> str:
    """Format a ratio as a percentage (``–`` when there is nothing to divide by)."""
    return "–" if ratio is None else f"{100 * ratio:.1f}%"


def tiles(stats: Mapping[str, Any]) -> list[Tile]:
    """Return the overview's KPI tiles for the period's totals."""
    totals, currency = stats["totals"], stats["currency"]
    funnel, conversion, people = totals["funnel"], totals["conversion"], totals["participation"]
    rewards = totals["rewards"].get(currency) or {}
    delay, queue = totals["claim_to_reward"], stats["review_queue"]
    customers = people["known_customers_total"]
    return [
        Tile("clicks", "Clicks", f"{funnel['clicks']:,}", "on share links"),
        Tile("claims", "Claims", f"{funnel['claims']:,}",
             f"{percent(conversion['claims_per_click'])} of clicks"),
        Tile("qualified", "Qualified", f"{funnel['qualified']:,}",
             f"{percent(conversion['qualified_per_claim'])} of claims"),
        Tile("approved", "Approved", f"{funnel['approved']:,}",
             f"{percent(conversion['approved_per_qualified'])} of qualified"),
        Tile("rewarded", "Rewarded", f"{funnel['rewarded']:,}",
             f"{percent(conversion['rewarded_per_approved'])} of approved"),
        Tile("participation", "Participation",
             percent(people["advocates_total"] / customers) if customers else "–",
             f"{people['advocates_total']:,} advocates, {people['sharing_advocates']:,} began sharing"
             + (f"; {customers:,} customers" if customers else "; no customers imported")),
        Tile("revenue", "Revenue", money(totals["revenue"].get(currency, 0), currency),
             "qualifying purchases of referred friends"),
        Tile("reward_cost", "Reward cost", money(rewards.get("committed", 0), currency),
             "committed at approval, both sides"),
        Tile("cac", "Cost per acquisition", money(rewards.get("cac"), currency),
             "reward cost per approved referral"),
        Tile("time_to_reward", "Time to reward", duration(delay["p50_seconds"]),
             f"median; 90% within {duration(delay['p90_seconds'])}" if delay["count"]
             else "nothing rewarded in the period"),
        Tile("review_queue", "Review queue", f"{queue['size']:,}",
             f"oldest waiting {duration(queue['oldest_age_seconds'])}" if queue["size"]
             else "nothing waiting"),
        Tile("reversed", "Reversed or rejected", f"{funnel['reversed'] + funnel['rejected']:,}",
             f"{funnel['reversed']:,} reversed, {funnel['rejected']:,} rejected"),
    ]


def overview_charts(stats: Mapping[str, Any]) -> list[Chart]:
    """Return the overview's charts: funnel, referrals and money over time, channels, signals."""
    currency, buckets = stats["currency"], stats["buckets"]
    labels = [bucket_label(b["start"], stats["interval"]) for b in buckets]
    major = 10 ** exponent(currency)

    def amount(value: float) -> str:
        shown = money(round(value * major), currency)  # whole amounts without the ".00"
        return shown.rsplit(".", 1)[0] if value == int(value) and "." in shown else shown

    def cost(bucket: Mapping[str, Any]) -> float:
        return (bucket["rewards"].get(currency) or {}).get("committed", 0) / major

    funnel = stats["totals"]["funnel"]
    result = [
        charts.funnel("funnel", "Funnel", [(label, funnel[key]) for key, label in FUNNEL]),
        charts.over_time("referrals", "Referrals over time", labels, [
            Series(name, [b["funnel"][key] for b in buckets])
            for key, name in (("claims", "Claims"), ("qualified", "Qualified"),
                              ("approved", "Approved"))]),
        charts.over_time("money", f"Revenue and reward cost ({currency})", labels, [
            Series("Revenue", [b["revenue"].get(currency, 0) / major for b in buckets]),
            Series("Reward cost", [cost(b) for b in buckets])], formatter=amount, bars=True),
    ]
    # Groups with nothing in the funnel (advocates enrolled, no click yet) are left out.
    groups = [g for g in stats.get("groups") or []
              if any(g["totals"]["funnel"][key] for key in ("clicks", "claims", "qualified"))]
    result.append(charts.by_category(
        "channels", "By channel", [g["key"] or NO_CHANNEL for g in groups],
        [Series(name, [g["totals"]["funnel"][key] for g in groups])
         for key, name in (("clicks", "Clicks"), ("claims", "Claims"), ("qualified", "Qualified"))],
        heading="Channel"))
    codes = {**stats["totals"]["signals"], **stats["totals"]["reasons"]}
    ordered = sorted(codes.items(), key=lambda item: (-item[1], item[0]))
    result.append(charts.by_category("signals", "Signals and reasons", [c for c, _ in ordered],
                                     [Series("Referrals", [n for _, n in ordered])],
                                     heading="Reason code"))
    return result


def bucket_label(start: str, interval: str) -> str:
    """Name a period on a chart's axis: ``31 Jan``, ``w/c 27 Jan``, ``Jan 2026``."""
    day = date.fromisoformat(start)
    if interval == "month":
        return day.strftime("%b %Y")
    if interval == "week":
        return "w/c " + day.strftime("%d %b").lstrip("0")
    return day.strftime("%d %b").lstrip("0")


# -- a referral's history in plain words --------------------------------------------------------

ACTIONS = {
    "claimed": "claimed the referral",
    "qualified": "recorded the qualifying purchase",
    "qualified_in_review": "recorded the qualifying purchase; the referral waits for review",
    "qualify_ignored": "ignored a purchase event",
    "hold_released": "released the hold: the refund window ended",
    "review_approved": "approved the referral after review",
    "review_declined": "declined the referral after review",
    "signal_after_claim": "raised a signal after the claim",
    "cap_deferred": "deferred the approval: a monthly cap was reached",
    "cap_rejected": "rejected the referral: a monthly cap was reached",
    "rewarded": "completed the referral: every reward is paid",
    "reversed": "reversed the referral",
    "refund_kept": "kept the referral after a partial refund",
    "reversal_declined": "did not reverse the referral",
}


def actor_words(actor_type: str, actor_id: str | None, emails: Mapping[str, str]) -> str:
    """Say who acted: a dashboard user's email, an API key, a provider's event, the scheduler."""
    if actor_type == "dashboard_user":
        return emails.get(actor_id or "", "a dashboard user (since removed)")
    if actor_type == "provider" and actor_id and ":" in actor_id:
        provider, event_id = actor_id.split(":", 1)
        return f"{provider.title()} event {event_id}"
    words = {"api_key": "API key", "reviewer": "Reviewer", "admin": "The admin token",
             "system": "referflow's scheduler", "public": "A visitor"}
    name = words.get(actor_type, actor_type.replace("_", " ").capitalize())
    if actor_type == "system" or not actor_id or actor_type == "admin":
        return name
    return f"{name} {actor_id}"


def history_lines(history: list[ReferralHistory], emails: Mapping[str, str],
                  currency: str) -> list[dict[str, Any]]:
    """Tell each history entry as a sentence, with its rules, reasons and config version."""
    lines = []
    for h in history:
        what = ACTIONS.get(h.action, h.action.replace("_", " "))
        was, now = _words(h.from_status), _words(h.to_status)
        change = (f"{was} → {now}" if was and was != now else f"stays {now}" if was else f"now {now}")
        lines.append({"at": h.at, "who": actor_words(h.actor_type, h.actor_id, emails),
                      "what": what, "change": change, "reasons": list(h.reasons or []),
                      "details": details(h.data or {}, currency),
                      "rules": _rules(h.data or {}), "config_version": h.config_version})
    return lines


def _words(status: str | None) -> str:
    return (status or "").replace("_", " ")


def details(data: Mapping[str, Any], currency: str) -> list[str]:
    """Say the facts a history entry recorded: the event, the hold, the rewards, the tier."""
    out = []
    event = data.get("event")
    if isinstance(event, Mapping) and event.get("event_id"):
        amount = event.get("amount")
        out.append(f"Event {event['event_id']}" + (
            f": {money(amount, str(event.get('currency') or currency))}" if isinstance(amount, int) else ""))
    if data.get("code"):
        out.append(f"Code {data['code']}" + (f", click {data['click_id']}" if data.get("click_id") else ""))
    if data.get("hold_until"):
        out.append(f"Held until {data['hold_until']}")
    rewards = data.get("rewards")
    if isinstance(rewards, Mapping):
        out.append("Rewards: " + ", ".join(f"{side} {money(value, currency)}"
                                           for side, value in rewards.items() if isinstance(value, int)))
    if data.get("tier"):
        out.append(f"Advocate tier {data['tier']}")
    if data.get("rule"):
        out.append(f"Rule: {data['rule']}")
    if data.get("note"):
        out.append(f"Note: {data['note']}")
    return out


def _rules(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the claim rules' outcomes a history entry recorded (each rule, and what it found)."""
    rules = data.get("rules")
    if isinstance(rules, Mapping):
        return [{"rule": name, "outcome": outcome} for name, outcome in rules.items()]
    if isinstance(rules, list):
        return [dict(r) if isinstance(r, Mapping) else {"rule": str(r), "outcome": ""} for r in rules]
    return []
