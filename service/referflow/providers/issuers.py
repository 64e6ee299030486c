"""Reward issuers behind one small interface, chosen per program (``fulfilment.issuer``).

Each external call carries an idempotency key derived from the reward id, so a retry after a
crash never issues twice: Stripe ``Idempotency-Key``; Shopify a gift-card code derived from the
reward id (a second create is refused as TAKEN, and that card is ours).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol

from referflow.domain import money
from referflow.errors import PermanentProviderError, RetryableProviderError
from referflow.providers.http import call

STRIPE_VERSION = "2025-04-30.basil"
SHOPIFY_VERSION = "2025-01"
# Stripe API amounts are integers in Stripe's smallest unit, which is the ISO 4217 minor unit
# (domain/money.py) except for these currencies (docs.stripe.com/currencies, "Zero-decimal
# currencies" and "Special cases"): ISK and UGX are zero-decimal in ISO 4217 but Stripe keeps two
# decimals for backwards compatibility (500 = 5 ISK, always a multiple of 100); MGA has two ISO
# decimals but is zero-decimal in Stripe. HUF and TWD are special in Stripe only for payouts
# (whole units), their charge, coupon and balance amounts have two decimals as in ISO, so they
# need no conversion here. Three-decimal currencies (BHD, JOD, KWD, OMR, TND) match ISO; Stripe
# asks payments in them to end in 0, which it enforces itself. The n8n pack holds a copy of this
# table (Settings ``stripe_exponents``), checked by ``referflow workflows check``.
STRIPE_EXPONENTS = MappingProxyType({"ISK": 2, "MGA": 0, "UGX": 2})


@dataclass(frozen=True)
class RewardRequest:
    """What to issue: one side of one referral."""

    reward_id: str
    amount: int
    currency: str
    expires_at: datetime
    recipient_external_id: str | None
    description: str


@dataclass(frozen=True)
class IssueResult:
    """What the provider created."""

    external_id: str
    code: str | None


class RewardIssuer(Protocol):
    """Issue a reward exactly once per ``reward_id``."""

    name: str

    def issue(self, request: RewardRequest) -> IssueResult: ...


def stripe_exponent(currency: str) -> int:
    """Return the exponent of Stripe's smallest unit of a currency."""
    return STRIPE_EXPONENTS.get(currency.upper(), money.exponent(currency))


def to_stripe_amount(minor: int, currency: str) -> int:
    """Convert ISO minor units to a Stripe API amount (5 ISK -> 500); never retry one that has none."""
    try:
        return money.rescale(minor, money.exponent(currency), stripe_exponent(currency),
                             f"{minor} {currency} minor units")
    except ValueError as exc:  # e.g. 150 MGA minor units = 1.50 ariary: Stripe has no fraction
        raise PermanentProviderError(f"stripe: {exc}") from exc


def from_stripe_amount(amount: int, currency: str) -> int:
    """Convert a Stripe API amount to ISO minor units (500 ISK -> 5); refuse a fractional unit."""
    return money.rescale(amount, stripe_exponent(currency), money.exponent(currency),
                         f"Stripe amount {amount} {currency}")


class StripePromotionCodeIssuer:
    """A single-use promotion code on a one-off amount-off coupon."""

    name = "stripe_promotion_code"

    def __init__(self, api_key: str, api_base: str):
        self.api_key, self.api_base = api_key, api_base.rstrip("/")

    def _post(self, path: str, data: dict[str, Any], key: str) -> dict[str, Any]:
        body: dict[str, Any] = call("POST", f"{self.api_base}{path}", "stripe", data=data, headers={
            "Authorization": f"Bearer {self.api_key}", "Stripe-Version": STRIPE_VERSION,
            "Idempotency-Key": key}).json()
        return body

    def issue(self, request: RewardRequest) -> IssueResult:
        coupon = self._post("/v1/coupons", {
            "amount_off": to_stripe_amount(request.amount, request.currency),
            "currency": request.currency.lower(),
            "duration": "once", "max_redemptions": 1, "name": request.description[:40],
            "metadata[referflow_reward_id]": request.reward_id}, f"{request.reward_id}-coupon")
        promo = self._post("/v1/promotion_codes", {
            "coupon": coupon["id"], "max_redemptions": 1,
            "expires_at": int(request.expires_at.timestamp()),
            "metadata[referflow_reward_id]": request.reward_id}, f"{request.reward_id}-promo")
        return IssueResult(promo["id"], promo["code"])


