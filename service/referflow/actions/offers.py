"""The friend's offer at checkout: a discount in the store for each referral code.

When a link is made (createLink, an ask's link), the code gets a ``StoreDiscount`` row, pending;
a worker creates the discount in the store with the referral code as its discount code
(providers/discounts.py), exactly once: the row is leased while the store is called, an outage
is retried on the store backoff, and the calls are idempotent (Stripe keys, Shopify's lookup
before create). A refusal settles the row ``failed`` with the store's reason, shown on the link
and announced as ``friend_offer.failed``. Deactivating a code switches its discount off the same
way. Missing provider credentials are waited for (the row stays pending, the reason says so).

A checkout that used a code is mapped back to the referral code here (actions/mappings.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from referflow.actions.common import ProgramContext
from referflow.actions.events import emit
from referflow.actions.providers import credentials
from referflow.config import Settings
from referflow.domain import checkout
from referflow.domain.codes import new_id, normalise_code
from referflow.domain.program import FriendOffer
from referflow.domain.timeutil import utcnow
from referflow.errors import PermanentProviderError, RetryableProviderError
from referflow.providers import discounts
from referflow.services import Services
from referflow.storage import leases
from referflow.storage.models import Advocate, ReferralCode, StoreDiscount, StoreDiscountStatus

log = logging.getLogger("referflow.offers")
PENDING, CREATING, ACTIVE = (StoreDiscountStatus.PENDING, StoreDiscountStatus.CREATING,
                             StoreDiscountStatus.ACTIVE)
FAILED, DISABLED = StoreDiscountStatus.FAILED, StoreDiscountStatus.DISABLED


def resolve_offer(session: Session, ctx: ProgramContext, code: ReferralCode) -> FriendOffer | None:
    """Return the offer a code's friends get (None: none): the one place it is decided.

    The program's ``friend_offer``; an experiment's variant may replace it here.
    """
    return ctx.config.friend_offer


def plan_offer(session: Session, ctx: ProgramContext, code: ReferralCode,
               now: datetime | None = None) -> StoreDiscount | None:
    """Give an active code its store discount row (once), in the caller's transaction; return
    it (None when the code gets no offer)."""
    offer = resolve_offer(session, ctx, code) if code.active else None
    if offer is None:
        return None
    existing = offer_of(session, code.code)
    if existing is not None:
        return existing
    now = now or utcnow()
    row = StoreDiscount(
        id=new_id("sd"), program_id=ctx.id, code=code.code, advocate_id=code.advocate_id,
        provider=offer.provider, terms={**offer.to_dict(), "currency": ctx.config.currency},
        status=PENDING, wanted=ACTIVE, attempts=0, next_attempt_at=now,
        expires_at=now + timedelta(days=offer.expiry_days) if offer.expiry_days else None,
        created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    return row


def offer_of(session: Session, code: str) -> StoreDiscount | None:
    """Return a code's store discount row, if it has one."""
    return session.scalar(select(StoreDiscount).where(StoreDiscount.code == code))


def view(row: StoreDiscount | None) -> dict[str, Any] | None:
    """Return the offer as the link shows it: where, which code, how it stands and why."""
    if row is None:
        return None
    return {"status": row.status, "reason": row.reason, "provider": row.provider,
            "code": row.code}


def disable_offer(session: Session, code: ReferralCode) -> None:
    """Switch a deactivated code's discount off (in the background), in the caller's transaction.

    A live discount is queued to be switched off; one still being made is switched off when it
    is made; one the store refused has nothing to switch off.
    """
    now = utcnow()
    session.execute(update(StoreDiscount).where(StoreDiscount.code == code.code).values(
        wanted=DISABLED, updated_at=now, next_attempt_at=now,
        status=case((StoreDiscount.status == ACTIVE, PENDING),
                    (StoreDiscount.status == FAILED, DISABLED), else_=StoreDiscount.status))
        .execution_options(synchronize_session=False))


# -- the worker ----------------------------------------------------------------------------------

