"""Provider events -> referral actions: one small handler per (provider, event type).

| provider | event | action |
|---|---|---|
| stripe | checkout.session.completed | claim (client_reference_id, metadata.referral_code, promotion code) |
| stripe | customer.created | claim (code: metadata.referral_code) |
| stripe | invoice.paid | claim (its promotion code, if unclaimed); qualify first_paid_invoice (amount_paid) |
| stripe | charge.succeeded | remember the charge; card fingerprint -> same_payment_method |
| stripe | charge.refunded, refund.created | reverse (refund) |
| stripe | charge.dispute.created | reverse (chargeback) and flag |
| shopify | customers/create | claim (code: tag ``referral:CODE`` or note ``referral_code: CODE``) |
| shopify | orders/paid | claim (note attribute, or the discount code that is a referral code) and qualify first_order |
| shopify | refunds/create | reverse (refund) |
| hubspot | contact.creation / contact.propertyChange(referred_by_code) | claim |
| hubspot | deal.propertyChange(dealstage = closed won) | qualify each associated contact |
| hubspot | contact.propertyChange(hs_email_optout) | email consent withdrawn (true) or granted (false) |
| klaviyo | unsubscribe / spam / suppression topics | suppress; unsubscribe and spam withdraw email consent |

Each handler declares the shape of what it reads (``@reads``: a JSON Schema checked before it
acts; ids are bounded non-empty strings or integers, amounts integers or plain decimals, times
present), then converts its amounts exactly (domain/money.py) and keeps its times in range. An
event that does not fit raises ``InvalidEvent``: it settles at once with the reasons, never
retried, never truncated, never dated 1970. The bodies it builds for claim and qualify are
checked against the same published schemas as the API's.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from referflow.actions.common import Actor, ProgramContext, reason
from referflow.actions.consent import record_email_consent
from referflow.actions.customers import import_customers
from referflow.actions.event_shapes import (
    CURRENCY,
    DECIMAL,
    ID,
    NUMERIC_ID,
    RFC3339,
    TEXT,
    UNIX_TIME,
    Handler,
    InvalidEvent,
    Outcome,
    Payload,
    Shape,
    array_of,
    maybe,
    minor_units,
    obj,
    reads,
    rfc3339_time,
    unix_time,
)
from referflow.actions.offers import referral_code_among, stripe_referral_code
from referflow.actions.provider_refs import Waiting, customer_of, remember
from referflow.actions.providers import credentials, settings_of
from referflow.actions.referrals import (
    apply_late_signal,
    claim_referral,
    find_referral_of_friend,
    qualify_referral,
    reverse_referral,
)
from referflow.contract import SchemaStore
from referflow.domain import money
from referflow.domain import referral as states
from referflow.domain.emails import normalise_email
from referflow.domain.hashing import keyed_hash
from referflow.providers.hubspot import REFERRED_BY, HubSpotClient
from referflow.providers.issuers import from_stripe_amount
from referflow.providers.klaviyo import KlaviyoClient
from referflow.services import Services
from referflow.storage.models import (
    ConsentStatus,
    IdentityMark,
    ProviderConfig,
    ProviderRef,
    Suppression,
)

EMAIL_OPT_OUT = "hs_email_optout"  # HubSpot's "unsubscribed from all email" contact property
STRIPE_AMOUNT: Shape = {"type": "integer", "minimum": 0, "maximum": money.MAX_MINOR}


def stripe_event(*required: str, **fields: Shape) -> Shape:
    """Return the shape of a Stripe event whose ``data.object`` has these fields."""
    return obj("id", "created", "data", id=TEXT, created=UNIX_TIME,
               data=obj("object", object=obj(*required, **fields)))


def _stripe_minor(amount: int, currency: str, path: str) -> int:
    try:
        return from_stripe_amount(amount, currency)
    except ValueError as exc:
        raise InvalidEvent.at(path, str(exc)) from exc


@cache
def _schemas() -> SchemaStore:
    return SchemaStore()


def _check(schema: str, body: dict[str, Any]) -> None:
    problems = _schemas().errors(schema, body)
    if problems:
        raise InvalidEvent(problems)


# -- Actions ------------------------------------------------------------------------------------

def _ignored(why: str) -> Outcome:
    return {"ignored": why}


def _claim(session: Session, ctx: ProgramContext, actor: Actor, code: str | None,
           friend_id: str | None, email: str | None, **context: Any) -> Outcome:
    if not code:
        return _ignored("no_referral_code")
    if not friend_id or not email:
        return _ignored("no_customer_or_email")
    body: dict[str, Any] = {"code": code, "friend": {"external_id": friend_id, "email": email}}
    if context:
        body["context"] = context
    _check("claim-referral.request", body)
    referral, created = claim_referral(session, ctx, body, actor)
    return {"action": "claim", "referral_id": referral.id, "status": referral.status,
            "created": created}


def _qualify(session: Session, ctx: ProgramContext, actor: Actor, friend_id: str,
             event: dict[str, Any]) -> Outcome:
    _check("qualify-referral.request", {"friend_external_id": friend_id, "event": event})
    referral = find_referral_of_friend(session, ctx, friend_id)
    if referral is None:
        raise Waiting(friend_id, f"a claim for customer {friend_id}")
    done = qualify_referral(session, ctx, {"referral_id": referral.id, "event": event}, actor)
    return {"action": "qualify", "referral_id": done.referral.id,
            "status": done.referral.status, "outcome": done.outcome}


def _reverse(session: Session, ctx: ProgramContext, actor: Actor, friend_id: str, why: str,
             event_id: str, occurred_at: str, **refund: Any) -> Outcome:
    """Reverse a friend's referral; ``refund`` sizes a refund (amount, refunded_total, full,
    currency) for the program's ``refunds`` rule."""
    body = {"reason": why, "event": {"id": event_id, "occurred_at": occurred_at, **refund}}
    _check("reverse-referral.request", body)
    referral = find_referral_of_friend(session, ctx, friend_id)
    if referral is None:
        raise Waiting(friend_id, f"a claim for customer {friend_id}")
    if referral.status in (states.REVERSED, states.REJECTED):
        return _ignored(f"referral_{referral.status}")
    done = reverse_referral(session, ctx, referral.id, body, actor)
    return {"action": "reverse", "referral_id": done.referral.id,
            "status": done.referral.status, "outcome": done.outcome}


