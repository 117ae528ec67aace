"""Generation: the shard ensemble's cost per token, and a decoder stage against an encoder's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.sections.common import fmt, md_table

ORDER = 100
TITLE = "10. Generation and decoder training"
RESULTS = ("generation",)


def _one_model(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in rows if r["shards"] == 1)


def summary(results: dict[str, Any]) -> list[str]:
    rows = results["generation"]["generation"]
    one = _one_model(rows)
    widest = max((r for r in rows if isinstance(r["shards"], int)), key=lambda r: r["shards"])
    training = results["generation"]["training"]
    decoder = next(r for r in training if r["stage"] == 1 and "decoder" in r["model"])
    encoder = next(r for r in training if r["stage"] == 1 and "encoder" in r["model"])
    return [
        f"**Generation**: tiny Llama decodes {fmt(one['tokens_per_s'], 0)} tokens/s as one "
        f"model and {fmt(widest['tokens_per_s'], 0)} tokens/s as an ensemble of "
        f"{widest['shards']} shards on one CPU thread; a decoder stage costs "
        f"{fmt(decoder['ms_per_example_epoch'] / encoder['ms_per_example_epoch'], 0)}x an "
        f"encoder stage of the same block size."
    ]


def render(results: dict[str, Any], plots: Path) -> str:
    data = results["generation"]
    one = _one_model(data["generation"])
    generation = md_table(
        ["shards m", "tokens", "latency per prompt (ms)", "tokens / s", "÷ one model"],
        [[r["shards"], r["tokens"], fmt(r["latency_ms"], 1), fmt(r["tokens_per_s"], 1),
          fmt(r["tokens_per_s"] / one["tokens_per_s"], 2)]
         for r in data["generation"]],
    )  # fmt: skip
    training = md_table(
        ["model", "parameters", "stage tensors", "stage", "examples", "seconds",
         "ms / example-epoch", "final loss"],
        [[r["model"], f"{r['parameters']:,}", f"{r['trainable']:,}", r["stage"], r["examples"],
          fmt(r["seconds"], 2), fmt(r["ms_per_example_epoch"], 2), fmt(r["final_loss"], 3)]
         for r in data["training"]],
    )  # fmt: skip
    return f"""\
Script: `bench/bench_generation.py`, on the CPU with one torch thread. Tiny Llama (4
blocks, hidden 64, built from a config; the BERT vocabulary of 30,522 tokens) with real
S3T stages trained on the synthetic instruction task, each shard serving 2 stages. One
prompt is decoded greedily for {data['max_new_tokens']} tokens (end-of-sequence ignored,
so every run decodes the same count), median of {data['repeats']} runs after a warm-up.
The baseline in the same run is the ensemble of one shard; Hugging Face's own `generate`
on the same host is listed for reference:

{generation}

Every token runs each serving shard once, so the ensemble's cost grows with m; on the
CPU a shard switch also copies the shard's LoRA tensors into the one loaded model (on a
GPU that copy is a small fraction of a step). A request's prompts are decoded one at a
time, never padded into a batch, so an answer does not depend on what else was asked.

**Training cost per stage**, the same examples, epochs (2) and batch size (16), tiny
Llama on generation against tiny BERT on classification (both 4 blocks, hidden 64):

{training}

A decoder stage computes logits over the whole 30,522-token vocabulary and
backpropagates through them (the LM head stays frozen, but its matmul and the cross
entropy run in both passes); a classification stage computes a handful of class logits
per example. Training asks the model for the logits of the positions the loss reads only
(`logits_to_keep`: the response tokens, not the prompt), which took the decoder stage
from 27.3 to about 12 ms per example-epoch on this machine with the same loss. At this
tiny width the vocabulary projection still dominates; in a real decoder the blocks do,
and the ratio falls.
"""  # fmt: skip
