"""Prefix assembly: the model at depth k equals the model right after stage k, bit for bit,
for a text encoder and a vision transformer (decoders: tests/unlearning/test_generation.py)."""

from __future__ import annotations

import random

import pytest
import torch

from tests.unlearning.conftest import FAST, LORA, images, make_slices, texts
from unlearning.artifacts import LocalArtifactStore, StageKey
from unlearning.assembly import AdapterHost
from unlearning.backbones import build_base, make_collator
from unlearning.training import train_shard


def _logits(host, batch):
    with torch.inference_mode():
        return host.model(**batch).logits.clone()


@pytest.fixture(scope="module", params=["tiny-bert", "tiny-vit"])
def trained(request, tmp_path_factory):
    """A 4-stage sequence plus the logits recorded right after each stage."""
    backbone = request.param
    store = LocalArtifactStore(tmp_path_factory.mktemp("artifacts"))
    collate = make_collator(backbone)
    probe = images if backbone == "tiny-vit" else texts
    batch = collate(probe(16, seed=99, prefix="probe"))
    host = AdapterHost(build_base(backbone, 3), num_groups=4, lora=LORA)
    host.backbone = backbone  # type: ignore[attr-defined]  (for the tests below)
    after_stage: dict[tuple[int, ...], torch.Tensor] = {}

    def record(artifact, reused):
        after_stage[artifact.key.prefix] = _logits(host, batch)

    train_shard(
        host,
        shard=0,
        sequences=[(3, 1, 0, 2), (1, 3, 2, 0)],
        slices=make_slices(backbone, 4, 6),
        store=store,
        collate=collate,
        settings=FAST,
        model_seed=11,
        on_stage=record,
    )
    return host, store, batch, after_stage


def _stages(store, prefix):
    return [store.load(StageKey(0, prefix[:d])) for d in range(1, len(prefix) + 1)]


def test_cold_assembly_reproduces_every_depth(trained, host_factory):
    host, store, batch, after_stage = trained
    for prefix, expected in after_stage.items():
        fresh = host_factory(host.backbone, 4)
        fresh.activate(_stages(store, prefix))
        assert torch.equal(_logits(fresh, batch), expected), prefix


def test_hot_switching_reproduces_every_depth_in_any_order(trained):
    host, store, batch, after_stage = trained
    prefixes = list(after_stage) * 2
    random.Random(0).shuffle(prefixes)
    for prefix in prefixes:
        host.activate(_stages(store, prefix))
        assert host.depth == len(prefix)
        assert torch.equal(_logits(host, batch), after_stage[prefix]), prefix


def test_depths_give_different_models(trained):
    _, _, _, after_stage = trained
    assert not torch.equal(after_stage[(3,)], after_stage[(3, 1, 0, 2)])


def test_assembly_refuses_a_broken_chain(trained):
    host, store, _, _ = trained
    mixed = [store.load(StageKey(0, (3,))), store.load(StageKey(0, (1, 3)))]
    with pytest.raises(ValueError, match="prefix"):
        host.activate(mixed)


def test_assembly_refuses_stages_from_another_layout(trained, host_factory):
    host, store, _, _ = trained
    other = host_factory(host.backbone, 2)  # two groups of two blocks
    with pytest.raises(ValueError, match="group layout"):
        other.activate(_stages(store, (3,)))
