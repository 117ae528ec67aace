from __future__ import annotations

import time

import numpy as np
import pytest

from unlearning.sequences import cyclic
from unlearning.simulate import (
    CapacityResult,
    closed_form_capacity,
    harmonic,
    simulate_capacity,
    simulate_sisa,
)
from unlearning.simulate import (
    sisa_closed_form as sisa_form,
)

M, L = 5, 6


def test_harmonic():
    assert harmonic(0) == 0.0
    assert harmonic(1) == 1.0
    assert harmonic(4) == pytest.approx(25 / 12)
    with pytest.raises(ValueError, match="n must"):
        harmonic(-1)


@pytest.mark.parametrize(
    ("budget", "expected"),
    [(1, 68.5), (2, 87.869), (3, 99.547), (4, 107.932), (5, 114.479), (6, 119.850), (24, 119.850)],
)
def test_closed_form_capacity(budget, expected):
    assert closed_form_capacity(M, L, budget) == pytest.approx(expected, abs=1e-3)


def test_sisa_closed_form():
    assert sisa_form(5) == pytest.approx(11.4167, abs=1e-4)


@pytest.mark.parametrize("budget", [1, 2, 3, 4, 5, 6])
def test_simulation_matches_closed_form(budget):
    result = simulate_capacity(M, cyclic(L, budget), L, trials=4000, seed=budget)
    assert result.trials == 4000
    assert result.mean == pytest.approx(closed_form_capacity(M, L, budget), rel=0.03)
    assert result.stderr == pytest.approx(result.std / np.sqrt(4000))


def test_sisa_simulation_matches_closed_form():
    result = simulate_sisa(M, trials=4000, seed=1)
    assert isinstance(result, CapacityResult)
    assert result.mean == pytest.approx(sisa_form(M), rel=0.03)


def test_simulation_is_fast():
    start = time.perf_counter()
    simulate_capacity(M, cyclic(L, L), L, trials=2000, seed=0)
    assert time.perf_counter() - start < 2.0


def test_simulation_is_seeded():
    a = simulate_capacity(M, cyclic(L, 3), L, trials=500, seed=7)
    b = simulate_capacity(M, cyclic(L, 3), L, trials=500, seed=7)
    c = simulate_capacity(M, cyclic(L, 3), L, trials=500, seed=8)
    assert a == b
    assert a.mean != c.mean


def test_per_shard_plans_equal_shared_plan():
    plan = cyclic(L, 4)
    shared = simulate_capacity(M, plan, L, trials=500, seed=3)
    per_shard = simulate_capacity(M, [plan] * M, L, trials=500, seed=3)
    assert shared == per_shard


def test_skewed_priors_on_heads_reduce_capacity():
    plan = cyclic(L, 2)  # heads are slices 0 and 5 of every shard
    weights = np.ones(M * L)
    for shard in range(M):
        weights[shard * L + 0] = weights[shard * L + 5] = 10.0
    priors = weights / weights.sum()
    uniform = simulate_capacity(M, plan, L, trials=3000, seed=0)
    skewed = simulate_capacity(M, plan, L, trials=3000, seed=0, priors=priors.tolist())
    assert skewed.mean < 0.5 * uniform.mean


def test_skewed_priors_away_from_heads_increase_capacity():
    plan = cyclic(L, 1)  # only slice 0 of each shard matters at threshold 1
    weights = np.ones(M * L)
    weights[[shard * L for shard in range(M)]] = 0.2
    priors = weights / weights.sum()
    uniform = simulate_capacity(M, plan, L, trials=3000, seed=0)
    skewed = simulate_capacity(M, plan, L, trials=3000, seed=0, priors=priors.tolist())
    assert skewed.mean > 2.0 * uniform.mean


def test_skewed_sisa_priors_increase_capacity():
    uniform = simulate_sisa(M, trials=3000, seed=0)
    skewed = simulate_sisa(M, trials=3000, seed=0, priors=[0.96, 0.01, 0.01, 0.01, 0.01])
    assert skewed.mean > 3.0 * uniform.mean


def test_threshold_reduces_capacity():
    plan = cyclic(L, L)
    loose = simulate_capacity(M, plan, L, trials=2000, seed=0, threshold=1)
    strict = simulate_capacity(M, plan, L, trials=2000, seed=0, threshold=3)
    assert strict.mean < loose.mean


def test_single_slice_single_shard_is_one_deletion():
    result = simulate_capacity(1, [(0,)], 1, trials=50, seed=0)
    assert result.mean == 1.0
    assert result.std == 0.0


def test_bad_arguments():
    plan = cyclic(L, 2)
    with pytest.raises(ValueError, match="num_shards"):
        simulate_capacity(0, plan, L)
    with pytest.raises(ValueError, match="trials"):
        simulate_capacity(M, plan, L, trials=0)
    with pytest.raises(ValueError, match="threshold"):
        simulate_capacity(M, plan, L, threshold=L + 1)
    with pytest.raises(ValueError, match="priors"):
        simulate_capacity(M, plan, L, priors=[1.0 / L] * L)
    with pytest.raises(ValueError, match="priors"):
        simulate_capacity(M, plan, L, priors=[0.5] * (M * L))
    with pytest.raises(ValueError, match="sequences_per_shard"):
        simulate_capacity(M, [plan, plan], L)
    with pytest.raises(ValueError, match="sequences"):
        simulate_capacity(M, [(0, 1, 2)], L)
    with pytest.raises(ValueError, match="budget"):
        closed_form_capacity(M, L, 0)


def test_unreachable_death_is_refused():
    # Slice 0 heads the only sequence of each shard but can never be deleted.
    priors = np.ones(M * L)
    priors[[shard * L for shard in range(M)]] = 0.0
    with pytest.raises(ValueError, match="priors"):
        simulate_capacity(M, cyclic(L, 1), L, priors=(priors / priors.sum()).tolist())
