"""Discounts in the store: the friend offer's code and the advocate's discount rewards.

Shopify: a basic code discount (Admin GraphQL ``discountCodeBasicCreate``), switched off with
``discountCodeDeactivate``. Stripe: a coupon with a promotion code, switched off by setting the
promotion code inactive; a free period is a 100% coupon for one invoice applied to the
customer's subscription (``discounts`` on the subscription, API 2025-03-31.basil and later).

Exactly once, as the reward issuers: every discount has our key (the row's id). Shopify is asked
for the code first (``codeDiscountNodeByCode``): a discount made before a crash carries our key in
its title and is adopted, a stranger's is a refusal. Stripe calls carry idempotency keys derived
from our key, the coupon's id is derived from it too (a retry after the keys expired finds it),
a promotion code whose code exists already is looked up and adopted when it is on our coupon, and
a free period already on the subscription is not applied again.

A refusal (GraphQL ``userErrors``, a Stripe error object) raises ``PermanentProviderError`` whose
message names the provider, the error's type and code and its message; outages raise
``RetryableProviderError`` (providers/http.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from referflow.domain import money
from referflow.domain.timeutil import to_rfc3339
from referflow.errors import PermanentProviderError
from referflow.providers.http import send
from referflow.providers.issuers import (
    STRIPE_VERSION,
    shopify_admin_url,
    shopify_graphql,
    to_stripe_amount,
)


@dataclass(frozen=True)
class Discount:
    """What a discount takes off and when it applies (money in minor units of ``currency``)."""

    kind: str  # percent, amount, free_period (domain/program.py DISCOUNT_TYPES)
    currency: str
    percent: int | None = None
    amount: int | None = None
    minimum_order: int = 0
    once_per_customer: bool = True
    first_time_only: bool = False  # Stripe: only customers without an earlier payment
    single_use: bool = False
    ends_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.kind == "percent" and not (self.percent and 1 <= self.percent <= 100):
            raise ValueError("a percent discount needs a percentage from 1 to 100")
        if self.kind == "amount" and not (self.amount and self.amount > 0):
            raise ValueError("an amount discount needs an amount above 0")


@dataclass(frozen=True)
class DiscountCode:
    """One discount to create: our key for it, the code customers type, the title merchants see."""

    key: str
    code: str
    title: str
    starts_at: datetime
    discount: Discount


@dataclass(frozen=True)
class Created:
    """What the store made: its id for the discount (Shopify node, Stripe promotion code)."""

    external_id: str
    code: str
    coupon_id: str | None = None


class StoreDiscounts(Protocol):
    """Create a discount code exactly once per key; switch one off."""

    provider: str

    def create(self, request: DiscountCode) -> Created: ...

    def find(self, request: DiscountCode) -> Created | None: ...

    def disable(self, created: Created, key: str) -> None: ...

    def used(self, created: Created) -> bool: ...


def marker(key: str) -> str:
    """Return the tag our discounts carry in their title, to know them again after a crash."""
    return f"[referflow {key}]"


# -- Shopify -------------------------------------------------------------------------------------

DISCOUNT_CREATE = """
mutation referflowDiscount($basicCodeDiscount: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $basicCodeDiscount) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}"""
DISCOUNT_BY_CODE = """
query referflowDiscountByCode($code: String!) {
  codeDiscountNodeByCode(code: $code) {
    id
    codeDiscount { ... on DiscountCodeBasic { title status asyncUsageCount } }
  }
}"""
DISCOUNT_DEACTIVATE = """
mutation referflowDiscountOff($id: ID!) {
  discountCodeDeactivate(id: $id) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}"""


def _refusal(errors: list[dict[str, Any]]) -> PermanentProviderError:
    described = "; ".join(f"{e.get('code') or 'ERROR'}: {e.get('message')}" for e in errors)
    return PermanentProviderError(f"shopify: {described}"[:500])


class ShopifyDiscounts:
    """Basic code discounts on every product, in the shop's currency (API 2025-01:
    ``customerSelection``; ``context`` replaces it from 2025-10)."""

    provider = "shopify"

    def __init__(self, shop: str, access_token: str, api_base: str | None):
        self.url, self.token = shopify_admin_url(shop, api_base), access_token

    def _graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        return shopify_graphql(self.url, self.token, query, variables)

    def _lookup(self, request: DiscountCode) -> tuple[bool, Created | None]:
        """Ask for the code: (whether it exists, our discount when it is ours)."""
        found = self._graphql(DISCOUNT_BY_CODE, {"code": request.code})["codeDiscountNodeByCode"]
        if found is None:
            return False, None
        title = (found.get("codeDiscount") or {}).get("title") or ""
        return True, Created(found["id"], request.code) if marker(request.key) in title else None

    def find(self, request: DiscountCode) -> Created | None:
        return self._lookup(request)[1]

    def create(self, request: DiscountCode) -> Created:
        exists, ours = self._lookup(request)
        if ours is not None:  # made before a crash
            return ours
        if exists:  # the shop's own discount has this code
            raise PermanentProviderError(f"shopify: TAKEN: the shop already has a discount with "
                                         f"the code {request.code}")
        payload = self._graphql(DISCOUNT_CREATE, {"basicCodeDiscount": self._input(request)})
        result = payload["discountCodeBasicCreate"]
        errors = result.get("userErrors") or []
        if errors or not result.get("codeDiscountNode"):
            raise _refusal(errors or [{"message": "no discount was created"}])
        return Created(result["codeDiscountNode"]["id"], request.code)

    def _input(self, request: DiscountCode) -> dict[str, Any]:
        d = request.discount
        if d.kind == "percent":
            assert d.percent is not None
            value: dict[str, Any] = {"percentage": d.percent / 100}
        elif d.kind == "amount":
            assert d.amount is not None
            value = {"discountAmount": {"amount": str(money.to_major(d.amount, d.currency)),
                                        "appliesOnEachItem": False}}
        else:
            raise PermanentProviderError("shopify: a free period is a Stripe subscription discount")
        data: dict[str, Any] = {
            "title": f"{request.title} {marker(request.key)}"[:255], "code": request.code,
            "startsAt": to_rfc3339(request.starts_at),
            "endsAt": to_rfc3339(d.ends_at) if d.ends_at else None,
            "appliesOncePerCustomer": d.once_per_customer,
            "customerSelection": {"all": True},
            "customerGets": {"value": value, "items": {"all": True}}}
        if d.single_use:
            data["usageLimit"] = 1
        if d.minimum_order:
            data["minimumRequirement"] = {"subtotal": {
                "greaterThanOrEqualToSubtotal": str(money.to_major(d.minimum_order, d.currency))}}
        return data

    def used(self, created: Created) -> bool:
        """Tell whether a code was used at a checkout (``asyncUsageCount``: Shopify counts it a
        moment after the order)."""
        found = self._graphql(DISCOUNT_BY_CODE, {"code": created.code})["codeDiscountNodeByCode"]
        if found is None:
            return False
        return int((found.get("codeDiscount") or {}).get("asyncUsageCount") or 0) > 0

    def disable(self, created: Created, key: str) -> None:
        result = self._graphql(DISCOUNT_DEACTIVATE, {"id": created.external_id})
        errors = result["discountCodeDeactivate"].get("userErrors") or []
        if errors:
            raise _refusal(errors)


# -- Stripe --------------------------------------------------------------------------------------

def coupon_id_of(key: str) -> str:
    """Return the id of the coupon of our discount ``key`` (chosen by us: found again on retry)."""
    return f"referflow_{key}"


class StripeRefusal(PermanentProviderError):
    """Stripe refused a call: its error object's type, code and message."""

    def __init__(self, error: dict[str, Any]):
        self.type, self.code = str(error.get("type") or "api_error"), error.get("code")
        kind = f"{self.type}/{self.code}" if self.code else self.type
        super().__init__(f"stripe: {kind}: {error.get('message') or 'refused'}"[:500])


