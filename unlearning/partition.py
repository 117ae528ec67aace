"""Deterministic, balanced assignment of records to (shard, slice) cells.

In sharded, sliced training each shard's model is trained slice by slice, with a checkpoint
after each slice. Erasing a record forces its shard to retrain from the checkpoint before the
record's slice, so the cost of an erasure depends on where the erased records sit. Records
are therefore placed by group (the data subject): erasing a subject touches one cell only.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Cell:
    """One (shard, slice) position; ordered by shard, then slice."""

    shard: int
    slice: int


def assign(
    records: Sequence[tuple[str, str]],
    *,
    num_shards: int,
    num_slices: int,
    seed: int,
    existing: Mapping[str, Cell] | None = None,
    existing_groups: Mapping[str, Cell] | None = None,
) -> dict[str, Cell]:
    """Assign records to cells, keeping each group (data subject) in a single cell.

    Keeping a subject's records together means erasing that subject truncates the slice
    sequence of one shard at one slice, instead of several shards at their earliest slices.

    A record whose group already has a cell joins it: groups placed by ``existing_groups``
    first, then groups of records in ``existing`` (the cell holding most of the group's
    existing records, ties to the lowest cell). The remaining groups are placed as units in
    the order (largest first, then ``sha256(f"{seed}:{group}")``), each into the cell with the
    fewest records so far (existing ones included); ties go to the lowest (slice, shard), so
    the first units spread over shards before filling later slices. The result depends only
    on the set of records, never on their order.

    Args:
        records: ``(key, group_key)`` pairs; keys must be unique.
        num_shards: Number of shards, at least 1.
        num_slices: Number of slices per shard, at least 1.
        seed: Seed for the tie-breaking order of groups of equal size.
        existing: Cells of records assigned earlier. They never move, count towards the
            cell loads, and are not returned again even when listed in ``records``.
        existing_groups: Cells of groups placed earlier whose records need not be listed.

    Returns:
        The cell of every key in ``records`` that is not in ``existing``, sorted by key.

    Raises:
        ValueError: On ``num_shards`` or ``num_slices`` below 1, duplicate keys in
            ``records``, or cells in ``existing``/``existing_groups`` outside the grid.
    """
    _check_grid(num_shards, num_slices)
    existing = dict(existing or {})
    existing_groups = dict(existing_groups or {})
    _check_cells(existing, num_shards, num_slices, "existing")
    _check_cells(existing_groups, num_shards, num_slices, "existing_groups")
    group_of = _unique(records)
    placed = _placed_groups(group_of, existing, existing_groups)
    loads = Counter(existing.values())

    result: dict[str, Cell] = {}
    new_units: dict[str, list[str]] = {}
    for key in sorted(group_of.keys() - existing.keys()):
        group = group_of[key]
        if group in placed:
            result[key] = placed[group]
            loads[placed[group]] += 1
        else:
            new_units.setdefault(group, []).append(key)

    heap = [
        (loads[Cell(shard, slice_)], slice_, shard)
        for shard in range(num_shards)
        for slice_ in range(num_slices)
    ]
    heapq.heapify(heap)
    for group in sorted(new_units, key=lambda g: (-len(new_units[g]), _digest(seed, g), g)):
        load, slice_, shard = heapq.heappop(heap)
        cell = Cell(shard, slice_)
        result.update(dict.fromkeys(new_units[group], cell))
        heapq.heappush(heap, (load + len(new_units[group]), slice_, shard))
    return dict(sorted(result.items()))


def cell_counts(
    assignment: Mapping[str, Cell], num_shards: int, num_slices: int
) -> list[list[int]]:
    """Count records per cell.

    Args:
        assignment: Cell of each record key.
        num_shards: Number of shards, at least 1.
        num_slices: Number of slices per shard, at least 1.

    Returns:
        ``counts[shard][slice]``, the number of records in each cell.

    Raises:
        ValueError: On a bad grid size or a cell outside the grid.
    """
    _check_grid(num_shards, num_slices)
    _check_cells(assignment, num_shards, num_slices, "assignment")
    counts = [[0] * num_slices for _ in range(num_shards)]
    for cell in assignment.values():
        counts[cell.shard][cell.slice] += 1
    return counts


def _check_grid(num_shards: int, num_slices: int) -> None:
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    if num_slices < 1:
        raise ValueError(f"num_slices must be >= 1, got {num_slices}")


def _check_cells(cells: Mapping[str, Cell], num_shards: int, num_slices: int, name: str) -> None:
    for key, cell in cells.items():
        if not (0 <= cell.shard < num_shards and 0 <= cell.slice < num_slices):
            raise ValueError(f"{name}[{key!r}] = {cell} lies outside {num_shards}x{num_slices}")


def _unique(records: Sequence[tuple[str, str]]) -> dict[str, str]:
    group_of: dict[str, str] = {}
    for key, group in records:
        if key in group_of:
            raise ValueError(f"records contains duplicate key {key!r}")
        group_of[key] = group
    return group_of


def _placed_groups(
    group_of: Mapping[str, str],
    existing: Mapping[str, Cell],
    existing_groups: Mapping[str, Cell],
) -> dict[str, Cell]:
    """Cell of each group that already has one; explicit ``existing_groups`` win."""
    votes: dict[str, Counter[Cell]] = {}
    for key in group_of.keys() & existing.keys():
        votes.setdefault(group_of[key], Counter())[existing[key]] += 1
    # A group split across cells (e.g. after a re-grouping) joins its fullest cell.
    placed = {
        group: min(counter, key=lambda cell: (-counter[cell], cell))
        for group, counter in votes.items()
    }
    placed.update(existing_groups)
    return placed


def _digest(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()
