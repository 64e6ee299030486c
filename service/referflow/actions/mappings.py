"""Provider events -> referral actions: one small handler per (provider, event type).

| provider | event | action |
|---|---|---|
| stripe | checkout.session.completed | claim (code: client_reference_id or metadata.referral_code) |
| stripe | customer.created | claim (code: metadata.referral_code) |
| stripe | invoice.paid | qualify first_paid_invoice (amount_paid) |
| stripe | charge.succeeded | remember the charge; card fingerprint -> same_payment_method |
| stripe | charge.refunded, refund.created | reverse (refund) |
| stripe | charge.dispute.created | reverse (chargeback) and flag |
| shopify | customers/create | claim (code: tag ``referral:CODE`` or note ``referral_code: CODE``) |
| shopify | orders/paid | claim (discount code or note attribute) and qualify first_order |
| shopify | refunds/create | reverse (refund) |
| hubspot | contact.creation / contact.propertyChange(referral_code) | claim |
| hubspot | deal.propertyChange(dealstage = closed won) | qualify each associated contact |
| klaviyo | unsubscribe / spam / suppression topics | suppress referral messaging |
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from referflow.actions.common import Actor, ProgramContext, move, reason
from referflow.actions.customers import import_customers
from referflow.actions.ingress import Waiting, customer_of, remember
from referflow.actions.referrals import claim_referral, qualify_referral, reverse_referral
from referflow.domain import referral as states
from referflow.domain.emails import normalise_email
from referflow.domain.hashing import keyed_hash
from referflow.domain.timeutil import to_rfc3339
from referflow.providers.issuers import ZERO_DECIMAL
from referflow.storage.models import IdentityMark, Referral, Suppression

Outcome = dict[str, Any]
Handler = Callable[[Session, ProgramContext, dict[str, Any], Actor], Outcome]


def _ignored(why: str) -> Outcome:
    return {"ignored": why}


def _referral(session: Session, ctx: ProgramContext, friend_id: str) -> Referral | None:
    return session.scalar(select(Referral).where(Referral.program_id == ctx.id,
                                                 Referral.friend_external_id == friend_id))


def _claim(session: Session, ctx: ProgramContext, actor: Actor, code: str | None,
           friend_id: str | None, email: str | None, **context: Any) -> Outcome:
    if not code:
        return _ignored("no_referral_code")
    if not friend_id or not email:
        return _ignored("no_customer_or_email")
    body: dict[str, Any] = {"code": code, "friend": {"external_id": friend_id, "email": email}}
    if context:
        body["context"] = context
    referral, created = claim_referral(session, ctx, body, actor)
    return {"action": "claim", "referral_id": referral.id, "status": referral.status,
            "created": created}


def _qualify(session: Session, ctx: ProgramContext, actor: Actor, friend_id: str,
             event: dict[str, Any]) -> Outcome:
    referral = _referral(session, ctx, friend_id)
    if referral is None:
        raise Waiting(friend_id, f"a claim for customer {friend_id}")
    done = qualify_referral(session, ctx, {"referral_id": referral.id, "event": event}, actor)
    return {"action": "qualify", "referral_id": done.id, "status": done.status}


def _reverse(session: Session, ctx: ProgramContext, actor: Actor, friend_id: str, why: str,
             event_id: str, occurred_at: str) -> Outcome:
    referral = _referral(session, ctx, friend_id)
    if referral is None:
        raise Waiting(friend_id, f"a claim for customer {friend_id}")
    if referral.status in (states.REVERSED, states.REJECTED):
        return _ignored(f"referral_{referral.status}")
    done = reverse_referral(session, ctx, referral.id, {
        "reason": why, "event": {"id": event_id, "occurred_at": occurred_at}}, actor)
    return {"action": "reverse", "referral_id": done.id, "status": done.status}


def _ts(unix: int | None) -> str:
    return to_rfc3339(datetime.fromtimestamp(unix or 0, tz=UTC)) or ""


def minor_units(amount: str | int | float | None, currency: str) -> int:
    """Convert a provider's decimal amount ("199.90") to integer minor units."""
    try:
        value = Decimal(str(amount if amount is not None else "0"))
    except InvalidOperation:
        return 0
    return int(value if currency.upper() in ZERO_DECIMAL else (value * 100).quantize(Decimal(1)))


