"""The analytics pages: the overview (KPIs and charts), referrals, advocates and rewards.

Read-only pages for every role (``viewer`` and up). Their choices come from GET forms, so they
work without JavaScript and their addresses can be shared; a value that cannot be used is a 400
page that names it (the lists' and the statistics' own checks), never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, g, render_template, request

from referflow.actions import insights, links, lists, referrals, stats, users
from referflow.actions.common import ProgramContext
from referflow.api.operations import db_session
from referflow.api.payloads import share_url
from referflow.dashboard import charts
from referflow.dashboard.auth import require
from referflow.dashboard.blueprint import bp
from referflow.dashboard.insights_figures import history_lines, money, overview_charts, tiles
from referflow.domain.fraud import REJECT, REVIEW
from referflow.domain.program import DEFAULT_POLICY
from referflow.domain.referral import STATUSES
from referflow.domain.stats import local_day
from referflow.domain.timeutil import utcnow
from referflow.errors import BadRequest

PAGE_SIZE = 50
REWARDS_PAGE_SIZE = 25  # two lists share the rewards page
RECENT_REFERRALS = 20
PERIOD_ARGS = ("from", "to", "interval")
# (label, days, interval) of the overview's quick ranges
PRESETS = (("Last 7 days", 7, "day"), ("Last 30 days", 30, "day"),
           ("Last 90 days", 90, "week"), ("Last 12 months", 365, "month"))
SORTS = {"approved": "Most approved referrals", "clicks": "Most clicks", "recent": "Newest"}


@bp.get("/insights/charts.css", endpoint="insights_charts_css")
def charts_css() -> Response:
    """Serve the charts' styles (pygal's, scoped): a file, as the CSP allows no inline style."""
    return Response(charts.stylesheet(), mimetype="text/css")


@bp.get("/p/<program_id>/overview", endpoint="overview")
@require("viewer")
def overview(program_id: str) -> Any:
    """Show the period's KPIs and charts; the period and interval come from a GET form."""
    ctx = g.program_ctx
    data = _stats(ctx, request.args, group_by="channel")
    return render_template("dashboard/insights_overview.html", stats=data, tiles=tiles(data),
                           charts=overview_charts(data), presets=_presets(ctx))


@bp.get("/p/<program_id>/referrals", endpoint="referrals")
@require("viewer")
def referrals_page(program_id: str) -> Any:
    """List the referrals that match the filters, newest first, a page at a time."""
    ctx, session = g.program_ctx, db_session()
    filters = referral_filters(ctx, request.args)
    after = _text(request.args, "after")
    page = lists.list_referrals(session, ctx, filters, limit=PAGE_SIZE, after=after)
    return render_template(
        "dashboard/insights_referrals.html", page=page, filters=filters, after=after,
        total=lists.count_referrals(session, ctx, filters), statuses=STATUSES,
        advocates=insights.advocate_labels(session, ctx, {r.advocate_id for r in page.items}),
        reason_codes=_reason_codes(ctx), args=_kept(request.args, "after"))


@bp.get("/p/<program_id>/referrals/<referral_id>", endpoint="referral")
@require("viewer")
def referral_page(program_id: str, referral_id: str) -> Any:
    """Show one referral: its people, its signals, its rewards and its history in plain words."""
    ctx, session = g.program_ctx, db_session()
    referral, history = referrals.read_referral(session, ctx, referral_id)
    advocate = links.get_advocate(session, ctx, referral.advocate_id)
    rewards, cards = insights.rewards_of_referral(session, ctx, referral.id)
    emails = users.emails_of(session, {h.actor_id for h in history
                                       if h.actor_type == "dashboard_user" and h.actor_id})
    return render_template("dashboard/insights_referral.html", referral=referral,
                           advocate=advocate, rewards=rewards, cards=cards,
                           history=history_lines(history, emails, ctx.config.currency),
                           verdicts=_verdicts(ctx, referral.reasons))


@bp.get("/p/<program_id>/advocates", endpoint="advocates")
@require("viewer")
def advocates_page(program_id: str) -> Any:
    """Show the leaderboard: most approved referrals, most clicks, or newest first."""
    ctx, args = g.program_ctx, request.args
    sort = _text(args, "sort") or "approved"
    after = _text(args, "after")
    page = lists.list_advocates(db_session(), ctx, q=_text(args, "q"), tier=_text(args, "tier"),
                                sort=sort, limit=PAGE_SIZE, after=after)
    return render_template("dashboard/insights_advocates.html", page=page, sort=sort, sorts=SORTS,
                           after=after, q=_text(args, "q") or "", tier=_text(args, "tier") or "",
                           tiers=[t.name for t in ctx.config.tiers], args=_kept(args, "after"),
                           rank_from=1 if after is None else None)


