"""Layer groups: which transformer blocks belong to which S3T stage.

Group 1 is the *top* group (the blocks nearest the head); group L the bottom one. A
parameter's block is found by parsing its dotted name against the model's block container
("bert.encoder.layer", "transformer.h", "model.layers", ...), component by component. The
reference implementation tested substrings ("layer.1" in name), which also unfroze blocks
10..19 and broke isolation; parsing the index makes that impossible.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

# Names under which Hugging Face models keep their stack of transformer blocks.
_BLOCK_CONTAINER_NAMES = ("layer", "layers", "h", "blocks", "block")
# Attention projections that get LoRA, in order of preference; the first family whose
# names all occur in block 0 wins (BERT/RoBERTa/MiniLM, ViT/Llama/Mistral, GPT-2).
_LORA_TARGET_CANDIDATES = (("query", "value"), ("q_proj", "v_proj"), ("c_attn",))
# Generation adapts attention and MLP projections: every one of these present in block 0
# (Llama/Mistral/Qwen2/Gemma, GPT-2, OPT/Phi, GPT-NeoX/Falcon), in this order.
_GENERATION_TARGETS = (
    *("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    *("c_attn", "c_proj", "c_fc"),
    *("out_proj", "dense", "fc1", "fc2"),
    *("query_key_value", "dense_h_to_4h", "dense_4h_to_h"),
)
# Causal LMs keep their output projection (tied to the embeddings) frozen: no trained head.
_CAUSAL_LM_SUFFIXES = ("ForCausalLM", "LMHeadModel")
# Task heads of sequence/image classifiers: BERT/ViT call it classifier, GPT-2/Llama score.
_HEAD_NAMES = ("classifier", "score")
# peft wraps the task model; its parameters gain this prefix.
_PEFT_PREFIX = ("base_model", "model")


@dataclass(frozen=True)
class Anatomy:
    """Where a task model keeps its blocks, its LoRA targets and its head.

    Attributes:
        block_path: dotted path of the block container inside the task model.
        num_blocks: number of transformer blocks.
        lora_targets: module names inside a block that receive LoRA adapters when the
            settings name none: attention query/value, the targets stages always had
            (generation models name theirs: ``generation_targets``).
        head: name of the top-level classification head module; None for a causal LM,
            whose output projection is frozen base weight.
    """

    block_path: str
    num_blocks: int
    lora_targets: tuple[str, ...]
    head: str | None


def inspect_model(model: nn.Module) -> Anatomy:
    """Find the block container, LoRA targets and head of a task model.

    Args:
        model: a Hugging Face classifier or causal LM (not yet wrapped by peft).

    Returns:
        The model's anatomy.

    Raises:
        ValueError: when no block container, attention projection or head is found.
    """
    containers = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and name.split(".")[-1] in _BLOCK_CONTAINER_NAMES
    ]
    if not containers:
        raise ValueError(f"model {type(model).__name__}: no transformer block container found")
    block_path, blocks = max(containers, key=lambda item: len(item[1]))
    first_block_leaves = {name.split(".")[-1] for name, _ in blocks[0].named_modules()}
    targets: tuple[str, ...] | None = next(
        (c for c in _LORA_TARGET_CANDIDATES if set(c) <= first_block_leaves),
        None,
    )
    if targets is None:
        raise ValueError(f"model {type(model).__name__}: no known attention projection in a block")
    children = {name for name, _ in model.named_children()}
    head = next((h for h in _HEAD_NAMES if h in children), None)
    if is_causal_lm(model):
        head = None  # the output projection is frozen base weight, never a stage's
    elif head is None:
        raise ValueError(f"model {type(model).__name__}: no classification head ({_HEAD_NAMES})")
    return Anatomy(block_path=block_path, num_blocks=len(blocks), lora_targets=targets, head=head)


def is_causal_lm(model: nn.Module) -> bool:
    """Whether a task model is a causal language model (it generates; it has no head)."""
    return type(model).__name__.endswith(_CAUSAL_LM_SUFFIXES)


def generation_targets(model: nn.Module, block_path: str) -> tuple[str, ...]:
    """The attention and MLP projections of block 0 that generation adapts.

    Raises:
        ValueError: when block 0 has none of the known projection names.
    """
    block = model.get_submodule(f"{block_path}.0")
    leaves = {
        name.split(".")[-1]
        for name, module in block.named_modules()
        if name and not list(module.children())
    }
    targets = tuple(t for t in _GENERATION_TARGETS if t in leaves)
    if not targets:
        raise ValueError(f"model {type(model).__name__}: no known projection in a block")
    return targets


def layer_groups(num_blocks: int, num_groups: int) -> tuple[tuple[int, ...], ...]:
    """Split blocks into groups counted from the top.

    Blocks are dealt top-down; when they do not divide evenly the upper groups get one
    block more. MiniLM (6 blocks) in 3 groups gives ((4, 5), (2, 3), (0, 1)).

    Args:
        num_blocks: number of transformer blocks N.
        num_groups: number of groups L (= slices per shard); 1 ≤ L ≤ N.

    Returns:
        L tuples of ascending block indices; element 0 is group 1 (the top group).
    """
    if num_groups < 1 or num_groups > num_blocks:
        raise ValueError(
            f"num_groups must be between 1 and num_blocks={num_blocks}, got {num_groups}"
        )
    top_down = list(range(num_blocks - 1, -1, -1))
    base, extra = divmod(num_blocks, num_groups)
    groups, start = [], 0
    for g in range(num_groups):
        size = base + (1 if g < extra else 0)
        groups.append(tuple(sorted(top_down[start : start + size])))
        start += size
    return tuple(groups)


def _components(param_name: str) -> list[str]:
    parts = param_name.split(".")
    if tuple(parts[:2]) == _PEFT_PREFIX:
        parts = parts[2:]
    return parts


def block_index(param_name: str, block_path: str) -> int | None:
    """The block a parameter lives in, parsed from its name; None outside the block stack.

    Args:
        param_name: a parameter name, with or without peft's ``base_model.model.`` prefix.
        block_path: the anatomy's dotted block container path.

    Returns:
        The integer block index, or None.
    """
    parts = _components(param_name)
    container = block_path.split(".")
    n = len(container)
    if parts[:n] != container or len(parts) <= n or not parts[n].isdecimal():
        return None
    return int(parts[n])


def is_lora_param(param_name: str) -> bool:
    """Whether the parameter is a LoRA A or B matrix (by exact name component)."""
    return any(part in ("lora_A", "lora_B") for part in _components(param_name))


def is_head_param(param_name: str, head: str | None) -> bool:
    """Whether the parameter belongs to the top-level classification head (None: no head)."""
    parts = _components(param_name)
    return head is not None and bool(parts) and parts[0] == head
