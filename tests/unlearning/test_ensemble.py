"""Serving: longest clean prefix per shard, depth-0 shards skipped, probabilities averaged."""

from __future__ import annotations

import pytest
import torch

from tests.unlearning.conftest import FAST, LORA, make_slices, texts
from unlearning.artifacts import LocalArtifactStore, StageKey
from unlearning.assembly import AdapterHost
from unlearning.backbones import build_base, make_collator
from unlearning.data import Example
from unlearning.ensemble import (
    Ensemble,
    NoServingShardError,
    StageCache,
    accuracy,
    serving_choices,
)
from unlearning.training import train_shard

PLAN = {0: [(0, 1, 2), (2, 0, 1)], 1: [(1, 2, 0), (0, 1, 2)]}


def test_choice_is_the_longest_clean_prefix_with_lowest_index_on_ties():
    choices = serving_choices(PLAN, {0: {1}, 1: {1}})
    assert [(c.shard, c.sequence_index, c.depth) for c in choices] == [(0, 1, 2), (1, 1, 1)]
    assert choices[0].stages == (StageKey(0, (2,)), StageKey(0, (2, 0)))
    tie = serving_choices({0: [(0, 1, 2), (1, 0, 2)]}, {0: {2}})
    assert (tie[0].sequence_index, tie[0].depth) == (0, 2)


def test_dead_shards_leave_the_ensemble():
    choices = serving_choices(PLAN, {0: {0, 2}, 1: set()})
    assert [c.shard for c in choices] == [1]
    assert choices[0].depth == 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    store = LocalArtifactStore(tmp_path_factory.mktemp("artifacts"))
    collate = make_collator("tiny-bert")
    host = AdapterHost(build_base("tiny-bert", 3), num_groups=3, lora=LORA)
    for shard, sequences in PLAN.items():
        train_shard(
            host,
            shard=shard,
            sequences=sequences,
            slices=make_slices("tiny-bert", 3, 6, seed=shard),
            store=store,
            collate=collate,
            settings=FAST,
            model_seed=4,
        )
    return host, store, collate


def _single_shard_probs(store, choice, collate, payloads):
    """An independent computation: a fresh host per shard, cold assembly, plain softmax."""
    host = AdapterHost(build_base("tiny-bert", 3), num_groups=3, lora=LORA)
    host.activate([store.load(k) for k in choice.stages])
    batch = collate([Example(str(i), 0, p) for i, p in enumerate(payloads)])
    with torch.inference_mode():
        return host.model(**batch).logits.softmax(dim=-1)


def test_ensemble_averages_the_serving_shards(trained):
    host, store, collate = trained
    payloads = [e.payload for e in texts(8, seed=5)]
    choices = serving_choices(PLAN, {0: {1}})
    ensemble = Ensemble(host, choices, StageCache(store.load), collate)
    expected = sum(_single_shard_probs(store, c, collate, payloads) for c in choices) / 2
    assert torch.equal(ensemble.predict_proba(payloads), expected)
    assert ensemble.predict(payloads) == expected.argmax(dim=-1).tolist()


def test_deletion_changes_the_prediction_model(trained):
    host, store, collate = trained
    payloads = [e.payload for e in texts(8, seed=5)]
    before = Ensemble(host, serving_choices(PLAN, {}), StageCache(store.load), collate)
    after = Ensemble(host, serving_choices(PLAN, {0: {0, 2}}), StageCache(store.load), collate)
    only_shard_1 = _single_shard_probs(store, serving_choices(PLAN, {})[1], collate, payloads)
    assert torch.equal(after.predict_proba(payloads), only_shard_1)
    assert not torch.equal(before.predict_proba(payloads), after.predict_proba(payloads))


def test_no_serving_shard_is_a_clear_error(trained):
    host, store, collate = trained
    dead = serving_choices(PLAN, {0: {0, 2}, 1: {0, 1}})
    with pytest.raises(NoServingShardError, match="retrained"):
        Ensemble(host, dead, StageCache(store.load), collate).predict_proba(["hello"])


def test_cache_serves_from_memory_and_can_be_purged(trained):
    _, store, _ = trained
    loads = []

    def load(key):
        loads.append(key)
        return store.load(key)

    cache = StageCache(load, capacity=2)
    a, b, c = StageKey(0, (0,)), StageKey(0, (0, 1)), StageKey(1, (1,))
    cache.get(a), cache.get(b), cache.get(a)
    assert loads == [a, b]
    cache.get(c)  # evicts b, the least recently used
    assert b not in cache
    assert a in cache
    assert cache.evict([a, b]) == 1
    assert a not in cache


def test_accuracy_counts_matches():
    examples = [Example("a", 1, "x"), Example("b", 0, "y"), Example("c", 1, "z")]
    assert accuracy(lambda payloads: [1] * len(payloads), examples) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="examples"):
        accuracy(lambda payloads: [], [])
