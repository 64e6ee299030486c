"""A fake Stripe API: form-encoded requests, Stripe's object shapes, errors and idempotency.

Shapes follow Stripe's API reference (promotion_code and coupon objects, customer balance
transactions, the ``{"error": {...}}`` envelope, and ``Idempotency-Key`` replay/mismatch rules).
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.server import FakeServer

API_KEY = "sk_test_fake_4eC39HqLyjWDarjtT1zdp7dc"


def _error(status: int, kind: str, message: str, code: str | None = None) -> tuple[int, dict, Any]:
    error = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return status, {}, {"error": error}


def _form(body: bytes) -> dict[str, Any]:
    """Decode Stripe's form encoding, with ``metadata[key]`` nesting."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        if "[" in key:
            outer, inner = key[:-1].split("[", 1)
            out.setdefault(outer, {})[inner] = value
        else:
            out[key] = value
    return out


class FakeStripe(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.coupons: dict[str, dict] = {}
        self.promotion_codes: dict[str, dict] = {}
        self.balance_transactions: list[dict] = []
        self.customers = {"cus_AdvocateAnn", "cus_FriendBob"}
        self.idempotent: dict[str, tuple[dict, int, Any]] = {}
        self.fail_next: list[tuple[int, Any, dict]] = []  # (status, body, headers)
        self.delay_next: list[float] = []

    def handle(self, method, path, headers, body):
        if headers.get("Authorization") != f"Bearer {API_KEY}":
            return _error(401, "invalid_request_error", "Invalid API Key provided: sk_test_****")
        with self.lock:
            delay = self.delay_next.pop(0) if self.delay_next else 0
            failure = self.fail_next.pop(0) if self.fail_next else None
        params = _form(body)
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
        if method == "POST" and path == "/v1/promotion_codes":
            return self._promotion_code(params)
        if method == "POST" and path.startswith("/v1/customers/") and \
                path.endswith("/balance_transactions"):
            return self._balance(path.split("/")[3], params)
        return _error(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")

    def _coupon(self, p):
        if "amount_off" not in p and "percent_off" not in p:
            return _error(400, "invalid_request_error", "You must pass either `amount_off` or "
                          "`percent_off`.", "parameter_missing")
        coupon = {"id": secrets.token_urlsafe(6), "object": "coupon",
                  "amount_off": int(p["amount_off"]) if "amount_off" in p else None,
                  "currency": p.get("currency"), "duration": p.get("duration", "once"),
                  "duration_in_months": None, "livemode": False, "created": int(time.time()),
                  "max_redemptions": int(p["max_redemptions"]) if "max_redemptions" in p else None,
                  "metadata": p.get("metadata", {}), "name": p.get("name"), "percent_off": None,
                  "redeem_by": None, "times_redeemed": 0, "valid": True}
        with self.lock:
            self.coupons[coupon["id"]] = coupon
        return 200, {}, coupon

    def _promotion_code(self, p):
        coupon = self.coupons.get(p.get("coupon", ""))
        if coupon is None:
            return _error(400, "invalid_request_error", f"No such coupon: '{p.get('coupon')}'",
                          "resource_missing")
        promo = {"id": "promo_" + secrets.token_hex(12), "object": "promotion_code", "active": True,
                 "code": p.get("code") or secrets.token_hex(4).upper(), "coupon": coupon,
                 "created": int(time.time()), "customer": None,
                 "expires_at": int(p["expires_at"]) if "expires_at" in p else None,
                 "livemode": False,
                 "max_redemptions": int(p["max_redemptions"]) if "max_redemptions" in p else None,
                 "metadata": p.get("metadata", {}),
                 "restrictions": {"first_time_transaction": False, "minimum_amount": None,
                                  "minimum_amount_currency": None}, "times_redeemed": 0}
        with self.lock:
            self.promotion_codes[promo["id"]] = promo
        return 200, {}, promo

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
