"""A fake Shopify Admin API: GraphQL gift cards (giftCardCreate, giftCards query), code
discounts (discountCodeBasicCreate, codeDiscountNodeByCode, discountCodeDeactivate) and REST orders.

Follows the documented shapes: GiftCardCreatePayload {giftCard, giftCardCode, userErrors
[{field, code, message}]}, codes of 8-20 letters and digits, unique (TAKEN otherwise);
DiscountCodeBasicCreatePayload {codeDiscountNode {id}, userErrors}, discount codes unique in the
shop regardless of case (TAKEN), a deactivated discount EXPIRED. ``refuse_discounts`` makes the
next creates answer those userErrors instead.
REST ``GET orders/{id}.json`` answers ``{"order": {...}}``
limited to the ``fields`` query parameter, or 404 ``{"errors": "Not Found"}``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import FakeServer

TOKEN = "shpat_fake_0123456789abcdef"
SHOP = "referflow-test.myshopify.com"


class FakeShopify(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.cards: dict[str, dict[str, Any]] = {}  # by lowercase code
        self.orders: dict[str, dict[str, Any]] = {}  # REST order resources, by numeric id
        self.discounts: dict[str, dict[str, Any]] = {}  # code discounts, by lowercase code
        self.refuse_discounts: list[list[dict[str, Any]]] = []  # userErrors for the next creates

    def handle(self, method, path, headers, body):
        import json

        if headers.get("X-Shopify-Access-Token") != TOKEN:
            return 401, {}, {"errors": "[API] Invalid API key or access token (unrecognized login "
                                       "or wrong password)"}
        url = urlsplit(path)
        order = re.fullmatch(r"/admin/api/\d{4}-\d{2}/orders/(\d+)\.json", url.path)
        if method == "GET" and order:
            return self._order(order[1], parse_qs(url.query).get("fields", [""])[0])
        if not re.fullmatch(r"/admin/api/\d{4}-\d{2}/graphql\.json", path):
            return 404, {}, {"errors": "Not Found"}
        request = json.loads(body)
        query, variables = request["query"], request.get("variables", {})
        if "discountCodeBasicCreate" in query:
            return 200, {}, {"data": {"discountCodeBasicCreate": self._discount(
                variables["basicCodeDiscount"])}}
        if "codeDiscountNodeByCode" in query:
            found = self.discounts.get(variables["code"].lower())
            return 200, {}, {"data": {"codeDiscountNodeByCode": {
                "id": found["id"], "codeDiscount": {
                    "title": found["title"], "status": found["status"],
                    "asyncUsageCount": found["asyncUsageCount"]}}
                if found else None}}
        if "discountCodeDeactivate" in query:
            return 200, {}, {"data": {"discountCodeDeactivate": self._deactivate(variables["id"])}}
        if "giftCardCreate" in query:
            return 200, {}, {"data": {"giftCardCreate": self._create(variables["input"])}}
        if "giftCards(" in query:
            code = variables["query"].removeprefix("code:").lower()
            card = self.cards.get(code)
            return 200, {}, {"data": {"giftCards": {"nodes": [
                {"id": card["id"], "lastCharacters": card["lastCharacters"]}] if card else []}}}
        return 200, {}, {"errors": [{"message": "Field doesn't exist on type 'QueryRoot'"}]}

    def _discount(self, data):
        with self.lock:
            refusal = self.refuse_discounts.pop(0) if self.refuse_discounts else None
        if refusal:
            return {"codeDiscountNode": None, "userErrors": refusal}
        missing = [f for f in ("title", "code", "startsAt", "customerGets") if not data.get(f)]
        if missing:
            return {"codeDiscountNode": None, "userErrors": [
                {"field": ["basicCodeDiscount", missing[0]], "code": "BLANK",
                 "message": f"{missing[0]} can't be blank"}]}
        value = data["customerGets"]["value"]
        if "percentage" in value and not 0 < value["percentage"] <= 1:
            return {"codeDiscountNode": None, "userErrors": [
                {"field": ["basicCodeDiscount", "customerGets", "value", "percentage"],
                 "code": "VALUE_OUTSIDE_RANGE", "message": "Value must be between 0.0 and 1.0"}]}
        if data["code"].lower() in self.discounts:
            return {"codeDiscountNode": None, "userErrors": [
                {"field": ["basicCodeDiscount", "code"], "code": "TAKEN",
                 "message": "Code must be unique. Please try a different code."}]}
        node = {"id": f"gid://shopify/DiscountCodeNode/{len(self.discounts) + 1001}",
                "title": data["title"], "status": "ACTIVE", "asyncUsageCount": 0, "input": data}
        with self.lock:
            self.discounts[data["code"].lower()] = node
        return {"codeDiscountNode": {"id": node["id"]}, "userErrors": []}

    def _deactivate(self, discount_id):
        for node in self.discounts.values():
            if node["id"] == discount_id:
                node["status"] = "EXPIRED"
                return {"codeDiscountNode": {"id": discount_id}, "userErrors": []}
        return {"codeDiscountNode": None, "userErrors": [
            {"field": ["id"], "code": "INVALID", "message": "Discount does not exist"}]}

    def _order(self, order_id, fields):
        order = self.orders.get(order_id)
        if order is None:
            return 404, {}, {"errors": "Not Found"}
        wanted = [f.strip() for f in fields.split(",") if f.strip()]
        return 200, {}, {"order": {k: v for k, v in order.items() if not wanted or k in wanted}}

    def _create(self, data):
        code = data.get("code", "")
        if not re.fullmatch(r"[A-Za-z0-9]{8,20}", code):
            return {"giftCard": None, "giftCardCode": None, "userErrors": [
                {"field": ["input", "code"], "code": "INVALID", "message": "Code is invalid"}]}
        if code.lower() in self.cards:
            return {"giftCard": None, "giftCardCode": None, "userErrors": [
                {"field": ["input", "code"], "code": "TAKEN", "message": "Code has already been taken"}]}
        card = {"id": f"gid://shopify/GiftCard/{len(self.cards) + 1}",
                "lastCharacters": code[-4:], "expiresOn": data.get("expiresOn"),
                "initialValue": {"amount": data["initialValue"], "currencyCode": "EUR"},
                "note": data.get("note")}
        with self.lock:
            self.cards[code.lower()] = card
        return {"giftCard": {k: card[k] for k in ("id", "lastCharacters", "expiresOn", "initialValue")},
                "giftCardCode": code, "userErrors": []}
