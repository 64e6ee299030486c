"""Pure rules: email normalisation, codes, hashing, qualification, claim signals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from referflow.domain import fraud
from referflow.domain import referral as states
from referflow.domain.codes import (
    CODE_ALPHABET,
    new_id,
    new_referral_code,
    normalise_code,
    normalise_vanity,
)
from referflow.domain.emails import normalise_email
from referflow.domain.hashing import ip_network_key, keyed_hash
from referflow.domain.program import ProgramConfig, Review
from referflow.domain.timeutil import parse_rfc3339, to_rfc3339

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(("raw", "expected"), [
    ("Jane@Example.com", "jane@example.com"),
    ("  jane@example.com ", "jane@example.com"),
    ("jane+promo@example.com", "jane@example.com"),
    ("j.a.n.e@gmail.com", "jane@gmail.com"),
    ("J.Ane+x@GoogleMail.com", "jane@gmail.com"),
    ("j.ane@example.com", "j.ane@example.com"),  # dots only matter at gmail
    ("nodomain", "nodomain"),
])
def test_email_normalisation(raw, expected):
    assert normalise_email(raw) == expected


def test_codes_avoid_ambiguous_characters_and_are_random():
    codes = {new_referral_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert not set("".join(codes)) - set(CODE_ALPHABET)
    assert not set("01ILOU") & set(CODE_ALPHABET)


def test_code_normalisation_and_vanity_rules():
    assert normalise_code(" abcd-2345 ") == "ABCD2345"
    assert normalise_vanity("anna_2025") == "ANNA_2025"
    assert normalise_vanity("ab") is None
    assert normalise_vanity("-abc") is None


def test_ids_are_opaque_and_prefixed():
    ident = new_id("ref")
    assert ident.startswith("ref_") and len(ident) == 24


def test_keyed_hash_depends_on_secret_and_kind():
    assert keyed_hash("s", "ip", "1.2.3.4") != keyed_hash("t", "ip", "1.2.3.4")
    assert keyed_hash("s", "ip", "1.2.3.4") != keyed_hash("s", "ua", "1.2.3.4")


@pytest.mark.parametrize(("ip", "key"), [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
    ("::ffff:203.0.113.7", "203.0.113.7"),
    ("not an ip", None),
])
def test_household_key_groups_ipv6_by_64(ip, key):
    assert ip_network_key(ip) == key


def test_rfc3339_requires_an_offset():
    assert to_rfc3339(parse_rfc3339("2026-01-01T01:00:00+01:00")) == "2026-01-01T00:00:00Z"
    with pytest.raises(ValueError):
        parse_rfc3339("2026-01-01T00:00:00")


def test_qualification_decisions():
    config = ProgramConfig(landing_url="https://x", currency="EUR", hold_days=14,
                           min_qualifying_amount=100)
    held = states.decide_qualification(config, "first_order", 100, "EUR", NOW)
    assert (held.status, held.hold_until) == (states.HELD, NOW + timedelta(days=14))
    assert states.decide_qualification(config, "signup", 100, "EUR", NOW).reason == \
        "event_type_not_qualifying"
    assert states.decide_qualification(config, "first_order", 99, "EUR", NOW).reason == \
        "below_minimum_amount"
    instant = ProgramConfig(landing_url="https://x", hold_days=0)
    assert states.decide_qualification(instant, "first_order", 1, "USD", NOW).status == \
        states.APPROVED


def test_state_machine_has_no_way_out_of_final_states():
    assert not states.TRANSITIONS[states.REJECTED]
    assert not states.TRANSITIONS[states.REVERSED]
    assert states.can_move(states.REWARDED, states.REVERSED)
    assert not states.can_move(states.HELD, states.PENDING)


def _facts(**changes):
    base = dict(now=NOW, advocate_external_id="a", advocate_email_key="ka",
                friend_external_id="f", friend_email_key="kf", code_active=True,
                click_at=None, attribution_window_days=30)
    return fraud.ClaimFacts(**{**base, **changes})


@pytest.mark.parametrize(("changes", "codes"), [
    ({}, []),
    ({"friend_external_id": "a"}, ["self_referral"]),
    ({"friend_email_key": "ka"}, ["self_referral"]),
    ({"existing_customer": True}, ["existing_customer"]),
    ({"code_active": False}, ["inactive_code"]),
    ({"click_at": NOW - timedelta(days=30)}, []),
    ({"click_at": NOW - timedelta(days=30, seconds=1)}, ["outside_attribution_window"]),
])
def test_claim_signals(changes, codes):
    signals, outcomes = fraud.evaluate(_facts(**changes))
    assert [s["code"] for s in signals] == codes
    assert len(outcomes) == len(fraud.RULES)


def test_verdict_takes_the_strictest_action():
    assert fraud.verdict([]) == fraud.ALLOW
    assert fraud.verdict([{"code": "new_thing", "message": ""}]) == fraud.REVIEW
    assert fraud.verdict([{"code": "self_referral", "message": ""}]) == fraud.REJECT
    assert fraud.verdict([{"code": "self_referral", "message": ""}],
                         Review(policy={"self_referral": "review"})) == fraud.REVIEW
