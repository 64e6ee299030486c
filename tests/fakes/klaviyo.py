"""A fake Klaviyo API: Events and Profile Import, JSON:API bodies, revision header, API-key auth."""

from __future__ import annotations

import json

from tests.fakes.server import FakeServer

API_KEY = "pk_fake_0123456789abcdef"


def _error(status: int, code: str, detail: str, pointer: str = "/data") -> tuple[int, dict, dict]:
    return status, {}, {"errors": [{"id": "fake", "status": status, "code": code,
                                    "title": "Invalid input." if status == 400 else code,
                                    "detail": detail, "source": {"pointer": pointer}}]}


class FakeKlaviyo(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict] = []
        self.profiles: dict[str, dict] = {}
        self.unique_ids: set[str] = set()
        self.fail_next: list[tuple[int, dict]] = []
        self.profile_ids: dict[str, str] = {}  # profile id -> email (GET /api/profiles/{id})

    def handle(self, method, path, headers, body):
        if headers.get("Authorization") != f"Klaviyo-API-Key {API_KEY}":
            return _error(401, "not_authenticated", "Missing or invalid private key.")
        if not headers.get("revision"):
            return _error(400, "invalid", "The revision header is required.", "/headers/revision")
        if self.fail_next:
            status, extra = self.fail_next.pop(0)
            return status, extra, {"errors": [{"status": status, "code": "throttled"}]}
        if method == "GET" and path.startswith("/api/profiles/"):
            profile_id = path.rsplit("/", 1)[1]
            if profile_id not in self.profile_ids:
                return _error(404, "not_found", f"profile {profile_id}")
            return 200, {}, {"data": {"type": "profile", "id": profile_id, "attributes": {
                "email": self.profile_ids[profile_id], "phone_number": None, "external_id": None}}}
        data = json.loads(body).get("data", {})
        attributes = data.get("attributes", {})
        if path == "/api/events" and method == "POST":
            if data.get("type") != "event":
                return _error(400, "invalid", "type must be event", "/data/type")
            metric = attributes.get("metric", {}).get("data", {}).get("attributes", {}).get("name")
            profile = attributes.get("profile", {}).get("data", {}).get("attributes", {})
            if not metric or not profile.get("email"):
                return _error(400, "invalid", "metric name and profile email are required",
                              "/data/attributes")
            unique = attributes.get("unique_id")
            if unique not in self.unique_ids:  # Klaviyo dedupes events on unique_id
                self.unique_ids.add(unique)
                self.events.append({"metric": metric, "email": profile["email"],
                                    "properties": attributes.get("properties", {}),
                                    "unique_id": unique})
                self.profiles.setdefault(profile["email"], {}).update(profile.get("properties", {}))
            return 202, {}, None
        if path == "/api/profile-import" and method == "POST":
            self.profiles.setdefault(attributes["email"], {}).update(attributes.get("properties", {}))
            return 200, {}, {"data": {"type": "profile", "id": "01FAKE", "attributes": attributes}}
        return _error(404, "not_found", f"{method} {path}")
