"""A program with a month of realistic referral traffic, for the analytics pages' tests and the
README's screenshot: advocates, clicks by channel, claims (some sent to review or rejected by a
rule), purchases, approvals, ledger gift cards (some spent), a reversal and a failed reward.

Everything goes through the API (``client``: Flask's test client or tests.browser.LiveClient),
so the rules decide as in production. Then the rows are spread over the last four weeks (test
data only: the API stamps everything now) and the statistics' rollups are rebuilt from them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from referflow.actions import stats
from referflow.storage.db import Database
from referflow.storage.models import (
    Advocate,
    Click,
    GiftCard,
    GiftCardEntry,
    KnownCustomer,
    Referral,
    ReferralHistory,
    Reward,
)
from tests.conftest import Api, make_program
from tests.helpers import iso

CONFIG: dict[str, Any] = {
    "landing_url": "https://shop.example.test/welcome",
    "currency": "EUR",
    "rewards": {"advocate": {"type": "gift_card", "amount": 2500},
                "friend": {"type": "gift_card", "amount": 1000}},
    "hold_days": 7,
    "velocity": {"per_hour": 100, "per_day": 500},
    "fulfilment": {"issuer": "ledger", "auto_issue": True},
    "tiers": [{"name": "ambassador", "min_approved": 3}, {"name": "leader", "min_approved": 6}],
}
ADVOCATES = [("Ann Andersson", "email"), ("Ben Berg", "whatsapp"), ("Cara Costa", "facebook"),
             ("Dev Desai", "email"), ("Elin Ek", "instagram"), ("Farid Fares", "whatsapp"),
             ("Greta Gil", "email"), ("Hugo Holm", "facebook")]
CHANNELS = ["email", "whatsapp", "facebook", "instagram", "sms"]
FAILED_REWARD_ERROR = "Shopify refused the gift card (HTTP 422): the shop has no gift card feature"
DAYS = 27  # the rows are spread over this many days before today


@dataclass
class Seeded:
    """What was made: the program, its advocates, and the figures the pages must show."""

    program_id: str
    api: Api
    advocate_ids: dict[str, str] = field(default_factory=dict)  # name -> id
    clicks: int = 0
    referrals: dict[str, str] = field(default_factory=dict)  # id -> what was done to it
    statuses: Counter[str] = field(default_factory=Counter)
    revenue: int = 0  # minor units, qualifying purchases
    channels: Counter[str] = field(default_factory=Counter)  # clicks per channel
    claim_order: list[str] = field(default_factory=list)  # referral ids, as claimed
    planned: dict[int, datetime] = field(default_factory=dict)  # claim index -> day to seem claimed


def seed(client: Any, db: Database, run_jobs: Callable[[], None], name: str = "Acme Coffee",
         spread: bool = True) -> Seeded:
    """Create a program with a month of traffic through the API; return what the pages must show."""
    rng = random.Random(12)
    api = make_program(client, CONFIG, name=name)
    made = Seeded(api.program_id, api)
    people = []
    for index, (person, channel) in enumerate(ADVOCATES):
        external = f"cus_{person.split()[0].lower()}"
        body = {"advocate": {"external_id": external, "email": f"{external[4:]}@example.com",
                             "name": person}}
        link = api.post("/v1/links", body).get_json()
        made.advocate_ids[person] = link["advocate_id"]
        people.append((external, link["code"], channel, 1 + (len(ADVOCATES) - index) // 2))
    # The shop's customers (advocates among them): participation is advocates over customers.
    customers = [{"external_id": p[0]} for p in people] + [{"external_id": f"cus_{n:04d}"} for n in range(112)]
    imported = api.post("/v1/customers", {"customers": customers})
    assert imported.status_code == 200, imported.get_json()
    claims = []
    for external, code, channel, weight in people:
        for n in range(weight * 4):
            used = channel if rng.random() < 0.7 else rng.choice(CHANNELS)
            click_id = _click(client, code, used)
            made.clicks += 1
            made.channels[used] += 1
            if n % 3 == 0:
                claims.append((external, code, click_id))
    _claims(api, made, claims, rng)
    run_jobs()
    _after_approval(api, made, db, run_jobs)
    if spread:
        spread_over_days(db, made, DAYS, rng)
    return made


def _click(client: Any, code: str, channel: str) -> str:
    response = client.get(f"/r/{code}?ch={channel}")
    assert response.status_code == 302, response.status_code
    return response.headers["Location"].split("click_id=")[1]


def _claims(api: Api, made: Seeded, claims: list[tuple[str, str, str]], rng: random.Random) -> None:
    now = datetime.now(UTC)
    for index, (advocate, code, click_id) in enumerate(claims):
        # The day it will seem to have been claimed (spread_over_days moves it there), and a
        # purchase a few days later: 7 days on, the hold is over and the API approves at once.
        claimed_at = now - timedelta(days=DAYS * (1 - index / len(claims)), hours=rng.randint(0, 12))
        made.planned[index] = claimed_at
        friend = f"friend_{index:02d}"
        # The last claims raise signals (disposable email, same IP as an earlier friend): they
        # are recent, so they still wait for review, their deadline ahead.
        late = len(claims) - index
        email = f"{friend}@mailinator.com" if late == 1 else f"{friend}@example.net"
        ip = "198.51.100.7" if late in (3, 4) else f"203.0.{index}.10"
        body = {"code": code, "click_id": click_id, "friend": {"external_id": friend, "email": email},
                "context": {"ip": ip}}
        if index == 3:  # the advocate refers themself: rejected by the self_referral rule
            body["friend"] = {"external_id": advocate, "email": f"{advocate[4:]}@example.com"}
        claimed = api.post("/v1/referrals/claim", body)
        assert claimed.status_code == 201, claimed.get_json()
        referral = claimed.get_json()
        made.referrals[referral["id"]] = "claimed"
        made.claim_order.append(referral["id"])
        if referral["status"] != "pending" or index % 5 == 4:
            continue  # in review, rejected, or a friend who has not bought yet
        amount = rng.choice([3900, 4900, 5900, 7500, 8900, 12900])
        bought = min(claimed_at + timedelta(days=rng.uniform(0.2, 3)), now - timedelta(hours=1))
        event = {"id": f"ord_{index:03d}", "type": "first_order", "amount": amount, "currency": "EUR",
                 "occurred_at": iso(bought)}
        qualified = api.post("/v1/referrals/qualify", {"referral_id": referral["id"], "event": event})
        assert qualified.status_code == 200, qualified.get_json()
        made.revenue += amount
        made.referrals[referral["id"]] = "qualified"


def _after_approval(api: Api, made: Seeded, db: Database, run_jobs: Callable[[], None]) -> None:
    """Spend some gift cards, reverse one referral, and fail one reward."""
    rewarded = [rid for rid in made.referrals if _status(api, rid) == "rewarded"]
    with db.session() as session:
        cards = session.scalars(select(GiftCard).where(GiftCard.program_id == made.program_id,
                                                       GiftCard.side == "friend")).all()
        codes = [c.code for c in cards]
    for code in codes[: len(codes) // 2]:
        spent = api.post(f"/v1/gift-cards/{code}/redeem", {"amount": 600, "currency": "EUR"})
        assert spent.status_code == 200, spent.get_json()
    reversed_ = api.post(f"/v1/referrals/{rewarded[0]}/reverse", {"reason": "refund"})
    assert reversed_.status_code == 200, reversed_.get_json()
    made.referrals[rewarded[0]] = "reversed"
    # An advocate's reward that Shopify refused for good: the referral stays approved (test
    # data, by SQL: as if the program had paid that side through Shopify).
    with db.session() as session:
        session.execute(update(Reward).where(Reward.referral_id == rewarded[1],
                                             Reward.side == "advocate").values(
            issuer="shopify_gift_card", status="failed", last_error=FAILED_REWARD_ERROR,
            attempts=3, issued_at=None))
        card = session.scalar(select(GiftCard).where(GiftCard.referral_id == rewarded[1],
                                                     GiftCard.side == "advocate"))
        if card is not None:
            session.execute(delete(GiftCardEntry).where(GiftCardEntry.gift_card_id == card.id))
            session.delete(card)
        session.execute(delete(ReferralHistory).where(ReferralHistory.referral_id == rewarded[1],
                                                      ReferralHistory.action == "rewarded"))
        session.execute(update(Referral).where(Referral.id == rewarded[1]).values(status="approved"))
        session.commit()
    for rid in made.referrals:
        made.statuses[_status(api, rid)] += 1


def _status(api: Api, referral_id: str) -> str:
    return api.get(f"/v1/referrals/{referral_id}").get_json()["status"]


def spread_over_days(db: Database, made: Seeded, days: int, rng: random.Random) -> None:
    """Give each referral the claim day planned for it (and its click, history, rewards and
    cards the days that follow from it); scatter the other clicks over ``days`` days; then
    rebuild the program's statistics from the moved rows."""
    with db.session() as session:
        now = datetime.now(UTC)
        for index, referral_id in enumerate(made.claim_order):
            referral = session.get(Referral, referral_id)
            assert referral is not None
            _move(session, referral, made.planned[index], now)
        for advocate in session.scalars(select(Advocate).where(Advocate.program_id == made.program_id)):
            advocate.created_at -= timedelta(days=days + 1)
        for customer in session.scalars(select(KnownCustomer).where(KnownCustomer.program_id == made.program_id)):
            customer.created_at -= timedelta(days=90)
        for click in session.scalars(select(Click).where(Click.program_id == made.program_id,
                                                         Click.created_at > now - timedelta(hours=1))):
            click.created_at -= timedelta(days=rng.randint(0, days), hours=rng.randint(0, 23))
        session.commit()
    with db.session() as session:  # after: the moves' own rollup writes are replaced
        stats.rebuild(session, made.program_id)
        session.commit()


