"""Background reward issuing: planned at approval, issued by the program's issuer exactly once.

Gift cards go through the program's issuer (``fulfilment.issuer``); discount rewards through the
store they name: a single-use ``percent`` or ``amount`` code (Shopify discount code, Stripe
promotion code) or a ``free_period`` on the recipient's Stripe subscription (providers/discounts).

The same worker takes a discount reward back after its referral was reversed
(actions/fulfilment.py queues it): an unused code is switched off, a used one (or a free period
already applied) is recorded as the loss, once, under the same lease and backoff.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from referflow import serialize
from referflow.actions.common import SYSTEM, ProgramContext, load_program, reward_recipient
from referflow.actions.events import emit
from referflow.actions.experiments import variant_rewards
from referflow.actions.fulfilment import (
    plan_rewards,
    planned_sides,
    settle_voided,
    want_back,
    wants_back,
)
from referflow.actions.giftcards import issue_gift_card
from referflow.actions.lifecycle import complete_if_paid, lock_referral
from referflow.actions.offers import store_discounts
from referflow.actions.providers import credentials
from referflow.domain import referral as states
from referflow.domain.codes import gift_card_code_tail
from referflow.domain.program import DISCOUNT_TYPES, ProgramConfig
from referflow.domain.rewards import CODES, Outcome
from referflow.domain.timeutil import utcnow
from referflow.errors import PermanentProviderError, RetryableProviderError
from referflow.providers import discounts, issuers
from referflow.services import Services
from referflow.storage import leases
from referflow.storage.models import (
    Advocate,
    Program,
    Referral,
    ReferralHistory,
    Reward,
    RewardStatus,
)

log = logging.getLogger("referflow.rewards")
PENDING, ISSUING, ISSUED, FAILED = (RewardStatus.PENDING, RewardStatus.ISSUING,
                                    RewardStatus.ISSUED, RewardStatus.FAILED)
BACKOFF = leases.STORE_BACKOFF


def due_rewards(session: Session, now: datetime, limit: int = 200) -> list[tuple[str, str]]:
    """Return (reward id, job generation) of rewards due to be issued (or whose issuer died)."""
    return leases.due(session, Reward, now, ISSUING, limit)


def fulfil_stranded_perks(session: Session, secret: str, now: datetime | None = None,
                          limit: int = 200) -> int:
    """Fulfil the perks of referrals approved before perks were fulfilled; return how many moved.

    Such a referral is approved with nothing committed and no reward row: nothing would ever
    move it to ``rewarded``. Its perks are granted now, as its approval would today, from the
    rules of the tier it was approved in. Idempotent: a referral that has its rows is left alone.
    """
    now = now or utcnow()
    moved = 0
    # A subquery per program (not a join): the (program_id, status, ...) index finds each
    # program's approved referrals. The indexes that lead with status are partial
    # (models.only_set): they do not serve a status alone.
    first = (_STRANDED.with_only_columns(Referral.id).where(Referral.program_id == Program.id)
             .limit(1).scalar_subquery())
    for program_id in list(session.scalars(select(Program.id).where(first.is_not(None))
                                           .limit(limit))):
        program = session.get(Program, program_id)
        config = ProgramConfig.from_dict(program.config) if program else None
        if program is not None and config is not None and _owes_perks(config):
            ctx = ProgramContext(program, config, secret)
            for referral in _stranded(session, ctx.id, limit - moved):
                moved += _fulfil_stranded(session, ctx, referral, now)
        if moved >= limit:
            break
    session.rollback()  # end the read: the next tick starts afresh
    return moved


def _owes_perks(config: ProgramConfig) -> bool:
    rules = [config.advocate_reward, config.friend_reward,
             *(t.advocate_reward for t in config.tiers if t.advocate_reward)]
    return any(r.type == "non_cash" for r in rules)


# Approved, nothing committed, no reward row: nothing would ever move such a referral on.
_STRANDED = select(Referral).where(
    Referral.status == states.APPROVED, func.coalesce(Referral.advocate_reward, 0) == 0,
    func.coalesce(Referral.friend_reward, 0) == 0, ~exists().where(Reward.referral_id == Referral.id))


def _stranded(session: Session, program_id: str, limit: int) -> list[Referral]:
    return list(session.scalars(_STRANDED.where(Referral.program_id == program_id)
                                .order_by(Referral.approved_at, Referral.id).limit(max(limit, 0))))


def _fulfil_stranded(session: Session, ctx: ProgramContext, referral: Referral,
                     now: datetime) -> int:
    rules = ctx.config.rewards_for(_approved_in_tier(session, referral),
                                   variant_rewards(session, referral))
    if not any(r.type == "non_cash" for r in rules.values()):
        return 0  # earns nothing to fulfil: left as it is, without taking a lock
    lock_referral(session, referral)  # a second sweeper waits here, then finds the rows
    if referral.status != states.APPROVED or planned_sides(session, referral.id):
        session.rollback()
        return 0
    try:
        plan_rewards(session, ctx, referral, now, rules)
        moved = complete_if_paid(session, ctx, referral, SYSTEM, {})
        session.commit()
    except IntegrityError:  # planned meanwhile by another process
        session.rollback()
        return 0
    return int(moved)


def _approved_in_tier(session: Session, referral: Referral) -> str | None:
    data = session.scalar(select(ReferralHistory.data).where(
        ReferralHistory.referral_id == referral.id,
        ReferralHistory.to_status == states.APPROVED)
        .order_by(ReferralHistory.id.desc()).limit(1)) or {}
    tier = data.get("tier")
    return tier if isinstance(tier, str) else None


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
        if wants_back(reward):
            return _take_back(session, services, ctx, reward, referral)
        if reward.issuer == "ledger":
            return _issue_on_ledger(session, ctx, reward, referral)
        if reward.kind in DISCOUNT_TYPES:
            result = _issue_discount(session, services, reward, referral)
        else:
            result = _issuer(session, services, reward).issue(_request(session, ctx, reward,
                                                                       referral))
    except RetryableProviderError as exc:
        return _retry(session, reward, _without_codes(services, reward, str(exc)),
                      exc.retry_after, now)
    except PermanentProviderError as exc:
        return _fail(session, ctx, reward, _without_codes(services, reward, str(exc)))
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


def _discount(reward: Reward) -> discounts.Discount:
    return discounts.Discount(
        kind=reward.kind, currency=reward.currency, percent=(reward.details or {}).get("percent"),
        amount=reward.amount or None, single_use=True, ends_at=reward.expires_at)


def _store(session: Session, services: Services,
           reward: Reward) -> discounts.StripeDiscounts | discounts.ShopifyDiscounts:
    return store_discounts(session, services.settings, reward.program_id, "stripe"
                           if reward.kind == "free_period" else (reward.details or {})["provider"])


def _discount_code(secret: str, reward: Reward) -> str:
    """The code of a discount reward, the same on every attempt (derived from the reward)."""
    return issuers.derived_code(secret, "discount-reward", reward.id, 16).upper()


def _code_request(services: Services, reward: Reward) -> discounts.DiscountCode:
    """What the store is asked to make for a discount reward: its code and its terms."""
    code = _discount_code(services.settings.secret_key, reward)
    return discounts.DiscountCode(key=reward.id, code=code,
                                  title=f"Referral reward ({reward.side})",
                                  starts_at=reward.created_at, discount=_discount(reward))


def _issue_discount(session: Session, services: Services, reward: Reward,
                    referral: Referral) -> issuers.IssueResult:
    """Issue a discount reward: a single-use code, or a free period on the subscription."""
    store = _store(session, services, reward)
    if reward.kind == "free_period":
        assert isinstance(store, discounts.StripeDiscounts)
        applied = store.free_period(reward.id, _recipient(session, reward, referral) or "",
                                    _discount(reward), f"Referral reward ({reward.side})")
        reward.details = {**(reward.details or {}), "coupon": applied.coupon_id}
        return issuers.IssueResult(applied.external_id, None)  # the subscription it is on
    created = store.create(_code_request(services, reward))
    return issuers.IssueResult(created.external_id, created.code)


def _take_back(session: Session, services: Services, ctx: ProgramContext, reward: Reward,
               referral: Referral) -> str:
    """Take back a reversed referral's discount reward: switch an unused code off, else record
    it used (a free period already applied stays on the subscription: it is the loss)."""
    store = _store(session, services, reward)
    if reward.kind == "free_period":
        assert isinstance(store, discounts.StripeDiscounts)
        applied = store.free_period_on(reward.id, _recipient(session, reward, referral) or "")
        outcome = Outcome.USED if applied else Outcome.NOT_ISSUED
    else:
        made = discounts.Created(reward.external_id, reward.code or "") if reward.external_id \
            else store.find(_code_request(services, reward))  # an attempt never heard back
        outcome = Outcome.NOT_ISSUED if made is None else \
            Outcome.USED if store.used(made) else Outcome.DISABLED
        if outcome == Outcome.DISABLED:
            assert made is not None
            store.disable(made, reward.id)
    reward.attempts += 1
    settle_voided(session, ctx, reward, referral, SYSTEM, outcome, utcnow())
    session.commit()
    return str(reward.status)


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
        # The outbox and the history keep the code's tail only (serialize.reward):
        # events.delivered_payload adds the code when the event is sent.
        emit(session, ctx.id, "reward.issued", {
            "issuer": reward.issuer, "reward": _dump(reward),
            "recipient": reward_recipient(session, reward.side, referral.id, referral.advocate_id)})
        # Both sides' jobs may finish at once: the second waits here and sees the first's reward.
        # A reversal meanwhile left this reward to us (it was being issued): take it back now.
        lock_referral(session, referral)
        if referral.status == states.REVERSED and reward.kind in DISCOUNT_TYPES:
            want_back(reward, utcnow())
        complete_if_paid(session, ctx, referral, SYSTEM, {r.side: _dump(r) for r in session.scalars(
            select(Reward).where(Reward.referral_id == referral.id, Reward.status == ISSUED))})
    session.commit()
    return ISSUED


def _without_codes(services: Services, reward: Reward, error: str) -> str:
    """A provider's refusal may repeat the code it was asked to create (Shopify: "code must be
    unique"); the error is stored and sent in reward.failed, so the code keeps its tail only."""
    secret = services.settings.secret_key
    if reward.kind in CODES:
        tried = _discount_code(secret, reward)
    elif reward.issuer == issuers.ShopifyGiftCardIssuer.name:
        tried = issuers.shopify_card_code(secret, reward.id)
    else:
        return error
    return re.sub(re.escape(tried), f"····{gift_card_code_tail(tried)}", error, flags=re.IGNORECASE)


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