# -- Stripe -----------------------------------------------------------------------------------

METADATA = maybe(obj(referral_code=maybe(TEXT)))
# A discount's promotion code: an id, or the expanded object; a discount itself may be a "di_" id.
PROMOTION: Shape = {"type": ["string", "object", "null"], "minLength": 1, "maxLength": 190,
                    "properties": {"id": ID, "code": maybe(TEXT)}}
STRIPE_DISCOUNTS = array_of({"type": ["string", "object"], "minLength": 1, "maxLength": 190,
                             "properties": {"promotion_code": PROMOTION}})


@reads(stripe_event(id=ID, customer=maybe(ID), payment_intent=maybe(ID),
                    client_reference_id=maybe(TEXT), metadata=METADATA,
                    customer_email=maybe(TEXT), customer_details=maybe(obj(email=maybe(TEXT))),
                    discounts=STRIPE_DISCOUNTS,
                    total_details=maybe(obj(amount_discount=maybe(STRIPE_AMOUNT)))))
def stripe_checkout_completed(s: Session, ctx: ProgramContext, e: Payload, actor: Actor,
        svc: Services) -> Outcome:
    obj = e["data"]["object"]
    customer = obj.get("customer")
    if customer:
        remember(s, ctx.id, "stripe", customer, obj.get("payment_intent"))
    email = (obj.get("customer_details") or {}).get("email") or obj.get("customer_email")
    named = [c for c in (obj.get("client_reference_id"),
                         (obj.get("metadata") or {}).get("referral_code")) if c]
    code = referral_code_among(s, ctx, named) if named else None
    if code is None and customer and email:  # the friend's offer: the promotion code used
        discounted = bool((obj.get("total_details") or {}).get("amount_discount"))
        code = stripe_referral_code(s, ctx, svc.settings, "checkout_session", obj, discounted)
    return _claim(s, ctx, actor, code or (named[0] if named else None), customer, email)


