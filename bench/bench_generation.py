"""Generation and decoder training: what the ensemble costs per token, and a decoder stage
against an encoder stage of the same size.

Part 1, generation. Tiny Llama (4 blocks, hidden 64, built from a config) with real S3T
stages trained on the synthetic instruction task: for m = 1, 2 and 4 shards (each 2
slices, one sequence, serving at full depth), one prompt decoded greedily for
``MAX_NEW`` tokens through ``EnsembleGenerator``; latency per prompt and tokens per
second, median of ``REPEATS`` runs after one warm-up. The baseline in the same run is the
ensemble of one shard ("one model"); the end-of-sequence token is ignored so every run
decodes exactly ``MAX_NEW`` tokens. For reference, Hugging Face's own
``generate`` on the same host at the same depth (its KV cache, no ensemble loop).

Part 2, training cost per stage. The same number of examples, epochs and batch size for
tiny Llama on generation (prompt + response, causal-LM loss on the response) and tiny
BERT on classification (the same prompts, labelled with their intent): seconds per
stage and milliseconds per example-epoch, stage 1 and stage 2 of one sequence.

    python bench/bench_generation.py            # CPU; writes bench/results/generation.json
    python bench/bench_generation.py --large --device cuda   # a 1B Llama-shaped model from
        a config in bf16 (GPU only; bench/gpu_check.sh runs it), writes generation_gpu.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

importlib.import_module("unlearning")  # pins the determinism variables before torch loads

import torch  # noqa: E402

from bench.harness import machine_info, write_results  # noqa: E402
from unlearning.artifacts import StageKey  # noqa: E402
from unlearning.assembly import AdapterHost, LoraSettings  # noqa: E402
from unlearning.backbones import (  # noqa: E402
    build_base,
    default_lora_targets,
    load_tokenizer,
    make_collator,
)
from unlearning.data import Example  # noqa: E402
from unlearning.ensemble import ShardChoice, StageCache  # noqa: E402
from unlearning.generation import EnsembleGenerator  # noqa: E402
from unlearning.sample_instructions import instructions  # noqa: E402
from unlearning.training import TrainSettings, train_stage  # noqa: E402

MAX_NEW = 32
REPEATS = 5
PROMPT = "hello where is my parcel please"


def _train_shard(host: AdapterHost, shard: int, examples: list[Example], settings: Any) -> list:
    """Two stages of one sequence (0, 1) on the shard's two halves."""
    collate = make_collator("tiny-llama", task="generation", max_length=settings.max_length)
    half = len(examples) // 2
    slices = {0: examples[:half], 1: examples[half:]}
    stages: list = []
    for depth in (1, 2):
        key = StageKey(shard, tuple(range(depth)))
        records = [e for s in key.prefix for e in slices[s]]
        stages.append(
            train_stage(
                host,
                key=key,
                parents=stages,
                examples=records,
                collate=collate,
                settings=settings,
                model_seed=7,
            )
        )
    return stages


