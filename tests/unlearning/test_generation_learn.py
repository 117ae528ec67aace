"""Slow: a tiny random decoder learns the synthetic instruction task through S3T stages.

tiny-llama (64 wide, 4 blocks) trained in two stages (top group on slice 0, bottom group
on slices 0 and 1) answers held-out phrasings of all eight intents with their exact reply,
greedy through EnsembleGenerator. Measured on 1 CPU thread: about 50 s, 46 of 48 exact.

Why these settings: the random base keeps its 0.02-scale output embeddings frozen, so the
logits span little more than one nat and the loss stays near ln(vocab) even when every
argmax is right; learning rates above ~5e-3 then tip the LoRA updates into instability,
and rank 32 gives the stages enough room to tell the replies' shared words apart.
"""

from __future__ import annotations

import pytest

from unlearning.artifacts import LocalArtifactStore
from unlearning.assembly import AdapterHost, LoraSettings
from unlearning.backbones import build_base, default_lora_targets, load_tokenizer, make_collator
from unlearning.ensemble import StageCache, serving_choices
from unlearning.generation import EnsembleGenerator
from unlearning.sample_instructions import instructions
from unlearning.training import TrainSettings, train_shard

BACKBONE = "tiny-llama"


@pytest.mark.slow
def test_tiny_decoder_learns_the_instruction_task(tmp_path):
    train = instructions(48, seed=1)
    held_out = instructions(48, seed=2, prefix="held")
    slices = {0: [i.example() for i in train[:24]], 1: [i.example() for i in train[24:]]}
    store = LocalArtifactStore(tmp_path)
    host = AdapterHost(
        build_base(BACKBONE, 0, task="generation"),
        num_groups=2,
        lora=LoraSettings(rank=32, alpha=64, targets=default_lora_targets(BACKBONE, "generation")),
    )
    train_shard(
        host,
        shard=0,
        sequences=[(0, 1)],
        slices=slices,
        store=store,
        collate=make_collator(BACKBONE, task="generation", max_length=64),
        settings=TrainSettings(epochs=24, batch_size=8, learning_rate=3e-3),
        model_seed=5,
    )
    tokenizer = load_tokenizer(BACKBONE)
    generator = EnsembleGenerator(
        host, serving_choices({0: [(0, 1)]}, {}), StageCache(store.load), tokenizer, max_length=64
    )
    outputs = generator.generate([item.prompt for item in held_out], max_new_tokens=12)
    exact = [
        out.tokens == tokenizer(item.reply, add_special_tokens=False)["input_ids"]
        for out, item in zip(outputs, held_out, strict=True)
    ]
    misses = [o.text for o, ok in zip(outputs, exact, strict=True) if not ok]
    assert sum(exact) / len(exact) >= 0.9, misses
