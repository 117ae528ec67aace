"""Training examples and the collators that turn them into model inputs.

Batches are padded to their longest member, never to ``max_length``: on CPU that is 4–5×
faster for short support messages, and the padding mode is part of the replay recipe
because it changes the matmul shapes and therefore the bits.

Generation examples (a prompt and a target response) become one causal sequence
``prompt + response + eos`` whose labels are -100 on the prompt and the padding, so the
loss reads the response only. The prompt text, its truncation and the padding are
functions of the example alone and are written into the stage recipe
(``GenerationCollator.recipe``); the generator formats prompts with the same function.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

# A conversation before the target turn: (role, content) pairs, e.g. ("user", "hi").
Turns = tuple[tuple[str, str], ...]
Prompt = str | Turns
Payload = str | torch.Tensor | Turns  # what an Example carries (text, image, prompt)
IGNORE_INDEX = -100  # cross entropy skips these label positions


@dataclass(frozen=True)
class Example:
    """One training record as the engine sees it.

    Attributes:
        key: the record's stable identity (lineage is a set of keys).
        label: class index (0 for generation).
        payload: text for text models, a [channels, height, width] tensor for image
            models; for generation the prompt (a str, or the turns before the target).
        target: generation only: the response the model learns to give.
    """

    key: str
    label: int
    payload: Payload
    target: str | None = None


Collator = Callable[[Sequence[Example]], dict[str, torch.Tensor]]


class TextCollator:
    """Tokenise a batch of text examples, padding to the longest one.

    Args:
        tokenizer: a Hugging Face tokenizer.
        max_length: truncation length in tokens.
        keep: the model inputs to pass on (decoder-only models take no token_type_ids).
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        max_length: int = 128,
        keep: Sequence[str] = ("input_ids", "attention_mask", "token_type_ids"),
    ) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.keep = tuple(keep)

    def __call__(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        return self.encode([str(e.payload) for e in examples])

    def encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(
            list(texts),
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: v for k, v in batch.items() if k in self.keep}


class ImageCollator:
    """Stack image tensors into ``pixel_values`` for vision transformers."""

    def __call__(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        pixels = [e.payload for e in examples]
        if not all(isinstance(p, torch.Tensor) for p in pixels):
            raise TypeError("ImageCollator needs tensor payloads")
        return {"pixel_values": torch.stack(pixels)}  # type: ignore[arg-type]


PLAIN_FORMAT = "### {Role}:\n{content}\n per turn, then ### Assistant:\n"
TRUNCATION_RULE = (
    "keep response+eos and cut the prompt from the left; a response longer than "
    "max_length-2 keeps the prompt's last token and its own first max_length-1 tokens, no eos"
)


def prompt_text(tokenizer: Any, prompt: Prompt) -> str:
    """The prompt as the model reads it, ending where the response begins.

    With a chat template the turns go through it with ``add_generation_prompt=True``;
    without one each turn is ``### Role:`` and its content on their own lines, then
    ``### Assistant:`` (``PLAIN_FORMAT``). A str prompt is one user turn.
    """
    turns: Turns = (("user", prompt),) if isinstance(prompt, str) else tuple(prompt)
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": role, "content": content} for role, content in turns]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return str(text)
    lines = [f"### {role.capitalize()}:\n{content}\n" for role, content in turns]
    return "".join(lines) + "### Assistant:\n"


def prompt_ids(tokenizer: Any, prompt: Prompt) -> list[int]:
    """Token ids of ``prompt_text`` (no special tokens added: a template brings its own)."""
    ids = tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    return [int(i) for i in ids]


def eos_id(tokenizer: Any) -> int:
    """The end-of-response token: eos, or sep for BERT vocabularies (tiny models)."""
    for name in ("eos_token_id", "sep_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    raise ValueError("tokenizer has neither an eos nor a sep token to end a response")


def pad_id(tokenizer: Any) -> int:
    """The padding token; tokenizers without one (GPT-2, Llama) pad with eos."""
    value = getattr(tokenizer, "pad_token_id", None)
    return eos_id(tokenizer) if value is None else int(value)


def fit_sequence(
    prompt: list[int], response: list[int], eos: int, max_length: int
) -> tuple[list[int], list[int]]:
    """Truncate (prompt, response + eos) to ``max_length`` tokens (``TRUNCATION_RULE``)."""
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2 for generation, got {max_length}")
    if len(response) + 2 > max_length:
        return prompt[-1:], response[: max_length - 1]
    kept = [*response, eos]
    return prompt[-(max_length - len(kept)) :], kept


class GenerationCollator:
    """Turn (prompt, response) examples into causal LM inputs with response-only labels.

    Each sequence is ``prompt_ids + response_ids + [eos]``, truncated by
    ``fit_sequence``, right-padded with ``pad_id`` to the longest in the batch; labels
    are the input ids on the response and -100 on the prompt and the padding.

    Args:
        tokenizer: a Hugging Face tokenizer.
        max_length: total tokens per sequence.
    """

    def __init__(self, tokenizer: Any, *, max_length: int = 128) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.eos = eos_id(tokenizer)
        self.pad = pad_id(tokenizer)
        template = getattr(tokenizer, "chat_template", None)
        self.recipe: dict[str, object] = {
            "task": "generation",
            "prompt_format": "chat_template" if template else PLAIN_FORMAT,
            "truncation": TRUNCATION_RULE,
            "max_length": max_length,
            "eos": self.eos,
            "pad": self.pad,
        }
        if template:
            self.recipe["chat_template_digest"] = lineage_digest([str(template)])

    def __call__(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        rows = []
        for example in examples:
            if example.target is None or isinstance(example.payload, torch.Tensor):
                raise TypeError(f"example {example.key}: generation needs a prompt and a target")
            response = self.tokenizer(example.target, add_special_tokens=False)["input_ids"]
            rows.append(
                fit_sequence(
                    prompt_ids(self.tokenizer, example.payload),
                    [int(i) for i in response],
                    self.eos,
                    self.max_length,
                )
            )
        width = max(len(p) + len(r) for p, r in rows)
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (prompt, response) in enumerate(rows):
            n = len(prompt) + len(response)
            ids[i, :n] = torch.tensor(prompt + response)
            labels[i, len(prompt) : n] = torch.tensor(response)
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def lineage_digest(keys: Iterable[str]) -> str:
    """SHA-256 of the sorted record keys a stage read: its lineage, in one value."""
    h = hashlib.sha256()
    for key in sorted(keys):
        h.update(key.encode())
        h.update(b"\n")
    return "sha256:" + h.hexdigest()
