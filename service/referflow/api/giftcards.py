"""Gift cards: issue, redeem, read."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from referflow.actions import giftcards
from referflow.api import payloads
from referflow.api.operations import Caller, db_session, operation

bp = Blueprint("giftcards", __name__)


@operation(bp, "issueGiftCard", "POST", "/v1/gift-cards", tag="rewards",
           summary="Issue the gift cards an approved referral earned, or a goodwill card",
           request_schema="issue-gift-card.request", response="gift-card-issued", status=201)
def issue_gift_card(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    cards = giftcards.issue_gift_card(db_session(), caller.ctx, body, caller.actor)
    return payloads.gift_cards_issued(cards)


@operation(bp, "redeemGiftCard", "POST", "/v1/gift-cards/<code>/redeem", tag="rewards",
           summary="Redeem part or all of a gift card's balance",
           request_schema="redeem-gift-card.request", response="gift-card")
def redeem_gift_card(caller: Caller, body: dict[str, Any], code: str) -> dict[str, Any]:
    return payloads.gift_card(giftcards.redeem_gift_card(db_session(), caller.ctx, code, body,
                                                         caller.actor), with_code=True)


@operation(bp, "getGiftCard", "GET", "/v1/gift-cards/<code>", tag="rewards",
           summary="Read a gift card, its balance and its ledger entries", response="gift-card")
def get_gift_card(caller: Caller, body: None, code: str) -> dict[str, Any]:
    session = db_session()
    card = giftcards.get_card(session, caller.ctx, code)
    return payloads.gift_card_with_entries(card, giftcards.entries_of(session, card))
