"""Slow: the packaged MiniLM learns the sample data's intents at full depth."""

from __future__ import annotations

import pytest

from unlearning.artifacts import LocalArtifactStore, StageKey
from unlearning.assembly import AdapterHost, LoraSettings
from unlearning.backbones import build_base, make_collator
from unlearning.data import Example
from unlearning.ensemble import Ensemble, StageCache, accuracy, serving_choices
from unlearning.partition import assign
from unlearning.sample_data import generate
from unlearning.training import TrainSettings, train_shard


@pytest.mark.slow
def test_minilm_generalises_to_held_out_phrasings(tmp_path):
    data = generate(num_subjects=200, seed=3)
    index = {label: i for i, label in enumerate(data.labels)}
    train = [Example(r.external_id, index[r.label], r.text) for r in data.train]
    test = [Example(r.external_id, index[r.label], r.text) for r in data.test]
    cells = assign(
        [(r.external_id, r.subject_id) for r in data.train], num_shards=1, num_slices=2, seed=3
    )
    slices = {s: [e for e in train if cells[e.key].slice == s] for s in range(2)}
    store = LocalArtifactStore(tmp_path)
    host = AdapterHost(build_base("minilm", len(data.labels)), num_groups=2, lora=LoraSettings())
    collate = make_collator("minilm")
    train_shard(
        host,
        shard=0,
        sequences=[(0, 1)],
        slices=slices,
        store=store,
        collate=collate,
        settings=TrainSettings(epochs=2, learning_rate=2e-3),
        model_seed=3,
    )
    full = Ensemble(host, serving_choices({0: [(0, 1)]}, {}), StageCache(store.load), collate)
    full_accuracy = accuracy(full.predict, test)
    chance = 1 / len(data.labels)
    assert full_accuracy > 0.6, f"held-out accuracy {full_accuracy:.3f} (chance {chance:.3f})"
    assert store.load(StageKey(0, (0, 1))).metrics["final_loss"] < 1.0
