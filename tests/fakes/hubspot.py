"""A fake HubSpot CRM v3 API: contacts and deals with associations, bearer-token auth."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.server import FakeServer

TOKEN = "pat-eu1-fake-0000"
STAMP = "2026-11-18T09:30:00.000Z"


def _crm_object(object_id: str, stored: dict, path: str, modified: str) -> dict:
    """A CRM v3 object read as HubSpot answers it (tests/fixtures/hubspot_crm_*.json): the default
    properties always, each requested property (null when it has no value), createdAt/updatedAt."""
    requested = parse_qs(urlsplit(path).query).get("properties", [""])[0].split(",")
    properties = {"createdate": STAMP, "hs_object_id": object_id, modified: STAMP,
                  **{name: None for name in requested if name}, **stored}
    return {"id": object_id, "properties": dict(sorted(properties.items())), "createdAt": STAMP,
            "updatedAt": STAMP, "archived": False}


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
            contact = self.by_email.get(unquote(m[1]))
            if contact is None:
                return 404, {}, {"status": "error", "message": "resource not found",
                                 "category": "OBJECT_NOT_FOUND"}
            unknown = set(json.loads(body)["properties"]) - self.properties
            if unknown:
                return 400, {}, {"status": "error", "category": "VALIDATION_ERROR",
                                 "message": f"Property values were not valid: {sorted(unknown)}"}
            contact.update(json.loads(body)["properties"])
            return 200, {}, {"id": "1", "properties": contact}
        if method == "POST" and route == "/crm/v3/objects/contacts/batch/upsert":
            return self._upsert(json.loads(body)["inputs"])
        if method == "POST" and route == "/crm/v3/objects/contacts":
            props = json.loads(body)["properties"]
            if props["email"] in self.by_email:  # HubSpot keeps one contact per email
                return 409, {}, {"status": "error", "category": "CONFLICT",
                                 "message": f"Contact already exists. Existing ID: {props['email']}"}
            self.by_email[props["email"]] = dict(props)
            return 201, {}, {"id": str(len(self.by_email)), "properties": props}
        if m := re.fullmatch(r"/crm/v3/objects/contacts/(\d+)", route):
            contact = self.contacts.get(m[1])
            if contact is None:
                return 404, {}, {"status": "error", "message": "Object not found.", "category": "OBJECT_NOT_FOUND"}
            return 200, {}, _crm_object(m[1], contact, path, "lastmodifieddate")
        if m := re.fullmatch(r"/crm/v3/objects/deals/(\d+)", route):
            deal = self.deals[m[1]]
            return 200, {}, {**_crm_object(m[1], deal["properties"], path, "hs_lastmodifieddate"),
                             "associations": {"contacts": {"results": [
                                 {"id": c, "type": "deal_to_contact"} for c in deal["contacts"]]}}}
        return 404, {}, {"status": "error", "message": "Not found"}

    def _upsert(self, inputs):
        """Batch upsert by a unique property (email here): create or update, 400 on unknown properties."""
        unknown = {p for i in inputs for p in i["properties"]} - self.properties
        if unknown:
            return 400, {}, {"status": "error", "category": "VALIDATION_ERROR",
                             "message": f"Property values were not valid: {sorted(unknown)}"}
        results = []
        for item in inputs:
            assert item["idProperty"] == "email"
            new = item["id"] not in self.by_email
            contact = self.by_email.setdefault(item["id"], {"email": item["id"]})
            contact.update(item["properties"])
            results.append({"id": str(list(self.by_email).index(item["id"]) + 1), "new": new,
                            "properties": contact, "archived": False})
        now = "2026-11-23T12:00:00.000Z"
        return 200, {}, {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
