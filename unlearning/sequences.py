"""Sequence-selection policies for S3T: which slice orders each shard trains.

A sequence is a permutation of a shard's slice indices ``0..L-1``; each one becomes a model
trained slice by slice, so a deletion in slice ``j`` only cuts that sequence back to its prefix
before ``j``. The policies here decide which ``B`` permutations a shard pays to train.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

Order = tuple[int, ...]

POLICIES: tuple[str, ...] = ("cyclic", "bms", "random", "full")

# Enumerating L! permutations is cheap up to L = 8 (40320); past that we must sample lazily.
_ENUMERATION_LIMIT = 40320
_FULL_BUDGET_MAX_SLICES = 8
# Any real score lies in [0, L(L+1)/2], so this can never win a maximum-weight matching.
_FORBIDDEN = -1.0e12
_PRIOR_TOLERANCE = 1e-6


def _check_num_slices(num_slices: int) -> None:
    if isinstance(num_slices, bool) or not isinstance(num_slices, int) or num_slices < 1:
        raise ValueError(f"num_slices must be an integer >= 1, got {num_slices!r}")


def _check_budget(num_slices: int, budget: int) -> None:
    _check_num_slices(num_slices)
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise ValueError(f"budget must be an integer, got {budget!r}")
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    if budget > math.factorial(num_slices):
        raise ValueError(
            f"budget must be <= num_slices! = {math.factorial(num_slices)} "
            f"(only that many distinct orders of {num_slices} slices exist), got {budget}"
        )


def check_sequences(sequences: Iterable[Sequence[int]], num_slices: int) -> list[Order]:
    """Validate a plan of sequences for one shard.

    Args:
        sequences: the shard's slice orders.
        num_slices: L, the number of slices in the shard.

    Returns:
        The sequences as a list of int tuples.

    Raises:
        ValueError: if the plan is empty or any sequence is not a permutation of 0..L-1.
    """
    _check_num_slices(num_slices)
    plan = [tuple(int(s) for s in seq) for seq in sequences]
    if not plan:
        raise ValueError("sequences must contain at least one sequence")
    expected = list(range(num_slices))
    for index, seq in enumerate(plan):
        if sorted(seq) != expected:
            raise ValueError(
                f"sequences[{index}] = {list(seq)} is not a permutation of 0..{num_slices - 1}"
            )
    return plan


def _right_rotations(items: Order) -> list[Order]:
    """All right-rotations of ``items``, rotation 0 (``items`` itself) first."""
    n = len(items)
    return [items[n - k :] + items[: n - k] for k in range(n)]


def _even_split(total: int, parts: int) -> list[int]:
    """Split ``total`` into ``parts`` counts differing by at most one, larger counts first."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _expand(node: Order, prefix_len: int, count: int) -> Iterator[Order]:
    """Yield ``count`` distinct sequences that share ``node``'s first ``prefix_len`` slices.

    Children are the right-rotations of the suffix after the fixed prefix; each rotation has a
    different first element, so the children's subtrees are disjoint and every leaf is distinct.
    """
    if count == 1:
        yield node
        return
    prefix, suffix = node[:prefix_len], node[prefix_len:]
    children = [prefix + rot for rot in _right_rotations(suffix)]
    for child, child_count in zip(children, _even_split(count, len(children)), strict=True):
        if child_count:
            yield from _expand(child, prefix_len + 1, child_count)


def cyclic(num_slices: int, budget: int) -> list[Order]:
    """Iterative cyclic rotation (S3T Algorithm 1).

    Args:
        num_slices: L, the number of slices per shard.
        budget: B, how many sequences to plan (1 <= B <= L!).

    Returns:
        B distinct sequences. The first min(B, L) are right-rotations of (0..L-1), so for B >= L
        they form a Latin square; for B > L the rest come from recursively rotating suffixes,
        listed depth-first.
    """
    _check_budget(num_slices, budget)
    roots = _right_rotations(tuple(range(num_slices)))
    if budget <= num_slices:
        return roots[:budget]
    # Every root is its own rotation-0 descendant, so it reappears among the leaves; keep the
    # Latin square up front and append only the new leaves.
    root_set = set(roots)
    extras = [
        leaf
        for root, count in zip(roots, _even_split(budget, num_slices), strict=True)
        for leaf in _expand(root, 1, count)
        if leaf not in root_set
    ]
    return roots + extras


def _check_priors(priors: Sequence[float]) -> np.ndarray:
    values = np.asarray(list(priors), dtype=float)
    if values.ndim != 1 or values.size < 1:
        raise ValueError("priors must be a non-empty sequence of probabilities")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("priors must be finite and >= 0")
    if abs(float(values.sum()) - 1.0) > _PRIOR_TOLERANCE:
        raise ValueError(f"priors must sum to 1 (within 1e-6), got {float(values.sum())!r}")
    return values


