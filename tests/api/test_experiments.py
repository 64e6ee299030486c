"""Experiments through the API: create, read, list, change, stop (and the 409s); deterministic
assignment across app instances; variants on links, asks and referrals; a variant's rewards at
approval under the caps; results and CSV that agree with the source tables. Tiers by behaviour
and by hand (setAdvocateTier)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select

from referflow.actions.events import public_payload
from referflow.app import create_app
from referflow.domain import experiments as ex
from referflow.domain import referral as states
from referflow.storage.models import (
    AdvocateEvent,
    ExperimentAssignment,
    MomentDecision,
    OutboxEvent,
    Referral,
)
from tests.conftest import PROGRAM_CONFIG, SECRET_KEY, Api, make_program
from tests.helpers import claim, iso, link, qualify

BIGGER = {"advocate": {"type": "gift_card", "amount": 4000},
          "friend": {"type": "gift_card", "amount": 1500}}
REWARDS_TEST = {"name": "Advocate reward 25 vs 40",
                "variants": [{"name": "control", "weight": 1},
                             {"name": "bigger", "weight": 1, "rewards": BIGGER,
                              "friend_offer": "15 EUR off your first order"}],
                "minimum_detectable_effect": 0.1}
MESSAGE_TEST = {"name": "Ask wording", "moment": "first_win",
                "variants": [{"name": "plain", "weight": 1},
                             {"name": "warm", "weight": 1, "message": "You loved it: tell a friend"}]}
MOMENT_TEST = {"name": "Ask at the first win?",
               "variants": [{"name": "ask", "weight": 1, "moments": ["first_win"]},
                            {"name": "holdout", "weight": 1, "moments": []}]}


def create(api: Api, body: dict[str, Any], expect: int = 201) -> dict[str, Any]:
    response = api.post("/v1/experiments", body)
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def by_variant(api: Api, each: int, names: tuple[str, ...] = ("control", "bigger"),
               prefix: str = "cus") -> dict[str, list[dict[str, Any]]]:
    """Give advocates links until every variant has ``each``; return the links by variant.

    The experiment's id is random, so who lands where differs from run to run.
    """
    groups: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for i in range(200):
        if all(len(links) >= each for links in groups.values()):
            break
        made = link(api, external_id=f"{prefix}_{i}")
        groups[made["variant"]["name"]].append(made)
    assert all(len(links) >= each for links in groups.values()), groups
    return groups


def db(app: Any) -> Any:
    return app.extensions["referflow"].db.session()


def approve(api: Api, code: str) -> dict[str, Any]:
    referral = claim(api, code)
    qualify(api, referral["id"], at=datetime.now(UTC) - timedelta(days=30))
    return api.get(f"/v1/referrals/{referral['id']}").get_json()


# -- the experiments ------------------------------------------------------------------------------

def test_create_read_list_change_and_stop(api):
    made = create(api, REWARDS_TEST)
    assert made["status"] == "running" and made["subject"] == "rewards" and made["id"].startswith("exp_")
    assert made["variants"][1]["rewards"] == BIGGER and made["variants"][0]["rewards"] is None
    assert (made["minimum_detectable_effect"], made["baseline_rate"]) == (0.1, None)
    assert api.get(f"/v1/experiments/{made['id']}").get_json() == made
    renamed = api.client.patch(f"/v1/experiments/{made['id']}", headers=api.headers(),
                               json={"name": "Renamed", "baseline_rate": 0.2})
    assert renamed.status_code == 200 and renamed.get_json()["baseline_rate"] == 0.2
    stopped = api.post(f"/v1/experiments/{made['id']}/stop", {"note": "enough"}).get_json()
    assert (stopped["status"], stopped["stop_note"], stopped["name"]) == ("stopped", "enough", "Renamed")
    message = create(api, MESSAGE_TEST)
    listed = api.get("/v1/experiments").get_json()["items"]
    assert [e["id"] for e in listed] == [message["id"], made["id"]]
    assert [e["id"] for e in api.get("/v1/experiments?status=stopped").get_json()["items"]] == [made["id"]]
    assert api.get("/v1/experiments?status=paused").status_code == 400


def test_an_empty_program_lists_no_experiments(api):
    assert api.get("/v1/experiments").get_json() == {"items": []}


def test_one_running_experiment_per_subject(api):
    first = create(api, REWARDS_TEST)
    refused = create(api, {**REWARDS_TEST, "name": "again"}, expect=409)
    assert refused["code"] == "experiment_running" and first["id"] in refused["message"]
    create(api, MESSAGE_TEST)  # another subject runs beside it
    create(api, MOMENT_TEST)
    assert api.post(f"/v1/experiments/{first['id']}/stop").status_code == 200
    create(api, {**REWARDS_TEST, "name": "next"})  # the subject is free again


def test_stopping_twice_and_changing_variants_are_conflicts(api):
    made = create(api, REWARDS_TEST)
    patch = {"variants": [{"name": "a", "weight": 9}]}
    changed = api.client.patch(f"/v1/experiments/{made['id']}", headers=api.headers(), json=patch)
    assert (changed.status_code, changed.get_json()["code"]) == (409, "experiment_variants_fixed")
    assert api.post(f"/v1/experiments/{made['id']}/stop").status_code == 200
    again = api.post(f"/v1/experiments/{made['id']}/stop")
    assert (again.status_code, again.get_json()["code"]) == (409, "experiment_stopped")
    changed = api.client.patch(f"/v1/experiments/{made['id']}", headers=api.headers(), json=patch)
    assert changed.status_code == 409


def test_unknown_experiments_and_other_programs_experiments_are_404(client, api):
    other = make_program(client, name="Other")
    theirs = create(other, REWARDS_TEST)
    for path in ("/v1/experiments/exp_nope", f"/v1/experiments/{theirs['id']}",
                 f"/v1/experiments/{theirs['id']}/results"):
        response = api.get(path)
        assert (response.status_code, response.get_json()["code"]) == (404, "experiment_not_found")
    assert api.post(f"/v1/experiments/{theirs['id']}/stop").status_code == 404


@pytest.mark.parametrize(("body", "code"), [
    ({**REWARDS_TEST, "variants": [{"name": "only", "weight": 1, "message": "x"}]}, "validation_failed"),
    ({**REWARDS_TEST, "variants": [{"name": "a", "weight": 0}, {"name": "b", "weight": 1, "message": "x"}]},
     "validation_failed"),
    ({**REWARDS_TEST, "minimum_detectable_effect": 1.5}, "validation_failed"),
    ({**REWARDS_TEST, "variants": [{"name": "a", "weight": 1, "message": "x"},
                                   {"name": "a", "weight": 1}]}, "duplicate_variant"),
    ({**REWARDS_TEST, "variants": [{"name": "a", "weight": 1, "message": "x"},
                                   {"name": "b", "weight": 1, "rewards": BIGGER}]}, "mixed_subjects"),
    ({**REWARDS_TEST, "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 2}]},
     "nothing_varies"),
    ({**REWARDS_TEST, "moment": "first_win"}, "moment_scope"),
    ({**MESSAGE_TEST, "moment": "bogus"}, "unknown_moment"),
    ({**MOMENT_TEST, "variants": [{"name": "a", "weight": 1, "moments": ["first_win"]},
                                  {"name": "b", "weight": 1}]}, "missing_moments"),
])
def test_bad_designs_are_refused(api, body, code):
    response = api.post("/v1/experiments", body)
    assert (response.status_code, response.get_json()["code"]) == (422, code)


def test_a_write_key_reads_experiments_but_cannot_start_or_stop_them(client, admin, api):
    made = create(api, REWARDS_TEST)
    key = admin.post(f"/v1/admin/programs/{api.program_id}/api-keys", {"scopes": ["write"]}).get_json()
    worker = Api(client, key["key"])
    assert worker.get(f"/v1/experiments/{made['id']}/results").status_code == 200
    assert worker.post("/v1/experiments", MESSAGE_TEST).status_code == 403
    assert worker.post(f"/v1/experiments/{made['id']}/stop").status_code == 403


# -- assignment -----------------------------------------------------------------------------------

def test_links_carry_the_variant_the_same_advocate_always_gets(api):
    assert link(api, external_id="early")["variant"] is None  # no experiment yet
    made = create(api, REWARDS_TEST)
    first = [link(api, external_id=f"cus_{i}") for i in range(30)]
    assert {one["variant"]["name"] for one in first} == {"control", "bigger"}
    assert all(one["variant"]["experiment_id"] == made["id"] for one in first)
    assert [link(api, external_id=f"cus_{i}")["variant"] for i in range(30)] == \
        [one["variant"] for one in first]
    api.post(f"/v1/experiments/{made['id']}/stop")
    assert link(api, external_id="cus_0")["variant"] is None


def test_assignment_is_the_same_in_another_app_instance_without_the_stored_rows(settings, app, api):
    made = create(api, {**REWARDS_TEST, "variants": [{"name": "control", "weight": 1},
                                                     {"name": "bigger", "weight": 3, "rewards": BIGGER}]})
    first = {i: link(api, external_id=f"p_{i}")["variant"]["name"] for i in range(60)}
    with db(app) as session:
        session.execute(delete(ExperimentAssignment))
        session.commit()
    other = create_app(settings)  # another web process: nothing shared but the database and key
    try:
        again = Api(other.test_client(), api.token)
        second = {i: again.post("/v1/links", {"advocate": {"external_id": f"p_{i}", "email": None}})
                  .get_json()["variant"]["name"] for i in range(60)}
    finally:
        other.extensions["referflow"].db.dispose()
    assert first == second and set(first.values()) == {"control", "bigger"}
    # what the hash says, for these and for 10k more people: the weights within tolerance
    assert all(["control", "bigger"][ex.choose(SECRET_KEY, made["id"], f"p_{i}", [1, 3])] == name
               for i, name in first.items())
    counts = Counter(ex.choose(SECRET_KEY, made["id"], f"adv_{i}", [1, 3]) for i in range(10_000))
    assert abs(counts[1] - 7_500) < 200 and counts[0] + counts[1] == 10_000


# -- variants at claim and at approval ------------------------------------------------------------

def test_a_variant_sets_the_rewards_of_its_referrals_and_shows_in_the_claim_history(api):
    made = create(api, REWARDS_TEST)
    groups = by_variant(api, 1)
    bigger, control = groups["bigger"][0], groups["control"][0]
    paid = approve(api, bigger["code"])
    assert paid["rewards"] == {"advocate": 4000, "friend": 1500}
    assert approve(api, control["code"])["rewards"] == {"advocate": 2500, "friend": 1000}
    claimed = next(h for h in paid["history"] if h["action"] == "claimed")
    assert claimed["data"]["variants"] == [{"experiment_id": made["id"], "name": "bigger",
                                           "subject": "rewards"}]
    # stopped: the referral keeps its terms; new claims are in no experiment
    api.post(f"/v1/experiments/{made['id']}/stop")
    referral = claim(api, bigger["code"])
    qualify(api, referral["id"], at=datetime.now(UTC) - timedelta(days=30))
    assert api.get(f"/v1/referrals/{referral['id']}").get_json()["rewards"] == \
        {"advocate": 2500, "friend": 1000}


def test_a_claim_assigns_an_advocate_whose_link_predates_the_experiment(app, api):
    early = link(api, external_id="early")
    made = create(api, REWARDS_TEST)
    referral = claim(api, early["code"])
    with db(app) as session:
        row = session.get(Referral, referral["id"])
        stored = session.scalars(select(ExperimentAssignment)).all()
    assert [a.advocate_id for a in stored] == [early["advocate_id"]]
    assert row.variants == [{"experiment_id": made["id"], "name": stored[0].variant, "subject": "rewards"}]


def test_variant_rewards_stay_under_the_monthly_budget(client):
    api = make_program(client, {**PROGRAM_CONFIG, "caps": {"program_spend_per_month": 6000}})
    create(api, REWARDS_TEST)
    bigger = by_variant(api, 2)["bigger"]
    assert approve(api, bigger[0]["code"])["status"] == "approved"  # 5500 committed
    second = approve(api, bigger[1]["code"])  # 5500 more would pass 6000
    deferred = second["history"][-1]
    assert (second["status"], deferred["action"], deferred["reasons"][0]["code"]) == \
        ("held", "cap_deferred", "budget_exhausted")


# -- asks -----------------------------------------------------------------------------------------

def moment(api: Api, external_id: str, kind: str = "first_win") -> dict[str, Any]:
    response = api.post("/v1/moments", {
        "person": {"external_id": external_id, "email": f"{external_id}@mail.test"},
        "moment": kind, "data": {}, "occurred_at": iso(datetime.now(UTC))})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_message_experiment_gives_asks_their_message_in_its_moment_only(app, api):
    made = create(api, MESSAGE_TEST)
    asks = [moment(api, f"m_{i}") for i in range(24)]
    names = {a["variants"][0]["name"] for a in asks}
    assert names == {"plain", "warm"}
    for ask in asks:
        (variant,) = ask["variants"]
        assert variant == {"experiment_id": made["id"], "name": variant["name"], "subject": "message"}
        assert ask["message"] == ("You loved it: tell a friend" if variant["name"] == "warm" else None)
    other = moment(api, "r_1", "renewal")
    assert other["decision"] == "ask" and (other["variants"], other["message"]) == ([], None)
    with db(app) as session:
        events = [public_payload(e.payload) for e in session.scalars(
            select(OutboxEvent).where(OutboxEvent.type == "ask.decided"))]
    warm = next(a for a in asks if a["variants"][0]["name"] == "warm")
    assert next(e for e in events if e["data"]["ask"]["id"] == warm["id"])["data"]["ask"]["message"] \
        == "You loved it: tell a friend"


def test_a_moment_experiment_holds_out_its_control(app, api):
    made = create(api, MOMENT_TEST)
    decisions = {i: moment(api, f"h_{i}") for i in range(24)}
    held = [d for d in decisions.values() if d["variants"][0]["name"] == "holdout"]
    asked = [d for d in decisions.values() if d["variants"][0]["name"] == "ask"]
    assert held and asked
    assert all((d["decision"], d["skip_reason"], d["link"]) == ("skip", "experiment_holdout", None)
               for d in held)
    assert all(d["decision"] == "ask" for d in asked)
    assert held[0]["outcomes"][-1]["rule"] == "experiment"
    renewal = moment(api, "h_0", "renewal")  # not a moment the experiment covers
    assert renewal["variants"] == [] or renewal["variants"][0]["subject"] != "moment"
    results = api.get(f"/v1/experiments/{made['id']}/results").get_json()
    funnel = {v["name"]: v["funnel"] for v in results["variants"]}
    assert funnel["holdout"] == {"assigned": len(held), "asks": 0, "links": 0, "claims": 0,
                                 "approved": 0, "rewarded": 0}
    assert (funnel["ask"]["assigned"], funnel["ask"]["asks"], funnel["ask"]["links"]) == \
        (len(asked), len(asked), len(asked))


# -- results ---------------------------------------------------------------------------------------

def test_results_agree_with_the_source_tables(app, api):
    made = create(api, {**REWARDS_TEST, "baseline_rate": 0.2})
    groups = by_variant(api, 4)
    for advocate in groups["bigger"][:3] + groups["control"][:2]:
        approve(api, advocate["code"])
    claim(api, groups["bigger"][3]["code"])  # pending
    held = claim(api, groups["control"][2]["code"])
    qualify(api, held["id"], amount=9900)  # held 14 days
    reversed_ = approve(api, groups["control"][3]["code"])
    assert api.post(f"/v1/referrals/{reversed_['id']}/reverse", {"reason": "refund"}).status_code == 200
    results = api.get(f"/v1/experiments/{made['id']}/results").get_json()
    assert results["experiment"]["id"] == made["id"] and results["control"] == "control"
    with db(app) as session:
        assigned = Counter(a.variant for a in session.scalars(
            select(ExperimentAssignment).where(ExperimentAssignment.experiment_id == made["id"])))
        referrals = [(r, next(v["name"] for v in r.variants)) for r in session.scalars(
            select(Referral).where(Referral.program_id == api.program_id))]
    for variant in results["variants"]:
        name = variant["name"]
        mine = [r for r, n in referrals if n == name]
        ok = [r for r in mine if r.status in (states.APPROVED, states.REWARDED)]
        assert variant["funnel"] == {
            "assigned": assigned[name], "asks": 0, "links": assigned[name], "claims": len(mine),
            "approved": len(ok), "rewarded": sum(r.status == states.REWARDED for r in mine)}
        assert variant["revenue"] == ({"EUR": sum(r.qualified_amount for r in mine
                                                  if r.status in states.QUALIFIED_STATUSES)}
                                      if any(r.status in states.QUALIFIED_STATUSES for r in mine) else {})
        assert variant["reward_cost"] == {"EUR": sum(r.advocate_reward + r.friend_reward for r in ok)}
        converted = len({r.advocate_id for r in ok})
        interval = ex.wilson(converted, assigned[name])
        assert variant["conversion"] == {"converted": converted, "exposed": assigned[name],
                                         "rate": round(converted / assigned[name], 6),
                                         "low": round(interval.low, 6), "high": round(interval.high, 6)}
    assert (results["baseline_rate"], results["baseline_source"]) == (0.2, "given")
    assert results["sample_size_per_variant"] == ex.required_sample(0.2, 0.1)
    assert (results["winner"], results["reason"]) == (None, "not_enough_data")


def test_results_of_an_experiment_nobody_saw_yet(api):
    made = create(api, REWARDS_TEST)
    results = api.get(f"/v1/experiments/{made['id']}/results").get_json()
    assert [v["conversion"] for v in results["variants"]] == [
        {"converted": 0, "exposed": 0, "rate": None, "low": None, "high": None}] * 2
    assert (results["winner"], results["reason"], results["baseline_source"]) == \
        (None, "no_baseline", None)


def test_results_as_csv(api):
    made = create(api, REWARDS_TEST)
    bigger = by_variant(api, 1)["bigger"]
    approve(api, bigger[0]["code"])
    data = api.get(f"/v1/experiments/{made['id']}/results").get_json()
    response = api.get(f"/v1/experiments/{made['id']}/results?format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert made["id"] in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["variant"] for r in rows] == ["control", "bigger"]
    for row, variant in zip(rows, data["variants"], strict=True):
        assert int(row["claims"]) == variant["funnel"]["claims"]
        assert int(row["assigned"]) == variant["funnel"]["assigned"]
        assert row["reward_cost_EUR"] == str(variant["reward_cost"]["EUR"])
        assert row["reason"] == data["reason"] and row["winner"] == "no"
    assert rows[1]["revenue_EUR"] == "5000" and rows[0]["revenue_EUR"] == "0"
    bad = api.get(f"/v1/experiments/{made['id']}/results?format=xml")
    assert (bad.status_code, bad.get_json()["code"]) == (400, "invalid_query")


# -- tiers -----------------------------------------------------------------------------------------

TIERS = {**PROGRAM_CONFIG, "tiers": [
    {"name": "member", "min_approved": 1},
    {"name": "leader", "min_approved": 1, "perks": ["early access"],
     "advocate_reward": {"type": "gift_card", "amount": 5000},
     "requires": [{"moment": "community_contribution", "count": 1}]},
    {"name": "vip", "min_approved": 100}]}


def tier_events(app: Any, advocate_id: str) -> list[AdvocateEvent]:
    with db(app) as session:
        return list(session.scalars(select(AdvocateEvent).where(
            AdvocateEvent.advocate_id == advocate_id).order_by(AdvocateEvent.id)))


def test_a_tier_can_require_recorded_moments(client, app):
    api = make_program(client, TIERS)
    mine = link(api, external_id="ann")
    approve(api, mine["code"])
    assert api.get(f"/v1/advocates/{mine['advocate_id']}").get_json()["tier"] == "member"
    moment(api, "ann", "community_contribution")
    advocate = api.get(f"/v1/advocates/{mine['advocate_id']}").get_json()
    assert (advocate["tier"], advocate["tier_manual"]) == ("leader", False)
    assert [e.data["to"] for e in tier_events(app, mine["advocate_id"])] == ["member", "leader"]
    assert approve(api, mine["code"])["rewards"]["advocate"] == 5000  # the tier's own reward
    with db(app) as session:
        assert session.scalar(select(MomentDecision.moment)) == "community_contribution"


def test_a_tier_set_by_hand_sticks_until_changed_by_hand(client, app):
    api = make_program(client, TIERS)
    mine = link(api, external_id="bob")
    set_vip = api.post(f"/v1/advocates/{mine['advocate_id']}/tier", {"tier": "vip", "note": "founder"})
    assert set_vip.status_code == 200, set_vip.get_json()
    assert (set_vip.get_json()["tier"], set_vip.get_json()["tier_manual"]) == ("vip", True)
    approve(api, mine["code"])  # the rules would say member
    moment(api, "bob", "community_contribution")  # and now leader
    assert api.get(f"/v1/advocates/{mine['advocate_id']}").get_json()["tier"] == "vip"
    none = api.post(f"/v1/advocates/{mine['advocate_id']}/tier", {"tier": None}).get_json()
    assert (none["tier"], none["tier_manual"]) == (None, True)
    back = api.post(f"/v1/advocates/{mine['advocate_id']}/tier", {"automatic": True}).get_json()
    assert (back["tier"], back["tier_manual"]) == ("leader", False)
    events = [e for e in tier_events(app, mine["advocate_id"]) if e.action == "tier_set"]
    assert [(e.data["to"], e.data["manual"], e.data["note"]) for e in events] == [
        ("vip", True, "founder"), (None, True, None), ("leader", False, None)]
    assert all(e.actor_type == "api_key" and e.actor_id for e in events)
    with db(app) as session:
        changes = [public_payload(e.payload)["data"]["to"] for e in session.scalars(
            select(OutboxEvent).where(OutboxEvent.type == "advocate.tier_changed")
            .order_by(OutboxEvent.id))]
    assert changes == ["vip", None, "leader"]


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"tier": "emperor"}, 422, "unknown_tier"),
    ({"tier": "vip", "automatic": True}, 422, "validation_failed"),
    ({}, 422, "validation_failed"),
    ({"automatic": False}, 422, "validation_failed"),
])
def test_bad_tier_requests(client, body, status, code):
    api = make_program(client, TIERS)
    mine = link(api)
    response = api.post(f"/v1/advocates/{mine['advocate_id']}/tier", body)
    assert (response.status_code, response.get_json()["code"]) == (status, code)


def test_setting_the_tier_of_an_unknown_advocate_is_404(client):
    api = make_program(client, TIERS)
    response = api.post("/v1/advocates/adv_nobody/tier", {"tier": "vip"})
    assert (response.status_code, response.get_json()["code"]) == (404, "advocate_not_found")
