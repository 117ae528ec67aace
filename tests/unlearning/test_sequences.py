from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearning.sequences import (
    POLICIES,
    bms,
    check_sequences,
    cyclic,
    full_budget,
    plan_sequences,
    random_permutations,
)

WORKED_PRIORS = [0.4, 0.3, 0.2, 0.1]


def assert_latin_square(plan, num_slices):
    assert len(plan) == num_slices
    for position in range(num_slices):
        assert sorted(seq[position] for seq in plan) == list(range(num_slices))


def assert_valid_distinct(plan, num_slices, budget):
    assert len(plan) == budget
    assert len(set(plan)) == budget
    for seq in plan:
        assert isinstance(seq, tuple)
        assert sorted(seq) == list(range(num_slices))


def test_cyclic_l4_matches_reference_rotations():
    assert cyclic(4, 4) == [(0, 1, 2, 3), (3, 0, 1, 2), (2, 3, 0, 1), (1, 2, 3, 0)]
    assert cyclic(4, 2) == [(0, 1, 2, 3), (3, 0, 1, 2)]


def test_cyclic_b5_matches_reference_set_and_keeps_square_first():
    plan = cyclic(4, 5)
    assert set(plan) == {(0, 1, 2, 3), (0, 3, 1, 2), (1, 2, 3, 0), (2, 3, 0, 1), (3, 0, 1, 2)}
    assert plan[:4] == cyclic(4, 4)


@pytest.mark.parametrize("num_slices", [1, 2, 3, 4, 5, 6])
def test_cyclic_full_rotation_set_is_latin_square(num_slices):
    assert_latin_square(cyclic(num_slices, num_slices), num_slices)


@pytest.mark.parametrize(("num_slices", "budget"), [(4, 8), (4, 12), (5, 10), (5, 17), (6, 14)])
def test_cyclic_beyond_l_balances_heads(num_slices, budget):
    heads = Counter(seq[0] for seq in cyclic(num_slices, budget))
    assert set(heads) == set(range(num_slices))
    assert max(heads.values()) - min(heads.values()) <= 1


def test_cyclic_b8_every_slice_heads_twice():
    assert Counter(seq[0] for seq in cyclic(4, 8)) == dict.fromkeys(range(4), 2)


@pytest.mark.parametrize("num_slices", [1, 2, 3, 4, 5])
def test_cyclic_full_budget_is_every_permutation(num_slices):
    plan = cyclic(num_slices, math.factorial(num_slices))
    assert set(plan) == set(itertools.permutations(range(num_slices)))


@pytest.mark.parametrize("num_slices", [1, 2, 3, 4, 5])
def test_distinct_for_every_budget(num_slices):
    for budget in range(1, math.factorial(num_slices) + 1):
        assert_valid_distinct(cyclic(num_slices, budget), num_slices, budget)
        assert_valid_distinct(random_permutations(num_slices, budget, seed=3), num_slices, budget)
    for budget in range(1, num_slices + 1):
        assert_valid_distinct(plan_sequences("bms", num_slices, budget), num_slices, budget)
    total = math.factorial(num_slices)
    assert_valid_distinct(plan_sequences("full", num_slices, total), num_slices, total)


def test_full_budget_is_lexicographic_permutations():
    plan = full_budget(4)
    assert len(plan) == 24
    assert plan == sorted(plan)
    assert set(plan) == set(itertools.permutations(range(4)))


def test_full_budget_refuses_more_than_eight_slices():
    with pytest.raises(ValueError, match="num_slices"):
        full_budget(9)


@pytest.mark.parametrize("num_slices", [1, 2, 3, 4, 5, 6])
def test_bms_uniform_prior_is_latin_square_with_each_head_once(num_slices):
    plan = bms([1.0 / num_slices] * num_slices)
    assert_latin_square(plan, num_slices)
    assert [seq[0] for seq in plan] == list(range(num_slices))


def test_bms_worked_example_priors():
    plan = bms(WORKED_PRIORS)
    assert_latin_square(plan, 4)
    # s3t.md section 4 reports this exact output from the reference code.
    assert plan == [(0, 1, 2, 3), (1, 0, 3, 2), (2, 3, 0, 1), (3, 2, 1, 0)]