# -- Stripe -----------------------------------------------------------------------------------

def stripe_checkout_completed(s: Session, ctx: ProgramContext, e: dict, actor: Actor) -> Outcome:
    obj = e["data"]["object"]
    customer = obj.get("customer")
    if customer:
        remember(s, ctx.id, "stripe", customer, obj.get("payment_intent"))
    code = obj.get("client_reference_id") or (obj.get("metadata") or {}).get("referral_code")
    email = (obj.get("customer_details") or {}).get("email") or obj.get("customer_email")
    return _claim(s, ctx, actor, code, customer, email)


def stripe_customer_created(s: Session, ctx: ProgramContext, e: dict, actor: Actor) -> Outcome:
    obj = e["data"]["object"]
    return _claim(s, ctx, actor, (obj.get("metadata") or {}).get("referral_code"), obj.get("id"),
                  obj.get("email"))


def stripe_invoice_paid(s: Session, ctx: ProgramContext, e: dict, actor: Actor) -> Outcome:
    obj = e["data"]["object"]
    customer = obj.get("customer")
    if not customer or not obj.get("amount_paid"):
        return _ignored("no_customer_or_nothing_paid")
    remember(s, ctx.id, "stripe", customer, obj.get("charge"), obj.get("payment_intent"))
    s.commit()
    paid_at = (obj.get("status_transitions") or {}).get("paid_at") or e.get("created")
    return _qualify(s, ctx, actor, customer, {
        "id": obj["id"], "type": "first_paid_invoice", "amount": int(obj["amount_paid"]),
        "currency": str(obj.get("currency", "")).upper(), "occurred_at": _ts(paid_at)})


def stripe_charge_succeeded(s: Session, ctx: ProgramContext, e: dict, actor: Actor) -> Outcome:
    obj = e["data"]["object"]
    customer = obj.get("customer")
    if not customer:
        return _ignored("no_customer")
    remember(s, ctx.id, "stripe", customer, obj.get("id"), obj.get("payment_intent"))
    card = (obj.get("payment_method_details") or {}).get("card") or {}
    outcome = _payment_fingerprint(s, ctx, actor, customer, card.get("fingerprint"))
    s.commit()
    return outcome


def _payment_fingerprint(s: Session, ctx: ProgramContext, actor: Actor, customer: str,
                         fingerprint: str | None) -> Outcome:
    referral = _referral(s, ctx, customer)
    if referral is None or not fingerprint:
        return {"action": "remember_charge"}
    key = keyed_hash(ctx.secret, "payment", fingerprint)
    shared = s.scalar(select(IdentityMark.subject).where(
        IdentityMark.advocate_id == referral.advocate_id, IdentityMark.kind == "payment",
        IdentityMark.key == key, (IdentityMark.referral_id != referral.id)
        | IdentityMark.referral_id.is_(None)).limit(1))
    s.add(IdentityMark(program_id=ctx.id, advocate_id=referral.advocate_id, subject="friend",
                       referral_id=referral.id, kind="payment", key=key))
    if shared and referral.status in (states.PENDING, states.HELD):
        why = reason("same_payment_method", "The friend paid with the payment method of the "
                     f"{'advocate' if shared == 'advocate' else 'an earlier friend'}.")
        referral.reasons = [*referral.reasons, why]
        move(s, ctx, referral, states.IN_REVIEW, "signal_after_claim", actor, reasons=[why])
        return {"action": "review", "referral_id": referral.id, "signal": "same_payment_method"}
    return {"action": "remember_charge", "referral_id": referral.id}


def stripe_charge_refunded(s: Session, ctx: ProgramContext, e: dict, actor: Actor) -> Outcome:
    obj = e["data"]["object"]
    if not obj.get("customer"):
        return _ignored("no_customer")
    return _reverse(s, ctx, actor, obj["customer"], "refund", e["id"], _ts(e.get("created")))


