"""Steps of the referral lifecycle, as the API is driven by a no-code tool."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Api, unique


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def link(api: Api, external_id: str | None = None, email: str | None = None,
         **extra: Any) -> dict[str, Any]:
    external_id = external_id or unique("cus")
    body = {"advocate": {"external_id": external_id, "email": email or f"{external_id}@mail.test"},
            **extra}
    response = api.post("/v1/links", body)
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def claim(api: Api, code: str, friend_id: str | None = None, email: str | None = None,
          expect: int = 201, **extra: Any) -> dict[str, Any]:
    friend_id = friend_id or unique("friend")
    body = {"code": code, "friend": {"external_id": friend_id,
                                     "email": email or f"{friend_id}@mail.test"}, **extra}
    response = api.post("/v1/referrals/claim", body)
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def event(event_id: str | None = None, amount: int = 5000, currency: str = "EUR",
          type_: str = "first_order", at: datetime | None = None) -> dict[str, Any]:
    return {"id": event_id or unique("evt"), "type": type_, "amount": amount,
            "currency": currency, "occurred_at": iso(at or datetime.now(UTC))}


def qualify(api: Api, referral_id: str, expect: int = 200, **event_args: Any) -> dict[str, Any]:
    response = api.post("/v1/referrals/qualify",
                        {"referral_id": referral_id, "event": event(**event_args)})
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def expire_hold(app: Any, referral_id: str, seconds_ago: float = 1) -> None:
    """Move a held referral's hold end into the past, as if the time had passed."""
    from sqlalchemy import update

    from referflow.storage.models import Referral

    with app.extensions["referflow"].db.session() as session:
        session.execute(update(Referral).where(Referral.id == referral_id).values(
            hold_until=datetime.now(UTC) - timedelta(seconds=seconds_ago)))
        session.commit()


def approved_referral(api: Api) -> dict[str, Any]:
    """Drive a fresh referral to approved (qualifying event older than the hold)."""
    code = link(api)["code"]
    referral = claim(api, code)
    qualify(api, referral["id"], at=datetime.now(UTC) - timedelta(days=30))
    got = api.get(f"/v1/referrals/{referral['id']}").get_json()
    assert got["status"] == "approved", got
    return got
