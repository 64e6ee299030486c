"""Outbound events: written to the outbox in the same transaction as the change they announce."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from referflow.domain.codes import new_id
from referflow.domain.timeutil import to_rfc3339, utcnow
from referflow.logs import current_request_id
from referflow.storage.models import GiftCard, OutboxEvent, Reward

EVENT_TYPES = (
    "referral.claimed", "referral.in_review", "referral.qualified", "referral.approved",
    "referral.rejected", "referral.reversed", "referral.rewarded", "reward.issued",
    "reward.redeemed", "reward.failed", "advocate.tier_changed", "advocate.link_created",
    "ask.decided", "friend_offer.failed", "reward.voided",
)
CODE_DELIVERED_BY = "reward.issued"  # the one event that carries a code (a card's, a reward's) when sent
# What reward.issued hands out, by its key in the data, and the row that keeps its code encrypted.
CODE_HOLDERS: tuple[tuple[str, type[GiftCard] | type[Reward]], ...] = (("gift_card", GiftCard),
                                                                       ("reward", Reward))
# Kept beside an event, never sent or listed: the id of the request that caused it, so its
# deliveries and their jobs can name that request (logs.py). Stored in the payload's JSON
# because the outbox has no column for it.
META = "_meta"

# Which history actions announce which events, besides the status the referral lands in.
ACTION_EVENTS = {"claimed": "referral.claimed", "qualified": "referral.qualified",
                 "qualified_in_review": "referral.qualified"}
STATUS_EVENTS = {"in_review": "referral.in_review", "rejected": "referral.rejected",
                 "approved": "referral.approved", "reversed": "referral.reversed",
                 "rewarded": "referral.rewarded"}


def emit(session: Session, program_id: str, event_type: str, data: dict[str, Any]) -> OutboxEvent:
    """Add an event to the outbox (committed with the caller's transaction)."""
    assert event_type in EVENT_TYPES, event_type
    event_id = new_id("evt")
    payload: dict[str, Any] = {"id": event_id, "type": event_type, "created_at": to_rfc3339(utcnow()),
                               "program_id": program_id, "data": data}
    request_id = current_request_id()
    if request_id:
        payload[META] = {"request_id": request_id}
    row = OutboxEvent(event_id=event_id, program_id=program_id, type=event_type, payload=payload)
    session.add(row)
    return row


def public_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Return an event as subscribers see it (without what is kept beside it)."""
    return {key: value for key, value in payload.items() if key != META}


def delivered_payload(session: Session, row: OutboxEvent) -> dict[str, Any]:
    """Return an event as it is sent: public, with the code of what it hands out.

    A gift-card code and a reward's code (a Shopify or Stripe discount code, a card) are bearer
    secrets, so the outbox (and listEvents, and the history) keep their last characters only;
    ``reward.issued``, the event that hands one to its recipient, gets the code from its card or
    reward row (encrypted at rest) when a webhook or an e-mail tool sends it: a reward without
    one (a perk, a free period, a balance credit) is sent with ``code`` null.
    """
    payload = public_payload(row.payload)
    if row.type != CODE_DELIVERED_BY:
        return payload
    data = payload["data"]
    for key, model in CODE_HOLDERS:
        held = data.get(key)
        if isinstance(held, dict) and isinstance(held.get("id"), str):
            found = session.execute(select(model.code).where(model.id == held["id"])).first()
            if found is not None:
                data = {**data, key: {**held, "code": found[0]}}
    return {**payload, "data": data}


def request_id_of(row: OutboxEvent) -> str | None:
    """Return the id of the request that caused an event, if one did."""
    meta = row.payload.get(META)
    request_id = meta.get("request_id") if isinstance(meta, dict) else None
    return request_id if isinstance(request_id, str) else None


def referral_event_types(action: str, from_status: str | None, to_status: str | None) -> list[str]:
    """Return the events a history entry announces, in order."""
    types = [ACTION_EVENTS[action]] if action in ACTION_EVENTS else []
    if to_status != from_status and to_status in STATUS_EVENTS:
        types.append(STATUS_EVENTS[to_status])
    return types


def blank_payload(row: OutboxEvent, **data: Any) -> None:
    """Replace an event's data (erasure, retention), keeping its envelope: id, type, program, time."""
    row.payload = {"id": row.event_id, "type": row.type, "program_id": row.program_id,
                   "created_at": row.payload.get("created_at"), "data": data}