@reads(stripe_event("id", id=ID, email=maybe(TEXT), metadata=METADATA))
def stripe_customer_created(s: Session, ctx: ProgramContext, e: Payload, actor: Actor,
        svc: Services) -> Outcome:
    obj = e["data"]["object"]
    return _claim(s, ctx, actor, (obj.get("metadata") or {}).get("referral_code"), obj["id"],
                  obj.get("email"))


@reads(stripe_event("id", "customer", "amount_paid", "currency", id=ID, customer=maybe(ID),
                    amount_paid=STRIPE_AMOUNT, currency=CURRENCY, charge=maybe(ID),
                    payment_intent=maybe(ID), customer_email=maybe(TEXT),
                    discounts=STRIPE_DISCOUNTS, discount=maybe(obj(promotion_code=PROMOTION)),
                    status_transitions=maybe(obj(paid_at=maybe(UNIX_TIME)))))
def stripe_invoice_paid(s: Session, ctx: ProgramContext, e: Payload, actor: Actor,
        svc: Services) -> Outcome:
    claimed = _claim_by_invoice_discount(s, ctx, e["data"]["object"], actor, svc)
    outcome = _qualify_invoice(s, ctx, e, actor)
    return {"claim": claimed, **outcome} if claimed else outcome


def _claim_by_invoice_discount(s: Session, ctx: ProgramContext, obj: Payload, actor: Actor,
                               svc: Services) -> Outcome | None:
    """Claim for the friend's offer used on a first invoice (a subscription made without
    Checkout, with the promotion code); nothing when the customer is claimed already."""
    customer, email = obj.get("customer"), obj.get("customer_email")
    if not customer or not email or not (obj.get("discounts") or obj.get("discount")) or \
            find_referral_of_friend(s, ctx, customer) is not None:
        return None
    code = stripe_referral_code(s, ctx, svc.settings, "invoice", obj, True)
    if code is None:
        return None
    claimed = _claim(s, ctx, actor, code, customer, email)
    return None if claimed.get("ignored") else claimed


def _qualify_invoice(s: Session, ctx: ProgramContext, e: Payload, actor: Actor) -> Outcome:
    obj = e["data"]["object"]
    customer, currency = obj["customer"], obj["currency"].upper()
    if not customer or not obj["amount_paid"]:
        return _ignored("no_customer_or_nothing_paid")
    amount = _stripe_minor(obj["amount_paid"], currency, "/data/object/amount_paid")
    paid_at = (obj.get("status_transitions") or {}).get("paid_at")
    occurred_at = (unix_time(paid_at, "/data/object/status_transitions/paid_at") if paid_at
                   else unix_time(e["created"], "/created"))
    remember(s, ctx.id, "stripe", customer, obj.get("charge"), obj.get("payment_intent"))
    s.commit()
    return _qualify(s, ctx, actor, customer, {
        "id": obj["id"], "type": "first_paid_invoice", "amount": amount, "currency": currency,
        "occurred_at": occurred_at,
        "payment_references": [r for r in (obj.get("charge"), obj.get("payment_intent")) if r]})


@reads(stripe_event("id", id=ID, customer=maybe(ID), payment_intent=maybe(ID),
                    payment_method_details=maybe(obj(card=maybe(obj(fingerprint=maybe(TEXT)))))))
