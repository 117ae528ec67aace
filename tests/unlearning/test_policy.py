from __future__ import annotations

import random

import pytest

from unlearning.policy import (
    Serving,
    ShardPolicyReport,
    choose_serving,
    expected_deletions_left,
    needs_retraining,
    sequence_depth,
    shard_report,
)
from unlearning.sequences import cyclic, random_permutations
from unlearning.simulate import harmonic, simulate_capacity


def test_sequence_depth():
    assert sequence_depth((2, 0, 1, 3), set()) == 4
    assert sequence_depth((2, 0, 1, 3), {1}) == 2
    assert sequence_depth((2, 0, 1, 3), {1, 2}) == 0
    assert sequence_depth((2, 0, 1, 3), [3]) == 3


def test_choose_serving_longest_prefix():
    plan = cyclic(4, 4)  # (0123) (3012) (2301) (1230)
    assert choose_serving(plan, {0}) == Serving(sequence_index=3, depth=3)
    assert choose_serving(plan, set()) == Serving(sequence_index=0, depth=4)


def test_choose_serving_ties_go_to_lowest_index():
    plan = [(0, 1, 2), (2, 1, 0), (1, 2, 0)]
    # Deleting slice 1 leaves depths 1, 1, 0: the tie picks sequence 0.
    assert choose_serving(plan, {1}) == Serving(sequence_index=0, depth=1)
    assert choose_serving(plan, {0, 2}) == Serving(sequence_index=2, depth=1)


def test_choose_serving_none_when_all_heads_deleted():
    assert choose_serving(cyclic(4, 2), {0, 3}) is None


def test_needs_retraining_threshold():
    assert needs_retraining(0, 1)
    assert not needs_retraining(1, 1)
    assert needs_retraining(2, 3)
    assert not needs_retraining(3, 3)


@pytest.mark.parametrize("threshold", [0, -1, 5])
def test_needs_retraining_rejects_bad_threshold(threshold):
    with pytest.raises(ValueError, match="threshold"):
        needs_retraining(2, threshold, num_slices=4)


@pytest.mark.parametrize(("num_slices", "budget"), [(4, 1), (4, 2), (4, 4), (6, 3), (6, 6)])
def test_expected_left_cyclic_is_coupon_collector(num_slices, budget):
    value = expected_deletions_left(cyclic(num_slices, budget), (), num_slices)
    assert value == pytest.approx(num_slices * harmonic(budget))


def test_expected_left_l4_b4_value():
    assert expected_deletions_left(cyclic(4, 4), [], 4) == pytest.approx(8.3333333, rel=1e-6)


def test_expected_left_dead_shard_is_zero():
    assert expected_deletions_left(cyclic(4, 2), {0, 3}, 4) == 0.0
    assert expected_deletions_left(cyclic(4, 4), {0, 1, 2, 3}, 4) == 0.0


def test_expected_left_after_partial_deletions():
    # One of two heads left: a single coupon out of 4, expected 4 draws.
    assert expected_deletions_left(cyclic(4, 2), {0}, 4) == pytest.approx(4.0)


def _monte_carlo_left(plan, deleted, num_slices, threshold, trials, seed):
    rng = random.Random(seed)
    total = 0
    for _ in range(trials):
        gone = set(deleted)
        count = 0
        while any(sequence_depth(seq, gone) >= threshold for seq in plan):
            gone.add(rng.randrange(num_slices))
            count += 1
        total += count
    return total / trials


def test_expected_left_matches_monte_carlo_from_partial_state():
    plan = random_permutations(6, 5, seed=2)
    exact = expected_deletions_left(plan, {plan[0][2]}, 6, threshold=2)
    estimate = _monte_carlo_left(plan, {plan[0][2]}, 6, 2, trials=6000, seed=1)
    assert exact > 0
    assert estimate == pytest.approx(exact, rel=0.03)


def test_expected_left_matches_capacity_simulation_one_shard():
    plan = random_permutations(7, 6, seed=4)
    exact = expected_deletions_left(plan, (), 7, threshold=3)
    simulated = simulate_capacity(1, plan, 7, trials=8000, seed=9, threshold=3)
    assert simulated.mean == pytest.approx(exact, rel=0.03)


def test_expected_left_threshold_lowers_headroom():
    plan = cyclic(5, 5)
    assert expected_deletions_left(plan, (), 5, 2) < expected_deletions_left(plan, (), 5, 1)


def test_expected_left_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_slices"):
        expected_deletions_left([tuple(range(17))], (), 17)
    with pytest.raises(ValueError, match="deleted"):
        expected_deletions_left(cyclic(4, 4), {4}, 4)
    with pytest.raises(ValueError, match="threshold"):
        expected_deletions_left(cyclic(4, 4), (), 4, threshold=5)
    with pytest.raises(ValueError, match="sequences"):
        expected_deletions_left([(0, 1, 1, 3)], (), 4)


def test_shard_report():
    report = shard_report(cyclic(4, 4), {0}, 4, threshold=2)
    assert isinstance(report, ShardPolicyReport)
    assert report.depths == (0, 1, 2, 3)
    assert report.serving == Serving(sequence_index=3, depth=3)
    assert not report.needs_retraining
    assert report.deletions_left > 0


def test_shard_report_dead_shard():
    report = shard_report(cyclic(4, 2), {0, 3}, 4)
    assert report.serving is None
    assert report.needs_retraining
    assert report.deletions_left == 0.0
    with pytest.raises(AttributeError):
        report.needs_retraining = False  # type: ignore[misc]


def test_deactivated_prefixes_are_exactly_those_that_read_a_deleted_slice():
    from unlearning.policy import deactivated_prefixes

    sequences = [(0, 1, 2), (2, 0, 1), (1, 2, 0)]
    assert deactivated_prefixes(sequences, {1}) == [
        (0, 1),
        (0, 1, 2),
        (2, 0, 1),
        (1,),
        (1, 2),
        (1, 2, 0),
    ]
    assert deactivated_prefixes(sequences, set()) == []
    shared = [(0, 1, 2), (0, 2, 1)]
    assert deactivated_prefixes(shared, {0}) == [(0,), (0, 1), (0, 1, 2), (0, 2), (0, 2, 1)]
