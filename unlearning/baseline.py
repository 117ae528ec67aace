"""The non-sharded baseline S3T is measured against: one model trained on all it is given.

``train_jointly`` trains the LoRA of every layer group and the classification head at once,
with the very loop, seeds and settings a stage uses (``training._optimise``), so the only
differences from S3T are what is trainable and which records it reads. It is what a full
fine-tune (every record) and a SISA shard retrain (one shard's records) cost; the
benchmarks compare S3T's accuracy and training compute with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from unlearning.artifacts import StageKey
from unlearning.assembly import AdapterHost
from unlearning.data import Collator, Example
from unlearning.training import TrainSettings, _init_group, _init_head, _optimise, stage_seed


def train_jointly(
    host: AdapterHost,
    examples: Sequence[Example],
    *,
    collate: Collator,
    settings: TrainSettings,
    model_seed: int,
    key: StageKey,
    groups: int = 1,
) -> list[float]:
    """Train groups 1..``groups`` and the head of ``host`` together from fresh weights on
    ``examples`` (in key order); the losses. ``key`` only derives the seeds (a single group
    is seeded as "lora", several as "lora-<g>"). Afterwards the host serves at depth
    ``groups`` with everything frozen again."""
    host.set_depth(groups)
    for group in range(1, groups + 1):
        host.forget(group)
        purpose = "lora" if groups == 1 else f"lora-{group}"
        _init_group(host, group, stage_seed(model_seed, key, purpose))
    _init_head(host, stage_seed(model_seed, key, "head"))
    trainable = [p for g in range(1, groups + 1) for _, p in host.parameters_of(g)]
    trainable += [p for _, p in host.head_parameters()]
    for param in trainable:
        param.requires_grad_(True)
    ordered = sorted(examples, key=lambda e: e.key)
    losses = _optimise(host.model, trainable, ordered, collate, settings, model_seed, key, None)
    host.set_depth(groups)  # freezes everything again
    return losses