def stripe_charge_succeeded(s: Session, ctx: ProgramContext, e: Payload, actor: Actor,
        svc: Services) -> Outcome:
    obj = e["data"]["object"]
    customer = obj.get("customer")
    if not customer:
        return _ignored("no_customer")
    remember(s, ctx.id, "stripe", customer, obj["id"], obj.get("payment_intent"))
    card = (obj.get("payment_method_details") or {}).get("card") or {}
    outcome = _payment_fingerprint(s, ctx, actor, customer, card.get("fingerprint"))
    s.commit()
    return outcome


def _payment_fingerprint(s: Session, ctx: ProgramContext, actor: Actor, customer: str,
                         fingerprint: str | None) -> Outcome:
    referral = find_referral_of_friend(s, ctx, customer)
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
        verdict = apply_late_signal(s, ctx, referral, why, actor)  # the program's policy decides
        return {"action": verdict, "referral_id": referral.id, "signal": "same_payment_method",
                "status": referral.status}
    return {"action": "remember_charge", "referral_id": referral.id}


@reads(stripe_event("amount_refunded", "currency", customer=maybe(ID),
                    amount_refunded=STRIPE_AMOUNT, currency=CURRENCY,
                    refunded=maybe({"type": "boolean"})))
def stripe_charge_refunded(s: Session, ctx: ProgramContext, e: Payload, actor: Actor,
        svc: Services) -> Outcome:
    obj = e["data"]["object"]
    customer = obj.get("customer")
    if not customer:
        return _ignored("no_customer")
    currency = obj["currency"].upper()
    total = _stripe_minor(obj["amount_refunded"], currency, "/data/object/amount_refunded")
    return _reverse(s, ctx, actor, customer, "refund", e["id"], unix_time(e["created"], "/created"),
                    refunded_total=total, currency=currency,
                    **({"full": obj["refunded"]} if obj.get("refunded") is not None else {}))


STRIPE_REFERENCED = stripe_event("created", charge=maybe(ID), payment_intent=maybe(ID),
                                 created=UNIX_TIME)


def _by_charge(s: Session, ctx: ProgramContext, e: Payload, actor: Actor, why: str,
               **refund: Any) -> Outcome:
    obj = e["data"]["object"]
    ref = obj.get("charge") or obj.get("payment_intent")
    if not ref:
        return _ignored("no_charge")
    occurred_at = unix_time(obj["created"], "/data/object/created")
    customer = customer_of(s, ctx.id, "stripe", ref)
    return _reverse(s, ctx, actor, customer, why, e["id"], occurred_at, **refund)


@reads(stripe_event("amount", "currency", amount=STRIPE_AMOUNT, currency=CURRENCY,
                    charge=maybe(ID), payment_intent=maybe(ID), created=UNIX_TIME))
def stripe_refund_created(s: Session, ctx: ProgramContext, e: Payload, actor: Actor,
        svc: Services) -> Outcome:
    obj = e["data"]["object"]
    currency = obj["currency"].upper()
    return _by_charge(s, ctx, e, actor, "refund", currency=currency,
                      amount=_stripe_minor(obj["amount"], currency, "/data/object/amount"))


@reads(STRIPE_REFERENCED)
def stripe_dispute_created(s: Session, ctx: ProgramContext, e: Payload, actor: Actor,
        svc: Services) -> Outcome:
    return _by_charge(s, ctx, e, actor, "chargeback")


# -- Shopify ----------------------------------------------------------------------------------

def _shopify_code_in_customer(customer: Payload) -> str | None:
    for tag in (customer.get("tags") or "").split(","):
        name, _, value = tag.strip().partition(":")
        if name.strip().lower() in ("referral", "ref", "referral_code") and value.strip():
            return value.strip()
    for line in (customer.get("note") or "").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "referral_code" and value.strip():
            return value.strip()
    return None


@reads(obj("id", id=NUMERIC_ID, email=maybe(TEXT), tags=maybe(TEXT), note=maybe(TEXT)))
def shopify_customer_created(s: Session, ctx: ProgramContext, c: Payload, actor: Actor,
        svc: Services) -> Outcome:
    return _claim(s, ctx, actor, _shopify_code_in_customer(c), str(c["id"]), c.get("email"))


