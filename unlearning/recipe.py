"""The reproducibility recipe: what must match for a replay to give the same bits.

Measured on this machine kind: the thread count, the ATen CPU kernel level and the MKL code
path all change training bits. ``MKL_CBWR=AVX2,STRICT`` with ``ATEN_CPU_CAPABILITY=default``
makes results independent of the thread count at no measurable cost. Both are read when
torch initialises, so ``pin_cpu_determinism`` must run before torch is imported; importing
``unlearning`` does it (together with the cuBLAS workspace variable CUDA needs, see
``unlearning.device``). The recipe records what is actually in force, so a replay that
differs can say why: on CUDA also the GPU, CUDA, cuDNN and driver versions.
"""

from __future__ import annotations

import math
import os
import platform
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

DETERMINISM_ENV = {"MKL_CBWR": "AVX2,STRICT", "ATEN_CPU_CAPABILITY": "default"}
# cuBLAS picks its workspace (and with it reduction order) when its handle is created.
CUDA_DETERMINISM_ENV = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
_LIBRARIES = ("torch", "transformers", "peft", "tokenizers", "safetensors", "pillow")


# Settings added after stages were first stored, with the value every older stage trained
# with: a recipe leaves a key out at that value, and a recipe without the key means it.
LEGACY_SETTINGS: dict[str, object] = {"schedule": "constant", "stage_epochs": "fixed"}
SCHEDULES = ("constant", "warmup_decay")
STAGE_EPOCHS = ("fixed", "scaled")
WARMUP_SHARE = 0.1  # of a stage's steps, for the warm-up + linear decay schedule


@dataclass(frozen=True)
class TrainSettings:
    """Per-stage optimisation settings (the same for every stage of a model).

    Attributes:
        epochs: passes over the stage's cumulative data (at the last stage, when scaled).
        learning_rate: AdamW (peak) learning rate; 1e-3 suits LoRA r=8 on MiniLM.
        batch_size: examples per step; batches are padded to their longest member.
        weight_decay: AdamW weight decay (only ever applied to this stage's tensors).
        max_length: truncation length in tokens.
        precision: ``fp32`` (no autocast), ``bf16`` or ``fp16`` (CUDA only) autocast of
            the forward pass; master weights and stage tensors stay fp32 either way.
        schedule: ``constant`` learning rate, or ``warmup_decay``: linear warm-up over the
            first tenth of a stage's steps, then linear decay to zero.
        stage_epochs: ``fixed`` (every stage ``epochs``), or ``scaled``: stage i of L runs
            ``ceil(epochs * L / i)`` epochs, so a stage that reads a third of the shard
            takes about as many steps as the last one.
    """

    epochs: int = 2
    learning_rate: float = 1e-3
    batch_size: int = 32
    weight_decay: float = 0.0
    max_length: int = 128
    precision: str = "fp32"
    schedule: str = "constant"
    stage_epochs: str = "fixed"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.stage_epochs not in STAGE_EPOCHS:
            raise ValueError(
                f"stage_epochs must be one of {STAGE_EPOCHS}, got {self.stage_epochs!r}"
            )

    def recipe(self) -> dict[str, object]:
        """The settings as a stage recipe records them: keys at their legacy value left
        out, so a stage trained as before records exactly what it always did."""
        return {k: v for k, v in asdict(self).items() if LEGACY_SETTINGS.get(k, ...) != v}

    @classmethod
    def from_recipe(cls, recorded: dict[str, Any]) -> TrainSettings:
        """Settings from a recipe; keys it lacks take their legacy value (old stages)."""
        return cls(**{"precision": "fp32", **LEGACY_SETTINGS, **recorded})

    def epochs_at(self, position: int, num_groups: int) -> int:
        """Epochs of the stage at ``position`` (1..L) of a model with L groups."""
        if self.stage_epochs == "fixed":
            return self.epochs
        return math.ceil(self.epochs * num_groups / position)

    def lr_factor(self, step: int, total: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based) of ``total``, over the peak."""
        if self.schedule == "constant":
            return 1.0
        warmup = max(1, round(WARMUP_SHARE * total))
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))


def pin_cpu_determinism() -> None:
    """Set the CPU (and CUDA) determinism variables unless the operator chose others.

    The cuBLAS variable is set here too because it must precede any CUDA work; it changes
    nothing on the CPU. It is set without importing torch (``unlearning.device`` does).
    """
    for name, value in {**DETERMINISM_ENV, **CUDA_DETERMINISM_ENV}.items():
        os.environ.setdefault(name, value)


def runtime_recipe(device: torch.device | None = None) -> dict[str, object]:
    """Library versions, device, threads and determinism settings in force now.

    ``device`` is the kind (``cpu`` or ``cuda``), as it always was; a CUDA device adds a
    ``cuda`` entry with the facts of ``unlearning.device.device_facts``. A CPU recipe is
    exactly what it was before devices existed.
    """
    import torch

    from unlearning.device import device_facts

    facts = device_facts(device if device is not None else torch.device("cpu"))
    recipe: dict[str, object] = {
        "python": platform.python_version(),
        "platform": sys.platform,
        "machine": platform.machine(),
        "libraries": {name: metadata.version(name) for name in _LIBRARIES},
        "device": facts.pop("kind"),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "env": {name: os.environ.get(name) for name in DETERMINISM_ENV},
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }
    if facts:
        recipe["cuda"] = facts
    return recipe
