"""Deletion capacity: how many deletions a sharded S3T system absorbs before it must retrain.

Deletions arrive one at a time, each hitting one of the m·L slices independently. A sequence
stops being usable at the first hit on one of its first ``threshold`` slices; a shard is dead
when all its sequences are; the system is dead when every shard is. Closed forms follow the
coupon-collector reconstruction in s3t.md section 5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from unlearning.sequences import check_sequences

Order = tuple[int, ...]
Plan = Sequence[Order]

# First chunk of draws per live trial; it doubles while skewed priors leave trials unfinished.
_FIRST_CHUNK = 256
_NEVER = np.iinfo(np.int64).max
_PRIOR_TOLERANCE = 1e-6


@dataclass(frozen=True)
class CapacityResult:
    """Monte Carlo estimate of the number of deletions until no shard can serve."""

    mean: float
    std: float
    stderr: float
    trials: int


def harmonic(n: int) -> float:
    """The n-th harmonic number H(n) = 1 + 1/2 + … + 1/n (H(0) = 0).

    Args:
        n: a non-negative integer.

    Returns:
        H(n).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return sum(1.0 / k for k in range(1, n + 1))


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def closed_form_capacity(num_shards: int, num_slices: int, budget: int) -> float:
    """Expected deletions until system death with cyclic plans: m·L·H(m·min(B, L)).

    Args:
        num_shards: m.
        num_slices: L, slices per shard.
        budget: B, sequences per shard.

    Returns:
        The expectation under uniform deletions and threshold 1.
    """
    for name, value in (("num_shards", num_shards), ("num_slices", num_slices), ("budget", budget)):
        _check_positive(name, value)
    return num_shards * num_slices * harmonic(num_shards * min(budget, num_slices))


def sisa_closed_form(num_shards: int) -> float:
    """Expected deletions until every shard has had one, for SISA without checkpoints: m·H(m).

    Args:
        num_shards: m.

    Returns:
        m·H(m).
    """
    _check_positive("num_shards", num_shards)
    return num_shards * harmonic(num_shards)


def _per_shard_plans(
    num_shards: int, sequences_per_shard: Plan | Sequence[Plan], num_slices: int
) -> list[list[Order]]:
    """Accept one plan for every shard, or one plan per shard; validate each."""
    if len(sequences_per_shard) == 0:
        raise ValueError("sequences_per_shard must not be empty")
    first = sequences_per_shard[0]
    # A single plan's items are sequences of ints; a per-shard list's items are plans.
    if len(first) > 0 and isinstance(first[0], int | np.integer):
        plan = check_sequences(cast(Plan, sequences_per_shard), num_slices)
        return [plan] * num_shards
    plans = cast(Sequence[Plan], sequences_per_shard)
    if len(plans) != num_shards:
        raise ValueError(
            f"sequences_per_shard must hold one plan per shard ({num_shards}), got {len(plans)}"
        )
    return [check_sequences(plan, num_slices) for plan in plans]