def _shopify_code_in_order(order: Payload) -> str | None:
    for attr in order.get("note_attributes") or []:
        if str(attr.get("name")).lower() in ("referral_code", "ref") and attr.get("value"):
            return str(attr["value"])
    codes = [d["code"] for d in order.get("discount_codes") or [] if d.get("code")]
    return codes[0] if codes else None


def _shopify_referral_code(s: Session, ctx: ProgramContext, order: Payload) -> str | None:
    """The order's referral code: a note attribute, else the discount code that is a referral
    code (the friend's offer), else the first code (its claim then says why it is no referral)."""
    named = _shopify_code_in_order(order)
    codes = [d["code"] for d in order.get("discount_codes") or [] if d.get("code")]
    return referral_code_among(s, ctx, [named, *codes] if named else codes) or named


def _shopify_paid_at(order: Payload) -> str:
    for field in ("processed_at", "created_at"):  # processed_at is when it was paid for
        if order.get(field):
            return rfc3339_time(order[field], f"/{field}")
    raise InvalidEvent.at("/processed_at", "the order has neither processed_at nor created_at")


@reads(obj("id", "currency", "total_price", id=NUMERIC_ID, currency=CURRENCY, total_price=DECIMAL,
           processed_at=maybe(RFC3339), created_at=maybe(RFC3339), email=maybe(TEXT),
           customer=maybe(obj(id=maybe(NUMERIC_ID), email=maybe(TEXT),
                              orders_count=maybe({"type": "integer", "minimum": 0}))),
           note_attributes=array_of(obj(name=maybe(TEXT), value={"type": ["string", "number", "null"]})),
           discount_codes=array_of(obj(code=maybe(TEXT)))))
def shopify_order_paid(s: Session, ctx: ProgramContext, order: Payload, actor: Actor,
        svc: Services) -> Outcome:
    customer = order.get("customer") or {}
    friend = str(customer.get("id") or "")
    if not friend:
        return _ignored("guest_checkout")
    currency = order["currency"].upper()
    event = {"id": f"order:{order['id']}", "type": "first_order",
             "amount": minor_units(order["total_price"], currency, "/total_price"),
             "currency": currency, "occurred_at": _shopify_paid_at(order)}
    # A repeat order: an earlier order of this customer was seen here (Shopify's order webhooks
    # carry no order count since API 2022-07; older versions' ``orders_count`` is still read).
    repeat = (customer.get("orders_count") or 0) > 1 or s.scalar(select(ProviderRef.ref).where(
        ProviderRef.program_id == ctx.id, ProviderRef.provider == "shopify",
        ProviderRef.customer == friend, ProviderRef.ref != str(order["id"])).limit(1)) is not None
    remember(s, ctx.id, "shopify", friend, str(order["id"]))
    if repeat:  # a known customer from now on (the claim rules check it)
        import_customers(s, ctx, [{"external_id": friend}], source="shopify")
        event["type"] = "repeat_order"
    s.commit()
    code = _shopify_referral_code(s, ctx, order)
    outcome: Outcome = {}
    if code and find_referral_of_friend(s, ctx, friend) is None:
        claimed = _claim(s, ctx, actor, code, friend, order.get("email") or customer.get("email"),
                         existing_customer=repeat)
        if claimed.get("ignored"):
            return claimed
        outcome["claim"] = claimed
    outcome.update(_qualify(s, ctx, actor, friend, event))
    return outcome


@reads(obj("id", "order_id", "created_at", id=NUMERIC_ID, order_id=NUMERIC_ID, created_at=RFC3339,
           transactions=array_of(obj(kind=maybe(TEXT), status=maybe(TEXT), amount=maybe(DECIMAL),
                                     currency=maybe(CURRENCY)))))
