"""Local Hugging Face checkpoints: what family a folder holds, read from its config.json.

A folder is never assumed to be an encoder: a GPT-2 checkpoint trained as a classifier
and one fine-tuned for instructions look the same on disk except for their config, and
the family decides the task model, the collator and the LoRA targets. The config is read
as plain JSON (no transformers import, no weights), so a web process can check a folder
cheaply. Decision order, most specific first:

1. ``architectures``: an entry ending in ``ForCausalLM`` or ``LMHeadModel`` is a decoder,
   ``ForImageClassification`` a vision model, ``ForMaskedLM`` an encoder;
2. ``is_decoder: true`` (an encoder stack configured as a causal LM) is a decoder;
3. ``model_type`` against the known families below.

Anything else is refused with a message naming the folder and what its config says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ENCODER_TYPES = frozenset(
    {
        "bert",
        "roberta",
        "distilbert",
        "electra",
        "deberta",
        "deberta-v2",
        "xlm-roberta",
        "mpnet",
        "albert",
        "camembert",
        "modernbert",
    }
)
DECODER_TYPES = frozenset(
    {
        "gpt2",
        "llama",
        "mistral",
        "qwen2",
        "qwen3",
        "gemma",
        "gemma2",
        "phi",
        "phi3",
        "opt",
        "gpt_neox",
        "falcon",
        "gptj",
        "gpt_neo",
        "smollm3",
    }
)
VISION_TYPES = frozenset({"vit", "deit", "beit", "swin", "convnext", "dinov2"})

_ARCHITECTURE_SUFFIXES = (
    ("ForCausalLM", "decoder"),
    ("LMHeadModel", "decoder"),
    ("ForImageClassification", "vision"),
    ("ForMaskedLM", "encoder"),
)


def checkpoint_config(path: str | Path) -> dict[str, Any]:
    """The parsed config.json of a checkpoint folder.

    Raises:
        ValueError: "base_model: ..." when the file is missing, unreadable or not an object.
    """
    file = Path(path) / "config.json"
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"base_model: {str(path)!r} has no config.json") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"base_model: cannot read {str(file)!r}: {exc}") from None
    if not isinstance(config, dict):
        raise ValueError(f"base_model: {str(file)!r} does not hold a JSON object")
    return config


def checkpoint_family(path: str | Path) -> str:
    """The family of a checkpoint folder: "encoder", "decoder" or "vision".

    Raises:
        ValueError: "base_model: ..." when the config is absent, unreadable or fits none.
    """
    config = checkpoint_config(path)
    architectures = config.get("architectures") or []
    if isinstance(architectures, list):
        for architecture in map(str, architectures):
            for suffix, family in _ARCHITECTURE_SUFFIXES:
                if architecture.endswith(suffix):
                    return family
    if config.get("is_decoder") is True:
        return "decoder"
    model_type = str(config.get("model_type", ""))
    for types, family in (
        (ENCODER_TYPES, "encoder"),
        (DECODER_TYPES, "decoder"),
        (VISION_TYPES, "vision"),
    ):
        if model_type in types:
            return family
    raise ValueError(
        f"base_model: {str(path)!r} is not a known encoder, decoder or vision checkpoint "
        f"(model_type {model_type or 'missing'!r}, architectures {architectures!r})"
    )
