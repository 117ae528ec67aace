"""The one place that translates ORM rows into engine objects (DESIGN §3).

Governance never calls torch itself: it hands the engine dataclasses and paths from here.
Engine modules are imported lazily inside functions, because importing torch costs seconds
and a forked Celery worker must not have run torch in its parent (cpu-notes §8).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from governance.models import Record, Stage, UnlearningModel

if TYPE_CHECKING:
    import torch

    from unlearning.artifacts import StageKey, StageStore
    from unlearning.assembly import AdapterHost, LoraSettings
    from unlearning.data import Collator, Example
    from unlearning.training import TrainSettings


def artifact_store(model: UnlearningModel, generation: int) -> StageStore:
    """Stages of one model generation in the artifact store (governance/artifacts.py)."""
    from governance.artifacts import stage_store

    return stage_store(model.pk, generation)


def stage_key(stage: Stage) -> StageKey:
    from unlearning.artifacts import StageKey

    return StageKey(stage.shard.index, stage.prefix_tuple)


def prefix_text(prefix: Iterable[int]) -> str:
    return "-".join(str(s) for s in prefix)


def lora_settings(model: UnlearningModel) -> LoraSettings:
    from unlearning.assembly import LoraSettings

    # Targets only when the model names them: an empty list keeps the backbone's classic
    # targets, and the recipe of every model created before targets existed unchanged.
    return LoraSettings(
        rank=model.lora_rank,
        alpha=model.lora_alpha,
        dropout=model.lora_dropout,
        targets=tuple(model.lora_targets or ()),
    )


def lora_recipe(model: UnlearningModel) -> dict[str, object]:
    """The model's LoRA settings as its stages' recipes record them (targets left out
    when they are the backbone's classic ones, as for every stage made before targets)."""
    from unlearning.backbones import default_lora_targets

    return lora_settings(model).recipe(default_lora_targets(model.base_model, "classification"))


def train_settings(model: UnlearningModel) -> TrainSettings:
    from unlearning.training import TrainSettings

    return TrainSettings(
        epochs=model.epochs,
        learning_rate=model.learning_rate,
        batch_size=model.batch_size,
        max_length=model.max_length,
        # A model field once there is one (its migration is the lead's); the setting until then.
        precision=model.precision,
        stage_epochs=model.stage_epochs,
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


def examples(records: Iterable[Record], model: UnlearningModel) -> list[Example]:
    """Engine examples keyed by external id: the platform's identity, not a database key.

    Stage seeds, data order and lineage digests then depend only on what the data
    platform sent, so a replay on another database reproduces the same tensors. What an
    example carries follows the dataset's task: a text and its class; a prompt (or the
    turns before the target) and the response; or the decoded image and its class, read
    from the artifact storage and preprocessed for the backbone.
    """
    from unlearning.data import Example

    task = model.dataset.task
    if task == "generation":
        return [Example(r.external_id, 0, _prompt(r), target=r.response) for r in records]
    index = {label: i for i, label in enumerate(model.dataset.labels)}
    if task == "image_classification":
        from governance.images import image_bytes
        from unlearning.images import image_tensor

        return [
            Example(
                r.external_id,
                index[r.label],
                image_tensor(image_bytes(r.image_key), model.base_model),
            )
            for r in records
        ]
    return [Example(r.external_id, index[r.label], r.text) for r in records]


def _prompt(record: Record) -> str | tuple[tuple[str, str], ...]:
    """A generation record's prompt: its text, or the turns before the target."""
    if record.messages:
        return tuple((str(m["role"]), str(m["content"])) for m in record.messages)
    return record.text


def collator(model: UnlearningModel) -> Collator:
    from unlearning.backbones import make_collator

    return make_collator(model.base_model, task=model.dataset.task, max_length=model.max_length)


def base_build(model: UnlearningModel, device: torch.device | str | None = None) -> Any:
    """The frozen base for a model's task: the one place that knows which arguments."""
    from unlearning.backbones import build_base

    labels = max(2, len(model.dataset.labels))  # a causal LM ignores it; the rest need >= 2
    return build_base(model.base_model, labels, task=model.dataset.task, device=device)


def backbone_task_check(name: str, task: str) -> None:
    """Refuse a backbone that cannot do the dataset's task (ValueError "base_model: ...")."""
    from unlearning.backbones import task_check

    task_check(name, task)


def lora_targets_default(name: str, task: str) -> list[str]:
    """The LoRA targets a new model of this backbone and task gets, stored on the model."""
    from unlearning.backbones import default_lora_targets

    return list(default_lora_targets(name, task))


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


class HostPool:
    """Loaded adapter hosts per model configuration and purpose, per process, bounded.

    Training and serving keep separate hosts: training rewrites a group's tensors while a
    prediction may be switching prefixes. Each host has a lock; callers hold it while
    they switch and run the model.

    Hosts live on the device ``LETHE_DEVICE`` names. The pool keeps at most
    ``LETHE_HOST_POOL_MAX_HOSTS`` hosts and ``LETHE_HOST_POOL_MAX_BYTES`` of their
    parameters and buffers, evicting the least recently used first, so a web process that
    serves many models does not grow without limit; an evicted host is rebuilt on its next
    use. A host whose lock is held (in use) is never evicted: the pool may then stay over
    its bound until that host is released and the next host is asked for. Locks belong to
    the configuration, not to one host object, and outlive eviction: a caller still using
    an evicted host and one using its rebuilt successor take the same lock.
    """

    def __init__(self) -> None:
        self._hosts: OrderedDict[tuple[Any, ...], tuple[AdapterHost, threading.Lock, int]] = (
            OrderedDict()
        )
        self._locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._lock = threading.Lock()
        self.evictions = 0

    def device(self) -> torch.device:
        """The device hosts are built on: ``LETHE_DEVICE`` resolved (cheap; read each time).

        Raises:
            ImproperlyConfigured: the setting is malformed or names an absent GPU.
        """
        from django.core.exceptions import ImproperlyConfigured

        from unlearning.device import resolve_device

        try:
            return resolve_device(str(getattr(settings, "LETHE_DEVICE", "auto")))
        except ValueError as exc:
            raise ImproperlyConfigured(f"LETHE_DEVICE: {exc}") from None

    def get(self, model: UnlearningModel, purpose: str) -> tuple[AdapterHost, threading.Lock]:
        from unlearning.assembly import AdapterHost
        from unlearning.device import module_bytes

        device = self.device()
        key = (
            purpose,
            model.base_model,
            model.dataset.task,
            len(model.dataset.labels),
            model.num_slices,
            lora_settings(model),
            str(device),
        )
        with self._lock:
            if key in self._hosts:
                self._hosts.move_to_end(key)
                host, lock, _ = self._hosts[key]
                self._evict_over_bounds(keep=key)  # hosts that were in use may go now
                return host, lock
            _pin_threads(device)
            base = base_build(model)
            host = AdapterHost(
                base, num_groups=model.num_slices, lora=lora_settings(model), device=device
            )
            lock = self._locks.setdefault(key, threading.Lock())
            self._hosts[key] = (host, lock, module_bytes(host.model))
            self._evict_over_bounds(keep=key)
            return host, lock

    def _evict_over_bounds(self, *, keep: tuple[Any, ...]) -> None:
        """Drop least recently used hosts not in use until count and bytes fit (pool lock held)."""
        max_hosts = max(1, int(getattr(settings, "LETHE_HOST_POOL_MAX_HOSTS", 4)))
        max_bytes = int(getattr(settings, "LETHE_HOST_POOL_MAX_BYTES", 4 * 1024**3))
        for key in list(self._hosts):
            if len(self._hosts) <= max_hosts and self.nbytes() <= max_bytes:
                return
            _, lock, _ = self._hosts[key]
            if key != keep and not lock.locked():
                del self._hosts[key]
                self.evictions += 1

    def nbytes(self) -> int:
        """Parameter and buffer bytes of the hosts the pool holds now."""
        return sum(nbytes for _, _, nbytes in self._hosts.values())

    def __len__(self) -> int:
        return len(self._hosts)

    def holds(self, host: AdapterHost) -> bool:
        """Whether ``host`` is still in the pool (a cache of ensembles drops those that are not)."""
        with self._lock:
            return any(held is host for held, _, _ in self._hosts.values())

    def clear(self) -> None:
        with self._lock:
            self._hosts.clear()


def _pin_threads(device: torch.device) -> None:
    """Fix torch's thread count (part of the recipe) and, on CUDA, the determinism switches.

    Called before each host is built: both are process-wide and idempotent.
    """
    import torch

    from unlearning.device import configure_determinism

    threads = int(getattr(settings, "LETHE_TORCH_THREADS", 0)) or (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    configure_determinism(device)


hosts = HostPool()