def _timed(run: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    out = run()
    return time.perf_counter() - started, out


def bench_generation() -> list[dict[str, Any]]:
    torch.set_num_threads(1)
    lora = LoraSettings(rank=8, alpha=16, targets=default_lora_targets("tiny-llama", "generation"))
    host = AdapterHost(build_base("tiny-llama", 2, task="generation"), num_groups=2, lora=lora)
    settings = TrainSettings(epochs=3, learning_rate=3e-3, batch_size=16)
    data = [i.example() for i in instructions(4 * 96, seed=21)]
    stages: dict[StageKey, Any] = {}
    choices = []
    for shard in range(4):
        trained = _train_shard(host, shard, data[shard::4], settings)
        stages.update({s.key: s for s in trained})
        choices.append(ShardChoice(shard, 0, tuple(s.key for s in trained)))
    tokenizer = load_tokenizer("tiny-llama")
    rows = []
    for m in (1, 2, 4):
        generator = EnsembleGenerator(host, choices[:m], StageCache(stages.__getitem__), tokenizer)
        generator.eos = -1  # never stop early: every run decodes exactly MAX_NEW tokens
        generator.generate([PROMPT], max_new_tokens=MAX_NEW)  # warm-up
        runs = [
            _timed(lambda g=generator: g.generate([PROMPT], max_new_tokens=MAX_NEW))
            for _ in range(REPEATS)
        ]
        seconds = statistics.median(t for t, _ in runs)
        tokens = len(runs[0][1][0].tokens)
        rows.append(
            {
                "shards": m,
                "tokens": tokens,
                "latency_ms": round(seconds * 1000, 2),
                "tokens_per_s": round(tokens / seconds, 1),
                "text": runs[0][1][0].text,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    rows.append(_hf_reference(host, stages, choices[0], tokenizer))
    print(json.dumps(rows[-1]), flush=True)
    return rows


def _hf_reference(host: AdapterHost, stages: dict, choice: ShardChoice, tokenizer: Any) -> dict:
    """Hugging Face's ``generate`` on the host at shard 0's full depth: the floor a decoding
    loop of one model reaches with its KV cache and no ensemble bookkeeping."""
    host.activate([stages[k] for k in choice.stages])
    ids = tokenizer(PROMPT, return_tensors="pt", add_special_tokens=False)["input_ids"]

    def run() -> Any:
        with torch.inference_mode():
            return host.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=MAX_NEW,
                min_new_tokens=MAX_NEW,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )

    run()
    runs = [_timed(run) for _ in range(REPEATS)]
    seconds = statistics.median(t for t, _ in runs)
    tokens = int(runs[0][1].shape[1] - ids.shape[1])
    return {
        "shards": "hf-generate (1 model)",
        "tokens": tokens,
        "latency_ms": round(seconds * 1000, 2),
        "tokens_per_s": round(tokens / seconds, 1),
    }


def bench_training() -> list[dict[str, Any]]:
    torch.set_num_threads(1)
    items = instructions(512, seed=5)
    intents = sorted({i.intent for i in items})
    settings = TrainSettings(epochs=2, learning_rate=3e-3, batch_size=16)
    cases = {
        "tiny-llama (decoder, generation)": (
            "tiny-llama",
            "generation",
            [i.example() for i in items],
        ),
        "tiny-bert (encoder, classification)": (
            "tiny-bert",
            "classification",
            [
                Example(
                    i.key,
                    intents.index(i.intent),
                    i.prompt if isinstance(i.prompt, str) else i.prompt[-1][1],
                )
                for i in items
            ],
        ),
    }
    rows = []
    for name, (backbone, task, examples) in cases.items():
        lora = LoraSettings(rank=8, alpha=16, targets=default_lora_targets(backbone, task))
        base = build_base(backbone, len(intents), task=task)
        host = AdapterHost(base, num_groups=2, lora=lora)
        collate = make_collator(backbone, task=task, max_length=settings.max_length)
        half = len(examples) // 2
        parents: list = []
        for depth in (1, 2):
            key = StageKey(0, tuple(range(depth)))
            records = examples[: half * depth]
            started = time.perf_counter()
            stage = train_stage(
                host,
                key=key,
                parents=list(parents),
                examples=records,
                collate=collate,
                settings=settings,
                model_seed=1,
            )
            seconds = time.perf_counter() - started
            parents.append(stage)
            rows.append(
                {
                    "model": name,
                    "parameters": sum(p.numel() for p in host.model.parameters()),
                    "trainable": sum(t.numel() for t in stage.tensors.values()),
                    "stage": depth,
                    "examples": len(records),
                    "seconds": round(seconds, 3),
                    "ms_per_example_epoch": round(
                        1000 * seconds / (len(records) * settings.epochs), 3
                    ),
                    "final_loss": round(stage.metrics["final_loss"], 4),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_large(device_name: str) -> dict[str, Any]:
    """A 1.1B-parameter Llama shape from a config, bf16 on a GPU: tokens/s for m = 1, 2, 4.

    The stages are drawn at random (small LoRA tensors, seeded) rather than trained: the
    figure is decoding speed, which does not depend on what the stages learned.
    """
    from transformers import AutoModelForCausalLM, LlamaConfig

    from unlearning.artifacts import StageArtifact
    from unlearning.device import device_facts, resolve_device

    device = resolve_device(device_name)
    if device.type != "cuda":
        sys.exit("bench_generation --large: needs a CUDA device")
    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        pad_token_id=0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_config(config)
    lora = LoraSettings(rank=16, alpha=32, targets=default_lora_targets("tiny-llama", "generation"))
    host = AdapterHost(base.eval(), num_groups=4, lora=lora, device=device)
    stages: dict[StageKey, Any] = {}
    choices = []
    for shard in range(4):
        keys = []
        for depth in range(1, 5):
            key = StageKey(shard, tuple(range(depth)))
            g = torch.Generator().manual_seed(shard * 10 + depth)
            tensors = {
                name: torch.randn(param.shape, generator=g) * 0.01
                for name, param in host.parameters_of(depth)
            }
            stages[key] = StageArtifact(key=key, tensors=tensors)
            keys.append(key)
        choices.append(ShardChoice(shard, 0, tuple(keys)))
    tokenizer = load_tokenizer("tiny-llama")  # BERT vocabulary: every id fits in 32,000
    rows = []
    for m in (1, 2, 4):
        generator = EnsembleGenerator(
            host,
            choices[:m],
            StageCache(stages.__getitem__),
            tokenizer,
            max_length=512,
            precision="bf16",
        )
        generator.eos = -1  # decode exactly the tokens asked for
        generator.generate([PROMPT], max_new_tokens=8)  # warm-up
        torch.cuda.synchronize(device)
        seconds, out = _timed(lambda g=generator: g.generate([PROMPT], max_new_tokens=64))
        torch.cuda.synchronize(device)
        tokens = len(out[0].tokens)
        rows.append(
            {
                "shards": m,
                "tokens": tokens,
                "latency_ms": round(seconds * 1000, 1),
                "tokens_per_s": round(tokens / seconds, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return {
        "device": device_facts(device),
        "parameters": sum(p.numel() for p in base.parameters()),
        "precision": "bf16 autocast (fp32 weights)",
        "runs": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="1B Llama shape, bf16, GPU")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.large:
        path = write_results("generation_gpu", bench_large(args.device))
        print(f"bench_generation: wrote {path}")
        return 0
    report = {
        "machine": machine_info(postgres=False),
        "threads": 1,
        "max_new_tokens": MAX_NEW,
        "repeats": REPEATS,
        "generation": bench_generation(),
        "training": bench_training(),
    }
    print(f"bench_generation: wrote {write_results('generation', report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
