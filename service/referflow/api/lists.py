"""Lists: referrals (filtered and searched), advocates (the leaderboard), gift cards."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, request

from referflow.actions import lists
from referflow.api import payloads
from referflow.api.links import advocate_view
from referflow.api.operations import Caller, db_session, int_arg, operation
from referflow.domain.timeutil import parse_rfc3339

bp = Blueprint("lists", __name__)
PAGING = ("limit", "after")


def _limit() -> int:
    return int_arg("limit", lists.DEFAULT_LIMIT, 1, lists.MAX_LIMIT)


def _time(name: str) -> datetime | None:
    """Read an RFC 3339 query parameter (with an offset), or raise 400 ``invalid_query``."""
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        return parse_rfc3339(raw)
    except ValueError as exc:
        raise lists.invalid(name, "an RFC 3339 time with an offset, e.g. "
                            "2026-01-31T00:00:00Z") from exc


@operation(bp, "listReferrals", "GET", "/v1/referrals", tag="referrals", response="referral-list",
           query=("status", "advocate_id", "channel", "reason", "created_from", "created_to", "q",
                  *PAGING),
           summary="List referrals, newest first: by status, advocate, channel, reason, creation "
                   "time, or a friend's external id or email")
def list_referrals(caller: Caller, body: None) -> dict[str, Any]:
    args = request.args
    filters = lists.ReferralFilters(
        status=args.get("status"), advocate_id=args.get("advocate_id"),
        channel=args.get("channel"), reason=args.get("reason"),
        created_from=_time("created_from"), created_to=_time("created_to"), q=args.get("q"))
    page = lists.list_referrals(db_session(), caller.ctx, filters, _limit(), args.get("after"))
    return {"items": [payloads.referral(r) for r in page.items], "next_cursor": page.next_cursor}


@operation(bp, "listAdvocates", "GET", "/v1/advocates", tag="advocates", response="advocate-list",
           query=("q", "tier", "sort", *PAGING),
           summary="List advocates: newest first, or the leaderboard (sort=approved or clicks)")
def list_advocates(caller: Caller, body: None) -> dict[str, Any]:
    args, session = request.args, db_session()
    page = lists.list_advocates(session, caller.ctx, args.get("q"), args.get("tier"),
                                args.get("sort", "recent"), _limit(), args.get("after"))
    return {"items": [advocate_view(caller, d.advocate, d.codes, d.stats, d.events, d.offers)
                      for d in lists.advocate_details(session, caller.ctx, page.items)],
            "next_cursor": page.next_cursor}


@operation(bp, "listGiftCards", "GET", "/v1/gift-cards", tag="rewards", response="gift-card-list",
           query=("status", "side", "expiring_before", *PAGING),
           summary="List gift cards, newest first: by status, side, or expiring before a time")
def list_gift_cards(caller: Caller, body: None) -> dict[str, Any]:
    args = request.args
    page = lists.list_gift_cards(db_session(), caller.ctx, args.get("status"), args.get("side"),
                                 _time("expiring_before"), _limit(), args.get("after"))
    return {"items": [payloads.gift_card(c, with_code=False) for c in page.items],
            "next_cursor": page.next_cursor}
