"""Engine benchmark on the packaged MiniLM: stage training, prefix switching, predict latency.

Every number comes with a baseline measured in the same process:
- stage training time against one SISA-style step set (LoRA on all blocks + head trainable)
  over the same examples;
- a hot prefix switch against a cold rebuild (fresh base + LoRA wrap + load from files);
- ensemble predict (m shards, switched per request) against one plain forward pass of the
  base model with no adapters.

Writes bench/results/engine.json and prints a table. Usage: python bench/bench_engine.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# The replay recipe's CPU pins, set before torch loads (as importing unlearning would).
os.environ.setdefault("MKL_CBWR", "AVX2,STRICT")
os.environ.setdefault("ATEN_CPU_CAPABILITY", "default")

import torch  # noqa: E402

from bench.harness import machine_info, stats_ms, timed_ms, write_results  # noqa: E402
from unlearning.artifacts import LocalArtifactStore, StageKey  # noqa: E402
from unlearning.assembly import AdapterHost, LoraSettings  # noqa: E402
from unlearning.backbones import build_base, make_collator  # noqa: E402
from unlearning.data import Example  # noqa: E402
from unlearning.ensemble import Ensemble, StageCache, serving_choices  # noqa: E402
from unlearning.partition import Cell, assign  # noqa: E402
from unlearning.sample_data import generate  # noqa: E402
from unlearning.sequences import cyclic  # noqa: E402
from unlearning.training import TrainSettings, train_shard  # noqa: E402

SHARDS, SLICES, BUDGET, EPOCHS = 2, 3, 2, 2


def _timeit(fn: Callable[[], object], repeat: int) -> dict[str, float]:
    fn()  # warm-up
    return stats_ms([timed_ms(fn)[0] for _ in range(repeat)])


def main() -> None:
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    data = generate(num_subjects=300, seed=7)
    labels = {name: i for i, name in enumerate(data.labels)}
    examples = [Example(r.external_id, labels[r.label], r.text) for r in data.train]
    cells = assign([(r.external_id, r.subject_id) for r in data.train], num_shards=SHARDS,
                   num_slices=SLICES, seed=7)  # fmt: skip
    collate = make_collator("minilm")
    host = AdapterHost(build_base("minilm", len(labels)), num_groups=SLICES, lora=LoraSettings())
    settings = TrainSettings(epochs=EPOCHS, learning_rate=2e-3)
    sequences = cyclic(SLICES, BUDGET)
    root = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    store = LocalArtifactStore(root)
    stage_times: dict[str, list[float]] = {}
    start = time.perf_counter()
    for shard in range(SHARDS):
        slices = {s: [e for e in examples if cells[e.key] == Cell(shard, s)] for s in range(SLICES)}
        run = train_shard(host, shard=shard, sequences=sequences, slices=slices, store=store,
                          collate=collate, settings=settings, model_seed=7)  # fmt: skip
        for prefix in run.trained:
            metrics = store.load(StageKey(shard, prefix)).metrics
            stage_times.setdefault(f"position {len(prefix)}", []).append(
                metrics["seconds"] / metrics["examples"] / EPOCHS * 1000
            )
    training_total = time.perf_counter() - start

    # Baseline: a SISA-style epoch with every LoRA group and the head trainable.
    shard0 = [e for e in examples if cells[e.key].shard == 0]
    sisa_ms = _sisa_epoch_ms_per_example(host, shard0, collate)

    cache = StageCache(store.load)
    prefixes = [tuple(order[:d]) for order in sequences for d in range(1, SLICES + 1)]
    chains = {p: [cache.get(StageKey(0, p[:d])) for d in range(1, len(p) + 1)] for p in prefixes}
    state = {"i": 0}

    def hot_switch() -> None:
        state["i"] += 1
        host.activate(chains[prefixes[state["i"] % len(prefixes)]])

    def cold_rebuild() -> None:
        fresh = AdapterHost(build_base("minilm", len(labels)), num_groups=SLICES,
                            lora=LoraSettings())  # fmt: skip
        fresh.activate([store.load(StageKey(0, prefixes[-1][:d])) for d in range(1, SLICES + 1)])

    ensemble = Ensemble(host, serving_choices(dict.fromkeys(range(SHARDS), sequences), {}),
                        cache, collate)  # fmt: skip
    batch32 = [e.payload for e in examples[:32]]
    one = [examples[0].payload]
    base = build_base("minilm", len(labels))

    def base_forward(payloads: list[str | torch.Tensor]) -> None:
        with torch.inference_mode():
            base(**collate([Example("x", 0, p) for p in payloads]))

    results = {
        "machine": machine_info(postgres=False),
        "settings": {
            "backbone": "minilm",
            "shards": SHARDS,
            "slices": SLICES,
            "budget": BUDGET,
            "epochs": EPOCHS,
            "batch_size": settings.batch_size,
            "train_messages": len(examples),
            "padding": "longest",
        },
        "training": {
            "total_s": round(training_total, 2),
            "stage_ms_per_example_epoch": {
                k: round(statistics.mean(v), 3) for k, v in sorted(stage_times.items())
            },
            "sisa_all_groups_ms_per_example_epoch": round(sisa_ms, 3),
        },
        "prefix_switch": {"hot": _timeit(hot_switch, 60), "cold": _timeit(cold_rebuild, 8)},
        "predict": {
            "ensemble_batch32": _timeit(lambda: ensemble.predict(batch32), 20),
            "ensemble_one": _timeit(lambda: ensemble.predict(one), 40),
            "base_forward_batch32": _timeit(lambda: base_forward(batch32), 20),
            "base_forward_one": _timeit(lambda: base_forward(one), 40),
        },
    }
    p = results["predict"]
    results["ratios"] = {
        "cold_over_hot_switch": round(
            results["prefix_switch"]["cold"]["p50_ms"] / results["prefix_switch"]["hot"]["p50_ms"],
            1,
        ),
        "ensemble_over_base_batch32": round(
            p["ensemble_batch32"]["p50_ms"] / p["base_forward_batch32"]["p50_ms"], 2
        ),
        "ensemble_over_base_one": round(
            p["ensemble_one"]["p50_ms"] / p["base_forward_one"]["p50_ms"], 2
        ),
    }
    write_results("engine", results)
    print(json.dumps({k: results[k] for k in ("training", "prefix_switch", "predict", "ratios")},
                     indent=2))  # fmt: skip


def _sisa_epoch_ms_per_example(host: AdapterHost, examples: list[Example], collate) -> float:  # noqa: ANN001
    """One epoch with every LoRA group and the head trainable: the SISA-style cost."""
    host.set_depth(host.num_groups)
    params = [p for g in range(1, host.num_groups + 1) for _, p in host.parameters_of(g)]
    params += [p for _, p in host.head_parameters()]
    for param in params:
        param.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    labels = torch.tensor([e.label for e in examples])
    host.model.train()
    start = time.perf_counter()
    for batch in torch.arange(len(examples)).split(32):
        logits = host.model(**collate([examples[i] for i in batch.tolist()])).logits
        loss = torch.nn.functional.cross_entropy(logits, labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    elapsed = time.perf_counter() - start
    host.model.eval()
    host.set_depth(0)
    for g in range(1, host.num_groups + 1):
        host.forget(g)
    return elapsed / len(examples) * 1000


if __name__ == "__main__":
    main()