def _check_priors(priors: Sequence[float] | None, size: int) -> np.ndarray:
    if priors is None:
        return np.full(size, 1.0 / size)
    p = np.asarray(list(priors), dtype=float)
    if p.shape != (size,):
        raise ValueError(f"priors must have num_shards·num_slices = {size} entries, got {p.size}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("priors must be finite and >= 0")
    if abs(float(p.sum()) - 1.0) > _PRIOR_TOLERANCE:
        raise ValueError(f"priors must sum to 1 (within 1e-6), got {float(p.sum())!r}")
    # Generator.choice demands a much tighter sum than our 1e-6 tolerance, so renormalise.
    normalised: np.ndarray = p / p.sum()
    return normalised


def _guard_matrix(plans: list[list[Order]], num_slices: int, threshold: int) -> np.ndarray:
    """Global slice indices of each sequence's first ``threshold`` slices, one row per sequence."""
    rows = [
        [shard * num_slices + s for s in order[:threshold]]
        for shard, plan in enumerate(plans)
        for order in plan
    ]
    return np.asarray(rows, dtype=np.int64)


def _record_first_hits(first: np.ndarray, draws: np.ndarray, offset: int) -> None:
    """Lower ``first[trial, slice]`` to the earliest time that slice appears in ``draws``."""
    trials, width = draws.shape
    rows = np.repeat(np.arange(trials), width)
    times = np.tile(np.arange(offset, offset + width, dtype=np.int64), trials)
    np.minimum.at(first, (rows, draws.ravel()), times)


def _death_times(
    guards: np.ndarray, p: np.ndarray, trials: int, rng: np.random.Generator
) -> np.ndarray:
    """0-based index of the deletion that kills the system, per trial."""
    # The system dies when every sequence is cut, so its death is the latest cut over all
    # sequences of all shards; a sequence is cut at the first hit on any of its guard slices.
    first = np.full((trials, p.size), _NEVER, dtype=np.int64)
    death = np.full(trials, _NEVER, dtype=np.int64)
    live = np.arange(trials)
    offset, chunk = 0, _FIRST_CHUNK
    while live.size:
        draws = rng.choice(p.size, size=(live.size, chunk), p=p)
        sub = first[live]
        _record_first_hits(sub, draws, offset)
        first[live] = sub
        death[live] = sub[:, guards].min(axis=2).max(axis=1)
        live = live[death[live] == _NEVER]
        offset, chunk = offset + chunk, chunk * 2
    return death


def simulate_capacity(
    num_shards: int,
    sequences_per_shard: Plan | Sequence[Plan],
    num_slices: int,
    *,
    trials: int = 2000,
    seed: int = 0,
    priors: Sequence[float] | None = None,
    threshold: int = 1,
) -> CapacityResult:
    """Monte Carlo count of deletions until no shard can serve a deep enough sequence.

    Args:
        num_shards: m.
        sequences_per_shard: one plan (list of sequences) per shard, or one plan for all shards.
        num_slices: L, slices per shard.
        trials: number of independent deletion streams.
        seed: seed for numpy's Generator.
        priors: deletion distribution over the m·L slices, shard-major (uniform when None).
        threshold: a shard can serve while some sequence has depth >= threshold (1..L).

    Returns:
        The CapacityResult; the deletion that kills the last shard is counted.
    """
    _check_positive("num_shards", num_shards)
    _check_positive("num_slices", num_slices)
    _check_positive("trials", trials)
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        raise ValueError(f"threshold must be an integer, got {threshold!r}")
    if not 1 <= threshold <= num_slices:
        raise ValueError(f"threshold must be in 1..num_slices = {num_slices}, got {threshold}")
    plans = _per_shard_plans(num_shards, sequences_per_shard, num_slices)
    p = _check_priors(priors, num_shards * num_slices)
    guards = _guard_matrix(plans, num_slices, threshold)
    # Without this the loop would draw forever: some sequence could never be cut.
    if not np.all((p[guards] > 0).any(axis=1)):
        raise ValueError("priors give zero mass to every guard slice of some sequence")
    counts = (_death_times(guards, p, trials, np.random.default_rng(seed)) + 1).astype(float)
    std = float(counts.std(ddof=1)) if trials > 1 else 0.0
    return CapacityResult(
        mean=float(counts.mean()), std=std, stderr=std / float(np.sqrt(trials)), trials=trials
    )


def simulate_sisa(
    num_shards: int,
    *,
    trials: int = 2000,
    seed: int = 0,
    priors: Sequence[float] | None = None,
) -> CapacityResult:
    """Monte Carlo for SISA without slice checkpoints: a shard dies at its first deletion.

    Args:
        num_shards: m.
        trials: number of independent deletion streams.
        seed: seed for numpy's Generator.
        priors: deletion distribution over the m shards (uniform when None).

    Returns:
        The CapacityResult (about m·H(m) under uniform priors).
    """
    # Any hit on a shard kills it, which is exactly one single-slice sequence per shard.
    return simulate_capacity(num_shards, [(0,)], 1, trials=trials, seed=seed, priors=priors)