def stripe_refund_created(s: Session, ctx: ProgramContext, e: dict, actor: Actor) -> Outcome:
    obj = e["data"]["object"]
    ref = obj.get("charge") or obj.get("payment_intent")
    if not ref:
        return _ignored("no_charge")
    customer = customer_of(s, ctx.id, "stripe", ref)
    return _reverse(s, ctx, actor, customer, "refund", e["id"], _ts(obj.get("created")))


def stripe_dispute_created(s: Session, ctx: ProgramContext, e: dict, actor: Actor) -> Outcome:
    obj = e["data"]["object"]
    customer = customer_of(s, ctx.id, "stripe", obj.get("charge") or obj.get("payment_intent"))
    return _reverse(s, ctx, actor, customer, "chargeback", e["id"], _ts(obj.get("created")))


# -- Shopify ----------------------------------------------------------------------------------

def _shopify_code_in_customer(customer: dict) -> str | None:
    for tag in str(customer.get("tags") or "").split(","):
        name, _, value = tag.strip().partition(":")
        if name.strip().lower() in ("referral", "ref", "referral_code") and value.strip():
            return value.strip()
    for line in str(customer.get("note") or "").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "referral_code" and value.strip():
            return value.strip()
    return None


def shopify_customer_created(s: Session, ctx: ProgramContext, c: dict, actor: Actor) -> Outcome:
    return _claim(s, ctx, actor, _shopify_code_in_customer(c), str(c.get("id") or ""),
                  c.get("email"))


def _shopify_code_in_order(order: dict) -> str | None:
    for attr in order.get("note_attributes") or []:
        if str(attr.get("name", "")).lower() in ("referral_code", "ref") and attr.get("value"):
            return str(attr["value"])
    codes = [d.get("code") for d in order.get("discount_codes") or [] if d.get("code")]
    return codes[0] if codes else None


def shopify_order_paid(s: Session, ctx: ProgramContext, order: dict, actor: Actor) -> Outcome:
    customer = order.get("customer") or {}
    friend = str(customer.get("id") or "")
    if not friend:
        return _ignored("guest_checkout")
    remember(s, ctx.id, "shopify", friend, str(order["id"]))
    repeat = int(customer.get("orders_count") or 0) > 1
    if repeat:  # an earlier order seen: a known customer from now on (the claim rules check it)
        import_customers(s, ctx, [{"external_id": friend}], source="shopify")
    s.commit()
    code = _shopify_code_in_order(order)
    outcome: Outcome = {}
    if code and _referral(s, ctx, friend) is None:
        claimed = _claim(s, ctx, actor, code, friend, order.get("email") or customer.get("email"),
                         existing_customer=repeat)
        if claimed.get("ignored"):
            return claimed
        outcome["claim"] = claimed
    currency = str(order.get("currency") or ctx.config.currency).upper()
    outcome.update(_qualify(s, ctx, actor, friend, {
        "id": f"order:{order['id']}", "type": "repeat_order" if repeat else "first_order",
        "amount": minor_units(order.get("total_price"), currency), "currency": currency,
        "occurred_at": order.get("processed_at") or order.get("created_at")}))
    return outcome


def shopify_refund_created(s: Session, ctx: ProgramContext, r: dict, actor: Actor) -> Outcome:
    customer = customer_of(s, ctx.id, "shopify", str(r.get("order_id")))
    return _reverse(s, ctx, actor, customer, "refund", f"refund:{r.get('id')}",
                    r.get("created_at") or to_rfc3339(datetime.now(UTC)) or "")


# -- HubSpot ----------------------------------------------------------------------------------

def _hubspot(s: Session, ctx: ProgramContext) -> Any:
    from referflow.actions.providers import credentials
    from referflow.jobs.context import services
    from referflow.providers.hubspot import HubSpotClient

    (token,) = credentials(s, ctx.id, "hubspot", "access_token")
    return HubSpotClient(token, services().settings.hubspot_api_base)


