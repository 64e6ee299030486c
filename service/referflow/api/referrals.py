"""Referral actions: claim, qualify, reverse, read."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from referflow.actions import referrals
from referflow.actions.common import Acted
from referflow.api import payloads
from referflow.api.operations import Caller, db_session, operation

bp = Blueprint("referrals", __name__)


@operation(bp, "claimReferral", "POST", "/v1/referrals/claim",
           summary="Claim a referral for a friend by code or click id (first claim wins)",
           request_schema="claim-referral.request", response="referral", status=201, also=(200,),
           outcomes=True)
def claim_referral(caller: Caller, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    referral, created = referrals.claim_referral(db_session(), caller.ctx, body, caller.actor)
    acted = Acted(referral, "claimed" if created else "already_claimed", created)
    return _acted(acted, created=created), 201 if created else 200


def _acted(acted: Acted, **extra: Any) -> dict[str, Any]:
    """The referral an action touched, with what the action did."""
    return {**payloads.referral(acted.referral, **extra), "outcome": acted.outcome,
            "changed": acted.changed}


@operation(bp, "qualifyReferral", "POST", "/v1/referrals/qualify",
           summary="Apply a qualifying event (first order, first paid invoice)",
           request_schema="qualify-referral.request", response="referral", outcomes=True)
def qualify_referral(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    return _acted(referrals.qualify_referral(db_session(), caller.ctx, body, caller.actor))


@operation(bp, "reverseReferral", "POST", "/v1/referrals/<referral_id>/reverse",
           summary="Reverse a referral after a refund or chargeback",
           request_schema="reverse-referral.request", response="referral", outcomes=True)
def reverse_referral(caller: Caller, body: dict[str, Any], referral_id: str) -> dict[str, Any]:
    return _acted(referrals.reverse_referral(db_session(), caller.ctx, referral_id, body,
                                             caller.actor))


@operation(bp, "reverseReferralForFriend", "POST", "/v1/referrals/reverse",
           summary="Reverse the referral of a friend (by your customer id) after a refund or chargeback",
           request_schema="reverse-referral-for-friend.request", response="referral",
           outcomes=True)
def reverse_referral_for_friend(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    session = db_session()
    referral = referrals.referral_to_reverse(session, caller.ctx, body.get("friend_external_id"),
                                             body.get("payment_references"))
    details = {k: v for k, v in body.items() if k not in ("friend_external_id",
                                                          "payment_references")}
    return _acted(referrals.reverse_referral(session, caller.ctx, referral.id, details,
                                             caller.actor))


@operation(bp, "getReferral", "GET", "/v1/referrals/<referral_id>",
           summary="Read a referral with its full history", response="referral")
def get_referral(caller: Caller, body: None, referral_id: str) -> dict[str, Any]:
    return payloads.referral(*referrals.read_referral(db_session(), caller.ctx, referral_id))
