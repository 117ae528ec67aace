"""The one place that translates ORM rows into engine objects (DESIGN §3).

Governance never calls torch itself: it hands the engine dataclasses and paths from here.
Engine modules are imported lazily inside functions, because importing torch costs seconds
and a forked Celery worker must not have run torch in its parent (cpu-notes §8).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from governance.models import Record, Stage, UnlearningModel

if TYPE_CHECKING:
    from unlearning.artifacts import LocalArtifactStore, StageKey
    from unlearning.assembly import AdapterHost, LoraSettings
    from unlearning.data import Collator, Example
    from unlearning.training import TrainSettings


def artifact_store(model: UnlearningModel, generation: int) -> LocalArtifactStore:
    """Stage files of one model generation: ``ARTIFACT_ROOT/model-7/gen-1/shard-000/...``."""
    from unlearning.artifacts import LocalArtifactStore

    root = Path(settings.ARTIFACT_ROOT) / f"model-{model.pk}" / f"gen-{generation}"
    return LocalArtifactStore(root)


def stage_key(stage: Stage) -> StageKey:
    from unlearning.artifacts import StageKey

    return StageKey(stage.shard.index, stage.prefix_tuple)


def prefix_text(prefix: Iterable[int]) -> str:
    return "-".join(str(s) for s in prefix)


def lora_settings(model: UnlearningModel) -> LoraSettings:
    from unlearning.assembly import LoraSettings

    return LoraSettings(rank=model.lora_rank, alpha=model.lora_alpha, dropout=model.lora_dropout)


def train_settings(model: UnlearningModel) -> TrainSettings:
    from unlearning.training import TrainSettings

    return TrainSettings(
        epochs=model.epochs,
        learning_rate=model.learning_rate,
        batch_size=model.batch_size,
        max_length=model.max_length,
    )


def sequence_plan(model: UnlearningModel, shard_index: int) -> list[tuple[int, ...]]:
    """The shard's sequences under the model's policy (random plans differ per shard)."""
    from unlearning.sequences import plan_sequences

    return plan_sequences(
        model.sequence_policy,
        model.num_slices,
        model.budget,
        seed=model.seed + shard_index,
        priors=model.slice_priors,
    )


def examples(records: Iterable[Record], labels: list[str]) -> list[Example]:
    """Engine examples keyed by external id: the platform's identity, not a database key.

    Stage seeds, data order and lineage digests then depend only on what the data
    platform sent, so a replay on another database reproduces the same tensors.
    """
    from unlearning.data import Example

    index = {label: i for i, label in enumerate(labels)}
    return [Example(r.external_id, index[r.label], r.text) for r in records]


def collator(model: UnlearningModel) -> Collator:
    from unlearning.backbones import make_collator

    return make_collator(model.base_model, max_length=model.max_length)


def backbone_blocks(name: str) -> int:
    """Number of transformer blocks of a backbone, read from its config only."""
    from unlearning.backbones import backbone_num_blocks

    return backbone_num_blocks(name)


def backbone_names() -> tuple[str, ...]:
    from unlearning.backbones import BACKBONES

    return BACKBONES


def backbone_allowed(name: str) -> bool:
    """Packaged backbones by name; checkpoints only from folders under LETHE_MODEL_ROOT."""
    from unlearning.backbones import BACKBONES

    if name in BACKBONES:
        return True
    root = Path(settings.LETHE_MODEL_ROOT).resolve()
    try:
        return Path(name).resolve().is_relative_to(root) and Path(name).is_dir()
    except (OSError, ValueError):
        return False


def backbone_modality(name: str) -> str:
    """What a backbone reads: "text" or "image"."""
    from unlearning.backbones import backbone_info

    return backbone_info(name).modality


class HostPool:
    """One loaded adapter host per model configuration and purpose, per process.

    Training and serving keep separate hosts: training rewrites a group's tensors while a
    prediction may be switching prefixes. Each host has a lock; callers hold it while
    they switch and run the model.
    """

    def __init__(self) -> None:
        self._hosts: dict[tuple[Any, ...], tuple[AdapterHost, threading.Lock]] = {}
        self._lock = threading.Lock()

    def get(self, model: UnlearningModel, purpose: str) -> tuple[AdapterHost, threading.Lock]:
        from unlearning.assembly import AdapterHost
        from unlearning.backbones import build_base

        key = (
            purpose,
            model.base_model,
            len(model.dataset.labels),
            model.num_slices,
            lora_settings(model),
        )
        with self._lock:
            if not self._hosts:
                _pin_threads()
            if key not in self._hosts:
                base = build_base(model.base_model, len(model.dataset.labels))
                host = AdapterHost(base, num_groups=model.num_slices, lora=lora_settings(model))
                self._hosts[key] = (host, threading.Lock())
            return self._hosts[key]

    def clear(self) -> None:
        with self._lock:
            self._hosts.clear()


def _pin_threads() -> None:
    """Fix torch's thread count in the process that runs models (part of the recipe)."""
    import torch

    threads = int(getattr(settings, "LETHE_TORCH_THREADS", 0)) or (os.cpu_count() or 1)
    torch.set_num_threads(threads)


hosts = HostPool()
