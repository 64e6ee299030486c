"""Klaviyo Events API (JSON:API with a revision header); profile properties ride on the event."""

from __future__ import annotations

from typing import Any

from referflow.providers.http import call

REVISION = "2024-10-15"


class KlaviyoClient:
    """Send referral events to Klaviyo with a private API key."""

    def __init__(self, api_key: str, api_base: str):
        self.key, self.base = api_key, api_base.rstrip("/")

    def _post(self, path: str, body: dict[str, Any]) -> None:
        call("POST", f"{self.base}{path}", "klaviyo", json=body, headers={
            "Authorization": f"Klaviyo-API-Key {self.key}", "revision": REVISION,
            "accept": "application/vnd.api+json", "content-type": "application/vnd.api+json"})

    def event(self, metric: str, email: str, properties: dict[str, Any],
              profile_properties: dict[str, Any], unique_id: str, time: str) -> None:
        """Create an event (Klaviyo dedupes on ``unique_id``) and update the profile's properties."""
        self._post("/api/events", {"data": {"type": "event", "attributes": {
            "properties": properties, "time": time, "unique_id": unique_id,
            "metric": {"data": {"type": "metric", "attributes": {"name": metric}}},
            "profile": {"data": {"type": "profile", "attributes": {
                "email": email, "properties": profile_properties}}}}}})

    def email_of(self, profile_id: str) -> str | None:
        """Return a profile's email (a consent webhook names the profile, not always the email)."""
        found = call("GET", f"{self.base}/api/profiles/{profile_id}", "klaviyo", headers={
            "Authorization": f"Klaviyo-API-Key {self.key}", "revision": REVISION,
            "accept": "application/vnd.api+json"}).json()
        email = ((found.get("data") or {}).get("attributes") or {}).get("email")
        return email if isinstance(email, str) else None

    def profile(self, email: str, properties: dict[str, Any]) -> None:
        """Create or update a profile's properties."""
        self._post("/api/profile-import", {"data": {"type": "profile", "attributes": {
            "email": email, "properties": properties}}})
