"""The few HubSpot CRM reads ingress needs (webhooks carry ids, not properties)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from referflow.errors import PermanentProviderError
from referflow.providers.http import call

# The contact property holding the code a contact was referred with (a form field). It is not
# ``referral_code``: that is the contact's own code as an advocate, which referflow writes.
REFERRED_BY = "referred_by_code"
PROPERTIES = {
    "referral_code": "Referral code", "referral_link": "Referral link",
    "referral_tier": "Referral tier", "referrals_approved": "Referrals approved",
}


class HubSpotClient:
    """CRM v3 reads with a private-app access token."""

    def __init__(self, access_token: str, api_base: str):
        self.token, self.base = access_token, api_base.rstrip("/")

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def ensure_properties(self) -> None:
        """Create referflow's contact properties; an existing one answers 409, which is fine."""
        for name, label in PROPERTIES.items():
            try:
                call("POST", f"{self.base}/crm/v3/properties/contacts", "hubspot",
                     headers=self._headers(), json={
                         "name": name, "label": label, "groupName": "contactinformation",
                         "type": "number" if name == "referrals_approved" else "string",
                         "fieldType": "number" if name == "referrals_approved" else "text"})
            except PermanentProviderError as exc:
                if "409" not in str(exc):
                    raise

    def upsert_contact(self, email: str, properties: dict[str, Any]) -> None:
        """Update a contact by email, creating it when HubSpot does not know it."""
        values = {k: str(v) for k, v in properties.items()}
        try:
            call("PATCH", f"{self.base}/crm/v3/objects/contacts/{quote(email, safe='@')}", "hubspot",
                 params={"idProperty": "email"}, headers=self._headers(),
                 json={"properties": values})
        except PermanentProviderError as exc:
            if "404" not in str(exc):
                raise
            call("POST", f"{self.base}/crm/v3/objects/contacts", "hubspot",
                 headers=self._headers(), json={"properties": {"email": email, **values}})

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        return call("GET", f"{self.base}{path}", "hubspot", params=params,
                    headers=self._headers()).json()

    def contact(self, contact_id: str) -> dict[str, Any]:
        """Return a contact's email and referred_by_code (the code they were referred with; their
        own code, as an advocate, is ``referral_code``)."""
        return self._get(f"/crm/v3/objects/contacts/{contact_id}",
                         {"properties": f"email,{REFERRED_BY}"})["properties"]

    def deal(self, deal_id: str) -> tuple[dict[str, Any], list[str]]:
        """Return a deal's properties and its associated contact ids."""
        body = self._get(f"/crm/v3/objects/deals/{deal_id}", {
            "properties": "amount,deal_currency_code,closedate,dealstage",
            "associations": "contacts"})
        contacts = body.get("associations", {}).get("contacts", {}).get("results", [])
        return body["properties"], [str(c["id"]) for c in contacts]
