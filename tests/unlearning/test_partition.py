from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearning.partition import Cell, assign, cell_counts
from unlearning.sample_data import generate


def _spread(counts):
    flat = [n for row in counts for n in row]
    return max(flat) - min(flat)


def _singletons(n, prefix="r"):
    return [(f"{prefix}{i:05d}", f"{prefix}{i:05d}") for i in range(n)]


@pytest.fixture(scope="module")
def subject_records():
    data = generate(num_subjects=300, seed=0, test_fraction=0.0)
    return [(r.external_id, r.subject_id) for r in data.train]


# Records as (key, group) with unique keys and a handful of groups so that groups repeat.
records_strategy = st.dictionaries(
    keys=st.text("abcdef0123", min_size=1, max_size=6),
    values=st.sampled_from([f"g{i}" for i in range(12)]),
    max_size=60,
).map(lambda d: list(d.items()))


def test_cell_orders_by_shard_then_slice():
    assert sorted([Cell(1, 0), Cell(0, 2), Cell(0, 1)]) == [Cell(0, 1), Cell(0, 2), Cell(1, 0)]


@given(records=records_strategy, seed=st.integers(0, 5), data=st.data())
@settings(max_examples=60, deadline=None)
def test_output_is_independent_of_input_order(records, seed, data):
    shuffled = data.draw(st.permutations(records))
    first = assign(records, num_shards=3, num_slices=2, seed=seed)
    second = assign(shuffled, num_shards=3, num_slices=2, seed=seed)
    assert list(first.items()) == list(second.items())
    assert set(first) == {key for key, _ in records}


@given(records=records_strategy, shards=st.integers(1, 4), slices=st.integers(1, 4))
@settings(max_examples=60, deadline=None)
def test_groups_stay_together_and_spread_is_bounded(records, shards, slices):
    result = assign(records, num_shards=shards, num_slices=slices, seed=0)
    cells_of_group: dict[str, set[Cell]] = {}
    sizes: dict[str, int] = {}
    for key, group in records:
        cells_of_group.setdefault(group, set()).add(result[key])
        sizes[group] = sizes.get(group, 0) + 1
    assert all(len(cells) == 1 for cells in cells_of_group.values())
    if records:
        assert _spread(cell_counts(result, shards, slices)) <= max(sizes.values())


def test_same_inputs_give_same_output_and_seed_matters():
    records = _singletons(40)
    a = assign(records, num_shards=4, num_slices=3, seed=1)
    assert a == assign(list(reversed(records)), num_shards=4, num_slices=3, seed=1)
    assert a != assign(records, num_shards=4, num_slices=3, seed=2)


@pytest.mark.parametrize(
    ("n", "shards", "slices"), [(1, 1, 1), (7, 3, 2), (100, 4, 5), (997, 6, 4)]
)
def test_singleton_groups_balance_within_one(n, shards, slices):
    result = assign(_singletons(n), num_shards=shards, num_slices=slices, seed=3)
    counts = cell_counts(result, shards, slices)
    assert sum(map(sum, counts)) == n
    assert _spread(counts) <= 1


def test_first_units_spread_over_shards_before_slices():
    result = assign(_singletons(3), num_shards=3, num_slices=2, seed=0)
    assert sorted(result.values()) == [Cell(0, 0), Cell(1, 0), Cell(2, 0)]


@pytest.mark.parametrize("seed", range(5))
def test_largest_group_is_placed_first(seed):
    records = [(f"s{i}", f"small{i}") for i in range(10)] + [("b1", "big"), ("b2", "big")]
    result = assign(records, num_shards=2, num_slices=2, seed=seed)
    assert result["b1"] == result["b2"] == Cell(0, 0)
    assert result["s0"] != Cell(0, 0)


def test_result_is_sorted_by_key():
    records = [(f"k{i}", f"g{i % 5}") for i in (9, 3, 7, 1, 5, 0)]
    result = assign(records, num_shards=2, num_slices=2, seed=0)
    assert list(result) == sorted(result)


def test_sample_subjects_are_balanced_and_kept_together(subject_records):
    result = assign(subject_records, num_shards=5, num_slices=4, seed=0)
    cells: dict[str, set[Cell]] = {}
    for key, subject in subject_records:
        cells.setdefault(subject, set()).add(result[key])
    assert all(len(c) == 1 for c in cells.values())
    largest = max(sum(1 for _, s in subject_records if s == subj) for subj in cells)
    counts = cell_counts(result, 5, 4)
    assert _spread(counts) <= largest
    flat = [n for row in counts for n in row]
    assert max(flat) / min(flat) <= 1.25