class StripeBalanceIssuer(StripePromotionCodeIssuer):
    """A credit on the recipient's Stripe customer balance (their external id is a cus_ id)."""

    name = "stripe_balance"

    def issue(self, request: RewardRequest) -> IssueResult:
        customer = request.recipient_external_id or ""
        if not customer.startswith("cus_"):
            raise PermanentProviderError("stripe: the recipient's external id is not a Stripe "
                                         "customer id (cus_...)")
        txn = self._post(f"/v1/customers/{customer}/balance_transactions", {
            "amount": -to_stripe_amount(request.amount, request.currency),
            "currency": request.currency.lower(),
            "description": request.description[:200],
            "metadata[referflow_reward_id]": request.reward_id}, f"{request.reward_id}-balance")
        return IssueResult(txn["id"], None)


GIFT_CARD_CREATE = """
mutation referflowGiftCard($input: GiftCardCreateInput!) {
  giftCardCreate(input: $input) {
    giftCard { id lastCharacters expiresOn initialValue { amount currencyCode } }
    giftCardCode
    userErrors { field code message }
  }
}"""
GIFT_CARD_BY_CODE = """
query referflowGiftCardByCode($query: String!) {
  giftCards(first: 1, query: $query) { nodes { id lastCharacters } }
}"""


def shopify_admin_url(shop: str, api_base: str | None) -> str:
    """Return the Admin GraphQL endpoint of a shop (``api_base`` replaces it in tests)."""
    base = api_base.rstrip("/") if api_base else f"https://{shop}"
    return f"{base}/admin/api/{SHOPIFY_VERSION}/graphql.json"


def shopify_graphql(url: str, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """Run an Admin GraphQL call; a throttled call (HTTP 200 with a THROTTLED error) is retried."""
    body = call("POST", url, "shopify", json={"query": query, "variables": variables},
                headers={"X-Shopify-Access-Token": token}).json()
    errors = body.get("errors") or []
    if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
        raise RetryableProviderError("shopify: throttled")
    if errors:
        raise PermanentProviderError(f"shopify: {errors[0].get('message')}")
    data: dict[str, Any] = body["data"]
    return data


def derived_code(secret: str, purpose: str, key: str, length: int = 20) -> str:
    """Return a code derived from our id for it: unguessable, the same on every retry."""
    return hmac.new(secret.encode(), f"{purpose}:{key}".encode(), hashlib.sha256).hexdigest()[:length]


def shopify_card_code(secret: str, reward_id: str) -> str:
    """Return the code of the Shopify gift card issued for a reward (see ShopifyGiftCardIssuer)."""
    return derived_code(secret, "shopify-gift-card", reward_id)


class ShopifyGiftCardIssuer:
    """A Shopify gift card (Admin GraphQL ``giftCardCreate``) with expiry."""

    name = "shopify_gift_card"

    def __init__(self, shop: str, access_token: str, api_base: str | None, secret: str):
        self.url = shopify_admin_url(shop, api_base)
        self.token, self.secret = access_token, secret

    def code_for(self, reward_id: str) -> str:
        """Return this reward's card code: derived from the id, unguessable, 20 alphanumerics."""
        return shopify_card_code(self.secret, reward_id)

    def _graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        return shopify_graphql(self.url, self.token, query, variables)

    def issue(self, request: RewardRequest) -> IssueResult:
        code = self.code_for(request.reward_id)
        data = self._graphql(GIFT_CARD_CREATE, {"input": {
            "initialValue": str(money.to_major(request.amount, request.currency)), "code": code,
            "expiresOn": request.expires_at.date().isoformat(),
            "note": f"referflow reward {request.reward_id}: {request.description}"[:255]}})
        payload = data["giftCardCreate"]
        errors = payload.get("userErrors") or []
        if any(e.get("code") == "TAKEN" for e in errors):  # created before a crash: it is ours
            found = self._graphql(GIFT_CARD_BY_CODE, {"query": f"code:{code}"})
            nodes = found["giftCards"]["nodes"]
            if nodes:
                return IssueResult(nodes[0]["id"], code)
        if errors or not payload.get("giftCard"):
            raise PermanentProviderError(f"shopify: {errors[0]['message'] if errors else 'no card'}")
        return IssueResult(payload["giftCard"]["id"], payload.get("giftCardCode") or code)
