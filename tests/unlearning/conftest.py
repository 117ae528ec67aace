"""Fixtures for engine tests: tiny models built from configs and small labelled texts."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from unlearning.artifacts import LocalArtifactStore
from unlearning.assembly import AdapterHost, LoraSettings
from unlearning.backbones import build_base, make_collator
from unlearning.data import Collator, Example
from unlearning.training import TrainSettings

WORDS = {
    0: ["invoice", "refund", "charge", "payment", "bill"],
    1: ["crash", "error", "login", "bug", "freeze"],
    2: ["parcel", "courier", "delivery", "tracking", "shipment"],
}


def texts(n: int, seed: int, prefix: str = "r") -> list[Example]:
    """n short labelled sentences; the label's keywords make the class learnable."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = i % 3
        words = [rng.choice(WORDS[label]) for _ in range(rng.randint(2, 5))]
        filler = rng.sample(["please", "help", "my", "the", "today", "again"], 2)
        out.append(Example(f"{prefix}{seed}-{i:03d}", label, " ".join(filler + words)))
    return out


def images(n: int, seed: int, prefix: str = "img") -> list[Example]:
    """n random 3×16×16 images whose mean brightness encodes the label."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        label = i % 3
        pixels = torch.rand(3, 16, 16, generator=g) * 0.5 + label * 0.25
        out.append(Example(f"{prefix}{seed}-{i:03d}", label, pixels))
    return out


def make_slices(backbone: str, num_slices: int, per_slice: int, seed: int = 0):
    make = images if backbone == "tiny-vit" else texts
    return {s: make(per_slice, seed * 100 + s, prefix=f"s{s}-") for s in range(num_slices)}


FAST = TrainSettings(epochs=1, batch_size=8, learning_rate=1e-2, weight_decay=0.01)
LORA = LoraSettings(rank=4, alpha=8, dropout=0.1)


@pytest.fixture
def host_factory() -> Callable[[str, int], AdapterHost]:
    def make(backbone: str = "tiny-bert", num_groups: int = 3) -> AdapterHost:
        return AdapterHost(build_base(backbone, 3), num_groups=num_groups, lora=LORA)

    return make


@pytest.fixture
def collate_for() -> Callable[[str], Collator]:
    return make_collator


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")
