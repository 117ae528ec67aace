"""The adapter host: one loaded base model whose LoRA groups switch between stages.

The host wraps a frozen base with LoRA on every block's attention projections (or the
modules ``LoraSettings.targets`` names). The model at depth k of a sequence is: groups
1..k loaded from stages 1..k, the head of stage k, and groups k+1..L switched off (peft's
per-layer ``enable_adapters(False)`` makes those layers return exactly ``base_layer(x)``).
Switching depth or sequence only copies the groups whose tensors differ, so a hot switch
costs milliseconds and never reloads the base.

LoRA is never merged into the base weights: merging is not bit-exact and would make the
adapters inseparable, and separability is what lets a deletion simply drop groups.

The host lives on one device (``unlearning.device``): the whole model is moved there once,
stages are copied in from CPU tensors and ``stage_tensors`` hands back CPU copies, so a
stage artifact never depends on where it was trained or is served.

A causal LM has no trained head: its output projection is frozen base weight (tied to the
embeddings), so a generation stage holds only its group's LoRA tensors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unlearning.artifacts import StageArtifact
from unlearning.layers import (
    Anatomy,
    block_index,
    inspect_model,
    is_head_param,
    is_lora_param,
    layer_groups,
)


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyperparameters shared by every group of a model.

    Attributes:
        rank: adapter rank r (8 suits MiniLM; 16 in the paper's larger models).
        alpha: scaling numerator; the update is scaled by alpha / rank.
        dropout: dropout on the adapter input; 0 keeps a stage cheap and exact to replay.
        targets: module names inside a block that get LoRA; () = the model's anatomy
            defaults (attention query/value), exactly what models had before targets.
        rslora: scale the update by alpha / sqrt(rank) (rank-stabilised LoRA) instead of
            alpha / rank; recorded in the recipe only when on.
    """

    rank: int = 8
    alpha: int = 16
    dropout: float = 0.0
    targets: tuple[str, ...] = ()
    rslora: bool = False

    def recipe(self, defaults: Sequence[str] = ()) -> dict[str, object]:
        """The settings as a stage recipe records them.

        ``targets`` is left out when empty or equal to ``defaults`` (the anatomy's): such
        a stage trains exactly what stages trained before targets existed, and its recipe
        stays identical to theirs, so old and new recipes compare field by field.
        """
        recipe: dict[str, object] = {"rank": self.rank, "alpha": self.alpha}
        recipe["dropout"] = self.dropout
        if self.targets and tuple(self.targets) != tuple(defaults):
            recipe["targets"] = list(self.targets)
        if self.rslora:
            recipe["rslora"] = True
        return recipe


