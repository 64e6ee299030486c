"""A fake HubSpot CRM v3 API: contacts and deals with associations, bearer-token auth."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from tests.fakes.server import FakeServer

TOKEN = "pat-eu1-fake-0000"


class FakeHubSpot(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.contacts: dict[str, dict] = {}
        self.deals: dict[str, dict] = {}
        self.properties: set[str] = set()
        self.by_email: dict[str, dict] = {}

    def handle(self, method, path, headers, body):
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {}, {"status": "error", "message": "Authentication credentials not found.",
                             "category": "INVALID_AUTHENTICATION"}
        route = urlsplit(path).path
        if method == "POST" and route == "/crm/v3/properties/contacts":
            name = json.loads(body)["name"]
            if name in self.properties:
                return 409, {}, {"status": "error", "message": f"Property named '{name}' already exists.",
                                 "category": "CONFLICT"}
            self.properties.add(name)
            return 201, {}, {"name": name}
        if method == "PATCH" and (m := re.fullmatch(r"/crm/v3/objects/contacts/(.+)", route)):
            contact = self.by_email.get(m[1])
            if contact is None:
                return 404, {}, {"status": "error", "message": "resource not found",
                                 "category": "OBJECT_NOT_FOUND"}
            unknown = set(json.loads(body)["properties"]) - self.properties
            if unknown:
                return 400, {}, {"status": "error", "category": "VALIDATION_ERROR",
                                 "message": f"Property values were not valid: {sorted(unknown)}"}
            contact.update(json.loads(body)["properties"])
            return 200, {}, {"id": "1", "properties": contact}
        if method == "POST" and route == "/crm/v3/objects/contacts":
            props = json.loads(body)["properties"]
            self.by_email[props["email"]] = dict(props)
            return 201, {}, {"id": str(len(self.by_email)), "properties": props}
        if m := re.fullmatch(r"/crm/v3/objects/contacts/(\d+)", route):
            contact = self.contacts.get(m[1])
            if contact is None:
                return 404, {}, {"status": "error", "message": "Object not found.", "category": "OBJECT_NOT_FOUND"}
            return 200, {}, {"id": m[1], "properties": contact, "archived": False}
        if m := re.fullmatch(r"/crm/v3/objects/deals/(\d+)", route):
            deal = self.deals[m[1]]
            return 200, {}, {"id": m[1], "properties": deal["properties"], "archived": False,
                             "associations": {"contacts": {"results": [
                                 {"id": c, "type": "deal_to_contact"} for c in deal["contacts"]]}}}
        return 404, {}, {"status": "error", "message": "Not found"}
