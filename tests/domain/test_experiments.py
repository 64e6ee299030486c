"""Experiments, pure: designs, deterministic assignment, Wilson intervals, sample sizes, the stop
rule, the funnel of a variant; reward resolution and behaviour-based tiers of the program."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from referflow.domain import experiments as ex
from referflow.domain.messaging import PASS
from referflow.domain.program import ProgramConfig, Reward

MOMENT_TYPES = ("first_win", "nps_response", "renewal", "community_contribution")


def design(variants: list[dict[str, Any]], **extra: Any) -> ex.Design:
    return ex.Design.from_dict({"variants": variants, **extra}, MOMENT_TYPES)


# -- designs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("variants", "subject"), [
    ([{"name": "control", "weight": 1},
      {"name": "more", "weight": 1, "rewards": {"advocate": {"type": "gift_card", "amount": 5000}}}],
     ex.Subject.REWARDS),
    ([{"name": "a", "weight": 1, "friend_offer": "10 % off"},
      {"name": "b", "weight": 1, "friend_offer": "20 % off"}], ex.Subject.REWARDS),
    ([{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "message": "Share the love"}],
     ex.Subject.MESSAGE),
    ([{"name": "a", "weight": 1, "moments": ["first_win"]},
      {"name": "b", "weight": 1, "moments": []}], ex.Subject.MOMENT),
])
def test_the_subject_is_what_the_variants_change(variants, subject):
    assert design(variants).subject == subject


@pytest.mark.parametrize(("variants", "extra", "code", "path"), [
    ([{"name": "a", "weight": 1, "message": "x"}, {"name": "a", "weight": 1}], {},
     "duplicate_variant", "/variants/1/name"),
    ([{"name": "a", "weight": 1, "message": "x"}, {"name": "b", "weight": 1, "friend_offer": "y"}],
     {}, "mixed_subjects", "/variants"),
    ([{"name": "a", "weight": 1}, {"name": "b", "weight": 2}], {}, "nothing_varies", "/variants"),
    ([{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "friend_offer": "y"}],
     {"moment": "first_win"}, "moment_scope", "/moment"),
    ([{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "message": "y"}],
     {"moment": "bogus"}, "unknown_moment", "/moment"),
    ([{"name": "a", "weight": 1, "moments": ["first_win", "bogus"]},
      {"name": "b", "weight": 1, "moments": []}], {}, "unknown_moment", "/variants/0/moments"),
    ([{"name": "a", "weight": 1, "moments": ["first_win"]}, {"name": "b", "weight": 1}], {},
     "missing_moments", "/variants/1"),
])
def test_designs_that_cannot_run_are_refused_with_a_code(variants, extra, code, path):
    with pytest.raises(ex.InvalidDesign) as caught:
        design(variants, **extra)
    assert (caught.value.code, caught.value.path) == (code, path)


def test_a_design_keeps_what_it_was_given_and_defaults_the_effect():
    made = design([{"name": "a", "weight": 1},
                   {"name": "b", "weight": 3, "rewards": {"friend": {"type": "gift_card", "amount": 700}}}])
    assert made.minimum_detectable_effect == ex.DEFAULT_MDE and made.baseline_rate is None
    assert made.variant("b").rewards == {"friend": Reward("gift_card", 700)}
    again = ex.Design.from_dict(made.to_dict(), MOMENT_TYPES)
    assert again == made
    with pytest.raises(KeyError):
        made.variant("c")


# -- assignment ------------------------------------------------------------------------------------

def test_assignment_is_a_pure_function_of_the_secret_experiment_and_person():
    # Pinned: a change of the hash or the mapping would move people between variants.
    assert [ex.choose("pinned-secret", "exp_pinned", f"cus_{i}", [1, 1, 2]) for i in range(12)] \
        == [1, 1, 2, 2, 0, 0, 1, 1, 2, 0, 1, 0]
    assert ex.choose("other-secret", "exp_pinned", "cus_0", [1, 1, 2]) in (0, 1, 2)


@pytest.mark.parametrize("weights", [[1, 1], [1, 3], [50, 30, 20], [1, 1, 1, 1, 1]])
def test_10k_people_split_along_the_weights(weights):
    counts = Counter(ex.choose("s3cret", "exp_dist", f"cus_{i}", weights) for i in range(10_000))
    total = sum(weights)
    for index, weight in enumerate(weights):
        expected = 10_000 * weight / total
        sd = (10_000 * (weight / total) * (1 - weight / total)) ** 0.5
        assert abs(counts[index] - expected) < 4.5 * sd, (index, counts)


def test_two_experiments_assign_independently():
    pairs = Counter((ex.choose("s", "exp_a", f"c{i}", [1, 1]), ex.choose("s", "exp_b", f"c{i}", [1, 1]))
                    for i in range(4_000))
    assert all(abs(n - 1_000) < 150 for n in pairs.values()) and len(pairs) == 4


def test_a_moment_experiment_passes_or_holds_out_only_at_the_moments_it_covers():
    made = design([{"name": "asked", "weight": 1, "moments": ["first_win"]},
                   {"name": "held", "weight": 1, "moments": []}])
    covered = made.covered_moments
    assert ex.moment_gate(made.variant("asked"), covered, "first_win").outcome == PASS
    held = ex.moment_gate(made.variant("held"), covered, "first_win")
    assert (held.rule, held.outcome) == (ex.RULE, ex.HOLDOUT)
    assert ex.moment_gate(made.variant("held"), covered, "renewal") is None


# -- Wilson intervals: Newcombe (1998), Statistics in Medicine 17:857-872, table II, method 3 -------

@pytest.mark.parametrize(("successes", "trials", "low", "high"), [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_newcombes_published_intervals(successes, trials, low, high):
    interval = ex.wilson(successes, trials)
    assert (round(interval.low, 4), round(interval.high, 4)) == (low, high)


def test_wilson_edges():
    assert ex.wilson(0, 0) is None
    assert ex.wilson(20, 20).high == 1.0 and ex.wilson(20, 20).low < 1.0
    with pytest.raises(ValueError):
        ex.wilson(3, 2)


# -- sample size: two-sided alpha 0.05, power 0.8, pooled variance, no continuity correction -------

@pytest.mark.parametrize(("p1", "p2", "n"), [
    (0.08, 0.06, 2554),  # JMP documentation, Two Sample Proportions example
    (0.05, 0.10, 435),  # Fleiss, Statistical Methods for Rates and Proportions (without correction)
    (0.20, 0.25, 1094),
])
def test_sample_size_matches_published_values(p1, p2, n):
    assert ex.sample_size(p1, p2) == n
    assert ex.sample_size(p2, p1) == n


def test_required_sample_adds_the_effect_or_takes_it_off_near_one():
    assert ex.required_sample(0.20, 0.05) == 1094
    assert ex.required_sample(0.98, 0.05) == ex.sample_size(0.98, 0.93)
    assert ex.required_sample(0.5, 0.9) is None  # 1.4 and -0.4: neither is a rate
    with pytest.raises(ValueError):
        ex.sample_size(0.2, 0.2)


# -- the stop rule ---------------------------------------------------------------------------------

def test_no_winner_before_every_variant_reached_the_sample():
    verdict = ex.judge([ex.Arm("a", 100, 10), ex.Arm("b", 5000, 900)], mde=0.05)
    assert (verdict.winner, verdict.reason) == (None, ex.Reason.NOT_ENOUGH_DATA)
    assert verdict.sample_size == ex.required_sample(0.10, 0.05) and verdict.reached == ("b",)
    assert "a (100/" in verdict.message


def test_a_winner_when_every_variant_reached_the_sample_and_the_intervals_separate():
    arms = [ex.Arm("control", 2000, 200), ex.Arm("bigger", 2000, 320)]
    verdict = ex.judge(arms, mde=0.05)
    assert (verdict.winner, verdict.reason) == ("bigger", ex.Reason.WINNER)
    assert verdict.baseline == 0.10 and verdict.sample_size == ex.required_sample(0.10, 0.05)


def test_overlapping_intervals_name_no_winner():
    verdict = ex.judge([ex.Arm("a", 2000, 200), ex.Arm("b", 2000, 215)], mde=0.05)
    assert (verdict.winner, verdict.reason) == (None, ex.Reason.OVERLAP)


def test_a_winner_must_beat_every_other_variant():
    arms = [ex.Arm("a", 2000, 200), ex.Arm("b", 2000, 320), ex.Arm("c", 2000, 310)]
    assert ex.judge(arms, mde=0.05).reason == ex.Reason.OVERLAP


def test_the_baseline_given_at_creation_sizes_the_sample():
    verdict = ex.judge([ex.Arm("a", 0, 0), ex.Arm("b", 0, 0)], mde=0.05, baseline_rate=0.2)
    assert (verdict.baseline, verdict.sample_size, verdict.reason) == \
        (0.2, 1094, ex.Reason.NOT_ENOUGH_DATA)


def test_no_baseline_and_effects_out_of_range():
    assert ex.judge([ex.Arm("a", 0, 0), ex.Arm("b", 10, 1)], mde=0.05).reason == ex.Reason.NO_BASELINE
    assert ex.judge([ex.Arm("a", 10, 5), ex.Arm("b", 10, 1)], mde=0.9).reason == \
        ex.Reason.EFFECT_OUT_OF_RANGE


# -- the funnel of a variant -----------------------------------------------------------------------

def test_a_tally_counts_claims_approvals_revenue_and_cost():
    tally = ex.Tally(assigned=3)
    tally.add_referral("pending", "adv_1", None, 0)
    tally.add_referral("held", "adv_1", (5000, "EUR"), 0)
    tally.add_referral("approved", "adv_1", (7000, "EUR"), 3500)
    tally.add_referral("rewarded", "adv_2", (1000, "USD"), 2500)
    tally.add_referral("reversed", "adv_3", (9000, "EUR"), 3500)
    assert (tally.claims, tally.approved, tally.rewarded, tally.reward_cost) == (5, 2, 1, 6000)
    assert tally.revenue == {"EUR": 12000, "USD": 1000}
    assert tally.arm("x") == ex.Arm("x", 3, 2)
    assert ex.recorded_variant([{"experiment_id": "exp_1", "name": "b"}], "exp_1") == "b"
    assert ex.recorded_variant(None, "exp_1") is None


# -- the program: rewards in one home, tiers with behaviour ----------------------------------------

CONFIG = ProgramConfig.from_dict({
    "landing_url": "https://x.test",
    "rewards": {"advocate": {"type": "gift_card", "amount": 2000},
                "friend": {"type": "gift_card", "amount": 1000}},
    "tiers": [{"name": "member", "min_approved": 1},
              {"name": "leader", "min_approved": 5, "advocate_reward": {"type": "gift_card", "amount": 9000},
               "requires": [{"moment": "community_contribution", "count": 2}]}],
})


def test_rewards_resolve_tier_then_variant_then_base():
    variant = {"advocate": Reward("gift_card", 4000), "friend": Reward("gift_card", 1500)}
    assert CONFIG.rewards_for(None) == {"advocate": Reward("gift_card", 2000),
                                        "friend": Reward("gift_card", 1000)}
    assert CONFIG.rewards_for("member", variant) == variant  # member has no reward of its own
    assert CONFIG.rewards_for("leader", variant) == {"advocate": Reward("gift_card", 9000),
                                                     "friend": Reward("gift_card", 1500)}
    assert CONFIG.rewards_for(None, {"friend": Reward("none", 0)})["advocate"].amount == 2000


@pytest.mark.parametrize(("approved", "moments", "tier"), [
    (0, {}, None), (1, {}, "member"), (7, {}, "member"),
    (7, {"community_contribution": 1}, "member"), (7, {"community_contribution": 2}, "leader"),
    (4, {"community_contribution": 5}, "member"),
])
def test_a_tier_may_require_recorded_moments(approved, moments, tier):
    reached = CONFIG.tier_for(approved, moments)
    assert (reached.name if reached else None) == tier


def test_tiers_round_trip_and_refuse_unknown_moments_and_repeated_names():
    assert ProgramConfig.from_dict(CONFIG.to_dict()) == CONFIG
    assert CONFIG.tiers_need_moments
    base = {"landing_url": "https://x.test"}
    with pytest.raises(ValueError, match="unknown moment"):
        ProgramConfig.from_dict({**base, "tiers": [
            {"name": "x", "min_approved": 1, "requires": [{"moment": "bogus"}]}]})
    with pytest.raises(ValueError, match="unique"):
        ProgramConfig.from_dict({**base, "tiers": [{"name": "x", "min_approved": 1},
                                                   {"name": "x", "min_approved": 2}]})
