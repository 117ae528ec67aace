"""Training throughput on a GPU: MiniLM and 12- and 24-block models built from a config,
at fp32 and bf16; examples per second and peak GPU memory, into bench/results/gpu.json.

Each run trains real S3T stages (``unlearning.training.train_stage``: LoRA group + head,
AdamW, deterministic CUDA) on synthetic labelled sentences, after one warm-up stage.

    python bench/bench_gpu.py            # needs CUDA; writes bench/results/gpu.json
    python bench/bench_gpu.py --smoke    # tiny sizes on whatever device there is (CPU
                                         # here); prints the numbers and writes nothing

Without CUDA (and without ``--smoke``) it says so and exits 2, writing nothing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Importing unlearning pins the CPU and cuBLAS determinism variables before torch loads.
importlib.import_module("unlearning")

import torch  # noqa: E402

from unlearning.artifacts import StageKey  # noqa: E402
from unlearning.assembly import AdapterHost, LoraSettings  # noqa: E402
from unlearning.backbones import build_base, make_collator  # noqa: E402
from unlearning.data import Example  # noqa: E402
from unlearning.device import device_facts, module_bytes, resolve_device  # noqa: E402
from unlearning.training import TrainSettings, train_stage  # noqa: E402

OUT = REPO / "bench" / "results" / "gpu.json"
WORDS = ["invoice", "refund", "crash", "login", "parcel", "courier", "payment", "error"]


def _config_model(blocks: int, hidden: int, heads: int) -> Any:
    """A BERT encoder of ``blocks`` blocks from a config (random weights, seeded)."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=blocks,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=512,
        num_labels=4,
    )


def _base(name: str, smoke: bool) -> torch.nn.Module:
    """The base classifier for a benchmark model, on the CPU (moved by the host)."""
    from transformers import AutoModelForSequenceClassification

    if name == "minilm":
        return build_base("minilm" if not smoke else "tiny-bert", 4)
    blocks = int(name.removeprefix("bert-").removesuffix("-blocks"))
    hidden, heads = (64, 2) if smoke else (768, 12)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        model = AutoModelForSequenceClassification.from_config(_config_model(blocks, hidden, heads))
    return model.eval()  # type: ignore[no-any-return]


def _examples(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    return [
        Example(f"b{seed}-{i:05d}", i % 4, " ".join(rng.choice(WORDS) for _ in range(24)))
        for i in range(n)
    ]


def bench_one(name: str, precision: str, device: torch.device, smoke: bool) -> dict[str, Any]:
    """Train a warm-up stage, then a timed one; examples/s over the timed stage's steps."""
    examples = 64 if smoke else 2048
    settings = TrainSettings(epochs=1, batch_size=16 if smoke else 32, precision=precision)
    host = AdapterHost(_base(name, smoke), num_groups=2, lora=LoraSettings(rank=8), device=device)
    collate = make_collator("tiny-bert", max_length=settings.max_length)
    warm = train_stage(
        host,
        key=StageKey(0, (0,)),
        parents=[],
        examples=_examples(settings.batch_size * 2, 0),
        collate=collate,
        settings=settings,
        model_seed=1,
    )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    stage = train_stage(
        host,
        key=StageKey(0, (0, 1)),
        parents=[warm],
        examples=_examples(examples, 1),
        collate=collate,
        settings=settings,
        model_seed=1,
    )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {
        "model": name,
        "precision": precision,
        "blocks": host.anatomy.num_blocks,
        "parameters": sum(p.numel() for p in host.model.parameters()),
        "model_bytes": module_bytes(host.model),
        "examples": examples,
        "batch_size": settings.batch_size,
        "max_length": settings.max_length,
        "seconds": round(seconds, 3),
        "examples_per_s": round(examples / seconds, 1),
        "peak_gpu_memory_bytes": peak,
        "final_loss": round(stage.metrics["final_loss"], 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, any device, no file")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        print(f"bench_gpu: {exc}", file=sys.stderr)
        return 2
    if device.type != "cuda" and not args.smoke:
        print(
            "bench_gpu: no CUDA device here; this benchmark measures GPU training and wrote "
            "nothing (run with --smoke to check the script on the CPU)",
            file=sys.stderr,
        )
        return 2
    precisions = ["fp32", "bf16"]
    runs = []
    for name in ("minilm", "bert-12-blocks", "bert-24-blocks"):
        for precision in precisions:
            result = bench_one(name, precision, device, args.smoke)
            print(json.dumps(result), flush=True)
            runs.append(result)
    if args.smoke:
        print("bench_gpu: smoke run done; nothing written")
        return 0
    report = {
        "device": device_facts(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"bench_gpu: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