def shopify_refund_created(s: Session, ctx: ProgramContext, r: Payload, actor: Actor,
        svc: Services) -> Outcome:
    occurred_at = rfc3339_time(r["created_at"], "/created_at")
    customer = customer_of(s, ctx.id, "shopify", str(r["order_id"]))
    refund: dict[str, Any] = {}
    returned = [(i, t) for i, t in enumerate(r.get("transactions") or [])
                if t.get("kind") == "refund" and t.get("status") == "success" and t.get("amount")]
    if returned:  # the money this refund returned (a refund of items not yet paid returns none)
        currencies = {str(t.get("currency") or ctx.config.currency).upper() for _, t in returned}
        if len(currencies) > 1:
            raise InvalidEvent.at("/transactions", f"refund transactions in {sorted(currencies)}")
        (currency,) = currencies
        refund = {"currency": currency, "amount": sum(
            minor_units(t["amount"], currency, f"/transactions/{i}/amount") for i, t in returned)}
    return _reverse(s, ctx, actor, customer, "refund", f"refund:{r['id']}", occurred_at, **refund)


# -- HubSpot ----------------------------------------------------------------------------------

def _hubspot(s: Session, ctx: ProgramContext, svc: Services) -> HubSpotClient:
    (token,) = credentials(s, ctx.id, "hubspot", "access_token")
    return HubSpotClient(token, svc.settings.hubspot_api_base)


HUBSPOT_MS: Shape = {**UNIX_TIME, "minimum": UNIX_TIME["minimum"] * 1000,
                     "maximum": UNIX_TIME["maximum"] * 1000}


@reads(obj("objectId", "subscriptionType", objectId=NUMERIC_ID, subscriptionType=TEXT,
           propertyName=maybe(TEXT), propertyValue=maybe(TEXT)))
def hubspot_contact(s: Session, ctx: ProgramContext, e: Payload, actor: Actor,
        svc: Services) -> Outcome:
    if e.get("propertyName") == EMAIL_OPT_OUT:
        return _hubspot_opt_out(s, ctx, e, svc)
    if e["subscriptionType"] == "contact.propertyChange" and e.get("propertyName") != REFERRED_BY:
        return _ignored("other_property")  # e.g. referral_code, the contact's own advocate code
    props = _hubspot(s, ctx, svc).contact(str(e["objectId"]))
    code = e.get("propertyValue") if e.get("propertyName") == REFERRED_BY else None
    return _claim(s, ctx, actor, code or props.get(REFERRED_BY), str(e["objectId"]),
                  props.get("email"))


def _hubspot_opt_out(s: Session, ctx: ProgramContext, e: Payload, svc: Services) -> Outcome:
    """A contact unsubscribed from all email (``hs_email_optout`` true), or opted in again."""
    value = (e.get("propertyValue") or "").lower()
    if value not in ("true", "false"):
        return _ignored("unknown_opt_out_value")
    email = _hubspot(s, ctx, svc).contact(str(e["objectId"])).get("email")
    if not email:
        return _ignored("no_email")
    status = ConsentStatus.WITHDRAWN if value == "true" else ConsentStatus.GRANTED
    record_email_consent(s, ctx, email, status, f"hubspot:{EMAIL_OPT_OUT}")
    s.commit()
    return {"action": "consent", "status": str(status)}