def test_bms_skewed_prior_with_small_t_still_latin_square():
    plan = bms([0.7, 0.1, 0.1, 0.05, 0.05], t=2.0)
    assert_latin_square(plan, 5)


def test_bms_smaller_budget_takes_best_scores():
    # The safest slice (3, mass 0.1) heads the best-scoring sequence; then slice 2.
    assert [seq[0] for seq in bms(WORKED_PRIORS, budget=2)] == [3, 2]


def test_bms_budget_ties_go_to_lower_head():
    assert [seq[0] for seq in bms([0.25] * 4, budget=3)] == [0, 1, 2]


def test_bms_survives_degenerate_prior():
    # All mass on one slice: 1 - cumulative mass rounds to <= 0; score must stay finite.
    plan = bms([0.0, 1.0, 0.0], t=2.5)
    assert_latin_square(plan, 3)


def test_random_is_seeded():
    assert random_permutations(5, 7, seed=11) == random_permutations(5, 7, seed=11)
    assert random_permutations(5, 7, seed=11) != random_permutations(5, 7, seed=12)


def test_random_large_l_uses_rejection_sampling():
    assert_valid_distinct(random_permutations(10, 20, seed=0), 10, 20)


def test_plan_sequences_dispatch():
    assert plan_sequences("cyclic", 4, 4) == cyclic(4, 4)
    assert plan_sequences("random", 4, 3, seed=5) == random_permutations(4, 3, seed=5)
    assert plan_sequences("bms", 4, 4, priors=WORKED_PRIORS) == bms(WORKED_PRIORS)
    assert plan_sequences("bms", 4, 4) == bms([0.25] * 4)
    assert plan_sequences("full", 3, 6) == full_budget(3)
    assert set(POLICIES) == {"cyclic", "bms", "random", "full"}


@pytest.mark.parametrize("policy", ["cyclic", "random", "bms", "full"])
@pytest.mark.parametrize(
    ("num_slices", "budget", "field"), [(4, 0, "budget"), (3, 7, "budget"), (0, 1, "num_slices")]
)
def test_bad_budget_or_slices(policy, num_slices, budget, field):
    with pytest.raises(ValueError, match=field):
        plan_sequences(policy, num_slices, budget)


def test_unknown_policy_lists_valid_ones():
    with pytest.raises(ValueError, match="policy must be one of cyclic, bms, random, full"):
        plan_sequences("greedy", 4, 4)


def test_bms_budget_above_l_explains():
    with pytest.raises(ValueError, match=r"budget.*at most L"):
        bms([0.25] * 4, budget=5)
    with pytest.raises(ValueError, match="budget"):
        plan_sequences("bms", 4, 5)


def test_full_policy_needs_full_budget():
    with pytest.raises(ValueError, match="budget"):
        plan_sequences("full", 4, 5)


@pytest.mark.parametrize(
    "priors",
    [[], [0.5, 0.6], [0.5, -0.1, 0.6], [float("nan"), 1.0], [float("inf"), 0.0], [0.3, 0.3]],
)
def test_priors_must_be_a_distribution(priors):
    with pytest.raises(ValueError, match="priors"):
        bms(priors)


def test_plan_priors_length_must_match():
    with pytest.raises(ValueError, match="priors"):
        plan_sequences("bms", 4, 4, priors=[0.5, 0.5])


def test_bms_t_must_be_positive():
    with pytest.raises(ValueError, match="t must"):
        bms([0.5, 0.5], t=0.0)


def test_check_sequences_rejects_non_permutations():
    with pytest.raises(ValueError, match=r"sequences\[1\]"):
        check_sequences([(0, 1, 2), (0, 0, 2)], 3)
    with pytest.raises(ValueError, match="sequences"):
        check_sequences([], 3)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_property_plans_are_distinct_permutations(data):
    num_slices = data.draw(st.integers(1, 7), label="num_slices")
    policy = data.draw(st.sampled_from(["cyclic", "random", "bms"]), label="policy")
    upper = num_slices if policy == "bms" else min(math.factorial(num_slices), 200)
    budget = data.draw(st.integers(1, upper), label="budget")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    plan = plan_sequences(policy, num_slices, budget, seed=seed)
    assert_valid_distinct(plan, num_slices, budget)
