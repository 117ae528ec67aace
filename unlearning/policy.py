"""Serving and retraining decisions for one shard after deletions.

A deletion in slice ``j`` cuts every sequence back to its prefix before ``j``. The shard serves
the sequence with the longest clean prefix; once that prefix is too short it must be retrained.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

from unlearning.sequences import check_sequences

# Exact expectation enumerates subsets of deleted slices: 2^16 states is the affordable limit.
_MAX_EXACT_SLICES = 16


@dataclass(frozen=True)
class Serving:
    """Which sequence a shard serves, and how many of its stages are still clean."""

    sequence_index: int
    depth: int


@dataclass(frozen=True)
class ShardPolicyReport:
    """A shard's state after deletions: per-sequence depths and what to do next."""

    depths: tuple[int, ...]
    serving: Serving | None
    needs_retraining: bool
    deletions_left: float


def sequence_depth(order: tuple[int, ...], deleted: Collection[int]) -> int:
    """Length of the clean prefix of one sequence.

    Args:
        order: the sequence (a permutation of slice indices).
        deleted: slices that have had a deletion.

    Returns:
        The number of leading slices before the first deleted one (len(order) if none).
    """
    for position, slice_index in enumerate(order):
        if slice_index in deleted:
            return position
    return len(order)


def choose_serving(
    sequences: Sequence[tuple[int, ...]], deleted: Collection[int]
) -> Serving | None:
    """Pick the sequence to serve: the longest clean prefix, ties to the lowest index.

    Args:
        sequences: the shard's sequences, in inventory order.
        deleted: slices that have had a deletion.

    Returns:
        The chosen Serving, or None when every sequence has depth 0 (nothing usable).
    """
    return best_serving([sequence_depth(order, deleted) for order in sequences])


def best_serving(depths: Sequence[int]) -> Serving | None:
    """The serving choice from usable depths per sequence (longest; ties to lowest index).

    Governance derives depths from stage states (leading stages still trained), which also
    covers stages lost for other reasons than a deleted slice.
    """
    best: Serving | None = None
    for index, depth in enumerate(depths):
        # Strict ">" keeps the earliest sequence on ties, as the reference inference does.
        if depth > 0 and (best is None or depth > best.depth):
            best = Serving(sequence_index=index, depth=depth)
    return best


def _check_threshold(threshold: int, num_slices: int | None) -> None:
    upper = num_slices if num_slices is not None else threshold
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= upper:
        bound = f"num_slices = {num_slices}" if num_slices is not None else "num_slices"
        raise ValueError(f"threshold must be an integer in 1..{bound}, got {threshold!r}")


def needs_retraining(serving_depth: int, threshold: int, *, num_slices: int | None = None) -> bool:
    """Whether a shard whose best clean prefix is ``serving_depth`` must be retrained.

    Args:
        serving_depth: depth of the served sequence (0 when nothing can be served).
        threshold: minimum acceptable depth; 1 means only a dead shard needs retraining.
        num_slices: L, when given, also bounds threshold from above.

    Returns:
        True when serving_depth < threshold.
    """
    _check_threshold(threshold, num_slices)
    if serving_depth < 0:
        raise ValueError(f"serving_depth must be >= 0, got {serving_depth}")
    return serving_depth < threshold


def _check_deleted(deleted: Collection[int], num_slices: int) -> frozenset[int]:
    bad = [s for s in deleted if not 0 <= s < num_slices]
    if bad:
        raise ValueError(f"deleted must hold slice indices in 0..{num_slices - 1}, got {bad}")
    return frozenset(deleted)


def expected_deletions_left(
    sequences: Sequence[tuple[int, ...]],
    deleted: Collection[int],
    num_slices: int,
    threshold: int = 1,
) -> float:
    """Expected further deletions on this shard before its serving depth drops below threshold.

    Each deletion lands uniformly on one of the shard's L slices (repeats allowed; a repeat on
    an already-deleted slice changes nothing). Exact dynamic programming over deleted sets S:
    E[S] = 0 if S is dead, else (L + Σ_{j∉S} E[S∪{j}]) / (L − |S|).

    Args:
        sequences: the shard's sequences.
        deleted: slices already deleted.
        num_slices: L, at most 16.
        threshold: minimum acceptable serving depth (1..L).

    Returns:
        The expected count, 0.0 when the shard already needs retraining.
    """
    plan = check_sequences(sequences, num_slices)
    _check_threshold(threshold, num_slices)
    if num_slices > _MAX_EXACT_SLICES:
        raise ValueError(
            f"num_slices must be <= {_MAX_EXACT_SLICES} for the exact expectation "
            f"(2^num_slices states), got {num_slices}"
        )
    start = _check_deleted(deleted, num_slices)
    return _expected_left(tuple(plan), start, num_slices, threshold)


# Model status pages ask this for every shard on every request, and shards of a model
# mostly share a plan and a deleted set: memoise whole answers (up to 2^L states each).
@lru_cache(maxsize=4096)
def _expected_left(
    plan: tuple[tuple[int, ...], ...], start: frozenset[int], num_slices: int, threshold: int
) -> float:
    # A shard stays alive while some sequence's first `threshold` slices are all clean.
    guards = [sum(1 << s for s in order[:threshold]) for order in plan]

    @cache
    def expected(mask: int) -> float:
        if all(mask & guard for guard in guards):
            return 0.0
        free = [j for j in range(num_slices) if not mask >> j & 1]
        # From E[S] = 1 + (|S|/L)·E[S] + (1/L)·Σ E[S∪{j}]: self-loops on deleted slices.
        return (num_slices + sum(expected(mask | 1 << j) for j in free)) / len(free)

    return expected(sum(1 << s for s in start))


def shard_report(
    sequences: Sequence[tuple[int, ...]],
    deleted: Collection[int],
    num_slices: int,
    threshold: int = 1,
) -> ShardPolicyReport:
    """Summarise one shard: depths, what to serve, whether to retrain, expected headroom.

    Args:
        sequences: the shard's sequences.
        deleted: slices already deleted.
        num_slices: L.
        threshold: minimum acceptable serving depth (1..L).

    Returns:
        The ShardPolicyReport.
    """
    plan = check_sequences(sequences, num_slices)
    gone = _check_deleted(deleted, num_slices)
    serving = choose_serving(plan, gone)
    depth = serving.depth if serving is not None else 0
    return ShardPolicyReport(
        depths=tuple(sequence_depth(order, gone) for order in plan),
        serving=serving,
        needs_retraining=needs_retraining(depth, threshold, num_slices=num_slices),
        deletions_left=expected_deletions_left(plan, gone, num_slices, threshold),
    )


def deactivated_prefixes(
    sequences: Sequence[tuple[int, ...]], deleted: Collection[int]
) -> list[tuple[int, ...]]:
    """Every stage prefix of a shard that read a deleted slice, parents first.

    These stages can never serve again and their bytes must be destroyed (invariant I3).
    A prefix shared by several sequences is listed once.

    Args:
        sequences: the shard's sequences.
        deleted: the shard's deleted slice indices.

    Returns:
        The dirty prefixes in trie order.
    """
    dirty = set(deleted)
    seen: set[tuple[int, ...]] = set()
    out: list[tuple[int, ...]] = []
    for order in sequences:
        for depth in range(1, len(order) + 1):
            prefix = tuple(order[:depth])
            if prefix not in seen and dirty & set(prefix):
                seen.add(prefix)
                out.append(prefix)
    return out