def due_offers(session: Session, now: datetime, limit: int = 200) -> list[tuple[str, str]]:
    """Return (row id, job generation) of discounts due to be made or switched off."""
    return leases.due(session, StoreDiscount, now, CREATING, limit)


def store_discounts(session: Session, settings: Settings, program_id: str,
                    provider: str) -> discounts.StripeDiscounts | discounts.ShopifyDiscounts:
    """Return the program's discount client for a store (its credentials must be configured)."""
    if provider == "stripe":
        (api_key,) = credentials(session, program_id, "stripe", "api_key")
        return discounts.StripeDiscounts(api_key, settings.stripe_api_base)
    shop, token = credentials(session, program_id, "shopify", "shop", "access_token")
    return discounts.ShopifyDiscounts(shop, token, settings.shopify_api_base)


def sync_offer(session: Session, services: Services, offer_id: str) -> str | None:
    """Make the store match the row: create its discount, or switch it off; record the result."""
    now = utcnow()
    row = leases.take(session, StoreDiscount, offer_id, now, services.settings.job_lease_seconds,
                      CREATING)
    if row is None:
        return None
    disabling = row.wanted == DISABLED
    try:
        try:
            store = store_discounts(session, services.settings, row.program_id, row.provider)
        except PermanentProviderError as exc:  # not configured yet: wait for the credentials
            raise RetryableProviderError(str(exc)) from exc
        if disabling:
            return _switch_off(session, store, row, now)
        created = store.create(_request(row))
    except RetryableProviderError as exc:
        row.reason, row.updated_at = str(exc)[:500], now
        leases.retry_later(row, now, leases.STORE_BACKOFF, exc.retry_after)
        session.commit()
        log.warning("friend offer %s: store unavailable, retrying", row.id)
        return PENDING
    except PermanentProviderError as exc:
        return _refused(session, row, str(exc), "disable" if disabling else "create", now)
    row.external_id, row.coupon_id, row.reason = created.external_id, created.coupon_id, None
    return _settle(session, row, ACTIVE, now)


def _request(row: StoreDiscount) -> discounts.DiscountCode:
    terms = row.terms
    kind, value = terms["type"], terms.get("value")
    return discounts.DiscountCode(
        key=row.id, code=row.code, title=f"Referral offer {row.code}", starts_at=row.created_at,
        discount=discounts.Discount(
            kind=kind, currency=terms["currency"], percent=value if kind == "percent" else None,
            amount=value if kind == "amount" else None,
            minimum_order=terms.get("minimum_order") or 0,
            once_per_customer=terms.get("once_per_customer", True), first_time_only=True,
            ends_at=row.expires_at))


def _switch_off(session: Session, store: discounts.StripeDiscounts | discounts.ShopifyDiscounts,
                row: StoreDiscount, now: datetime) -> str:
    made = discounts.Created(row.external_id, row.code, row.coupon_id) if row.external_id \
        else store.find(_request(row))  # an attempt that never heard back may have made it
    if made is not None:
        store.disable(made, row.id)
        row.external_id, row.coupon_id = made.external_id, made.coupon_id
    row.reason = None
    return _settle(session, row, DISABLED, now)


def _settle(session: Session, row: StoreDiscount, status: str, now: datetime) -> str:
    """Release the lease with ``status``; a code deactivated meanwhile is queued to switch off."""
    row.attempts += 1
    row.lease_until, row.updated_at, row.next_attempt_at = None, now, now
    session.flush()
    final: Any = status if status != ACTIVE else case(
        (StoreDiscount.wanted == DISABLED, PENDING), else_=ACTIVE)
    session.execute(update(StoreDiscount).where(StoreDiscount.id == row.id).values(status=final)
                    .execution_options(synchronize_session=False))
    session.commit()
    session.refresh(row)
    return row.status


def _refused(session: Session, row: StoreDiscount, reason: str, action: str,
             now: datetime) -> str:
    row.reason = reason[:500]
    status = _settle(session, row, FAILED, now)
    advocate = session.get(Advocate, row.advocate_id)
    emit(session, row.program_id, "friend_offer.failed", {
        "friend_offer": view(row), "action": action, "retryable": False,
        "advocate": {"id": row.advocate_id,
                     "external_id": advocate.external_id if advocate else None}})
    session.commit()
    return status


