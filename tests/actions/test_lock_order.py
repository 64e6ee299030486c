"""Lock order and completion under interleavings that once deadlocked, stalled or raised.

The threads are paused at the exact points where two transactions used to cross; each test
asserts that both finish and the outcome is right (on PostgreSQL these were real deadlocks).
"""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from referflow.actions import giftcards, lifecycle, referrals, rewards
from referflow.actions.common import Actor, load_program
from referflow.storage import locks
from referflow.storage.models import Program, Referral, Reward
from tests.conftest import PROGRAM_CONFIG, SECRET_KEY, make_program
from tests.helpers import approved_referral, claim, expire_hold, link, qualify


def _run(*targets):
    errors: dict[str, str] = {}

    def guarded(name, fn):
        try:
            fn()
        except Exception as exc:  # report, the assertion below says which
            errors[name] = repr(exc)[:300]

    threads = [threading.Thread(target=guarded, args=(fn.__name__, fn)) for fn in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors


def test_a_claim_and_an_approval_under_a_spend_cap_do_not_deadlock(app, client, monkeypatch):
    api = make_program(client, {**PROGRAM_CONFIG, "caps": {"program_spend_per_month": 10**9}})
    code = link(api)["code"]
    held = claim(api, code)
    qualify(api, held["id"], at=datetime.now(UTC) - timedelta(days=1))
    expire_hold(app, held["id"])
    db = app.extensions["referflow"].db
    program_locked, advocate_locked = threading.Event(), threading.Event()
    real, real_load = locks.serialise_on, locks.lock_and_load

    def approver(session, model, row_id, column):
        real(session, model, row_id, column)
        if model is Program:  # hold the programme lock until the claimer holds the advocate's
            program_locked.set()
            advocate_locked.wait(3)

    def claimer(session, model, row_id, column):
        program_locked.wait(3)
        row = real_load(session, model, row_id, column)
        advocate_locked.set()
        return row

    monkeypatch.setattr(lifecycle, "serialise_on", approver)
    monkeypatch.setattr(referrals, "lock_and_load", claimer)

    def release():
        with db.session() as session:
            referral = session.get(Referral, held["id"])
            lifecycle.release_if_due(session, load_program(session, referral.program_id, SECRET_KEY), referral)

    def new_claim():
        with db.session() as session:
            referrals.claim_referral(session, load_program(session, api.program_id, SECRET_KEY), {
                "code": code, "friend": {"external_id": "f2", "email": "f2@mail.test"}}, Actor("api_key", "k"))

    assert _run(release, new_claim) == {}
    assert api.get(f"/v1/referrals/{held['id']}").get_json()["status"] == "approved"


def test_both_sides_issued_at_once_complete_the_referral(app, client, monkeypatch):
    api = make_program(client, {**PROGRAM_CONFIG, "fulfilment": {"issuer": "ledger", "auto_issue": True}})
    referral = approved_referral(api)
    services = app.extensions["referflow"]
    with services.db.session() as session:
        ids = list(session.scalars(select(Reward.id).where(Reward.referral_id == referral["id"])))
    assert len(ids) == 2
    # Pause each job after it wrote its card, just before it decides completion. Without the
    # referral lock both get here, each sees only its own card, and neither completes; with it,
    # the second waits at the lock, the barrier times out for the first, and the second sees both.
    arrived = threading.Barrier(2, timeout=2)
    real = giftcards.complete_if_paid

    def together(*args, **kwargs):
        with contextlib.suppress(threading.BrokenBarrierError):
            arrived.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(giftcards, "complete_if_paid", together)

    def issue(reward_id):
        def run():
            with services.db.session() as session:
                rewards.issue_reward(session, services, reward_id)
        run.__name__ = f"issue_{reward_id}"
        return run

    assert _run(*[issue(i) for i in ids]) == {}
    got = api.get(f"/v1/referrals/{referral['id']}").get_json()
    assert got["status"] == "rewarded"
    assert [h["action"] for h in got["history"]].count("rewarded") == 1


def test_a_hold_released_twice_at_once_is_approved_once_without_an_error(app, api):
    held = claim(api, link(api)["code"])
    qualify(api, held["id"], at=datetime.now(UTC) - timedelta(days=1))
    expire_hold(app, held["id"])
    db = app.extensions["referflow"].db
    with db.session() as sweep, db.session() as reader:
        stale = sweep.get(Referral, held["id"])  # the sweep loaded it while it was held
        sweep.commit()
        sweep_ctx = load_program(sweep, stale.program_id, SECRET_KEY)
        fresh = reader.get(Referral, held["id"])
        assert lifecycle.release_if_due(reader, load_program(reader, fresh.program_id, SECRET_KEY), fresh)
        assert lifecycle.release_if_due(sweep, sweep_ctx, stale) is False
    history = api.get(f"/v1/referrals/{held['id']}").get_json()["history"]
    assert [h["action"] for h in history].count("hold_released") == 1
