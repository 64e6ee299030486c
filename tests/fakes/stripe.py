"""A fake Stripe API: form-encoded requests, Stripe's object shapes, errors and idempotency.

Shapes follow Stripe's API reference (promotion_code and coupon objects, customer balance
transactions, the ``{"error": {...}}`` envelope, and ``Idempotency-Key`` replay/mismatch rules).
Coupons take an ``id`` of our choosing (a second one is ``resource_already_exists``); promotion
codes take ``restrictions[...]`` and a ``code`` of letters and digits, unique among the active
ones; subscriptions carry ``discounts`` (API 2025-03-31.basil: ids, objects when expanded), set
as a whole by ``discounts[i][coupon|discount]``; checkout sessions and invoices are read with
``expand[]=discounts.promotion_code``. Error messages are ours, not Stripe's wording.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.server import FakeServer

API_KEY = "sk_test_fake_4eC39HqLyjWDarjtT1zdp7dc"


def _error(status: int, kind: str, message: str, code: str | None = None) -> tuple[int, dict, Any]:
    error = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return status, {}, {"error": error}


def _param_error(param: str, message: str, code: str) -> tuple[int, dict, Any]:
    return 400, {}, {"error": {"type": "invalid_request_error", "code": code, "param": param,
                               "message": message}}


def _missing(kind: str, object_id: str) -> tuple[int, dict, Any]:
    return _error(404, "invalid_request_error", f"No such {kind}: '{object_id}'", "resource_missing")


def _form(body: bytes | str) -> dict[str, Any]:
    """Decode Stripe's form encoding, with ``a[b][c]`` nesting (list indexes stay string keys)
    and ``expand[]`` lists."""
    out: dict[str, Any] = {}
    text = body.decode() if isinstance(body, bytes) else body
    for key, value in parse_qsl(text, keep_blank_values=True):
        if key.endswith("[]"):
            out.setdefault(key[:-2], []).append(value)
            continue
        path = re.findall(r"[^\[\]]+", key)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


class FakeStripe(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.coupons: dict[str, dict] = {}
        self.promotion_codes: dict[str, dict] = {}
        self.balance_transactions: list[dict] = []
        self.customers = {"cus_AdvocateAnn", "cus_FriendBob"}
        self.subscriptions: dict[str, dict] = {}  # discounts as Discount objects
        self.checkout_sessions: dict[str, dict] = {}  # discounts: [{coupon, promotion_code}]
        self.invoices: dict[str, dict] = {}  # discounts: [Discount objects]
        self.idempotent: dict[str, tuple[dict, int, Any]] = {}
        self.fail_next: list[tuple[int, Any, dict]] = []  # (status, body, headers)
        self.delay_next: list[float] = []

    def handle(self, method, path, headers, body):
        if headers.get("Authorization") != f"Bearer {API_KEY}":
            return _error(401, "invalid_request_error", "Invalid API Key provided: sk_test_****")
        with self.lock:
            delay = self.delay_next.pop(0) if self.delay_next else 0
            failure = self.fail_next.pop(0) if self.fail_next else None
        url = urlsplit(path)
        path = url.path
        params = _form(body) if method == "POST" else _form(url.query)
        key = headers.get("Idempotency-Key")
        with self.lock:
            if key and key in self.idempotent:
                first_params, status, payload = self.idempotent[key]
                if first_params != params:
                    return _error(400, "idempotency_error", "Keys for idempotent requests can only "
                                  "be used with the same parameters they were first used with.")
                return status, {"Idempotent-Replayed": "true"}, payload
        if failure:
            return failure[0], failure[2], failure[1]
        status, extra, payload = self._route(method, path, params)
        if key and status < 500:
            with self.lock:
                self.idempotent[key] = (params, status, payload)
        if delay:
            time.sleep(delay)  # the object exists now; the client may die before it hears back
        return status, {"Request-Id": "req_" + secrets.token_hex(7), **extra}, payload

    def _route(self, method, path, params):
        if method == "POST" and path == "/v1/coupons":
            return self._coupon(params)
        if method == "GET" and path.startswith("/v1/coupons/"):
            coupon = self.coupons.get(path.rsplit("/", 1)[1])
            return (200, {}, coupon) if coupon else _missing("coupon", path.rsplit("/", 1)[1])
        if method == "POST" and path == "/v1/promotion_codes":
            return self._promotion_code(params)
        if method == "GET" and path == "/v1/promotion_codes":
            found = [p for p in self.promotion_codes.values()
                     if p["code"].lower() == params.get("code", "").lower()]
            return 200, {}, {"object": "list", "data": found, "has_more": False,
                             "url": "/v1/promotion_codes"}
        if method == "POST" and path.startswith("/v1/promotion_codes/"):
            return self._update_promotion_code(path.rsplit("/", 1)[1], params)
        if method == "GET" and path.startswith("/v1/promotion_codes/"):
            promo = self.promotion_codes.get(path.rsplit("/", 1)[1])
            return (200, {}, promo) if promo else _missing("promotion_code", path.rsplit("/", 1)[1])
        if method == "GET" and path == "/v1/subscriptions":
            return self._subscriptions(params)
        if method == "POST" and path.startswith("/v1/subscriptions/"):
            return self._update_subscription(path.rsplit("/", 1)[1], params)
        if method == "GET" and path.startswith("/v1/checkout/sessions/"):
            return self._with_promotions(self.checkout_sessions, "checkout.session", path, params)
        if method == "GET" and path.startswith("/v1/invoices/"):
            return self._with_promotions(self.invoices, "invoice", path, params)
        if method == "POST" and path.startswith("/v1/customers/") and \
                path.endswith("/balance_transactions"):
            return self._balance(path.split("/")[3], params)
        return _error(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")

    def _coupon(self, p):
        if "amount_off" not in p and "percent_off" not in p:
            return _error(400, "invalid_request_error", "You must pass either `amount_off` or "
                          "`percent_off`.", "parameter_missing")
        if p.get("id") in self.coupons:
            return _error(400, "invalid_request_error", "Coupon already exists.",
                          "resource_already_exists")
        coupon = {"id": p.get("id") or secrets.token_urlsafe(6), "object": "coupon",
                  "amount_off": int(p["amount_off"]) if "amount_off" in p else None,
                  "currency": p.get("currency"), "duration": p.get("duration", "once"),
                  "duration_in_months": None, "livemode": False, "created": int(time.time()),
                  "max_redemptions": int(p["max_redemptions"]) if "max_redemptions" in p else None,
                  "metadata": p.get("metadata", {}), "name": p.get("name"),
                  "percent_off": float(p["percent_off"]) if "percent_off" in p else None,
                  "redeem_by": int(p["redeem_by"]) if "redeem_by" in p else None,
                  "times_redeemed": 0, "valid": True}
        with self.lock:
            self.coupons[coupon["id"]] = coupon
        return 200, {}, coupon

    def _promotion_code(self, p):
        coupon = self.coupons.get(p.get("coupon", ""))
        if coupon is None:
            return _error(400, "invalid_request_error", f"No such coupon: '{p.get('coupon')}'",
                          "resource_missing")
        code = p.get("code") or secrets.token_hex(4).upper()
        if not re.fullmatch(r"[A-Za-z0-9]+", code):
            return _param_error("code", "Invalid code: only letters (a-z, A-Z) and digits "
                                "(0-9) are allowed.", "parameter_invalid_string")
        if any(o["active"] and o["code"].lower() == code.lower()
               for o in self.promotion_codes.values()):
            return _param_error("code", f"An active promotion code with `code: {code}` already "
                                "exists.", "resource_already_exists")
        limits = p.get("restrictions", {})
        promo = {"id": "promo_" + secrets.token_hex(12), "object": "promotion_code", "active": True,
                 "code": code, "coupon": coupon,
                 "created": int(time.time()), "customer": None,
                 "expires_at": int(p["expires_at"]) if "expires_at" in p else None,
                 "livemode": False,
                 "max_redemptions": int(p["max_redemptions"]) if "max_redemptions" in p else None,
                 "metadata": p.get("metadata", {}),
                 "restrictions": {
                     "first_time_transaction": limits.get("first_time_transaction") == "true",
                     "minimum_amount": int(limits["minimum_amount"])
                     if "minimum_amount" in limits else None,
                     "minimum_amount_currency": limits.get("minimum_amount_currency")},
                 "times_redeemed": 0}
        with self.lock:
            self.promotion_codes[promo["id"]] = promo
        return 200, {}, promo

    def _update_promotion_code(self, promo_id, p):
        promo = self.promotion_codes.get(promo_id)
        if promo is None:
            return _missing("promotion_code", promo_id)
        if "active" in p:
            promo["active"] = p["active"] == "true"
        return 200, {}, promo

    def discount_on(self, coupon_id: str, promotion_code: str | None = None) -> dict:
        """Return a new Discount object (what applying a coupon or a promotion code makes)."""
        return {"id": "di_" + secrets.token_hex(12), "object": "discount",
                "coupon": self.coupons.get(coupon_id) or {"id": coupon_id},
                "promotion_code": promotion_code, "start": int(time.time()), "end": None}

    def _subscriptions(self, p):
        found = [s for s in self.subscriptions.values() if s["customer"] == p.get("customer")
                 and p.get("status", s["status"]) in (s["status"], "all")]
        expanded = "data.discounts" in p.get("expand", [])
        data = [{**s, "discounts": s["discounts"] if expanded else [d["id"] for d in s["discounts"]]}
                for s in found[:int(p.get("limit", 10))]]
        return 200, {}, {"object": "list", "data": data, "has_more": False,
                         "url": "/v1/subscriptions"}

    def _update_subscription(self, sub_id, p):
        sub = self.subscriptions.get(sub_id)
        if sub is None:
            return _missing("subscription", sub_id)
        if "discounts" in p:
            kept = {d["id"]: d for d in sub["discounts"]}
            new = []
            for _, item in sorted(p["discounts"].items(), key=lambda kv: int(kv[0])):
                if "discount" in item and item["discount"] in kept:
                    new.append(kept[item["discount"]])
                elif "coupon" in item and item["coupon"] in self.coupons:
                    new.append(self.discount_on(item["coupon"]))
                else:
                    return _param_error("discounts", "No such coupon or discount.",
                                        "resource_missing")
            sub["discounts"] = new
        return 200, {}, {**sub, "discounts": [d["id"] for d in sub["discounts"]]}

    def _with_promotions(self, store, kind, path, p):
        found = store.get(path.rsplit("/", 1)[1])
        if found is None:
            return _missing(kind, path.rsplit("/", 1)[1])
        if "discounts.promotion_code" not in p.get("expand", []):
            return 200, {}, found
        discounts = []
        for entry in found.get("discounts") or []:
            promo = entry.get("promotion_code") if isinstance(entry, dict) else None
            discounts.append({**entry, "promotion_code": self.promotion_codes.get(promo, promo)})
        return 200, {}, {**found, "discounts": discounts}

    def _balance(self, customer, p):
        if customer not in self.customers:
            return _error(404, "invalid_request_error", f"No such customer: '{customer}'",
                          "resource_missing")
        txn = {"id": "cbtxn_" + secrets.token_hex(12), "object": "customer_balance_transaction",
               "amount": int(p["amount"]), "currency": p["currency"], "customer": customer,
               "created": int(time.time()), "credit_note": None, "description": p.get("description"),
               "ending_balance": int(p["amount"]), "invoice": None, "livemode": False,
               "metadata": p.get("metadata", {}), "type": "adjustment"}
        with self.lock:
            self.balance_transactions.append(txn)
        return 200, {}, txn