class AdapterHost:
    """A base model with LoRA groups that can be loaded, trained and switched per stage.

    Args:
        base: the frozen task model from ``backbones.build_base``.
        num_groups: L, the number of layer groups (= slices per shard).
        lora: LoRA hyperparameters.
        device: where the model lives; None keeps it where ``base`` is (the CPU, as built).
    """

    def __init__(
        self,
        base: nn.Module,
        *,
        num_groups: int,
        lora: LoraSettings,
        device: torch.device | str | None = None,
    ) -> None:
        from peft import LoraConfig, get_peft_model

        from unlearning.device import resolve_device

        self.anatomy: Anatomy = inspect_model(base)
        self.groups = layer_groups(self.anatomy.num_blocks, num_groups)
        self.lora = lora
        self.lora_targets = tuple(lora.targets) or self.anatomy.lora_targets
        config = LoraConfig(
            r=lora.rank,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            use_rslora=lora.rslora,
            target_modules=list(self.lora_targets),
            bias="none",
            # GPT-2 keeps its projections as transposed Conv1D modules.
            fan_in_fan_out=_targets_conv1d(base, self.anatomy.block_path, self.lora_targets),
        )
        # peft draws LoRA-A init from the global RNG; keep that from leaking into callers.
        # The values are irrelevant: every stage re-initialises its own group from a seed.
        here = next(base.parameters()).device
        cuda = [here.index or 0] if here.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            self.model = get_peft_model(base, config)
        self.device = here if device is None else resolve_device(device)
        if self.device != here:
            self.model.to(self.device)
        self._params = dict(self.model.named_parameters())
        self._group_of_block = {b: g for g, blocks in enumerate(self.groups, 1) for b in blocks}
        self.group_param_names = {g: self._names_in_group(g) for g in range(1, num_groups + 1)}
        self.head_param_names = [n for n in self._params if is_head_param(n, self.anatomy.head)]
        self._lora_layers = {g: self._layers_in_group(g) for g in range(1, num_groups + 1)}
        self._loaded: dict[int, str] = {}  # group -> digest of the stage it holds (0 = head)
        self.depth = 0
        self.set_depth(0)
        self.model.eval()

    @property
    def num_groups(self) -> int:
        return len(self.groups)

    def _group_of(self, name: str) -> int | None:
        block = block_index(name, self.anatomy.block_path)
        return None if block is None else self._group_of_block[block]

    def _names_in_group(self, group: int) -> list[str]:
        return [n for n in self._params if is_lora_param(n) and self._group_of(n) == group]

    def _layers_in_group(self, group: int) -> list[Any]:
        from peft.tuners.lora import LoraLayer

        return [
            module
            for name, module in self.model.named_modules()
            if isinstance(module, LoraLayer) and self._group_of(name + ".x") == group
        ]

    def parameters_of(self, group: int) -> Iterator[tuple[str, nn.Parameter]]:
        """The LoRA parameters of one group (1-based, 1 = top)."""
        for name in self.group_param_names[group]:
            yield name, self._params[name]

    def head_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """The classification head's parameters."""
        for name in self.head_param_names:
            yield name, self._params[name]

    def set_depth(self, depth: int) -> None:
        """Switch groups 1..depth on and the rest off; freeze every parameter."""
        if not 0 <= depth <= self.num_groups:
            raise ValueError(f"depth must be within 0..{self.num_groups}, got {depth}")
        for group, layers in self._lora_layers.items():
            for layer in layers:
                layer.enable_adapters(group <= depth)
        # enable_adapters(True) marks active adapters trainable; training picks its own set.
        for param in self._params.values():
            param.requires_grad_(False)
        self.depth = depth

    @property
    def has_head(self) -> bool:
        """Whether stages carry a trained head (classifiers) or none (causal LMs)."""
        return bool(self.head_param_names)

    def stage_tensors(self, group: int) -> dict[str, torch.Tensor]:
        """CPU copies of one group's LoRA tensors and the current head: a stage's content.

        A causal LM has no head, so its stage is the group's LoRA tensors alone.
        """
        names = [*self.group_param_names[group], *self.head_param_names]
        return {n: _cpu_copy(self._params[n]) for n in names}

    def activate(self, stages: Sequence[StageArtifact]) -> None:
        """Serve the prefix model made of ``stages`` (stage j fills group j; head of the last).

        Only groups whose content differs from what is loaded are copied.

        Raises:
            ValueError: when the stages are not one prefix chain or do not fit this model.
        """
        _check_chain(stages, self.num_groups)
        with torch.no_grad():
            for group, stage in enumerate(stages, 1):
                if self._loaded.get(group) != stage.digest:
                    self._copy(stage, self.group_param_names[group])
                    self._loaded[group] = stage.digest
            if self.has_head and stages and self._loaded.get(0) != stages[-1].digest:
                self._copy(stages[-1], self.head_param_names)
                self._loaded[0] = stages[-1].digest
        self.set_depth(len(stages))

    def _copy(self, stage: StageArtifact, names: Sequence[str]) -> None:
        expected = {*self.group_param_names[stage.key.position], *self.head_param_names}
        if set(stage.tensors) != expected:
            raise ValueError(f"stage {stage.key.slug()} does not fit this model's group layout")
        for name in names:
            self._params[name].copy_(stage.tensors[name])

    def wipe(self) -> None:
        """Zero every LoRA group and the head and forget what was loaded.

        Serving calls this when its manifest changes, so tensors of stages that were just
        deactivated (an erasure) do not linger in this process's memory; the next
        ``activate`` copies in what the new manifest names.
        """
        with torch.no_grad():
            for group in self.group_param_names:
                for name in self.group_param_names[group]:
                    self._params[name].zero_()
            for name in self.head_param_names:
                self._params[name].zero_()
        self._loaded.clear()
        self.set_depth(0)

    def forget(self, group: int) -> None:
        """Record that a group's tensors were changed outside ``activate`` (by training)."""
        self._loaded.pop(group, None)
        self._loaded.pop(0, None)

    def remember(self, stage: StageArtifact) -> None:
        """Record that the host now holds ``stage`` in its group and head."""
        self._loaded[stage.key.position] = stage.digest
        self._loaded[0] = stage.digest


def _targets_conv1d(base: nn.Module, block_path: str, targets: Sequence[str]) -> bool:
    """Whether block 0's targeted modules are transformers' Conv1D (weights stored [in, out]).

    Raises:
        ValueError: when a target names no module of block 0 (peft would silently skip it
            in some blocks, or fail late with a less useful message).
    """
    from transformers.pytorch_utils import Conv1D

    block = base.get_submodule(f"{block_path}.0")
    found = {name.split(".")[-1]: m for name, m in block.named_modules() if name}
    missing = [t for t in targets if t not in found]
    if missing:
        raise ValueError(
            f"lora targets {missing} are not modules of {type(base).__name__}'s blocks"
        )
    return any(isinstance(found[t], Conv1D) for t in targets)


def _cpu_copy(param: torch.Tensor) -> torch.Tensor:
    """A detached, contiguous CPU copy (``.cpu()`` copies from a GPU, ``clone`` on the CPU)."""
    tensor = param.detach()
    copy = tensor.clone() if tensor.device.type == "cpu" else tensor.cpu()
    return copy.contiguous()


def _check_chain(stages: Sequence[StageArtifact], num_groups: int) -> None:
    if len(stages) > num_groups:
        raise ValueError(f"depth {len(stages)} exceeds the model's {num_groups} groups")
    if not stages:
        return
    last = stages[-1].key
    for position, stage in enumerate(stages, 1):
        if stage.key.shard != last.shard or stage.key.prefix != last.prefix[:position]:
            raise ValueError(
                f"stage {stage.key.slug()} is not position {position} of {last.slug()}'s prefix"
            )
