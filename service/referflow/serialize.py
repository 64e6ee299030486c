"""Flask-free JSON forms of stored objects, shared by the API and by outbound events."""

from __future__ import annotations

from typing import Any

from referflow.domain.codes import gift_card_code_tail
from referflow.domain.timeutil import to_rfc3339, utcnow
from referflow.storage.models import GiftCard, GiftCardStatus, Referral, ReferralHistory, Reward


def referral(row: Referral, history: list[ReferralHistory] | None = None,
             created: bool | None = None) -> dict[str, Any]:
    """Dump a referral, optionally with its history."""
    out: dict[str, Any] = {
        "id": row.id, "program_id": row.program_id, "advocate_id": row.advocate_id,
        "code": row.code, "click_id": row.click_id, "channel": row.channel,
        "friend": {"external_id": row.friend_external_id, "email": row.friend_email},
        "status": row.status, "reasons": row.reasons, "qualification": _qualification(row),
        "hold_until": to_rfc3339(row.hold_until), "approved_at": to_rfc3339(row.approved_at),
        "review_deadline": to_rfc3339(row.review_deadline),
        "rewards": None if row.advocate_reward is None else {
            "advocate": row.advocate_reward, "friend": row.friend_reward or 0},
        "created_at": to_rfc3339(row.created_at), "updated_at": to_rfc3339(row.updated_at),
    }
    if created is not None:
        out["created"] = created
    if history is not None:
        out["history"] = [history_entry(h) for h in history]
    return out


def _qualification(row: Referral) -> dict[str, Any] | None:
    if row.qualifying_event_id is None:
        return None
    return {"event_id": row.qualifying_event_id, "amount": row.qualified_amount,
            "currency": row.qualified_currency, "occurred_at": to_rfc3339(row.qualified_at)}


def history_entry(h: ReferralHistory) -> dict[str, Any]:
    """Dump one history entry."""
    return {"at": to_rfc3339(h.at), "action": h.action,
            "actor": {"type": h.actor_type, "id": h.actor_id}, "from_status": h.from_status,
            "to_status": h.to_status, "reasons": h.reasons, "data": h.data,
            "config_version": h.config_version}


def gift_card(row: GiftCard, *, with_code: bool) -> dict[str, Any]:
    """Dump a gift card; an active card past its expiry shows as expired.

    The code is a bearer secret: ``with_code`` only for those it is delivered to (its issue, a
    caller that presented it); everyone else sees ``code_last4``.
    """
    status = row.status
    if status == GiftCardStatus.ACTIVE and row.expires_at <= utcnow():
        status = "expired"
    return {"id": row.id, **({"code": row.code} if with_code else {}),
            "code_last4": row.code_last4, "amount": row.amount, "balance": row.balance,
            "currency": row.currency, "status": status, "expires_at": to_rfc3339(row.expires_at),
            "side": row.side, "referral_id": row.referral_id, "advocate_id": row.advocate_id,
            "created_at": to_rfc3339(row.created_at)}


def reward(row: Reward) -> dict[str, Any]:
    """Dump a reward row (background issuers, perks, discounts) as events and history show it.

    Its code (a discount or card code) is a bearer secret: stored events and history keep
    ``code_last4`` only; events.delivered_payload adds the code to ``reward.issued`` when sent.
    """
    return {"id": row.id, "referral_id": row.referral_id, "side": row.side, "issuer": row.issuer,
            "kind": row.kind, "amount": row.amount, "currency": row.currency,
            "external_id": row.external_id,
            "code_last4": gift_card_code_tail(row.code) if row.code else None,
            "details": row.details, "expires_at": to_rfc3339(row.expires_at)}