# -- checkouts that used a code ------------------------------------------------------------------

def checkout_code(session: Session, ctx: ProgramContext, named: str | None,
                  codes: Iterable[str | None]) -> str | None:
    """Return the referral code of a checkout that named ``named`` and used the discount
    ``codes`` (claimReferral's ``codes``): domain/checkout.py decides, this looks the codes up."""
    return checkout.choose(named, codes,
                           lambda raw: referral_code_among(session, ctx, [raw]) is not None)


def referral_code_among(session: Session, ctx: ProgramContext, codes: Iterable[str]) -> str | None:
    """Return the first of a checkout's discount codes that is a referral code of the program."""
    for raw in codes:
        code = session.get(ReferralCode, normalise_code(raw)[:32])
        if code is not None and code.program_id == ctx.id:
            return code.code
    return None


def code_of_promotion(session: Session, ctx: ProgramContext, promotion_code_id: str) -> str | None:
    """Return the referral code behind one of our Stripe promotion codes (by its id)."""
    return session.scalar(select(StoreDiscount.code).where(
        StoreDiscount.program_id == ctx.id, StoreDiscount.provider == "stripe",
        StoreDiscount.external_id == promotion_code_id))


def stripe_referral_code(session: Session, ctx: ProgramContext, settings: Settings, kind: str,
                         obj: dict[str, Any], discounted: bool) -> str | None:
    """Return the referral code whose promotion code a Stripe checkout session or invoice used.

    Our promotion codes are known by id; a payload that names only discount ids (an invoice from
    API basil on), or none while it was discounted (a checkout session before API 2025-01-27), is
    read from Stripe (when the program has a Stripe API key). ``kind``: checkout_session or
    invoice.
    """
    entries = obj.get("discounts")
    single = obj.get("discount")  # an invoice's one discount, as an object (before API basil)
    inline, opaque = _inline_promotions([single, *(entries or [])] if single else entries or [])
    code = _referral_code_of(session, ctx, inline)
    if code or not obj.get("id") or not (opaque or (entries is None and discounted)):
        return code
    try:
        store = store_discounts(session, settings, ctx.id, "stripe")
        assert isinstance(store, discounts.StripeDiscounts)
        fetched = store.promotion_codes_of(kind, str(obj["id"]))
    except PermanentProviderError as exc:  # no key, or Stripe does not know it: no code
        log.info("stripe %s %s: promotion codes not read: %s", kind, obj.get("id"), exc)
        return None
    return _referral_code_of(session, ctx, fetched)


def _inline_promotions(entries: list[Any]) -> tuple[list[tuple[str, str | None]], bool]:
    """Return the (id, code) of the promotion codes a payload names, and whether it names
    discounts only by their ids."""
    found: list[tuple[str, str | None]] = []
    opaque = False
    for entry in entries:
        promo = entry.get("promotion_code") if isinstance(entry, dict) else None
        if isinstance(promo, dict) and isinstance(promo.get("id"), str):
            code = promo.get("code")
            found.append((promo["id"], code if isinstance(code, str) else None))
        elif isinstance(promo, str):
            found.append((promo, None))
        elif isinstance(entry, str):
            opaque = True
    return found, opaque


def _referral_code_of(session: Session, ctx: ProgramContext,
                      promotions: list[tuple[str, str | None]]) -> str | None:
    for promotion_id, _ in promotions:
        code = code_of_promotion(session, ctx, promotion_id)
        if code is not None:
            return code
    return referral_code_among(session, ctx, [c for _, c in promotions if c])


def views_of(session: Session, codes: list[str]) -> dict[str, dict[str, Any] | None]:
    """Return the offer view of each code (None: the code has no offer)."""
    rows = {r.code: r for r in session.scalars(select(StoreDiscount).where(
        StoreDiscount.code.in_(codes)))} if codes else {}
    return {code: view(rows.get(code)) for code in codes}
