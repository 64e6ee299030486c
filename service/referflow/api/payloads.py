"""Turn stored objects into the JSON documents the schemas describe."""

from __future__ import annotations

from typing import Any

from flask import current_app, request

from referflow.domain.timeutil import to_rfc3339, utcnow
from referflow.storage.models import (
    Advocate,
    AdvocateEvent,
    ApiKey,
    GiftCard,
    GiftCardEntry,
    Program,
    Referral,
    ReferralCode,
    ReferralHistory,
)


def base_url() -> str:
    """Return the public base URL of share links."""
    configured = current_app.extensions["referflow"].settings.public_url
    return configured or request.host_url.rstrip("/")


def share_url(code: str) -> str:
    """Return the share URL of a code."""
    return f"{base_url()}/r/{code}"


def program(row: Program) -> dict[str, Any]:
    """Dump a program."""
    return {"id": row.id, "name": row.name, "config": row.config,
            "config_version": row.config_version, "created_at": to_rfc3339(row.created_at)}


def api_key(row: ApiKey, secret: str) -> dict[str, Any]:
    """Dump a freshly created API key, with its secret (shown once)."""
    return {"id": row.id, "program_id": row.program_id, "prefix": row.prefix,
            "label": row.label, "key": secret, "created_at": to_rfc3339(row.created_at)}


def link(advocate: Advocate, code: ReferralCode, created: bool) -> dict[str, Any]:
    """Dump a createLink result."""
    return {"advocate_id": advocate.id, "code": code.code, "url": share_url(code.code),
            "created": created}


def advocate(row: Advocate, codes: list[ReferralCode], stats: dict[str, int],
             events: list[AdvocateEvent]) -> dict[str, Any]:
    """Dump an advocate with codes, counts, tier and events."""
    return {
        "id": row.id, "external_id": row.external_id, "email": row.email, "name": row.name,
        "codes": [{"code": c.code, "active": c.active, "vanity": c.vanity,
                   "url": share_url(c.code)} for c in codes],
        "stats": stats, "tier": row.tier, "flagged": row.flagged,
        "events": [{"at": to_rfc3339(e.at), "action": e.action, "data": e.data} for e in events],
        "created_at": to_rfc3339(row.created_at),
    }


def referral_code(row: ReferralCode) -> dict[str, Any]:
    """Dump a referral code."""
    return {"code": row.code, "advocate_id": row.advocate_id, "active": row.active,
            "vanity": row.vanity, "url": share_url(row.code)}


def referral(row: Referral, history: list[ReferralHistory] | None = None,
             created: bool | None = None) -> dict[str, Any]:
    """Dump a referral, optionally with its history."""
    out: dict[str, Any] = {
        "id": row.id, "program_id": row.program_id, "advocate_id": row.advocate_id,
        "code": row.code, "click_id": row.click_id,
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


def gift_card(row: GiftCard) -> dict[str, Any]:
    """Dump a gift card; an active card past its expiry shows as expired."""
    status = row.status
    if status == "active" and row.expires_at <= utcnow():
        status = "expired"
    return {"id": row.id, "code": row.code, "amount": row.amount, "balance": row.balance,
            "currency": row.currency, "status": status, "expires_at": to_rfc3339(row.expires_at),
            "side": row.side, "referral_id": row.referral_id, "advocate_id": row.advocate_id,
            "created_at": to_rfc3339(row.created_at)}


def gift_card_with_entries(row: GiftCard, entries: list[GiftCardEntry]) -> dict[str, Any]:
    """Dump a gift card with its ledger entries."""
    return {**gift_card(row), "entries": [
        {"kind": e.kind, "amount": e.amount, "balance_after": e.balance_after,
         "at": to_rfc3339(e.at), "reference": e.reference} for e in entries]}


def gift_cards_issued(cards: list[GiftCard]) -> dict[str, Any]:
    """Dump an issueGiftCard result: the first card, plus all of them in ``cards``."""
    dumped = [gift_card(c) for c in cards]
    return {**dumped[0], "cards": dumped}