def _bms_score(order: Sequence[int], priors: np.ndarray, t: float) -> float:
    """Σ_k k·(1 − mass of the first k slices)^t: expected-depth proxy under t deletions."""
    # Rounding can push 1 - cumulative mass slightly below 0, and a negative base with a
    # fractional t is NaN; a prefix holding all the mass simply cannot survive.
    survive = np.clip(1.0 - np.cumsum(priors[list(order)]), 0.0, 1.0)
    positions = np.arange(1, len(order) + 1, dtype=float)
    return float(np.sum(positions * survive**t))


def bms(priors: Sequence[float], *, budget: int | None = None, t: float = 100.0) -> list[Order]:
    """Bipartite matching selection (S3T Algorithm 2).

    Args:
        priors: deletion probability of each of the L slices (a distribution).
        budget: how many sequences to return; None means L. Must be <= L.
        t: number of deletions the survival score looks ahead.

    Returns:
        With budget None or L, L sequences forming a Latin square (sequence r starts with slice r).
        With a smaller budget, the highest-scoring ones (ties: lower head slice first).
    """
    p = _check_priors(priors)
    num_slices = int(p.size)
    if budget is not None:
        _check_budget(num_slices, budget)
        if budget > num_slices:
            raise ValueError(
                f"budget must be <= num_slices = {num_slices} for bms: the matching gives each "
                f"slice one head position, so BMS plans at most L sequences, got {budget}"
            )
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"t must be a finite number > 0, got {t!r}")
    partial = [[s] for s in range(num_slices)]
    for _ in range(num_slices - 1):
        weights = np.full((num_slices, num_slices), _FORBIDDEN)
        for r, seq in enumerate(partial):
            for j in set(range(num_slices)) - set(seq):
                weights[r, j] = _bms_score([*seq, j], p, t)
        rows, cols = linear_sum_assignment(weights, maximize=True)
        for r, j in zip(rows, cols, strict=True):
            partial[int(r)].append(int(j))
    plan = [tuple(seq) for seq in partial]
    if budget is None or budget == num_slices:
        return plan
    # Stable sort keeps head order (plan[r] starts with r) among equal scores.
    ranked = sorted(plan, key=lambda seq: -_bms_score(seq, p, t))
    return ranked[:budget]


def random_permutations(num_slices: int, budget: int, *, seed: int) -> list[Order]:
    """B distinct permutations drawn uniformly without replacement.

    Args:
        num_slices: L, the number of slices per shard.
        budget: B, how many sequences (1 <= B <= L!).
        seed: seed for numpy's Generator; the same seed gives the same plan.

    Returns:
        B distinct sequences in draw order.
    """
    _check_budget(num_slices, budget)
    rng = np.random.default_rng(seed)
    if math.factorial(num_slices) <= _ENUMERATION_LIMIT:
        every = list(itertools.permutations(range(num_slices)))
        picks = rng.choice(len(every), size=budget, replace=False)
        return [every[int(i)] for i in picks]
    # L >= 9: L! is too large to list, but B is then tiny next to L!, so rejections are rare.
    chosen: dict[Order, None] = {}
    while len(chosen) < budget:
        chosen.setdefault(tuple(int(s) for s in rng.permutation(num_slices)), None)
    return list(chosen)


def full_budget(num_slices: int) -> list[Order]:
    """Every permutation (B = L!), as in the paper's full-budget setting.

    Args:
        num_slices: L, at most 8 (8! = 40320 models per shard is already far beyond practical).

    Returns:
        All L! sequences in lexicographic order.
    """
    _check_num_slices(num_slices)
    if num_slices > _FULL_BUDGET_MAX_SLICES:
        raise ValueError(
            f"num_slices must be <= {_FULL_BUDGET_MAX_SLICES} for the full budget "
            f"({num_slices}! = {math.factorial(num_slices)} sequences per shard), got {num_slices}"
        )
    return list(itertools.permutations(range(num_slices)))


def plan_sequences(
    policy: str,
    num_slices: int,
    budget: int,
    *,
    seed: int = 0,
    priors: Sequence[float] | None = None,
    t: float = 100.0,
) -> list[Order]:
    """Plan one shard's sequences with a named policy.

    Args:
        policy: one of POLICIES ("cyclic", "bms", "random", "full").
        num_slices: L, the number of slices per shard.
        budget: B, how many sequences; "bms" needs B <= L and "full" needs B = L!.
        seed: seed for "random".
        priors: slice deletion probabilities for "bms" (uniform when None).
        t: look-ahead of the BMS score.

    Returns:
        The planned sequences.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}; got {policy!r}")
    _check_budget(num_slices, budget)
    if policy == "cyclic":
        return cyclic(num_slices, budget)
    if policy == "random":
        return random_permutations(num_slices, budget, seed=seed)
    if policy == "bms":
        if priors is None:
            priors = [1.0 / num_slices] * num_slices
        if len(priors) != num_slices:
            raise ValueError(
                f"priors must have num_slices = {num_slices} entries, got {len(priors)}"
            )
        return bms(priors, budget=budget, t=t)
    if budget != math.factorial(num_slices):
        # Silently truncating the lexicographic list would make every sequence start with 0.
        raise ValueError(
            f"budget must be num_slices! = {math.factorial(num_slices)} for policy 'full', "
            f"got {budget}"
        )
    return full_budget(num_slices)
