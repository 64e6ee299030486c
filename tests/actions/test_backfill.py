"""Bulk imports: referrals from another tool (actions/backfill.py) and known customers
(actions/customers.py CustomerImport), checked whole, written in batches, idempotent."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from referflow.actions.backfill import ReferralImport
from referflow.actions.bulk import Report, csv_records, jsonl_records
from referflow.actions.common import load_program
from referflow.actions.customers import CustomerImport
from referflow.actions.lifecycle import release_due_holds
from referflow.actions.stats import rebuild
from referflow.domain.emails import normalise_email
from referflow.domain.hashing import keyed_hash
from referflow.storage.models import (
    Advocate,
    AdvocateEvent,
    KnownCustomer,
    OutboxEvent,
    Referral,
    ReferralCode,
    ReferralHistory,
    ReferralSignal,
    Reward,
    StatRollup,
)
from tests.conftest import SECRET_KEY
from tests.helpers import claim, link

HEADER = ("advocate_external_id,advocate_email,advocate_name,code,friend_external_id,friend_email,"
          "status,created_at,qualified_at,qualified_amount,currency,approved_at,reason")
DAY = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)


def when(days: float = 0) -> str:
    return (DAY + timedelta(days=days)).isoformat().replace("+00:00", "Z")


ROWS = [
    f"adv-1,Ann@Shop.test,Ann,ann-10,f-1,F1@mail.test,claimed,{when()},,,,,",
    f"adv-1,,,,f-2,f2@mail.test,qualified,{when(1)},{when(2)},4200,EUR,,",
    f"adv-2,bob@shop.test,Bob,,f-3,,approved,{when(1)},,,,{when(20)},",
    f"adv-2,,,,f-4,f4@mail.test,rewarded,{when(2)},{when(3)},990,EUR,{when(18)},",
    f"adv-3,cy@shop.test,,CY-2024,f-5,f5@mail.test,rejected,{when(3)},,,,,self_referral",
    f"adv-3,,,CY-2024,f-6,f6@mail.test,reversed,{when(4)},{when(5)},1500,EUR,{when(6)},chargeback",
]


def csv_file(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def run_import(app: Any, program_id: str, text: str, batch_size: int = 50_000,
               jsonl: bool = False, stop_after: int | None = None) -> Report:
    """Import ``text`` as the CLI does (check, then advocates, referrals and statistics)."""
    db = app.extensions["referflow"].db
    with db.session() as session:
        ctx = load_program(session, program_id, SECRET_KEY)
    records = jsonl_records(io.StringIO(text)) if jsonl else csv_records(io.StringIO(text))[1]
    written = []

    def advance(units: int) -> None:
        written.append(units)
        if stop_after is not None and len(written) >= stop_after:
            raise KeyboardInterrupt  # the operator's ^C between two batches

    with ReferralImport(db.engine, ctx, "old-tool.csv") as job:
        report = job.check(records, lambda units: None)
        if report.problems:
            return report
        job.write(advance, batch_size)
    return report


def count(app: Any, model: Any, *where: Any) -> int:
    with app.extensions["referflow"].db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def referrals(app: Any, program_id: str) -> dict[str, Referral]:
    with app.extensions["referflow"].db.session() as session:
        return {r.friend_external_id: r for r in session.scalars(
            select(Referral).where(Referral.program_id == program_id))}


def test_an_import_writes_referrals_advocates_codes_and_one_history_entry_each(app, api):
    report = run_import(app, api.program_id, csv_file(*ROWS))
    assert (report.read, report.added, report.existing) == (6, 6, 0)
    assert report.extra == {"advocates_added": 3, "codes_added": 3}
    got = referrals(app, api.program_id)
    assert {k: r.status for k, r in got.items()} == {
        "f-1": "pending", "f-2": "held", "f-3": "approved", "f-4": "rewarded", "f-5": "rejected",
        "f-6": "reversed"}
    assert got["f-1"].code == "ANN10" and got["f-2"].code == "ANN10"  # the advocate's code
    assert got["f-5"].code == got["f-6"].code == "CY2024"
    assert got["f-2"].hold_until == DAY + timedelta(days=2 + 14)  # qualified_at + hold_days
    assert (got["f-2"].qualified_amount, got["f-2"].qualified_currency) == (4200, "EUR")
    assert got["f-3"].qualified_at == DAY + timedelta(days=1) == got["f-3"].created_at
    assert got["f-6"].reasons[0]["code"] == "chargeback"
    with app.extensions["referflow"].db.session() as session:
        history = list(session.scalars(select(ReferralHistory).where(
            ReferralHistory.program_id == api.program_id)))
        advocates = {a.external_id: a for a in session.scalars(select(Advocate))}
        codes = {c.code: c.advocate_id for c in session.scalars(select(ReferralCode))}
    assert len(history) == 6
    assert {(h.action, h.actor_type, h.actor_id) for h in history} == {("imported", "import", "cli")}
    line_of = {h.referral_id: h.data["line"] for h in history}
    assert line_of[got["f-1"].id] == 2 and line_of[got["f-6"].id] == 7
    assert {h.data["imported_as"] for h in history} == {"claimed", "qualified", "approved",
                                                        "rewarded", "rejected", "reversed"}
    assert advocates["adv-1"].email == "Ann@Shop.test" and advocates["adv-1"].name == "Ann"
    assert advocates["adv-1"].created_at == DAY  # their first referral
    assert codes["ANN10"] == advocates["adv-1"].id
    assert codes["CY2024"] == advocates["adv-3"].id
    assert [c for c, owner in codes.items() if owner == advocates["adv-2"].id]  # a generated one


def test_email_keys_are_the_ones_the_api_computes(app, api):
    api_claim = claim(api, link(api, "api-adv", "Api.Adv+promo@gmail.com")["code"],
                      friend_id="api-friend", email="some.one+x@GoogleMail.com")
    run_import(app, api.program_id, csv_file(
        f"adv-9,apiadv@gmail.com,,,f-9,someone@gmail.com,claimed,{when()},,,,,"))
    with app.extensions["referflow"].db.session() as session:
        imported = session.scalar(select(Referral).where(Referral.friend_external_id == "f-9"))
        from_api = session.get(Referral, api_claim["id"])
        keys = dict(session.execute(select(Advocate.external_id, Advocate.email_key)).all())
    assert imported.friend_email_key == from_api.friend_email_key
    assert imported.friend_email_key == keyed_hash(SECRET_KEY, "email",
                                                   normalise_email("someone@gmail.com"))
    assert keys["adv-9"] == keys["api-adv"]


def test_imported_referrals_send_no_events_and_plan_no_rewards(app, api):
    outbox_before = count(app, OutboxEvent)
    run_import(app, api.program_id, csv_file(*ROWS))
    assert count(app, OutboxEvent) == outbox_before
    assert count(app, Reward) == 0


def test_a_qualified_referral_is_approved_by_referflow_when_its_hold_ends(app, api):
    run_import(app, api.program_id, csv_file(
        f"adv-1,a@shop.test,,,f-1,f1@mail.test,qualified,{when(-40)},{when(-30)},4200,EUR,,"))
    with app.extensions["referflow"].db.session() as session:
        assert release_due_holds(session, SECRET_KEY) == 1
    assert referrals(app, api.program_id)["f-1"].status == "approved"


def test_running_the_same_file_again_adds_nothing(app, api):
    run_import(app, api.program_id, csv_file(*ROWS))
    again = run_import(app, api.program_id, csv_file(*ROWS))
    assert (again.read, again.added, again.existing) == (6, 0, 6)
    assert again.extra == {"advocates_added": 0, "codes_added": 0}
    assert count(app, Referral) == 6 and count(app, ReferralHistory) == 6


def test_a_friend_who_already_has_a_referral_keeps_it(app, api):
    code = link(api, "adv-1", "ann@shop.test")["code"]
    mine = claim(api, code, friend_id="f-1")
    report = run_import(app, api.program_id, csv_file(*ROWS))
    assert (report.added, report.existing) == (5, 1)
    kept = referrals(app, api.program_id)["f-1"]
    assert kept.id == mine["id"] and kept.code == code
    with app.extensions["referflow"].db.session() as session:
        advocate = session.scalar(select(Advocate).where(Advocate.external_id == "adv-1"))
        assert advocate.email == "ann@shop.test"  # an enrolled advocate is left as they are
        assert advocate.referral_count == 2  # theirs and the imported one
        owned = set(session.scalars(select(ReferralCode.code).where(
            ReferralCode.advocate_id == advocate.id)))
    assert owned == {code, "ANN10"}  # the old tool's code joins theirs


def test_derived_rows_follow_the_import(app, api):
    run_import(app, api.program_id, csv_file(*ROWS))
    with app.extensions["referflow"].db.session() as session:
        advocates = {a.external_id: (a.referral_count, a.approved_count)
                     for a in session.scalars(select(Advocate))}
        signals = set(session.execute(select(ReferralSignal.code, Referral.friend_external_id)
                                      .join(Referral)).all())
        rollups = session.scalar(select(func.count()).select_from(StatRollup).where(
            StatRollup.program_id == api.program_id))
    assert advocates == {"adv-1": (2, 0), "adv-2": (2, 2), "adv-3": (2, 0)}
    assert signals == {("self_referral", "f-5"), ("chargeback", "f-6")}
    assert rollups


def rollups(app: Any, program_id: str) -> set[tuple[Any, ...]]:
    c = StatRollup.__table__.c
    with app.extensions["referflow"].db.session() as session:
        return {tuple(row) for row in session.execute(
            select(c.split, c.day, c.segment, c.metric, c.currency, c.count, c.amount).where(
                c.program_id == program_id, (c.count != 0) | (c.amount != 0)))}


def assert_stats_match_a_rebuild(app: Any, program_id: str) -> set[tuple[Any, ...]]:
    """The rollups the imports added are the ones ``referflow stats rebuild`` counts."""
    added = rollups(app, program_id)
    with app.extensions["referflow"].db.session() as session:
        rebuild(session, program_id)
        session.commit()
    assert rollups(app, program_id) == added
    return added


@pytest.mark.parametrize("batch_size", [1, 4, 50_000])
def test_an_import_adds_its_statistics_as_a_rebuild_counts_them(app, api, batch_size):
    old = (f"adv-4,,,,f-7,,rewarded,{when(-700)},,,,,",  # rewarded two years after its claim
           f"adv-4,,,,f-8,,rewarded,{when(29.9)},,,,,")  # and hours after
    run_import(app, api.program_id, csv_file(*ROWS, *old), batch_size=batch_size)
    added = assert_stats_match_a_rebuild(app, api.program_id)
    metrics = {row[3] for row in added}
    assert {"claims", "advocates", "approved", "rewarded", "reason:chargeback"} <= metrics
    assert len({m for m in metrics if m.startswith("claim_to_reward:")}) == 3
    run_import(app, api.program_id, csv_file(*ROWS, *old), batch_size=batch_size)
    assert rollups(app, api.program_id) == added  # a re-run adds nothing, statistics included


def test_statistics_of_advocates_enrolled_and_promoted_before_the_import(app, api):
    code = link(api, "adv-1", "ann@shop.test")["code"]
    with app.extensions["referflow"].db.session() as session:  # promoted after enrolling
        advocate = session.scalar(select(Advocate).where(Advocate.external_id == "adv-1"))
        advocate.tier = "gold"
        session.add(AdvocateEvent(advocate_id=advocate.id, program_id=api.program_id,
                                  at=datetime.now(UTC), action="tier_changed",
                                  actor_type="system", data={"from": None, "to": "gold"}))
        session.commit()
    claim(api, code, friend_id="f-1")
    run_import(app, api.program_id, csv_file(*ROWS))
    tiers = {row[2] for row in assert_stats_match_a_rebuild(app, api.program_id) if row[0] == "tier"}
    assert "gold" in tiers


@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_batches_write_the_same_as_one(app, api, batch_size):
    report = run_import(app, api.program_id, csv_file(*ROWS), batch_size=batch_size)
    assert report.added == 6 and count(app, ReferralHistory) == 6


def test_an_interrupted_import_has_written_whole_batches_and_a_rerun_finishes_it(app, api):
    with pytest.raises(KeyboardInterrupt):
        run_import(app, api.program_id, csv_file(*ROWS), batch_size=2, stop_after=2)
    assert count(app, Referral) == 4 and count(app, ReferralHistory) == 4
    again = run_import(app, api.program_id, csv_file(*ROWS), batch_size=2)
    assert (again.added, again.existing) == (2, 4)
    with app.extensions["referflow"].db.session() as session:
        counts = dict(session.execute(select(Advocate.external_id, Advocate.referral_count)).all())
    assert counts == {"adv-1": 2, "adv-2": 2, "adv-3": 2}


BAD = [
    (f"adv-1,a@shop.test,,,f-1,,claimed,{when()},,,,,", None),
    ("adv-1,,,,f-2,,approved,not-a-time,,,,,", "created_at: not an RFC 3339 time with an offset"),
    (f"adv-1,,,,f-1,,claimed,{when()},,,,,", "friend_external_id: the friend is also on line 2"),
    (f"adv-1,other@shop.test,,,f-3,,claimed,{when()},,,,,",
     "advocate_email: line 2 gives the same advocate another email"),
    (f"adv-2,,,,f-4,,claimed,{when()},,,,,", None),
    (f"adv-3,,,CODE-1,f-5,,claimed,{when()},,,,,", None),
    (f"adv-4,,,CODE1,f-6,,claimed,{when()},,,,,", "code: line 7 gives it to another advocate"),
    ("adv-5,,,,f-7,,claimed", "7 fields where the header has 13"),
]


def test_a_bad_file_writes_nothing_and_names_every_bad_line(app, api):
    report = run_import(app, api.program_id, csv_file(*[text for text, _ in BAD]))
    expected = [(n, message) for n, (_, message) in enumerate(BAD, 2) if message]
    assert report.problems.listed == expected and report.problems.count == len(expected)
    assert count(app, Referral) == count(app, Advocate) == count(app, ReferralCode) == 0


def test_a_friend_twice_is_reported_on_the_later_line(app, api):
    only_repeats = run_import(app, api.program_id, csv_file(
        f"adv-1,,,,f-1,,claimed,{when()},,,,,", f"adv-2,,,,f-1,,claimed,{when()},,,,,"))
    assert only_repeats.problems.listed == [(3, "friend_external_id: the friend is also on line 2")]


def test_a_code_that_belongs_to_another_advocate_is_refused(app, api):
    taken = link(api, "someone-else", vanity_code="TAKEN1")["code"]
    report = run_import(app, api.program_id, csv_file(
        f"adv-1,,,{taken},f-1,,claimed,{when()},,,,,"))
    assert report.problems.listed == [(2, "code: it belongs to another advocate")]
    assert count(app, Referral) == 0
    mine = run_import(app, api.program_id, csv_file(
        f"someone-else,,,{taken},f-1,,claimed,{when()},,,,,"))
    assert mine.added == 1


def test_a_json_lines_file_imports_like_a_csv(app, api):
    lines = [json.dumps({"advocate_external_id": "adv-1", "friend_external_id": "f-1",
                         "status": "approved", "created_at": when(), "qualified_amount": 4200,
                         "currency": "EUR", "advocate_reward": 2500}),
             "",
             json.dumps({"advocate_external_id": "adv-1", "friend_external_id": "f-2",
                         "status": "claimed", "created_at": when(), "friend_email": None})]
    report = run_import(app, api.program_id, "\n".join(lines) + "\n", jsonl=True)
    assert report.added == 2
    assert referrals(app, api.program_id)["f-1"].advocate_reward == 2500
    broken = run_import(app, api.program_id, '{"advocate_external_id": \n[1]\n', jsonl=True)
    assert broken.problems.listed == [(1, "not valid JSON"), (2, "not a JSON object")]


def test_an_empty_file_imports_nothing(app, api):
    report = run_import(app, api.program_id, HEADER + "\n")
    assert (report.read, report.added) == (0, 0) and not report.problems


def test_programs_share_no_advocates_and_codes_are_unique_across_the_install(app, api):
    from tests.conftest import make_program

    other = make_program(app.test_client(), name="Other")
    run_import(app, other.program_id, csv_file(*ROWS))
    codeless = [",".join(r.split(",")[:3] + [""] + r.split(",")[4:]) for r in ROWS]
    report = run_import(app, api.program_id, csv_file(*codeless))
    assert report.added == 6 and report.extra == {"advocates_added": 3, "codes_added": 3}
    assert count(app, Advocate, Advocate.external_id == "adv-1") == 2
    refused = run_import(app, api.program_id, csv_file(ROWS[0]))
    assert refused.problems.listed == [(2, "code: it belongs to another advocate")]


# ---- known customers --------------------------------------------------------------------------

def import_customers(app: Any, program_id: str, text: str, batch_size: int = 50_000) -> Report:
    db = app.extensions["referflow"].db
    with db.session() as session:
        ctx = load_program(session, program_id, SECRET_KEY)
    with CustomerImport(db.engine, ctx, source="cli") as job:
        report = job.check(csv_records(io.StringIO(text))[1], lambda units: None)
        if not report.problems:
            job.write(lambda units: None, batch_size)
    return report


CUSTOMERS = "external_id,email,name\nc1,one@x.test,One\nc2,,Two\n,Three@X.test,Three\n"


@pytest.mark.parametrize("batch_size", [1, 50_000])
def test_customers_are_added_once(app, api, batch_size):
    first = import_customers(app, api.program_id, CUSTOMERS, batch_size)
    assert (first.read, first.added, first.existing, first.repeated) == (3, 3, 0, 0)
    again = import_customers(app, api.program_id, CUSTOMERS, batch_size)
    assert (again.added, again.existing) == (0, 3)
    with app.extensions["referflow"].db.session() as session:
        keys = set(session.scalars(select(KnownCustomer.email_key)))
    assert keyed_hash(SECRET_KEY, "email", "three@x.test") in keys
    added = assert_stats_match_a_rebuild(app, api.program_id)
    assert {(row[0], row[3], row[5]) for row in added} == {
        (split, "known_customers", 3) for split in ("", "channel", "tier")}


def test_a_customer_known_by_either_id_or_email_is_not_added_again(app, api):
    import_customers(app, api.program_id, "external_id,email\nc1,one@x.test\n")
    report = import_customers(app, api.program_id,
                              "external_id,email\nc1,new@x.test\nc9,ONE@x.test\nc10,\n")
    assert (report.added, report.existing) == (1, 2)


def test_rows_repeating_a_customer_count_once(app, api):
    report = import_customers(app, api.program_id,
                              "external_id,email\nc1,a@x.test\nc1,b@x.test\nc2,A@x.test\nc3,\n")
    assert (report.read, report.added, report.repeated) == (4, 2, 2)


def test_a_bad_customer_file_writes_nothing(app, api):
    report = import_customers(app, api.program_id,
                              "external_id,email\nc1,one@x.test\n,\nc3,nope\nc4,x,extra\n")
    assert report.problems.listed == [
        (3, "neither external_id nor email: a customer needs one of them"),
        (4, "email: not an email address"), (5, "3 fields where the header has 2")]
    assert count(app, KnownCustomer) == 0
