"""The advocate page as JSON, its rotation, and short-lived tokens for embedding it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from referflow.actions import links, portal
from referflow.actions.portal import PortalView
from referflow.api.operations import Caller, db_session, operation
from referflow.api.payloads import base_url
from referflow.domain import portal as rules
from referflow.domain.timeutil import to_rfc3339, utcnow
from referflow.portal import page
from referflow.portal.i18n import Texts, choose

bp = Blueprint("portal_api", __name__)


@operation(bp, "getAdvocatePortal", "GET", "/v1/advocates/<advocate_id>/portal", tag="advocates",
           response="advocate-portal", query=("lang",),
           summary="Read what the advocate page shows, as JSON: share link and buttons, referrals "
                   "(friends by first name or initial), rewards, gift cards, tier, leaderboard")
def get_advocate_portal(caller: Caller, body: None, advocate_id: str) -> dict[str, Any]:
    session = db_session()
    advocate = links.get_advocate(session, caller.ctx, advocate_id=advocate_id)
    url = portal.portal_url(session, caller.ctx, advocate, base_url())
    texts = Texts(choose(request.args.get("lang"), caller.ctx.config.portal.language, None))
    return dump(portal.view(session, caller.ctx, advocate, base_url()), texts, url)


@operation(bp, "rotateAdvocatePortal", "POST", "/v1/advocates/<advocate_id>/portal/rotate",
           tag="advocates", response="portal-rotated",
           summary="Give the advocate a new page URL: the old one, and every short-lived token, "
                   "stop working")
def rotate_advocate_portal(caller: Caller, body: None, advocate_id: str) -> dict[str, Any]:
    session = db_session()
    advocate = portal.rotate(session, caller.ctx, advocate_id, caller.actor)
    return {"advocate_id": advocate.id,
            "portal_url": portal.portal_url(session, caller.ctx, advocate, base_url()),
            "rotated_at": to_rfc3339(advocate.portal_rotated_at)}


@operation(bp, "createPortalToken", "POST", "/v1/advocates/<advocate_id>/portal/tokens",
           tag="advocates", response="portal-token", status=201,
           summary="Sign a token that opens one advocate's page for an hour (for an iframe in "
                   "your store: add ?embed=1)")
def create_portal_token(caller: Caller, body: None, advocate_id: str) -> tuple[dict[str, Any], int]:
    advocate = links.get_advocate(db_session(), caller.ctx, advocate_id=advocate_id)
    issued = portal.issue_token(caller.ctx, advocate, utcnow())
    return {"token": issued.token, "url": f"{base_url()}/p/{issued.token}",
            "expires_at": to_rfc3339(issued.expires_at)}, 201


def dump(view: PortalView, texts: Texts, portal_url: str | None) -> dict[str, Any]:
    """Dump the advocate page's data (the share buttons' text in ``texts``' language)."""
    config = view.ctx.config.portal
    share = None
    if view.share_url is not None:
        text, subject = page.share_message(texts, view)
        share = {"code": view.code, "url": view.share_url,
                 "copy_url": rules.tagged(view.share_url, rules.COPY_CHANNEL),
                 "qr_url": rules.tagged(view.share_url, rules.QR_CHANNEL),
                 "message": text, "subject": subject,
                 "links": [link.to_dict() for link in rules.share_links(view.share_url, text, subject)]}
    return {
        "advocate_id": view.advocate.id, "first_name": view.first_name, "portal_url": portal_url,
        "language": texts.language, "share": share, "counts": view.counts,
        "referrals": [_line(line, texts) for line in view.referrals],
        "rewards": {"currency": view.ctx.config.currency, "earned": view.earned,
                    "per_friend": page.reward_rule_label(texts, view),
                    "gift_cards": [_card(c) for c in view.gift_cards],
                    "issued": [_issued(r, texts) for r in view.issued]},
        "tier": _tier(view, texts), "leaderboard": (
            None if view.leaderboard is None else [leader.to_dict() for leader in view.leaderboard]),
        "branding": {"name": view.brand, "logo_url": config.logo_url,
                     "colours": {"primary": config.colours.primary, "accent": config.colours.accent},
                     "terms": config.terms, "consent_text": config.consent_text,
                     "support_email": config.support_email},
    }


def _card(card: Any) -> dict[str, Any]:
    return {"code": card.code, "amount": card.amount, "balance": card.balance,
            "currency": card.currency, "status": card.status,
            "expires_at": to_rfc3339(card.expires_at)}


def _shown(shown: rules.RewardShown, texts: Texts) -> dict[str, Any]:
    return {**shown.to_dict(), "label": page.reward_label(texts, shown)}


def _line(line: portal.FriendLine, texts: Texts) -> dict[str, Any]:
    return {**line.to_dict(), "reward_shown": _shown(line.shown, texts) if line.shown else None}


def _issued(reward: Any, texts: Texts) -> dict[str, Any]:
    # The row's own figures last: how a kind is shown leaves ``amount`` null where the kind
    # has none (a percent off, a perk), and the list's ``amount`` is the row's (0 there).
    return {**_shown(portal.shown(reward), texts), "issuer": reward.issuer,
            "amount": reward.amount, "currency": reward.currency, "status": reward.status,
            "code": reward.code, "issued_at": to_rfc3339(reward.issued_at)}


def _tier(view: PortalView, texts: Texts) -> dict[str, Any] | None:
    progress = view.tier
    if progress is None:
        return None
    upcoming = progress.next.advocate_reward if progress.next else None
    return {"approved": progress.approved,
            "reward": page.reward_rule_label(texts, view),
            "next_reward": page.rule_label(texts, upcoming, view.ctx.config.currency)
            if upcoming else None,
            "next_perks": list(progress.next.perks) if progress.next else [],
            "current": progress.current.name if progress.current else None,
            "perks": list(progress.current.perks) if progress.current else [],
            "next": progress.next.name if progress.next else None,
            "next_at": progress.next.min_approved if progress.next else None,
            "remaining": progress.remaining, "progress": round(progress.fraction, 4)}
