"""Turn stored objects into the JSON documents the schemas describe."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app, request

from referflow.domain.timeutil import to_rfc3339
from referflow.serialize import gift_card, history_entry, referral  # noqa: F401  (re-exported)
from referflow.storage.models import (
    Advocate,
    AdvocateEvent,
    ApiKey,
    GiftCard,
    GiftCardEntry,
    Program,
    ReferralCode,
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
            "label": row.label, "scopes": row.scopes, "key": secret,
            "created_at": to_rfc3339(row.created_at)}


def api_key_info(row: ApiKey) -> dict[str, Any]:
    """Dump an API key without its secret: prefix, scopes, last use, revocation."""
    return {"id": row.id, "program_id": row.program_id, "prefix": row.prefix, "label": row.label,
            "scopes": row.scopes, "created_at": to_rfc3339(row.created_at),
            "last_used_at": to_rfc3339(row.last_used_at), "revoked_at": to_rfc3339(row.revoked_at)}


def link(advocate: Advocate, code: ReferralCode, created: bool) -> dict[str, Any]:
    """Dump a createLink result."""
    return {"advocate_id": advocate.id, "code": code.code, "url": share_url(code.code),
            "created": created}


def advocate(row: Advocate, codes: list[ReferralCode], stats: dict[str, int],
             events: list[AdvocateEvent],
             offers: Mapping[str, dict[str, Any] | None] | None = None) -> dict[str, Any]:
    """Dump an advocate with codes, counts, tier and events; with ``offers`` (code -> the view
    of actions/offers.py), each code's friend offer too."""
    return {
        "id": row.id, "external_id": row.external_id, "email": row.email, "name": row.name,
        "codes": [{"code": c.code, "active": c.active, "vanity": c.vanity,
                   "url": share_url(c.code),
                   **({"friend_offer": offers.get(c.code)} if offers is not None else {})}
                  for c in codes],
        "stats": stats, "tier": row.tier, "tier_manual": row.tier_manual, "flagged": row.flagged,
        "events": [{"at": to_rfc3339(e.at), "action": e.action, "data": e.data} for e in events],
        "created_at": to_rfc3339(row.created_at),
    }


def referral_code(row: ReferralCode) -> dict[str, Any]:
    """Dump a referral code."""
    return {"code": row.code, "advocate_id": row.advocate_id, "active": row.active,
            "vanity": row.vanity, "url": share_url(row.code)}


def gift_card_with_entries(row: GiftCard, entries: list[GiftCardEntry]) -> dict[str, Any]:
    """Dump a gift card with its ledger entries (for a caller that presented its code)."""
    return {**gift_card(row, with_code=True), "entries": [
        {"kind": e.kind, "amount": e.amount, "balance_after": e.balance_after,
         "at": to_rfc3339(e.at), "reference": e.reference} for e in entries]}


def gift_cards_issued(cards: list[GiftCard]) -> dict[str, Any]:
    """Dump an issueGiftCard result: the first card, plus all of them in ``cards``."""
    dumped = [gift_card(c, with_code=True) for c in cards]
    return {**dumped[0], "cards": dumped}
