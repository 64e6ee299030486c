"""Referral actions: claim, qualify, reverse, read."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from referflow.actions import referrals
from referflow.api import payloads
from referflow.api.operations import Caller, db_session, operation

bp = Blueprint("referrals", __name__)


@operation(bp, "claimReferral", "POST", "/v1/referrals/claim",
           summary="Claim a referral for a friend by code or click id (first claim wins)",
           request_schema="claim-referral.request", response="referral", status=201, also=(200,))
def claim_referral(caller: Caller, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    referral, created = referrals.claim_referral(db_session(), caller.ctx, body, caller.actor)
    return payloads.referral(referral, created=created), 201 if created else 200


@operation(bp, "qualifyReferral", "POST", "/v1/referrals/qualify",
           summary="Apply a qualifying event (first order, first paid invoice)",
           request_schema="qualify-referral.request", response="referral")
def qualify_referral(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    return payloads.referral(referrals.qualify_referral(db_session(), caller.ctx, body,
                                                        caller.actor))


@operation(bp, "reverseReferral", "POST", "/v1/referrals/<referral_id>/reverse",
           summary="Reverse a referral after a refund or chargeback",
           request_schema="reverse-referral.request", response="referral")
def reverse_referral(caller: Caller, body: dict[str, Any], referral_id: str) -> dict[str, Any]:
    referral = referrals.reverse_referral(db_session(), caller.ctx, referral_id, body,
                                          caller.actor)
    return payloads.referral(referral)


@operation(bp, "reverseReferralForFriend", "POST", "/v1/referrals/reverse",
           summary="Reverse the referral of a friend (by your customer id) after a refund or chargeback",
           request_schema="reverse-referral-for-friend.request", response="referral")
def reverse_referral_for_friend(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    session = db_session()
    referral = referrals.referral_of_friend(session, caller.ctx, body["friend_external_id"])
    details = {k: v for k, v in body.items() if k != "friend_external_id"}
    return payloads.referral(referrals.reverse_referral(session, caller.ctx, referral.id, details,
                                                        caller.actor))


@operation(bp, "getReferral", "GET", "/v1/referrals/<referral_id>",
           summary="Read a referral with its full history", response="referral")
def get_referral(caller: Caller, body: None, referral_id: str) -> dict[str, Any]:
    return payloads.referral(*referrals.read_referral(db_session(), caller.ctx, referral_id))