def test_incremental_assignment_keeps_existing_and_balance():
    first_batch, second_batch = _singletons(50, "a"), _singletons(37, "b")
    first = assign(first_batch, num_shards=3, num_slices=3, seed=0)
    second = assign(first_batch + second_batch, num_shards=3, num_slices=3, seed=0, existing=first)
    assert set(second) == {key for key, _ in second_batch}
    assert _spread(cell_counts({**first, **second}, 3, 3)) <= 1


def test_incremental_subjects_keep_balance(subject_records):
    old_subjects = {s for _, s in subject_records if s < "subj-0200"}
    old = [r for r in subject_records if r[1] in old_subjects]
    first = assign(old, num_shards=4, num_slices=3, seed=0)
    second = assign(subject_records, num_shards=4, num_slices=3, seed=0, existing=first)
    assert not set(second) & set(first)
    assert len(first) + len(second) == len(subject_records)
    largest = max(sum(1 for _, s in subject_records if s == subj) for subj in old_subjects)
    assert _spread(cell_counts({**first, **second}, 4, 3)) <= largest


def test_later_record_of_existing_subject_joins_its_cell():
    first = assign([*_singletons(20), ("alice-1", "alice")], num_shards=4, num_slices=2, seed=0)
    records = [("alice-1", "alice"), ("alice-2", "alice"), ("bob-1", "bob")]
    later = assign(records, num_shards=4, num_slices=2, seed=0, existing=first)
    assert later["alice-2"] == first["alice-1"]
    assert "alice-1" not in later


def test_existing_groups_place_records_without_their_history():
    later = assign(
        [("alice-9", "alice")],
        num_shards=2,
        num_slices=2,
        seed=0,
        existing_groups={"alice": Cell(1, 1)},
    )
    assert later == {"alice-9": Cell(1, 1)}


def test_existing_groups_win_over_cells_of_existing_records():
    existing = {"alice-1": Cell(0, 0)}
    later = assign(
        [("alice-1", "alice"), ("alice-2", "alice")],
        num_shards=2,
        num_slices=2,
        seed=0,
        existing=existing,
        existing_groups={"alice": Cell(1, 0)},
    )
    assert later == {"alice-2": Cell(1, 0)}


def test_split_group_joins_its_fullest_cell():
    existing = {"x1": Cell(1, 0), "x2": Cell(0, 1), "x3": Cell(0, 1)}
    records = [("x1", "x"), ("x2", "x"), ("x3", "x"), ("x4", "x")]
    assert assign(records, num_shards=2, num_slices=2, seed=0, existing=existing) == {
        "x4": Cell(0, 1)
    }


def test_existing_load_steers_new_units():
    existing = {f"e{i}": Cell(0, 0) for i in range(5)}
    result = assign(_singletons(3), num_shards=2, num_slices=2, seed=0, existing=existing)
    assert Cell(0, 0) not in result.values()


def test_cell_counts_shape():
    counts = cell_counts({"a": Cell(0, 1), "b": Cell(0, 1), "c": Cell(2, 0)}, 3, 2)
    assert counts == [[0, 2], [0, 0], [1, 0]]


def test_random_record_order_never_changes_result():
    records = [(f"k{i}", f"s{i % 17}") for i in range(200)]
    expected = assign(records, num_shards=3, num_slices=4, seed=9)
    for trial in range(5):
        shuffled = records[:]
        random.Random(trial).shuffle(shuffled)
        assert assign(shuffled, num_shards=3, num_slices=4, seed=9) == expected


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_shards": 0, "num_slices": 1}, "num_shards"),
        ({"num_shards": 1, "num_slices": 0}, "num_slices"),
        ({"num_shards": 2, "num_slices": 2, "existing": {"a": Cell(2, 0)}}, "existing"),
        (
            {"num_shards": 2, "num_slices": 2, "existing_groups": {"g": Cell(0, 5)}},
            "existing_groups",
        ),
    ],
)
def test_assign_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        assign([("a", "g")], seed=0, **kwargs)


def test_assign_rejects_duplicate_keys():
    with pytest.raises(ValueError, match="duplicate key 'a'"):
        assign([("a", "g"), ("a", "h")], num_shards=2, num_slices=2, seed=0)


@pytest.mark.parametrize(
    ("shards", "slices", "name"), [(0, 1, "num_shards"), (1, 0, "num_slices"), (1, 1, "assignment")]
)
def test_cell_counts_rejects_bad_arguments(shards, slices, name):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        cell_counts({"a": Cell(0, 3)}, shards, slices)