def _deal_event(e: Payload, props: dict[str, Any], fallback_currency: str) -> dict[str, Any]:
    currency = str(props.get("deal_currency_code") or fallback_currency).upper()
    closed = (rfc3339_time(props["closedate"], "deal/closedate") if props.get("closedate")
              else unix_time(e["occurredAt"] // 1000, "/occurredAt"))
    return {"id": f"deal:{e['objectId']}", "type": "first_order", "currency": currency,
            "amount": minor_units(props.get("amount") or "0", currency, "deal/amount"),
            "occurred_at": closed}


@reads(obj("objectId", "occurredAt", objectId=NUMERIC_ID, occurredAt=HUBSPOT_MS,
           propertyName=maybe(TEXT), propertyValue=maybe(TEXT)))
def hubspot_deal(s: Session, ctx: ProgramContext, e: Payload, actor: Actor,
        svc: Services) -> Outcome:
    won = settings_of(s, ctx.id, "hubspot").get("closed_won_stage", "closedwon")
    if e.get("propertyName") != "dealstage" or e.get("propertyValue") != won:
        return _ignored("not_closed_won")
    props, contacts = _hubspot(s, ctx, svc).deal(str(e["objectId"]))
    event = _deal_event(e, props, ctx.config.currency)
    results = []
    for contact in contacts:
        try:
            results.append(_qualify(s, ctx, actor, str(contact), event))
        except Waiting:
            continue  # only referred contacts qualify; the others are not ours
    return {"action": "qualify", "results": results} if results else _ignored("no_referred_contact")


# -- Klaviyo ----------------------------------------------------------------------------------

CONSENT_WORDS = ("unsubscribe", "suppress", "spam", "consent")
LIFTING_WORDS = ("unsuppress", "resubscribe")  # topics that lift a suppression never add one
WITHDRAWING_WORDS = ("unsubscribe", "spam")  # topics that are also a withdrawal of email consent


def _find_email(value: Any) -> str | None:
    """The email a Klaviyo system webhook carries: ``event_properties.email_address`` (unsubscribes)
    or an ``email`` key; a spam complaint carries none (see ``_profile_id``)."""
    if isinstance(value, dict):
        for key in ("email", "email_address"):
            if isinstance(email := value.get(key), str) and "@" in email:
                return email
        return next((e for v in value.values() if (e := _find_email(v))), None)
    if isinstance(value, list):
        return next((e for v in value if (e := _find_email(v))), None)
    return None


@reads(obj("topic", topic=TEXT))
def klaviyo_consent(s: Session, ctx: ProgramContext, item: Payload, actor: Actor,
        svc: Services) -> Outcome:
    topic = item["topic"].lower()
    if not any(word in topic for word in CONSENT_WORDS) or any(w in topic for w in LIFTING_WORDS):
        return _ignored("not_a_consent_topic")
    email = _find_email(item.get("payload")) or _profile_email(s, ctx, item.get("payload"), svc)
    if not email:
        return _ignored("no_email")
    key = keyed_hash(ctx.secret, "email", normalise_email(email))
    if s.scalar(select(Suppression.id).where(Suppression.program_id == ctx.id,
                                             Suppression.email_key == key)) is None:
        s.add(Suppression(program_id=ctx.id, email_key=key, reason=topic[:100], source="klaviyo"))
    if any(word in topic for word in WITHDRAWING_WORDS):  # an unsubscribe or a spam complaint
        record_email_consent(s, ctx, email, ConsentStatus.WITHDRAWN, f"klaviyo:{topic}")
    s.commit()
    return {"action": "suppress"}


def _profile_email(s: Session, ctx: ProgramContext, payload: Any, svc: Services) -> str | None:
    """Look the profile's email up in Klaviyo (when an API key is configured): Klaviyo sends system
    webhooks in the shape of its Get Event API, which names the profile by id only."""
    profile = ((((payload or {}).get("data") or {}).get("relationships") or {}).get("profile") or {})
    profile_id = (profile.get("data") or {}).get("id") if isinstance(profile, dict) else None
    if not isinstance(profile_id, str) or not profile_id:
        return None
    row = s.get(ProviderConfig, (ctx.id, "klaviyo"))
    if row is None or not (row.credentials or {}).get("api_key"):
        return None
    (key,) = credentials(s, ctx.id, "klaviyo", "api_key")
    return KlaviyoClient(key, svc.settings.klaviyo_api_base).email_of(profile_id)


class _AnyTopic(dict[tuple[str, str], Handler]):
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
