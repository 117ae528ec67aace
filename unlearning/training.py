"""S3T stage training: stage i trains only group i's LoRA and the head.

Stage i of a sequence reads the union of its first i slices, starts from stages 1..i-1
(loaded, frozen), re-initialises group i's LoRA from its own seed and trains it together
with the head (a causal LM has none), with AdamW over exactly those tensors. Everything
else stays bit-identical (invariant I1). Generation batches carry token labels: the loss
is then next-token cross entropy over the response tokens (``generation.causal_loss_at``).

All randomness comes from seeds derived from (model seed, shard, prefix): data order,
dropout, LoRA-A init and, at stage 1, the head init. A stage is a pure function of its
prefix's records, its parent stages and that seed, which is what makes three things exact:
sequences sharing a prefix share its stages (trained once), a sequence resumes from any
finished stage, and a replay from lineage in another process reproduces the tensors.

Exactness holds per device kind and precision (``unlearning.device``): init and data order
come from CPU generators on every device, dropout from the device's, seeded per stage; on
the CPU at fp32 every operation is exactly what it was before devices.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from unlearning import device
from unlearning.artifacts import LocalArtifactStore, StageArtifact, StageKey
from unlearning.assembly import AdapterHost
from unlearning.data import Collator, Example, lineage_digest
from unlearning.generation import causal_loss_at, loss_positions
from unlearning.recipe import TrainSettings, runtime_recipe

__all__ = ["TrainSettings", "stage_plan", "stage_seed", "train_shard", "train_stage"]

StepCallback = Callable[[int, float], None]


def stage_seed(model_seed: int, key: StageKey, purpose: str) -> int:
    """A 63-bit seed for one purpose ("order", "dropout", "lora", "head") of one stage.

    It depends on the prefix, not on a sequence index, so a prefix shared by two
    sequences is the same stage with the same seeds.
    """
    text = f"lethe:{model_seed}:{key.shard}:{','.join(map(str, key.prefix))}:{purpose}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def _init_group(host: AdapterHost, group: int, seed: int) -> None:
    """Fresh LoRA for one group: A from a seeded Kaiming draw, B = 0 (no effect yet)."""
    with torch.no_grad():
        for name, param in host.parameters_of(group):
            if ".lora_B." in name:
                param.zero_()
            else:
                g = torch.Generator().manual_seed(seed ^ _name_hash(name))
                device.fill_from_cpu(param, nn.init.kaiming_uniform_, a=math.sqrt(5), generator=g)


def _init_head(host: AdapterHost, seed: int, std: float = 0.02) -> None:
    with torch.no_grad():
        for name, param in host.head_parameters():
            if param.dim() >= 2:
                g = torch.Generator().manual_seed(seed ^ _name_hash(name))
                device.fill_from_cpu(param, torch.Tensor.normal_, mean=0.0, std=std, generator=g)
            else:
                param.zero_()


def _name_hash(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:7], "big")


def train_stage(
    host: AdapterHost,
    *,
    key: StageKey,
    parents: Sequence[StageArtifact],
    examples: Sequence[Example],
    collate: Collator,
    settings: TrainSettings,
    model_seed: int,
    on_step: StepCallback | None = None,
) -> StageArtifact:
    """Train stage ``key.position`` of a shard on ``examples`` (its prefix's records).

    Args:
        host: the adapter host; left holding the new stage at depth ``key.position``.
        key: shard and prefix of the stage to train.
        parents: the artifacts of stages 1..position-1 of the same prefix.
        examples: the records of the prefix's slices, in any order (sorted by key here).
        collate: turns examples into model inputs, padding to the longest in the batch.
        settings: optimisation settings.
        model_seed: the model's seed; stage seeds derive from it and the key.
        on_step: called with (step, loss) after every optimizer step (progress, leases).

    Returns:
        The stage artifact (group LoRA + head after the stage, recipe, metrics).
    """
    if len(parents) != key.position - 1:
        raise ValueError(f"stage {key.slug()} needs {key.position - 1} parent stages")
    if not examples:
        raise ValueError(f"stage {key.slug()}: no training examples")
    device.check_precision(settings.precision, host.device)
    device.configure_determinism(host.device)
    group = key.position
    started = time.perf_counter()
    host.activate(parents)
    host.set_depth(group)
    host.forget(group)
    _init_group(host, group, stage_seed(model_seed, key, "lora"))
    if group == 1:
        _init_head(host, stage_seed(model_seed, key, "head"))
    trainable = [p for _, p in host.parameters_of(group)]
    trainable += [p for _, p in host.head_parameters()]
    for param in trainable:
        param.requires_grad_(True)
    ordered = sorted(examples, key=lambda e: e.key)
    epochs = settings.epochs_at(group, host.num_groups)
    losses = _optimise(
        host.model, trainable, ordered, collate, settings, model_seed, key, on_step, epochs=epochs
    )
    for param in trainable:
        param.requires_grad_(False)
    artifact = StageArtifact(
        key=key,
        tensors=host.stage_tensors(group),
        recipe=_stage_recipe(host, key, ordered, settings, model_seed, collate),
        metrics={
            "final_loss": losses[-1],
            "mean_loss": sum(losses) / len(losses),
            "steps": float(len(losses)),
            "examples": float(len(ordered)),
            "seconds": round(time.perf_counter() - started, 4),
        },
    )
    host.remember(artifact)
    return artifact


def _optimise(
    model: nn.Module,
    trainable: list[nn.Parameter],
    examples: Sequence[Example],
    collate: Collator,
    settings: TrainSettings,
    model_seed: int,
    key: StageKey,
    on_step: StepCallback | None,
    *,
    epochs: int | None = None,
) -> list[float]:
    # Only this stage's tensors are in the optimizer: with weight decay, a frozen tensor in
    # the optimizer would still move.
    optimizer = torch.optim.AdamW(
        trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    order = torch.Generator().manual_seed(stage_seed(model_seed, key, "order"))  # on the CPU
    where = trainable[0].device
    labels = torch.tensor([e.label for e in examples]).to(where)
    scaler = device.grad_scaler(where, settings.precision)
    losses: list[float] = []
    epochs = settings.epochs if epochs is None else epochs
    total = epochs * math.ceil(len(examples) / settings.batch_size)
    model.train()
    try:
        with device.seeded(where, stage_seed(model_seed, key, "dropout")):
            for _ in range(epochs):
                permutation = torch.randperm(len(examples), generator=order)
                for batch in permutation.split(settings.batch_size):  # type: ignore[no-untyped-call]
                    inputs = device.to_device(collate([examples[i] for i in batch.tolist()]), where)
                    tokens = inputs.pop("labels", None)  # a causal LM's response labels
                    if tokens is not None:  # only the positions the loss reads get logits
                        inputs["logits_to_keep"] = positions = loss_positions(tokens)
                    with device.autocast(where, settings.precision):
                        logits = model(**inputs).logits  # [batch, num_labels] (or [b, t, vocab])
                    if tokens is None:
                        loss = F.cross_entropy(logits.float(), labels[batch.to(where)])  # fp32
                    else:
                        loss = causal_loss_at(logits, tokens, positions)
                    optimizer.zero_grad(set_to_none=True)
                    if settings.schedule != "constant":  # constant: the lr is never touched
                        for group in optimizer.param_groups:
                            group["lr"] = settings.learning_rate * settings.lr_factor(
                                len(losses), total
                            )
                    device.backward_step(loss, optimizer, scaler)
                    losses.append(float(loss.detach()))
                    if on_step is not None:
                        on_step(len(losses), losses[-1])
    finally:
        model.eval()
    return losses


def _stage_recipe(
    host: AdapterHost,
    key: StageKey,
    examples: Sequence[Example],
    settings: TrainSettings,
    model_seed: int,
    collate: Collator,
) -> dict[str, object]:
    # A generation collator says how prompts were formatted and truncated; others add nothing.
    extra = {"generation": collate.recipe} if hasattr(collate, "recipe") else {}
    return {
        **extra,
        "runtime": runtime_recipe(host.device),
        "settings": settings.recipe(),
        "lora": host.lora.recipe(host.anatomy.lora_targets),
        "model_seed": model_seed,
        "seeds": {p: stage_seed(model_seed, key, p) for p in ("order", "dropout", "lora", "head")},
        "group_blocks": list(host.groups[key.position - 1]),
        "lineage": {"records": len(examples), "digest": lineage_digest(e.key for e in examples)},
        "padding": "longest",
    }


def stage_plan(sequences: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """Every distinct prefix of a shard's sequences, parents first (a prefix trie, DFS):
    B sequences of length L share stages, so at most B·L are trained (64, not 96, for
    all 4! orders of L = 4)."""
    plan = [tuple(order[:depth]) for order in sequences for depth in range(1, len(order) + 1)]
    return list(dict.fromkeys(plan))  # first occurrence wins: parents before children


@dataclass
class ShardRun:
    """Outcome of ``train_shard``: digests of every stage, and which ones were reused."""

    digests: dict[tuple[int, ...], str] = field(default_factory=dict)
    trained: list[tuple[int, ...]] = field(default_factory=list)
    reused: list[tuple[int, ...]] = field(default_factory=list)


StageCallback = Callable[[StageArtifact, bool], None]


def train_shard(
    host: AdapterHost,
    *,
    shard: int,
    sequences: Sequence[tuple[int, ...]],
    slices: Mapping[int, Sequence[Example]],
    store: LocalArtifactStore,
    collate: Collator,
    settings: TrainSettings,
    model_seed: int,
    on_stage: StageCallback | None = None,
) -> ShardRun:
    """Train every stage of a shard's sequences, skipping stages already in the store.

    Finished stages are never retrained: a run that was killed resumes from its last saved
    stage, and a prefix shared by several sequences is trained once.

    Args:
        host: the adapter host (its base must match the store's stages).
        sequences: the shard's sequences (orders of slice indices).
        slices: the shard's records per slice index.
        store: where stages are saved and looked up.
        on_stage: called with (artifact, reused) after each stage; the shard, collator,
            settings and seed are passed on to ``train_stage``.

    Returns:
        The digests of all stages, and which were trained now or reused.
    """
    run = ShardRun()
    known: dict[tuple[int, ...], StageArtifact] = {}
    for prefix in stage_plan(sequences):
        key = StageKey(shard, prefix)
        reused = store.has(key)
        if reused:
            artifact = store.load(key)
            run.reused.append(prefix)
        else:
            parents = [
                known.get(prefix[:j]) or store.load(StageKey(shard, prefix[:j]))
                for j in range(1, len(prefix))
            ]
            artifact = train_stage(
                host,
                key=key,
                parents=parents,
                examples=[e for s in prefix for e in slices[s]],
                collate=collate,
                settings=settings,
                model_seed=model_seed,
            )
            store.save(artifact)
            run.trained.append(prefix)
        known[prefix] = artifact
        run.digests[prefix] = artifact.digest
        if on_stage is not None:
            on_stage(artifact, reused)
    return run
