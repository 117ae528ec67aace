"""Slow: tiny-vit learns the coloured-shapes task at full depth through S3T stages.

tiny-vit is a random, frozen 16×16 ViT (4 blocks, hidden 64): only the LoRA on its attention
projections and the head learn, stage by stage, so this shows that the image path (PNG bytes
→ image_tensor → stages → ensemble) carries a real visual signal, not that ViT is good at
shapes. Four shapes with random colours, sizes and positions on 32×32 canvases, seen at 16×16.
"""

from __future__ import annotations

import pytest

from unlearning.artifacts import LocalArtifactStore, StageKey
from unlearning.assembly import AdapterHost, LoraSettings
from unlearning.backbones import build_base, make_collator
from unlearning.data import Example
from unlearning.ensemble import Ensemble, StageCache, accuracy, serving_choices
from unlearning.images import image_tensor
from unlearning.sample_images import SHAPE_LABELS, shape_images
from unlearning.training import TrainSettings, train_shard


def examples(n: int, seed: int, prefix: str) -> list[Example]:
    index = {label: i for i, label in enumerate(SHAPE_LABELS)}
    return [
        Example(f"{prefix}{i:05d}", index[label], image_tensor(data, "tiny-vit"))
        for i, (data, label) in enumerate(shape_images(n, seed))
    ]


@pytest.mark.slow
def test_tiny_vit_learns_shapes_at_full_depth(tmp_path):
    train = examples(4000, seed=1, prefix="train-")
    test = examples(800, seed=2, prefix="test-")  # other seed: other colours, sizes, places
    slices = {0: train[0::2], 1: train[1::2]}
    host = AdapterHost(
        build_base("tiny-vit", len(SHAPE_LABELS)), num_groups=2, lora=LoraSettings(16, 32)
    )
    collate = make_collator("tiny-vit")
    store = LocalArtifactStore(tmp_path)
    run = train_shard(
        host,
        shard=0,
        sequences=[(0, 1)],
        slices=slices,
        store=store,
        collate=collate,
        settings=TrainSettings(epochs=30, learning_rate=3e-3, batch_size=32),
        model_seed=3,
    )
    assert run.trained == [(0,), (0, 1)]
    choices = serving_choices({0: [(0, 1)]}, {})
    assert choices[0].depth == 2
    full = Ensemble(host, choices, StageCache(store.load), collate)
    held_out = accuracy(full.predict, test)
    chance = 1 / len(SHAPE_LABELS)
    assert held_out >= 0.9, f"held-out accuracy {held_out:.3f} (chance {chance:.2f})"
    assert store.load(StageKey(0, (0, 1))).metrics["final_loss"] < 0.5
