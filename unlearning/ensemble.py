"""Serving: each shard's longest clean prefix, averaged over the shards that can serve.

A deletion in slice s of a shard truncates each of its sequences to the stages before s.
The shard serves the sequence with the longest clean prefix (ties: lowest sequence index);
a shard whose every sequence starts with a deleted slice (depth 0) leaves the ensemble.
Predictions average the serving shards' class probabilities (``averaging="probs"``) or, as
the S3T paper serves, their logits before one softmax (``"logits"``); ``average_shards`` is
the one home of that rule. No gradient step is needed to honour a deletion: only the choice
of stages changes, and serving is not part of any stage's recipe.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import torch

from unlearning.artifacts import StageArtifact, StageKey
from unlearning.assembly import AdapterHost
from unlearning.data import Collator, Example, Payload
from unlearning.policy import choose_serving

AVERAGING = ("probs", "logits")
DEFAULT_AVERAGING = "probs"


def average_shards(
    logits: Sequence[torch.Tensor], averaging: str = DEFAULT_AVERAGING
) -> torch.Tensor:
    """Class probabilities from each serving shard's logits, summed in shard order.

    ``probs``: the mean of the shards' softmax; ``logits``: the softmax of the mean logits.
    """
    if averaging not in AVERAGING:
        raise ValueError(f"averaging must be one of {AVERAGING}, got {averaging!r}")
    if not logits:
        raise NoServingShardError("no shard has a clean prefix; the model must be retrained")
    parts = [x.float() if averaging == "logits" else x.float().softmax(dim=-1) for x in logits]
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    mean = total / len(parts)
    return mean.softmax(dim=-1) if averaging == "logits" else mean


class NoServingShardError(RuntimeError):
    """Every shard is at depth 0: the model cannot predict until it is retrained."""


@dataclass(frozen=True)
class ShardChoice:
    """What one shard serves: a sequence, truncated to its clean prefix.

    Attributes:
        shard: shard index.
        sequence_index: index of the chosen sequence in the shard's plan.
        stages: the stage keys of the clean prefix, stage 1 first (depth = len(stages)).
    """

    shard: int
    sequence_index: int
    stages: tuple[StageKey, ...]

    @property
    def depth(self) -> int:
        return len(self.stages)


def serving_choices(
    sequences: Mapping[int, Sequence[tuple[int, ...]]],
    deleted: Mapping[int, Collection[int]],
) -> list[ShardChoice]:
    """The serving choice of every shard that can serve, in shard order.

    Args:
        sequences: each shard's sequences.
        deleted: each shard's deleted (dirty) slice indices; missing shards have none.

    Returns:
        One choice per shard with depth ≥ 1.
    """
    choices = []
    for shard in sorted(sequences):
        serving = choose_serving(sequences[shard], deleted.get(shard, ()))
        if serving is None:
            continue
        order = sequences[shard][serving.sequence_index]
        stages = tuple(StageKey(shard, tuple(order[:d])) for d in range(1, serving.depth + 1))
        choices.append(ShardChoice(shard, serving.sequence_index, stages))
    return choices


class StageCache:
    """Loaded stage artifacts by key, least recently used first out.

    Args:
        load: reads an artifact from storage.
        capacity: how many artifacts to keep (a MiniLM stage is about 56 KB).
    """

    def __init__(self, load: Callable[[StageKey], StageArtifact], capacity: int = 512) -> None:
        self._load = load
        self._capacity = capacity
        self._items: OrderedDict[StageKey, StageArtifact] = OrderedDict()

    def get(self, key: StageKey) -> StageArtifact:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        artifact = self._load(key)
        self._items[key] = artifact
        if len(self._items) > self._capacity:
            self._items.popitem(last=False)
        return artifact

    def evict(self, keys: Collection[StageKey]) -> int:
        """Drop stages from memory (a purge must reach every cache); returns how many."""
        return sum(self._items.pop(k, None) is not None for k in keys)

    def clear(self) -> None:
        """Drop every loaded stage."""
        self._items.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._items


class Ensemble:
    """Predicts with the serving prefixes of all shards, switching them inside one host.

    Args:
        host: the adapter host (one loaded base; shards switch in milliseconds).
        choices: the serving choice per shard (from ``serving_choices``).
        cache: where stage artifacts come from.
        collate: batch builder for the payloads.
        precision: autocast precision of the forward pass (``unlearning.device``); fp32
            by default, the bits the stages were evaluated with on the CPU.
        averaging: how shards combine (``average_shards``).
    """

    def __init__(
        self,
        host: AdapterHost,
        choices: Sequence[ShardChoice],
        cache: StageCache,
        collate: Collator,
        precision: str = "fp32",
        averaging: str = DEFAULT_AVERAGING,
    ) -> None:
        from unlearning.device import check_precision

        if averaging not in AVERAGING:
            raise ValueError(f"averaging must be one of {AVERAGING}, got {averaging!r}")
        self.averaging = averaging
        self.host = host
        self.choices = [c for c in choices if c.depth > 0]
        self.cache = cache
        self.collate = collate
        self.precision = check_precision(precision, host.device)

    def predict_proba(self, payloads: Sequence[Payload]) -> torch.Tensor:
        """Class probabilities averaged over serving shards, [len(payloads), num_labels].

        Computed on the host's device; returned on the CPU (fp32).

        Raises:
            NoServingShardError: when no shard can serve.
        """
        from unlearning.device import autocast, to_device

        if not self.choices:
            raise NoServingShardError("no shard has a clean prefix; the model must be retrained")
        batch = self.collate([Example(f"input-{i}", 0, p) for i, p in enumerate(payloads)])
        inputs = to_device(batch, self.host.device)
        parts = []
        with torch.inference_mode():
            for choice in self.choices:
                self.host.activate([self.cache.get(k) for k in choice.stages])
                with autocast(self.host.device, self.precision):
                    parts.append(self.host.model(**inputs).logits)
            return average_shards(parts, self.averaging).cpu()

    def predict(self, payloads: Sequence[Payload]) -> list[int]:
        """The most probable class index per input."""
        return self.predict_proba(payloads).argmax(dim=-1).tolist()


def accuracy(
    predict: Callable[[Sequence[Payload]], list[int]],
    examples: Sequence[Example],
    batch_size: int = 64,
) -> float:
    """Share of examples whose predicted class equals the label."""
    if not examples:
        raise ValueError("examples: nothing to evaluate")
    correct = 0
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        predicted = predict([e.payload for e in batch])
        correct += sum(p == e.label for p, e in zip(predicted, batch, strict=True))
    return correct / len(examples)
