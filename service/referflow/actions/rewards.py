"""Background reward issuing: planned at approval, issued by the program's issuer exactly once.

Gift cards go through the program's issuer (``fulfilment.issuer``); discount rewards through the
store they name: a single-use ``percent`` or ``amount`` code (Shopify discount code, Stripe
promotion code) or a ``free_period`` on the recipient's Stripe subscription (providers/discounts).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from referflow import serialize
from referflow.actions.common import SYSTEM, ProgramContext, load_program, reward_recipient
from referflow.actions.events import emit
from referflow.actions.giftcards import issue_gift_card
from referflow.actions.lifecycle import complete_if_paid, lock_referral
from referflow.actions.offers import store_discounts
from referflow.actions.providers import credentials
from referflow.domain.program import DISCOUNT_TYPES
from referflow.domain.timeutil import utcnow
from referflow.errors import PermanentProviderError, RetryableProviderError
from referflow.providers import discounts, issuers
from referflow.services import Services
from referflow.storage import leases
from referflow.storage.models import Advocate, Referral, Reward, RewardStatus

log = logging.getLogger("referflow.rewards")
PENDING, ISSUING, ISSUED, FAILED = (RewardStatus.PENDING, RewardStatus.ISSUING,
                                    RewardStatus.ISSUED, RewardStatus.FAILED)
BACKOFF = leases.STORE_BACKOFF


def due_rewards(session: Session, now: datetime, limit: int = 200) -> list[tuple[str, str]]:
    """Return (reward id, job generation) of rewards due to be issued (or whose issuer died)."""
    return leases.due(session, Reward, now, ISSUING, limit)


def issue_reward(session: Session, services: Services, reward_id: str) -> str | None:
    """Issue one reward through its issuer; record the result; schedule a retry on outage."""
    now = utcnow()
    settings = services.settings
    reward = leases.take(session, Reward, reward_id, now, settings.job_lease_seconds, ISSUING)
    if reward is None:
        return None
    ctx = load_program(session, reward.program_id, settings.secret_key)
    referral = session.get(Referral, reward.referral_id)
    assert referral is not None
    try:
        if reward.issuer == "ledger":
            return _issue_on_ledger(session, ctx, reward, referral)
        if reward.kind in DISCOUNT_TYPES:
            result = _issue_discount(session, services, reward, referral)
        else:
            result = _issuer(session, services, reward).issue(_request(session, ctx, reward,
                                                                       referral))
    except RetryableProviderError as exc:
        return _retry(session, reward, str(exc), exc.retry_after, now)
    except PermanentProviderError as exc:
        return _fail(session, ctx, reward, str(exc))
    reward.external_id, reward.code = result.external_id, result.code
    return _issued(session, ctx, reward, referral, announce=True)


def _issuer(session: Session, services: Services, reward: Reward) -> issuers.RewardIssuer:
    settings = services.settings
    if reward.issuer.startswith("stripe_"):
        (api_key,) = credentials(session, reward.program_id, "stripe", "api_key")
        cls = issuers.StripeBalanceIssuer if reward.issuer == "stripe_balance" \
            else issuers.StripePromotionCodeIssuer
        return cls(api_key, settings.stripe_api_base)
    shop, token = credentials(session, reward.program_id, "shopify", "shop", "access_token")
    return issuers.ShopifyGiftCardIssuer(shop, token, settings.shopify_api_base, settings.secret_key)


def _recipient(session: Session, reward: Reward, referral: Referral) -> str | None:
    advocate = session.get(Advocate, referral.advocate_id)
    return advocate.external_id if reward.side == "advocate" and advocate else \
        referral.friend_external_id


def _request(session: Session, ctx: ProgramContext, reward: Reward,
             referral: Referral) -> issuers.RewardRequest:
    return issuers.RewardRequest(
        reward_id=reward.id, amount=reward.amount, currency=reward.currency,
        # From the reward's own creation time: a retry must send exactly the same parameters.
        expires_at=reward.created_at + timedelta(days=ctx.config.gift_card_expiry_days),
        recipient_external_id=_recipient(session, reward, referral),
        description=f"Referral reward ({reward.side}) for {referral.id}")


def _issue_discount(session: Session, services: Services, reward: Reward,
                    referral: Referral) -> issuers.IssueResult:
    """Issue a discount reward: a single-use code, or a free period on the subscription."""
    details = dict(reward.details or {})
    discount = discounts.Discount(
        kind=reward.kind, currency=reward.currency, percent=details.get("percent"),
        amount=reward.amount or None, single_use=True, ends_at=reward.expires_at)
    name = f"Referral reward ({reward.side})"
    store = store_discounts(session, services.settings, reward.program_id,
                            "stripe" if reward.kind == "free_period" else details["provider"])
    if reward.kind == "free_period":
        assert isinstance(store, discounts.StripeDiscounts)
        applied = store.free_period(reward.id, _recipient(session, reward, referral) or "",
                                    discount, name)
        reward.details = {**details, "coupon": applied.coupon_id}
        return issuers.IssueResult(applied.external_id, None)  # the subscription it is on
    code = issuers.derived_code(services.settings.secret_key, "discount-reward", reward.id, 16)
    created = store.create(discounts.DiscountCode(
        key=reward.id, code=code.upper(), title=name, starts_at=reward.created_at,
        discount=discount))
    return issuers.IssueResult(created.external_id, created.code)


def _issue_on_ledger(session: Session, ctx: ProgramContext, reward: Reward,
                     referral: Referral) -> str:
    card = issue_gift_card(session, ctx, {"referral_id": referral.id, "side": reward.side},
                           SYSTEM)[0]
    reloaded = session.get(Reward, reward.id)  # the issue committed: reload ours
    assert reloaded is not None
    reloaded.external_id, reloaded.code = card.id, card.code
    return _issued(session, ctx, reloaded, referral, announce=False)


def _issued(session: Session, ctx: ProgramContext, reward: Reward, referral: Referral,
            announce: bool) -> str:
    reward.issued_at = utcnow()
    leases.settle(reward, ISSUED)
    if announce:  # the ledger's issue_gift_card announces its own cards and completes the referral
        emit(session, ctx.id, "reward.issued", {
            "issuer": reward.issuer, "reward": _dump(reward),
            "recipient": reward_recipient(session, reward.side, referral.id, referral.advocate_id)})
        # Both sides' jobs may finish at once: the second waits here and sees the first's reward.
        lock_referral(session, referral)
        complete_if_paid(session, ctx, referral, SYSTEM, {r.side: _dump(r) for r in session.scalars(
            select(Reward).where(Reward.referral_id == referral.id, Reward.status == ISSUED))})
    session.commit()
    return ISSUED


def _dump(reward: Reward) -> dict[str, Any]:
    return serialize.reward(reward)


def _retry(session: Session, reward: Reward, error: str, retry_after: float | None,
           now: datetime) -> str:
    reward.last_error = error[:500]
    leases.retry_later(reward, now, BACKOFF, retry_after)
    session.commit()
    log.warning("reward %s: provider unavailable, retrying", reward.id)
    return PENDING


def _fail(session: Session, ctx: ProgramContext, reward: Reward, error: str) -> str:
    reward.last_error = error[:500]
    leases.settle(reward, FAILED)
    emit(session, ctx.id, "reward.failed", {
        "reward_id": reward.id, "referral_id": reward.referral_id, "side": reward.side,
        "issuer": reward.issuer, "amount": reward.amount, "currency": reward.currency,
        "reason": error[:500], "retryable": False})
    session.commit()
    return FAILED
