"""The rows of an import file, one at a time (domain/imports.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from referflow.domain import imports, stats
from referflow.domain import referral as states
from referflow.domain.imports import BadRow, ImportRules, check_customer, check_referral

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
RULES = ImportRules(currency="EUR", hold_days=14, now=NOW)


def row(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"advocate_external_id": "adv-1", "friend_external_id": "f-1",
                               "status": "claimed", "created_at": "2026-05-01T10:00:00Z"}
    return {**base, **fields}


def test_the_email_pattern_is_the_apis():
    claim = json.loads((SCHEMAS / "claim-referral.request.json").read_text())
    customers = json.loads((SCHEMAS / "import-customers.request.json").read_text())
    assert claim["properties"]["friend"]["properties"]["email"]["pattern"] == imports.EMAIL_PATTERN
    assert (customers["properties"]["customers"]["items"]["properties"]["email"]["pattern"]
            == imports.EMAIL_PATTERN)


def test_every_status_of_the_other_tool_has_a_place_here():
    assert set(imports.IMPORTED_STATUS) == {"claimed", "qualified", "approved", "rewarded",
                                            "rejected", "reversed"}
    assert set(imports.IMPORTED_STATUS.values()) <= set(states.STATUSES)
    assert set(imports.REQUIRED_COLUMNS) <= set(imports.REFERRAL_COLUMNS)


# ---- customers --------------------------------------------------------------------------------

def test_a_customer_row_keeps_its_id_and_normalises_its_email():
    assert check_customer({"external_id": " c-1 ", "email": " Jo.E+shop@GoogleMail.com",
                           "name": "ignored"}) == imports.CustomerRow("c-1", "joe@gmail.com")
    assert check_customer({"email": "a@b.test"}) == imports.CustomerRow(None, "a@b.test")


@pytest.mark.parametrize(("fields", "message"), [
    ({"external_id": "", "email": "  "}, "neither external_id nor email"),
    ({}, "neither external_id nor email"),
    ({"email": "not-an-address"}, "email: not an email address"),
    ({"external_id": "x" * 201}, "external_id: longer than 200"),
])
def test_bad_customer_rows_say_what_is_wrong(fields, message):
    with pytest.raises(BadRow, match=message):
        check_customer(fields)


# ---- referrals --------------------------------------------------------------------------------

def test_a_claimed_referral_is_pending_with_nothing_qualified():
    checked = check_referral(row(friend_email=" F@Shop.test ", code="old-12 3"), RULES)
    assert checked.status == states.PENDING and checked.imported_as == "claimed"
    assert checked.created_at == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert checked.qualified_at is checked.approved_at is checked.hold_until is None
    assert checked.friend_email == "F@Shop.test" and checked.code == "OLD123"
    assert checked.reasons() == []


def test_a_qualified_referral_is_held_for_the_programs_hold_from_when_it_qualified():
    checked = check_referral(row(status="qualified", qualified_at="2026-05-20T00:00:00+02:00",
                                 qualified_amount="4200", currency="eur"), RULES)
    assert checked.status == states.HELD
    assert checked.hold_until == datetime(2026, 5, 19, 22, tzinfo=UTC) + timedelta(days=14)
    assert (checked.qualified_amount, checked.currency) == (4200, "EUR")


def test_approved_and_rewarded_default_their_times_to_the_ones_before():
    for status in ("approved", "rewarded"):
        checked = check_referral(row(status=status, advocate_reward=2500), RULES)
        assert checked.qualified_at == checked.approved_at == checked.created_at
        assert checked.advocate_reward == 2500 and checked.friend_reward is None


def test_json_lines_carry_numbers_and_nulls():
    checked = check_referral(row(status="approved", qualified_amount=990, currency="EUR",
                                 friend_email=None, code=None), RULES)
    assert checked.qualified_amount == 990 and checked.friend_email is None


def test_a_reversal_reason_reads_like_referflows_own():
    reversed_ = check_referral(row(status="reversed", reason="chargeback"), RULES)
    assert reversed_.reasons() == [{"code": "chargeback",
                                    "message": states.REVERSAL_MESSAGES["chargeback"]}]
    rejected = check_referral(row(status="rejected", reason="self_referral"), RULES)
    assert rejected.reasons()[0]["message"] == "Imported as rejected: self_referral."


@pytest.mark.parametrize(("fields", "message"), [
    ({"frend_email": "a@b.test"}, "frend_email: not a column"),
    ({"status": ""}, "status: required"),
    ({"status": "pending"}, "status: 'pending' is not one of claimed"),
    ({"advocate_external_id": " "}, "advocate_external_id: required"),
    ({"friend_external_id": "f" * 201}, "friend_external_id: longer than 200"),
    ({"created_at": ""}, "created_at: required"),
    ({"created_at": "2026-05-01 10:00"}, "created_at: not an RFC 3339 time"),
    ({"created_at": "yesterday"}, "created_at: not an RFC 3339 time"),
    ({"created_at": "2026-06-05T00:00:00Z"}, "created_at: in the future"),
    ({"qualified_at": "2026-05-02T00:00:00Z"}, "qualified_at: a claimed referral does not carry it"),
    ({"status": "qualified", "approved_at": "2026-05-02T00:00:00Z"},
     "approved_at: a qualified referral does not carry it"),
    ({"status": "rejected", "hold_until": "2026-05-02T00:00:00Z"},
     "hold_until: a rejected referral does not carry it"),
    ({"status": "approved", "qualified_at": "2026-04-30T00:00:00Z"}, "qualified_at: before created_at"),
    ({"status": "approved", "qualified_at": "2026-05-03T00:00:00Z",
      "approved_at": "2026-05-02T00:00:00Z"}, "approved_at: before qualified_at"),
    ({"status": "qualified", "hold_until": "2026-04-01T00:00:00Z"}, "hold_until: before qualified_at"),
    ({"status": "approved", "qualified_amount": "42"}, "currency: required with qualified_amount"),
    ({"status": "approved", "qualified_amount": "42", "currency": "USD"},
     "currency: the program's currency is EUR"),
    ({"status": "approved", "qualified_amount": "12.50", "currency": "EUR"},
     "qualified_amount: a whole number of minor units"),
    ({"status": "approved", "qualified_amount": -5, "currency": "EUR"},
     "qualified_amount: a whole number"),
    ({"status": "approved", "advocate_reward": True}, "advocate_reward: a whole number"),
    ({"status": "approved", "friend_reward": 2**53}, "friend_reward: a whole number"),
    ({"code": "a!"}, "code: 3-32 letters"),
    ({"code": "ab"}, "code: 3-32 letters"),
    ({"status": "rejected", "reason": "Not Allowed"}, "reason: a code of a-z"),
    ({"friend_email": "nobody"}, "friend_email: not an email address"),
    ({"advocate_email": "a@b"}, "advocate_email: not an email address"),
    ({"advocate_name": 42}, "advocate_name: a text value is expected"),
])
def test_bad_referral_rows_name_the_column_and_the_problem(fields, message):
    with pytest.raises(BadRow, match=message):
        check_referral(row(**fields), RULES)


def test_headers_are_checked_for_missing_and_unknown_columns():
    assert imports.missing_columns(["status", "created_at"]) == ["advocate_external_id",
                                                                 "friend_external_id"]
    assert imports.unknown_columns(["status", "Status", "friend_email"]) == ["Status"]


def test_the_docs_table_names_every_column_and_status():
    docs = (SCHEMAS.parent / "docs" / "referrals.md").read_text()
    section = docs.split("## Importing customers and referrals", 1)[1]
    documented = {line.split("`")[1] for line in section.splitlines() if line.startswith("| `")}
    assert set(imports.REFERRAL_COLUMNS) <= documented
    assert set(imports.IMPORTED_STATUS) <= documented | {"rejected", "reversed"}
    for imported, stored in imports.IMPORTED_STATUS.items():
        assert f"`{imported}`" in section and f"`{stored}`" in section


@pytest.mark.parametrize("now", [datetime(2026, 3, 29, 1, 2, 3, 456789, UTC),
                                 datetime(2026, 11, 30, 23, 59, 59, 999999, UTC)])
def test_reward_bucket_edges_are_where_the_bucket_changes(now):
    edges = imports.reward_bucket_edges(now, now - timedelta(days=3 * 365))
    step = timedelta(microseconds=1)
    assert [bucket for bucket, _ in edges] == list(range(1, len(edges) + 1))
    for bucket, edge in edges:
        assert stats.duration_bucket((now - edge).total_seconds()) >= bucket
        assert stats.duration_bucket((now - (edge + step)).total_seconds()) < bucket
        assert stats.duration_bucket(stats.bucket_value(bucket)) == bucket  # the stand-in


def test_no_edges_for_a_file_of_recent_claims():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert imports.reward_bucket_edges(now, now - timedelta(seconds=59)) == []
