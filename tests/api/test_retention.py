"""Retention: personal data older than REFERFLOW_RETENTION_DAYS is pruned; money facts stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from referflow.actions.inbound import PROCESSED, WAITING
from referflow.actions.retention import prune
from referflow.domain.timeutil import utcnow
from referflow.jobs.runner import tick
from referflow.storage.models import Click, GiftCard, InboundEvent, OutboxEvent, ReferralHistory, WebhookDelivery
from tests.conftest import PROGRAM_CONFIG, make_program
from tests.helpers import claim, link, qualify
from tests.receiver import Receiver


def test_old_personal_data_is_pruned_and_money_facts_stay(client, app):
    api = make_program(client, {**PROGRAM_CONFIG, "hold_days": 0})
    services = app.extensions["referflow"]
    with Receiver() as receiver:
        api.post("/v1/webhooks", {"url": receiver.url, "events": ["*"]})
        code = link(api, "adv-old")["code"]
        client.get(f"/r/{code}", headers={"User-Agent": "Mozilla/5.0"}, environ_base={"REMOTE_ADDR": "203.0.113.7"})
        referral = claim(api, code, "friend-old")
        qualify(api, referral["id"])
        assert api.post("/v1/gift-cards", {"referral_id": referral["id"]}).status_code == 201
        tick(services, services.queue)
    assert receiver.requests, "the events were delivered"
    with services.db.session() as session:
        old = utcnow() - timedelta(days=500)
        for kind, status in (("processed", PROCESSED), ("waiting", WAITING)):
            session.add(InboundEvent(program_id=api.program_id, provider="stripe", event_id=f"evt_{kind}",
                                     type="invoice.paid", payload={"data": {"email": "bob@example.com"}},
                                     status=status, received_at=old))
        session.execute(update(Click).values(created_at=old))
        session.execute(update(OutboxEvent).values(created_at=old, done_at=old))
        # One event still has a delivery in flight: its payload is needed, so it stays.
        kept = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).first()
        session.execute(update(WebhookDelivery).where(WebhookDelivery.outbox_id == kept.id)
                        .values(status="pending"))
        payloads = str([e.payload for e in session.scalars(select(OutboxEvent))])
        assert "friend-old@mail.test" in payloads
        history_before = len(session.scalars(select(ReferralHistory)).all())
        cards_before = [(c.id, c.amount, c.balance) for c in session.scalars(select(GiftCard))]
        session.commit()

        counts = prune(session, utcnow(), days=400)
        outbox = session.scalars(select(OutboxEvent).where(OutboxEvent.program_id == api.program_id)).all()
        assert counts == {"clicks": 1, "inbound_events": 1, "outbox_events": len(outbox) - 1,
                          "moment_decisions": 0}
        click = session.scalars(select(Click)).one()
        assert (click.ip_key, click.net_key, click.ua_key) == (None, None, None) and click.code == code
        inbound = {e.event_id: e for e in session.scalars(select(InboundEvent))}
        assert inbound["evt_processed"].payload == {"pruned": True} and inbound["evt_processed"].pruned_at
        assert inbound["evt_waiting"].payload["data"]["email"] == "bob@example.com"
        for event in outbox:
            if event.id == kept.id:
                assert event.pruned_at is None and event.payload["data"] != {"pruned": True}
            else:
                assert event.payload == {"id": event.event_id, "type": event.type, "program_id": api.program_id,
                                         "created_at": event.payload["created_at"], "data": {"pruned": True}}
        assert "friend-old@mail.test" not in str([e.payload for e in outbox if e.id != kept.id])
        # The money record and the referral's history are untouched; a second run finds nothing.
        assert len(session.scalars(select(ReferralHistory)).all()) == history_before
        assert [(c.id, c.amount, c.balance) for c in session.scalars(select(GiftCard))] == cards_before
        assert prune(session, utcnow(), days=400) == {"clicks": 0, "inbound_events": 0, "outbox_events": 0,
                                                     "moment_decisions": 0}
    # The API still reads the referral in full.
    assert api.get(f"/v1/referrals/{referral['id']}").get_json()["status"] == "rewarded"


def test_recent_data_is_kept(client, app):
    api = make_program(client)
    services = app.extensions["referflow"]
    code = link(api, "adv-new")["code"]
    client.get(f"/r/{code}", environ_base={"REMOTE_ADDR": "203.0.113.8"})
    tick(services, services.queue)
    with services.db.session() as session:
        assert prune(session, utcnow(), days=30) == {"clicks": 0, "inbound_events": 0, "outbox_events": 0,
                                                    "moment_decisions": 0}
        assert session.scalars(select(Click)).one().ip_key is not None
