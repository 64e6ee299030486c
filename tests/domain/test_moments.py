"""The ask decision: moment x person state -> ask or skip (why), every rule's outcome, in order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from referflow.domain import messaging
from referflow.domain.conditions import Condition
from referflow.domain.messaging import Recipient
from referflow.domain.moments import decide, next_ask_at
from referflow.domain.program import ProgramConfig

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)  # a Wednesday, noon UTC
ORDER = ["moment_rule", "fit", "consent", "suppression", "frequency_cap", "cool_down",
         "quiet_hours", "channel", "link"]

# An example programme (docs/moments.md): B2B, asks accounts of 10+ seats on paid plans.
CONFIG = ProgramConfig.from_dict({"landing_url": "https://x.test", "moments": {
    "custom_types": ["webinar_hosted"],
    "rules": {"qbr": {"ask": False},
              "webinar_hosted": {"when": [{"field": "attendees", "op": "gte", "value": 20}]}},
    "fit": [{"attribute": "seats", "op": "gte", "value": 10},
            {"attribute": "plan", "op": "in", "value": ["pro", "enterprise"]}],
    "caps": {"asks_per_week": 1, "asks_per_week_by_channel": {"email": 1},
             "cool_down_days": 30, "after_decline_days": 90},
    "quiet_hours": {"start": "21:00", "end": "08:00"},
}})
FIT = {"seats": 25, "plan": "pro"}
PERSON = Recipient(now=NOW, timezone="Europe/Berlin", attributes=FIT, has_email=True)


def person(**changes: Any) -> Recipient:
    return replace(PERSON, **changes)


SCENARIOS = [
    # (name, moment, data, person, verdict, reason, channel)
    ("first win, fitting person", "first_win", {}, PERSON, True, None, "email"),
    ("nps promoter", "nps_response", {"score": 9}, PERSON, True, None, "email"),
    ("nps passive", "nps_response", {"score": 8}, PERSON, False, "moment_rule_failed", None),
    ("nps without a score", "nps_response", {}, PERSON, False, "moment_rule_failed", None),
    ("nps score as text", "nps_response", {"score": "10"}, PERSON, False, "moment_rule_failed", None),
    ("qbr never asks", "qbr", {}, PERSON, False, "moment_not_asking", None),
    ("custom type, big webinar", "webinar_hosted", {"attendees": 40}, PERSON, True, None, "email"),
    ("custom type, small webinar", "webinar_hosted", {"attendees": 5}, PERSON, False,
     "moment_rule_failed", None),
    ("too few seats", "renewal", {}, person(attributes={"seats": 3, "plan": "pro"}), False,
     "not_a_fit", None),
    ("free plan", "renewal", {}, person(attributes={"seats": 30, "plan": "free"}), False,
     "not_a_fit", None),
    ("no attributes at all", "renewal", {}, person(attributes={}), False, "not_a_fit", None),
    ("seats as a boolean", "renewal", {}, person(attributes={"seats": True, "plan": "pro"}), False,
     "not_a_fit", None),
    ("email withdrawn: in-app instead", "milestone", {}, person(consent={"email": "withdrawn"}),
     True, None, "in_app"),
    ("every channel withdrawn", "milestone", {},
     person(consent={"email": "withdrawn", "in_app": "withdrawn"}), False, "no_consent", None),
    ("unsubscribed (suppression list)", "milestone", {}, person(suppressions=("unsubscribed",)),
     False, "suppressed", None),
    ("spam complaint", "milestone", {}, person(suppressions=("spam_complaint",)), False,
     "suppressed", None),
    ("open support ticket", "milestone", {},
     person(attributes={**FIT, "open_support_ticket": True}), False, "suppressed", None),
    ("declined 10 days ago", "milestone", {}, person(declined_at=NOW - timedelta(days=10)), False,
     "suppressed", None),
    ("declined 100 days ago", "milestone", {}, person(declined_at=NOW - timedelta(days=100)), True,
     None, "email"),
    ("erased", "milestone", {}, person(erased=True), False, "erased", None),
    ("asked this week", "milestone", {},
     person(asks_last_week=((NOW - timedelta(days=2), "in_app"),), last_ask_at=NOW - timedelta(days=40)),
     False, "frequency_capped", None),
    ("asked 10 days ago", "milestone", {}, person(last_ask_at=NOW - timedelta(days=10)), False,
     "cooling_down", None),
    ("asked 31 days ago", "milestone", {}, person(last_ask_at=NOW - timedelta(days=31)), True, None,
     "email"),
    ("three messages this week", "milestone", {}, person(messages_last_week=3), False,
     "frequency_capped", None),
    ("no email: in-app", "milestone", {}, person(has_email=False, is_advocate=True), True, None,
     "in_app"),
    ("no email, not an advocate", "milestone", {}, person(has_email=False), False, "no_email", None),
    ("no email, in-app withdrawn", "milestone", {},
     person(has_email=False, is_advocate=True, consent={"in_app": "withdrawn"}), False,
     "no_channel", None),
]


@pytest.mark.parametrize(("name", "moment", "data", "who", "asks", "reason", "channel"), SCENARIOS,
                         ids=[s[0] for s in SCENARIOS])
def test_scenarios(name, moment, data, who, asks, reason, channel):
    decision = decide(moment, data, who, CONFIG)
    assert (decision.ask, decision.skip_reason, decision.channel) == (asks, reason, channel)
    assert [o.rule for o in decision.outcomes] == ORDER  # every rule runs, in order
    failed = [o.outcome for o in decision.outcomes if not o.passed]
    assert (failed[0] if failed else None) == reason


def test_the_first_failing_rule_is_the_reason_and_later_ones_are_still_recorded():
    who = person(attributes={"seats": 1}, suppressions=("spam",), last_ask_at=NOW - timedelta(days=1))
    decision = decide("nps_response", {"score": 3}, who, CONFIG)
    assert decision.skip_reason == "moment_rule_failed"
    assert {o.rule: o.outcome for o in decision.outcomes} == {
        "moment_rule": "moment_rule_failed", "fit": "not_a_fit", "consent": "pass",
        "suppression": "suppressed", "frequency_cap": "pass", "cool_down": "cooling_down",
        "quiet_hours": "pass", "channel": "pass", "link": "pass"}
    assert "score gte 9" in decision.outcomes[0].detail and "3" not in decision.outcomes[0].detail


@pytest.mark.parametrize(("utc_hour", "timezone", "send_at"), [
    (12, "Europe/Berlin", None),                                      # 14:00 in Berlin
    (20, "Europe/Berlin", datetime(2026, 6, 11, 6, 0, tzinfo=UTC)),   # 22:00 -> 08:00 CEST next day
    (3, "Europe/Berlin", datetime(2026, 6, 10, 6, 0, tzinfo=UTC)),    # 05:00 -> 08:00 the same day
    (6, "Europe/Berlin", None),                                       # 08:00 sharp: the hours ended
    (3, "America/New_York", datetime(2026, 6, 10, 12, 0, tzinfo=UTC)),  # 23:00 the day before
    (12, "Asia/Tokyo", datetime(2026, 6, 10, 23, 0, tzinfo=UTC)),     # 21:00 -> 08:00 JST
])
def test_quiet_hours_defer_in_the_persons_timezone(utc_hour, timezone, send_at):
    now = NOW.replace(hour=utc_hour)
    decision = decide("first_win", {}, person(now=now, timezone=timezone), CONFIG)
    assert decision.ask and decision.send_at == send_at
    quiet = next(o for o in decision.outcomes if o.rule == "quiet_hours")
    assert quiet.outcome == ("deferred" if send_at else "pass")


def test_quiet_hours_across_a_daylight_saving_change():
    # 2026-03-29 Europe/Berlin moves from +01:00 to +02:00 at 02:00; 23:30 the night before.
    now = datetime(2026, 3, 28, 22, 30, tzinfo=UTC)
    decision = decide("first_win", {}, person(now=now), CONFIG)
    assert decision.send_at == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)  # 08:00 CEST


def test_quiet_hours_within_one_day_and_none():
    config = ProgramConfig.from_dict({"landing_url": "https://x.test",
                                      "moments": {"quiet_hours": {"start": "12:00", "end": "13:30"}}})
    at_noon = Recipient(now=NOW, has_email=True)
    assert messaging.quiet_until(NOW, "UTC", config.moments.quiet_hours) == NOW.replace(minute=30, hour=13)
    assert decide("first_win", {}, at_noon, config).send_at == NOW.replace(hour=13, minute=30)
    assert decide("first_win", {}, at_noon, ProgramConfig(landing_url="https://x.test")).send_at is None


def test_channel_caps_fall_back_to_the_next_channel():
    emailed = person(asks_last_week=((NOW - timedelta(days=3), "email"),))
    config = replace(CONFIG, moments=replace(CONFIG.moments, caps=replace(
        CONFIG.moments.caps, asks_per_week=5, cool_down_days=0)))
    decision = decide("first_win", {}, emailed, config)
    assert decision.ask and decision.channel == "in_app"
    only_email = replace(config, moments=replace(config.moments, channels=("email",)))
    capped = decide("first_win", {}, emailed, only_email)
    assert capped.skip_reason == "frequency_capped"


def test_opt_in_channels_need_a_granted_consent():
    config = replace(CONFIG, moments=replace(CONFIG.moments, channels=("sms", "email"),
                                             consent={**CONFIG.moments.consent, "email": "opt_in"}))
    assert decide("first_win", {}, PERSON, config).skip_reason == "no_consent"
    granted = decide("first_win", {}, person(consent={"email": "granted"}), config)
    assert granted.ask and granted.channel == "email"
    sms = decide("first_win", {}, person(consent={"email": "granted", "sms": "granted"}), config)
    assert sms.channel == "sms"


def test_default_programme_asks_at_any_moment_but_nps_below_nine():
    config = ProgramConfig(landing_url="https://x.test")
    someone = Recipient(now=NOW, has_email=True)
    for moment in config.moments.types:
        data = {"score": 10} if moment == "nps_response" else {}
        assert decide(moment, data, someone, config).ask, moment
    assert decide("nps_response", {"score": 6}, someone, config).skip_reason == "moment_rule_failed"


def test_check_message_by_purpose():
    unsubscribed = person(suppressions=("unsubscribed",), consent={"email": "withdrawn"})
    assert messaging.check("ask", "email", unsubscribed, CONFIG).reason == "no_consent"
    assert messaging.check("reward", "email", person(suppressions=("spam",)), CONFIG).reason == "suppressed"
    assert messaging.check("transactional", "email", unsubscribed, CONFIG).send
    assert messaging.check("transactional", "email", person(erased=True), CONFIG).reason == "erased"
    ticket = person(attributes={"open_support_ticket": True}, last_ask_at=NOW - timedelta(days=1))
    assert messaging.check("reward", "email", ticket, CONFIG).send  # rewards ignore ask pauses
    assert messaging.check("ask", "email", ticket, CONFIG).reason == "suppressed"
    night = messaging.check("ask", "email", person(now=NOW.replace(hour=22)), CONFIG)
    assert (night.send, night.reason, night.send_at) == (False, "quiet_hours",
                                                          datetime(2026, 6, 11, 6, 0, tzinfo=UTC))
    assert messaging.check("transactional", "email", person(now=NOW.replace(hour=22)), CONFIG).send
    assert messaging.check("ask", "email", person(has_email=False), CONFIG).reason == "no_channel"
    assert messaging.check("ask", "in_app", person(has_email=False), CONFIG).send


def test_skip_text_names_reason_and_detail():
    capped = messaging.check("reward", "email", person(messages_last_week=3), CONFIG)
    assert messaging.skip_text(capped) == "frequency_capped: 3 messages in 7 days (max 3)"
    assert messaging.skip_text(messaging.check("reward", "email", person(suppressions=("unsubscribed",)),
                                               CONFIG)) == "suppressed: unsubscribed"


@pytest.mark.parametrize(("who", "expected"), [
    (PERSON, (NOW, None)),
    # a 30-day cool-down from 2026-05-31 12:00 UTC ends 2026-06-30 14:00 in Berlin: not quiet
    (person(last_ask_at=NOW - timedelta(days=10)), (datetime(2026, 6, 30, 12, 0, tzinfo=UTC), None)),
    (person(declined_at=NOW - timedelta(days=80)), (NOW + timedelta(days=10), None)),
    (person(erased=True), (None, "erased")),
    (person(suppressions=("spam",)), (None, "suppressed")),
    (person(consent={"email": "withdrawn", "in_app": "withdrawn"}), (None, "no_consent")),
    (person(has_email=False, consent={"in_app": "withdrawn"}), (None, "no_channel")),
])
def test_next_ask_at(who, expected):
    assert next_ask_at(who, CONFIG) == expected


def test_next_ask_at_waits_for_the_week_cap_and_the_quiet_hours():
    config = replace(CONFIG, moments=replace(CONFIG.moments, caps=replace(
        CONFIG.moments.caps, asks_per_week=2, cool_down_days=0)))
    asked = person(asks_last_week=((NOW - timedelta(days=6, hours=20), "in_app"),
                                   (NOW - timedelta(days=1), "in_app")))
    # The older ask leaves the window at 2026-06-10 16:00 UTC (18:00 Berlin: no quiet hours).
    assert next_ask_at(asked, config) == (NOW + timedelta(hours=4), None)
    late = person(now=NOW.replace(hour=20))  # 22:00 in Berlin: next at 08:00
    assert next_ask_at(late, config) == (datetime(2026, 6, 11, 6, 0, tzinfo=UTC), None)


@pytest.mark.parametrize(("condition", "values", "holds"), [
    (Condition("plan", "eq", "pro"), {"plan": "pro"}, True),
    (Condition("plan", "ne", "pro"), {"plan": "free"}, True),
    (Condition("plan", "ne", "pro"), {}, False),  # missing fails, even ne
    (Condition("seats", "eq", 1), {"seats": True}, False),  # true is not 1
    (Condition("seats", "gte", 10), {"seats": 10.0}, True),
    (Condition("seats", "gt", 10), {"seats": "11"}, False),  # text is not a number
    (Condition("since", "lt", "2026-01-01"), {"since": "2025-06-30"}, True),
    (Condition("plan", "in", ["pro", "team"]), {"plan": "team"}, True),
    (Condition("plan", "not_in", ["free"]), {"plan": "pro"}, True),
    (Condition("plan", "not_in", ["free"]), {"plan": None}, False),
    (Condition("churn", "exists", False), {}, True),
    (Condition("churn", "exists", False), {"churn": None}, True),
    (Condition("churn", "exists", True), {"churn": 0}, True),
    (Condition("company.size", "gte", 50), {"company": {"size": 80}}, True),
    (Condition("company.size", "gte", 50), {"company": 80}, False),
])
def test_conditions(condition, values, holds):
    assert condition.holds(values) is holds


@pytest.mark.parametrize("bad", [
    {"attribute": "plan", "op": "matches", "value": ".*"},
    {"attribute": "plan", "op": "in", "value": "pro"},
    {"attribute": "seats", "op": "gte", "value": [1]},
    {"attribute": "seats", "op": "gte", "value": True},
    {"attribute": "x", "op": "exists", "value": "yes"},
    {"attribute": "", "op": "eq", "value": 1},
])
def test_bad_conditions_are_refused(bad):
    with pytest.raises(ValueError):
        Condition.from_dict(bad, "attribute")


@pytest.mark.parametrize("moments", [
    {"rules": {"unknown_type": {"ask": False}}},
    {"custom_types": ["qbr"]},
    {"channels": []},
    {"quiet_hours": {"start": "08:00", "end": "08:00"}},
    {"caps": {"asks_per_week_by_channel": {"fax": 1}}},
])
def test_bad_moments_config_is_refused(moments):
    with pytest.raises(ValueError):
        ProgramConfig.from_dict({"landing_url": "https://x.test", "moments": moments})


def test_moments_config_round_trips_and_merges_defaults():
    data = CONFIG.to_dict()
    assert ProgramConfig.from_dict(data) == CONFIG
    assert data["moments"]["rules"]["nps_response"]["when"] == [
        {"field": "score", "op": "gte", "value": 9}]  # the default survives a rule for another type
    assert data["moments"]["consent"] == {"email": "opt_out", "sms": "opt_in", "in_app": "opt_out",
                                          "push": "opt_in"}
