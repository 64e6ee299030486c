"""Programs, advocates and friends for the advocate-page tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import PROGRAM_CONFIG, Api, make_program
from tests.helpers import claim, qualify

PORTAL_CONFIG: dict[str, Any] = {
    **PROGRAM_CONFIG,
    "tiers": [{"name": "Silver", "min_approved": 2, "perks": ["Free shipping"]},
              {"name": "Gold", "min_approved": 5,
               "advocate_reward": {"type": "gift_card", "amount": 4000}}],
    "portal": {"name": "Acme Coffee", "colours": {"primary": "#7c2d12", "accent": "#b45309"},
               "terms": "Rewards are paid after 14 days.\n\nOne account per person.",
               "consent_text": "We email you when a friend joins.", "support_email": "help@acme.test",
               "allowed_origins": ["https://shop.acme.test"], "leaderboard": True},
}
# Friends whose email, id and surname must never reach the page.
FRIENDS = (("friend_jonas_91", "jonas.becker@private.test"),
           ("friend_mia_22", "mia.wagner@private.test"),
           ("friend_li_07", "li.zhang@private.test"))


def portal_program(client: Any, **portal: Any) -> Api:
    """Create a program with the portal config above, ``portal`` keys replaced."""
    return make_program(client, {**PORTAL_CONFIG, "portal": {**PORTAL_CONFIG["portal"], **portal}})


def enrol(api: Api, external_id: str = "cus_anna", name: str | None = "Anna Schmidt",
          email: str = "anna.schmidt@mail.test") -> dict[str, Any]:
    """Enrol an advocate through createLink; return its answer."""
    person: dict[str, Any] = {"external_id": external_id, "email": email}
    if name is not None:
        person["name"] = name
    response = api.post("/v1/links", {"advocate": person})
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def refer_friends(api: Api, code: str, approve: int = 2) -> list[dict[str, Any]]:
    """Claim a referral for each of FRIENDS; approve the first ``approve`` of them."""
    referrals = [claim(api, code, friend_id, email) for friend_id, email in FRIENDS]
    for referral in referrals[:approve]:
        qualify(api, referral["id"], at=datetime.now(UTC) - timedelta(days=30))
    return referrals


def path_of(url: str) -> str:
    """Return the path (and query) of an absolute URL, for the test client."""
    return "/" + url.split("/", 3)[3]