@bp.get("/p/<program_id>/advocates/<advocate_id>", endpoint="advocate")
@require("viewer")
def advocate_page(program_id: str, advocate_id: str) -> Any:
    """Show one advocate: link and codes, clicks by channel, referrals, rewards and tier."""
    ctx, session = g.program_ctx, db_session()
    advocate = links.get_advocate(session, ctx, advocate_id)
    codes = links.advocate_codes(session, advocate)
    counts = links.advocate_stats(session, advocate)
    rewards, cards = insights.rewards_of_advocate(session, ctx, advocate.id)
    recent = lists.list_referrals(session, ctx, lists.ReferralFilters(advocate_id=advocate.id),
                                  limit=RECENT_REFERRALS)
    return render_template(
        "dashboard/insights_advocate.html", advocate=advocate, counts=counts,
        codes=[(c, share_url(c.code)) for c in codes], referrals=recent, rewards=rewards,
        cards=cards, channels=insights.clicks_by_channel(session, ctx, advocate.id),
        events=links.advocate_events(session, advocate), next_tier=_next_tier(ctx, counts))


@bp.get("/p/<program_id>/rewards", endpoint="rewards")
@require("viewer")
def rewards_page(program_id: str) -> Any:
    """Show the gift-card ledger (liability, redeemed, voided) and the issuer's rewards."""
    ctx, session, args = g.program_ctx, db_session(), request.args
    data = _stats(ctx, args)
    reward_status, card_status = _text(args, "status"), _text(args, "card_status")
    after, cards_after = _text(args, "after"), _text(args, "cards_after")
    return render_template(
        "dashboard/insights_rewards.html", stats=data,
        ledger=data["totals"]["rewards"].get(ctx.config.currency) or {},
        rewards=insights.list_rewards(session, ctx, reward_status, REWARDS_PAGE_SIZE, after),
        cards=lists.list_gift_cards(session, ctx, status=card_status, limit=REWARDS_PAGE_SIZE,
                                    after=cards_after),
        totals=insights.reward_totals(session, ctx), reward_status=reward_status,
        card_status=card_status, reward_statuses=insights.REWARD_STATUSES,
        card_statuses=lists.GIFT_CARD_STATUSES, after=after, cards_after=cards_after,
        args=dict(args), presets=_presets(ctx))


@bp.app_template_filter("money")
def money_filter(minor: int | None, currency: str) -> str:
    """Format minor units for people (``EUR 1,234.50``)."""
    return money(minor, currency)


def referral_filters(ctx: ProgramContext, args: Mapping[str, str]) -> lists.ReferralFilters:
    """Read the referral filters of the GET form; dates are whole days of the program's calendar."""
    zone = ZoneInfo(ctx.config.timezone)
    start, end = _day(args, "created_from"), _day(args, "created_to")
    return lists.ReferralFilters(
        status=_text(args, "status"), advocate_id=_text(args, "advocate_id"),
        channel=_text(args, "channel"), reason=_text(args, "reason"), q=_text(args, "q"),
        created_from=datetime.combine(start, time.min, zone) if start else None,
        created_to=datetime.combine(end + timedelta(days=1), time.min, zone) if end else None)


def _stats(ctx: ProgramContext, args: Mapping[str, str], group_by: str = "none") -> dict[str, Any]:
    chosen = {name: args[name] for name in PERIOD_ARGS if args.get(name)}
    query = stats.parse_query(ctx, {**chosen, "group_by": group_by})
    return stats.program_stats(db_session(), ctx, query)


def _presets(ctx: ProgramContext) -> list[tuple[str, dict[str, str]]]:
    today = local_day(utcnow(), ctx.config.timezone)
    return [(label, {"from": (today - timedelta(days=days - 1)).isoformat(),
                     "to": today.isoformat(), "interval": interval})
            for label, days, interval in PRESETS]


def _text(args: Mapping[str, str], name: str) -> str | None:
    """Return a form value, trimmed; None when empty (the lists check what it must be)."""
    value = (args.get(name) or "").strip()
    return value or None


def _day(args: Mapping[str, str], name: str) -> date | None:
    raw = _text(args, name)
    if raw is None:
        return None
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name}: a date as YYYY-MM-DD", code="invalid_query") from None


def _kept(args: Mapping[str, str], *dropped: str) -> dict[str, str]:
    """Return the non-empty query arguments but ``dropped`` (for the pager's and sort's links)."""
    return {k: v for k, v in args.items() if v and k not in dropped}


def _reason_codes(ctx: ProgramContext) -> list[str]:
    return sorted(set(DEFAULT_POLICY) | set(ctx.config.review.policy))


def _verdicts(ctx: ProgramContext, reasons: list[Any]) -> dict[str, str]:
    """Say what the program's policy does with each of a referral's signals."""
    words = {REJECT: "rejects", REVIEW: "sends to review"}
    signals = set(DEFAULT_POLICY) | set(ctx.config.review.policy)  # other reasons have no policy
    return {r["code"]: words.get(ctx.config.review.action(r["code"]), "allows")
            for r in reasons if isinstance(r, dict) and r.get("code") in signals}


def _next_tier(ctx: ProgramContext, counts: Mapping[str, int]) -> tuple[str, int] | None:
    """Return the next tier the advocate can reach and how many approved referrals it needs."""
    for tier in sorted(ctx.config.tiers, key=lambda t: t.min_approved):
        if tier.min_approved > counts["approved"]:
            return tier.name, tier.min_approved - counts["approved"]
    return None
