"""The few HubSpot CRM reads ingress needs (webhooks carry ids, not properties)."""

from __future__ import annotations

from typing import Any

from referflow.providers.http import call


class HubSpotClient:
    """CRM v3 reads with a private-app access token."""

    def __init__(self, access_token: str, api_base: str):
        self.token, self.base = access_token, api_base.rstrip("/")

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        return call("GET", f"{self.base}{path}", "hubspot", params=params,
                    headers={"Authorization": f"Bearer {self.token}"}).json()

    def contact(self, contact_id: str) -> dict[str, Any]:
        """Return a contact's email and referral_code properties."""
        return self._get(f"/crm/v3/objects/contacts/{contact_id}",
                         {"properties": "email,referral_code"})["properties"]

    def deal(self, deal_id: str) -> tuple[dict[str, Any], list[str]]:
        """Return a deal's properties and its associated contact ids."""
        body = self._get(f"/crm/v3/objects/deals/{deal_id}", {
            "properties": "amount,deal_currency_code,closedate,dealstage",
            "associations": "contacts"})
        contacts = body.get("associations", {}).get("contacts", {}).get("results", [])
        return body["properties"], [str(c["id"]) for c in contacts]