def hubspot_contact(s: Session, ctx: ProgramContext, e: dict, actor: Actor) -> Outcome:
    if e["subscriptionType"] == "contact.propertyChange" and e.get("propertyName") != "referral_code":
        return _ignored("other_property")
    props = _hubspot(s, ctx).contact(str(e["objectId"]))
    code = e.get("propertyValue") if e.get("propertyName") == "referral_code" else None
    return _claim(s, ctx, actor, code or props.get("referral_code"), str(e["objectId"]),
                  props.get("email"))


def hubspot_deal(s: Session, ctx: ProgramContext, e: dict, actor: Actor) -> Outcome:
    from referflow.actions.providers import settings_of

    won = settings_of(s, ctx.id, "hubspot").get("closed_won_stage", "closedwon")
    if e.get("propertyName") != "dealstage" or e.get("propertyValue") != won:
        return _ignored("not_closed_won")
    props, contacts = _hubspot(s, ctx).deal(str(e["objectId"]))
    currency = str(props.get("deal_currency_code") or ctx.config.currency).upper()
    closed = props.get("closedate") or _ts(int(e.get("occurredAt", 0)) // 1000)
    results = []
    for contact in contacts:
        try:
            results.append(_qualify(s, ctx, actor, contact, {
                "id": f"deal:{e['objectId']}", "type": "first_order",
                "amount": minor_units(props.get("amount"), currency), "currency": currency,
                "occurred_at": closed}))
        except Waiting:
            continue  # only referred contacts qualify; the others are not ours
    return {"action": "qualify", "results": results} if results else _ignored("no_referred_contact")


# -- Klaviyo ----------------------------------------------------------------------------------

CONSENT_WORDS = ("unsubscribe", "suppress", "spam", "consent")


def _find_email(value: Any) -> str | None:
    if isinstance(value, dict):
        if isinstance(value.get("email"), str):
            return value["email"]
        return next((e for v in value.values() if (e := _find_email(v))), None)
    if isinstance(value, list):
        return next((e for v in value if (e := _find_email(v))), None)
    return None


def klaviyo_consent(s: Session, ctx: ProgramContext, item: dict, actor: Actor) -> Outcome:
    topic = str(item.get("topic", "")).lower()
    if not any(word in topic for word in CONSENT_WORDS):
        return _ignored("not_a_consent_topic")
    email = _find_email(item.get("payload"))
    if not email:
        return _ignored("no_email")
    key = keyed_hash(ctx.secret, "email", normalise_email(email))
    if s.scalar(select(Suppression.id).where(Suppression.program_id == ctx.id,
                                             Suppression.email_key == key)) is None:
        s.add(Suppression(program_id=ctx.id, email_key=key, reason=topic[:100], source="klaviyo"))
    s.commit()
    return {"action": "suppress"}


class _AnyTopic(dict):
    """Klaviyo topics are dynamic: every Klaviyo topic goes to the consent handler."""

    def __missing__(self, key: tuple[str, str]) -> Handler:
        if key[0] == "klaviyo":
            return klaviyo_consent
        raise KeyError(key)


HANDLERS: dict[tuple[str, str], Handler] = _AnyTopic({
    ("stripe", "checkout.session.completed"): stripe_checkout_completed,
    ("stripe", "customer.created"): stripe_customer_created,
    ("stripe", "invoice.paid"): stripe_invoice_paid,
    ("stripe", "charge.succeeded"): stripe_charge_succeeded,
    ("stripe", "charge.refunded"): stripe_charge_refunded,
    ("stripe", "refund.created"): stripe_refund_created,
    ("stripe", "charge.dispute.created"): stripe_dispute_created,
    ("shopify", "customers/create"): shopify_customer_created,
    ("shopify", "orders/paid"): shopify_order_paid,
    ("shopify", "refunds/create"): shopify_refund_created,
    ("hubspot", "contact.creation"): hubspot_contact,
    ("hubspot", "contact.propertyChange"): hubspot_contact,
    ("hubspot", "deal.propertyChange"): hubspot_deal,
})
