"""Generation: the causal LM loss stages train with, and the shard ensemble that decodes.

Why averaging keeps the unlearning guarantee. At every step the ensemble's next-token
distribution is the mean of the serving shards' distributions. Each shard's distribution
is a function of the tokens so far, the frozen base and the stages of that shard's
serving prefix only; lineage says those stages read no erased record (a deletion
truncates the prefix before the slice that held it). The mean is a fixed, data-free
function of those distributions, and the sampler draws from a CPU generator seeded only
by (seed, prompt index), so nothing in an output depends on an erased record: after an
erasure the ensemble generates exactly what an ensemble trained without the record
would, token for token. The same holds for each shard's KV cache: it is computed from the
prompt and generated tokens under that shard's own stages, and is dropped after the
prompt.

Each prompt is decoded on its own, never padded into a batch with others: an output must
not depend on what else was asked in the same call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from unlearning.assembly import AdapterHost
from unlearning.data import IGNORE_INDEX, Prompt, eos_id, prompt_ids
from unlearning.ensemble import NoServingShardError, ShardChoice, StageCache

# Called with (prompt index, step, mean next-token distribution) before each choice.
StepHook = Callable[[int, int, torch.Tensor], None]


def causal_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """fp32 cross entropy of each position's logits against the next position's label.

    Labels are -100 on the prompt and the padding, so only response tokens (and the eos
    that ends them) count; the mean is over those tokens.
    """
    shifted = logits[:, :-1].float()
    targets = labels[:, 1:]
    return F.cross_entropy(
        shifted.reshape(-1, shifted.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX
    )


def loss_positions(labels: torch.Tensor) -> torch.Tensor:
    """The positions whose logits the loss reads: t where some row's label at t+1 counts.

    Training asks the model for these positions' logits only (``logits_to_keep``): the
    vocabulary projection and its cross entropy over every prompt position are most of a
    small decoder's step, and they never reach the loss.
    """
    counted = (labels[:, 1:] != IGNORE_INDEX).any(dim=0)
    return counted.nonzero().flatten()


def causal_loss_at(
    logits: torch.Tensor, labels: torch.Tensor, positions: torch.Tensor
) -> torch.Tensor:
    """``causal_loss`` from the logits of ``positions`` only ([batch, len(positions), vocab])."""
    targets = labels[:, positions + 1]
    return F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX
    )


@dataclass(frozen=True)
class Generated:
    """One prompt's output: the decoded text and the generated token ids (no eos)."""

    text: str
    tokens: list[int]


def sample_seed(seed: int, index: int) -> int:
    """The 63-bit sampler seed of prompt ``index`` in a call seeded with ``seed``."""
    digest = hashlib.sha256(f"lethe:generate:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class EnsembleGenerator:
    """Decodes with the mean next-token distribution of all serving shards.

    Args:
        host: the adapter host over a causal LM base (shards switch inside it).
        choices: the serving choice per shard (``ensemble.serving_choices``).
        cache: where stage artifacts come from.
        tokenizer: the backbone's tokenizer (``backbones.load_tokenizer``).
        max_length: prompt plus generated tokens, at most; the prompt is cut from the
            left to leave room for ``max_new_tokens`` (as training cuts it).
        precision: autocast precision of the forward passes (``unlearning.device``).
    """

    def __init__(
        self,
        host: AdapterHost,
        choices: Sequence[ShardChoice],
        cache: StageCache,
        tokenizer: Any,
        *,
        max_length: int = 128,
        precision: str = "fp32",
    ) -> None:
        from unlearning.device import check_precision

        if max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")
        self.host = host
        self.choices = [c for c in choices if c.depth > 0]
        self.cache = cache
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.precision = check_precision(precision, host.device)
        self.eos = eos_id(tokenizer)

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        on_step: StepHook | None = None,
    ) -> list[Generated]:
        """Decode every prompt; temperature 0 is greedy (argmax of the mean).

        Otherwise each shard's distribution is softmax(logits / temperature), the mean is
        cut to its top-p nucleus and sampled with a CPU generator seeded from (seed,
        prompt index). Decoding stops at eos or after ``max_new_tokens``.

        Args:
            on_step: inspection hook, called with each step's mean distribution (CPU).

        Raises:
            NoServingShardError: when no shard can serve.
        """
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if not temperature >= 0:
            raise ValueError(f"temperature must be at least 0, got {temperature}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be within (0, 1], got {top_p}")
        if not self.choices:
            raise NoServingShardError("no shard has a clean prefix; the model must be retrained")
        options = (max_new_tokens, temperature, top_p, seed, on_step)
        return [self._decode(i, prompt, *options) for i, prompt in enumerate(prompts)]

    def _decode(
        self,
        index: int,
        prompt: Prompt,
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        seed: int,
        on_step: StepHook | None,
    ) -> Generated:
        budget = min(max_new_tokens, self.max_length - 1)
        feed = prompt_ids(self.tokenizer, prompt)[-(self.max_length - budget) :]
        generator = torch.Generator().manual_seed(sample_seed(seed, index))
        caches: list[Any] = [None] * len(self.choices)
        tokens: list[int] = []
        with torch.inference_mode():
            for step in range(budget):
                mean = self._next_distribution(feed, caches, temperature)
                if on_step is not None:
                    on_step(index, step, mean)
                token = _choose(mean, temperature, top_p, generator)
                if token == self.eos:
                    break
                tokens.append(token)
                feed = [token]
        return Generated(self.tokenizer.decode(tokens, skip_special_tokens=True), tokens)

    def _next_distribution(
        self, feed: list[int], caches: list[Any], temperature: float
    ) -> torch.Tensor:
        """Mean over shards of the next-token distribution after ``feed`` (new tokens).

        Each shard continues from its own KV cache, computed under its own stages.
        """
        from unlearning.device import autocast

        inputs = torch.tensor([feed], device=self.host.device)
        total: torch.Tensor | None = None
        for i, choice in enumerate(self.choices):
            self.host.activate([self.cache.get(k) for k in choice.stages])
            with autocast(self.host.device, self.precision):
                out = self.host.model(input_ids=inputs, cache=caches[i], use_cache=True)
            caches[i] = out.cache
            logits = out.logits[0, -1].float()
            probs = (logits / temperature if temperature > 0 else logits).softmax(dim=-1)
            total = probs if total is None else total + probs
        assert total is not None
        return (total / len(self.choices)).cpu()


def _choose(mean: torch.Tensor, temperature: float, top_p: float, rng: torch.Generator) -> int:
    """Argmax at temperature 0; otherwise a draw from the top-p nucleus of ``mean``."""
    if temperature == 0:
        return int(mean.argmax())
    probs, order = mean.sort(descending=True, stable=True)
    keep = probs.cumsum(dim=0) - probs < top_p  # the smallest prefix reaching top_p
    nucleus = probs * keep
    pick = torch.multinomial(nucleus / nucleus.sum(), 1, generator=rng)
    return int(order[pick])