class StripeDiscounts:
    """Coupons and promotion codes (form-encoded, ``Stripe-Version`` pinned with the issuers)."""

    provider = "stripe"

    def __init__(self, api_key: str, api_base: str):
        self.api_key, self.api_base = api_key, api_base.rstrip("/")

    def _request(self, method: str, path: str, data: dict[str, Any] | None = None,
                 key: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.api_key}", "Stripe-Version": STRIPE_VERSION}
        if key:
            headers["Idempotency-Key"] = key
        response = send(method, f"{self.api_base}{path}", "stripe", headers=headers,
                        **({"data": data} if method == "POST" else {"params": data}))
        try:
            body: dict[str, Any] = response.json()
        except ValueError as exc:
            raise PermanentProviderError(f"stripe: HTTP {response.status_code}, not JSON") from exc
        if response.status_code >= 400:
            raise StripeRefusal(body.get("error") or {})
        return body

    def coupon(self, key: str, discount: Discount, name: str) -> str:
        """Create the coupon of ``key`` once (its id is derived from the key); return its id."""
        coupon_id = coupon_id_of(key)
        data: dict[str, Any] = {"id": coupon_id, "duration": "once", "name": name[:40],
                                "metadata[referflow_key]": key}
        if discount.kind == "amount":
            assert discount.amount is not None
            data |= {"amount_off": to_stripe_amount(discount.amount, discount.currency),
                     "currency": discount.currency.lower()}
        else:  # percent, or a free period: 100% off the next invoice
            data["percent_off"] = discount.percent if discount.kind == "percent" else 100
        if discount.single_use:
            data["max_redemptions"] = 1
        if discount.ends_at:
            data["redeem_by"] = int(discount.ends_at.timestamp())
        try:
            return str(self._request("POST", "/v1/coupons", data, f"{key}-coupon")["id"])
        except StripeRefusal as refusal:
            if refusal.code != "resource_already_exists":  # else: made before, keys expired
                raise
            return str(self._request("GET", f"/v1/coupons/{coupon_id}")["id"])

    def create(self, request: DiscountCode) -> Created:
        d = request.discount
        coupon_id = self.coupon(request.key, d, request.title)
        data: dict[str, Any] = {"coupon": coupon_id, "code": request.code,
                                "metadata[referflow_key]": request.key}
        if d.first_time_only:
            data["restrictions[first_time_transaction]"] = "true"
        if d.minimum_order:
            data["restrictions[minimum_amount]"] = to_stripe_amount(d.minimum_order, d.currency)
            data["restrictions[minimum_amount_currency]"] = d.currency.lower()
        if d.single_use:
            data["max_redemptions"] = 1
        if d.ends_at:
            data["expires_at"] = int(d.ends_at.timestamp())
        try:
            promo = self._request("POST", "/v1/promotion_codes", data, f"{request.key}-promo")
        except StripeRefusal as refusal:
            if refusal.type != "invalid_request_error" or (
                    found := self._ours(request.code, coupon_id)) is None:
                raise
            promo = found
        return Created(promo["id"], promo["code"], coupon_id)

    def find(self, request: DiscountCode) -> Created | None:
        coupon_id = coupon_id_of(request.key)
        promo = self._ours(request.code, coupon_id)
        return Created(promo["id"], promo["code"], coupon_id) if promo else None

    def _ours(self, code: str, coupon_id: str) -> dict[str, Any] | None:
        """Return the promotion code ``code`` when it exists on our coupon (made before a crash)."""
        try:
            listed = self._request("GET", "/v1/promotion_codes", {"code": code, "limit": 10})
        except StripeRefusal:
            return None
        for promo in listed.get("data") or []:
            coupon = promo.get("coupon")
            if (coupon.get("id") if isinstance(coupon, dict) else coupon) == coupon_id:
                return promo
        return None

    def disable(self, created: Created, key: str) -> None:
        self._request("POST", f"/v1/promotion_codes/{created.external_id}", {"active": "false"},
                      f"{key}-off")

    def used(self, created: Created) -> bool:
        """Tell whether a promotion code was redeemed (``times_redeemed``)."""
        promo = self._request("GET", f"/v1/promotion_codes/{created.external_id}")
        return int(promo.get("times_redeemed") or 0) > 0

    def free_period_on(self, key: str, customer: str) -> str | None:
        """Return the subscription that carries the free period of ``key``, if one does."""
        if not customer.startswith("cus_"):
            return None
        listed = self._request("GET", "/v1/subscriptions", {
            "customer": customer, "status": "all", "limit": 100, "expand[]": "data.discounts"})
        for subscription in listed.get("data") or []:
            for d in subscription.get("discounts") or []:
                if isinstance(d, dict) and (d.get("coupon") or {}).get("id") == coupon_id_of(key):
                    return str(subscription["id"])
        return None

    def promotion_codes_of(self, kind: str, object_id: str) -> list[tuple[str, str | None]]:
        """Return (id, code) of the promotion codes a checkout session or an invoice used.

        Webhooks carry at most the ids (a checkout session has no ``discounts`` before API
        2025-01-27, an invoice's are ``di_`` discount ids): the object is read again with its
        discounts' promotion codes expanded.
        """
        path = {"checkout_session": "/v1/checkout/sessions/", "invoice": "/v1/invoices/"}[kind]
        found = self._request("GET", f"{path}{object_id}", {"expand[]": "discounts.promotion_code"})
        codes: list[tuple[str, str | None]] = []
        for entry in found.get("discounts") or []:
            promo = entry.get("promotion_code") if isinstance(entry, dict) else None
            if isinstance(promo, dict) and promo.get("id"):
                codes.append((str(promo["id"]), promo.get("code")))
            elif isinstance(promo, str):
                codes.append((promo, None))
        return codes

    def free_period(self, key: str, customer: str, discount: Discount, name: str) -> Created:
        """Put a 100% coupon for one invoice on the customer's active subscription, once."""
        if not customer.startswith("cus_"):
            raise PermanentProviderError("stripe: the recipient's external id is not a Stripe "
                                         "customer id (cus_...)")
        coupon_id = self.coupon(key, discount, name)
        listed = self._request("GET", "/v1/subscriptions", {
            "customer": customer, "status": "active", "limit": 1, "expand[]": "data.discounts"})
        subscriptions = listed.get("data") or []
        if not subscriptions:
            raise PermanentProviderError(f"stripe: customer {customer} has no active subscription")
        subscription = subscriptions[0]
        discounts = [d for d in subscription.get("discounts") or [] if isinstance(d, dict)]
        if any((d.get("coupon") or {}).get("id") == coupon_id for d in discounts):
            return Created(subscription["id"], coupon_id, coupon_id)  # applied before a crash
        data = {f"discounts[{i}][discount]": d["id"] for i, d in enumerate(discounts)}
        data[f"discounts[{len(discounts)}][coupon]"] = coupon_id  # the list replaces the old one
        self._request("POST", f"/v1/subscriptions/{subscription['id']}", data, f"{key}-apply")
        return Created(subscription["id"], coupon_id, coupon_id)