def _move(session: Any, referral: Referral, claimed_at: datetime, now: datetime) -> None:
    referral.created_at = claimed_at
    approved = referral.hold_until if referral.approved_at is not None else None
    if approved is not None:
        referral.approved_at = approved
    if referral.review_deadline is not None:
        referral.review_deadline = claimed_at + timedelta(hours=72)
    if referral.click_id:
        click = session.get(Click, referral.click_id)
        if click is not None:
            click.created_at = claimed_at - timedelta(minutes=20)
    _retell_history(session, referral, claimed_at, approved)
    if approved is None:
        return
    for reward in session.scalars(select(Reward).where(Reward.referral_id == referral.id)):
        reward.created_at = approved
        reward.issued_at = approved + timedelta(minutes=1) if reward.issued_at else None
    for card in session.scalars(select(GiftCard).where(GiftCard.referral_id == referral.id)):
        card.expires_at = approved + timedelta(minutes=1) + (card.expires_at - card.created_at)
        card.created_at = approved + timedelta(minutes=1)
        for entry in session.scalars(select(GiftCardEntry).where(GiftCardEntry.gift_card_id == card.id)):
            entry.at = card.created_at if entry.kind == "issue" else min(
                approved + timedelta(days=2), now - timedelta(minutes=5))


def _retell_history(session: Any, referral: Referral, claimed_at: datetime,
                    approved: datetime | None) -> None:
    """Date the history as it would have happened: claimed; the purchase puts the referral on
    hold; the scheduler approves it when the hold ends; the rewards follow. (The API, told of a
    purchase older than the hold, approved at once in one entry: it is split in two here, and
    the entries are written again so that their ids keep their order.)"""
    rows = list(session.scalars(select(ReferralHistory).where(
        ReferralHistory.referral_id == referral.id).order_by(ReferralHistory.id)))
    retold: list[dict[str, Any]] = []
    for h in rows:
        row = {c: getattr(h, c) for c in ("program_id", "at", "action", "actor_type", "actor_id",
                                          "from_status", "to_status", "reasons", "data", "config_version")}
        if h.action == "claimed":
            row["at"] = claimed_at
        elif h.action == "qualified" and h.to_status == "approved" and approved is not None:
            data = dict(h.data)
            moved = {k: data.pop(k) for k in ("tier", "rewards") if k in data}
            hold = {"hold_until": referral.hold_until.isoformat() if referral.hold_until else None}
            retold.append({**row, "at": referral.qualified_at, "to_status": "held",
                           "data": {**data, **hold}})
            row = {**row, "at": approved, "action": "hold_released", "actor_type": "system",
                   "actor_id": "scheduler", "from_status": "held", "data": {**hold, **moved}}
        elif h.action == "qualified":
            row["at"] = referral.qualified_at
        elif h.action == "rewarded" and approved is not None:
            row["at"] = approved + timedelta(minutes=2)
        retold.append(row)
        session.delete(h)
    session.flush()
    for row in retold:
        session.add(ReferralHistory(referral_id=referral.id, **row))
        session.flush()  # one at a time: the ids keep the order
