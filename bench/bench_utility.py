"""Utility and training cost of S3T on MiniLM, against one full fine-tune and SISA.

Engine only (no Django). Sample data from ``unlearning.sample_data.generate``: the train
split trains every model, the held-out test split (other subjects, held-out phrasings)
measures accuracy. Every model uses the same optimiser (AdamW), learning rate, epochs and
batch size, the engine's own training loop (a stage's, which
``unlearning.baseline.train_jointly`` also runs) and padding to
the longest in the batch.

Three parts:

1. **Utility at zero deletions.** Held-out accuracy of the S3T ensemble for several (m, L):
   each shard serves its first sequence at full depth, so the budget B changes nothing there
   and only sequence 1 of each shard is trained (the retention model's other sequences are
   trained too, for part 2). Against one LoRA fine-tune on all data (every block's LoRA and the
   head trainable together) and SISA (one such model per shard, probabilities averaged like
   ``Ensemble``); SISA with m = 1 is the full fine-tune. Floor: the majority class.
2. **Retention.** Subjects are erased in a seeded random order (each subject's records lie in
   one (shard, slice) cell from ``unlearning.partition.assign``). At each checkpoint:
   S3T deactivation only (each shard serves its longest clean prefix; a shard with none drops
   out; no shard left = "not servable"), S3T with scheduled retraining (shards whose serving
   depth fell below the threshold are retrained on their remaining records, in both of
   governance's ``model_retrain`` modes: re-partitioned with every stage trained anew,
   "full", and keeping the slices and every clean stage, training only the stages whose
   prefix holds a dirty slice, "suffix"), and SISA retraining every shard an erasure hit,
   from scratch. Cumulative training compute (seconds, example-epochs) per approach, and
   the exact example-epochs of both modes from the plans alone (``retention_accounting``:
   the bench's configuration, which must equal what was measured, and a grid of other
   plans over 20 erasure orders), with SISA retraining after every single erasure exactly.
3. **Training cost.** S3T at full budget (m=1, L=3, B=6) on a subset,
   with shared prefixes (``train_shard`` trains each distinct prefix once) and without (each
   sequence trained alone, from scratch), plus one full fine-tune (= SISA with m=1) on the same
   records; an analytic table of stages and example-epochs from the plans (L=3, 4, 6).

Accuracy is computed from per-model test probabilities, cached by model (a prefix of a
shard's sequence, or a SISA shard model): the mean over serving shards is exactly what
``Ensemble.predict_proba`` computes with the same batches (checked once per run).

Writes bench/results/utility.json (all three parts; the report's utility and training
sections read it).
Usage: python bench/bench_utility.py [--quick] [--threads N]
(``--quick``: a tiny dataset and one configuration, a smoke test of a minute or two).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# The replay recipe's CPU pins, set before torch loads (as importing unlearning would).
os.environ.setdefault("MKL_CBWR", "AVX2,STRICT")
os.environ.setdefault("ATEN_CPU_CAPABILITY", "default")

import torch  # noqa: E402

from bench.harness import machine_info, write_results  # noqa: E402
from unlearning.artifacts import LocalArtifactStore, StageArtifact, StageKey  # noqa: E402
from unlearning.assembly import AdapterHost, LoraSettings  # noqa: E402
from unlearning.backbones import build_base, make_collator  # noqa: E402
from unlearning.baseline import train_jointly  # noqa: E402
from unlearning.data import Collator, Example  # noqa: E402
from unlearning.ensemble import Ensemble, StageCache, serving_choices  # noqa: E402
from unlearning.partition import Cell, assign  # noqa: E402
from unlearning.policy import choose_serving, needs_retraining, sequence_depth  # noqa: E402
from unlearning.sample_data import generate  # noqa: E402
from unlearning.sequences import cyclic, full_budget  # noqa: E402
from unlearning.training import (  # noqa: E402
    TrainSettings,
    stage_plan,
    train_shard,
)

BACKBONE = "minilm"
SEED = 7
EVAL_BATCH = 64  # the batch size of unlearning.ensemble.accuracy


@dataclass(frozen=True)
class Profile:
    """What one run trains; ``DEFAULT`` fits about 15 minutes on 2 vCPU with 1 torch thread."""

    subjects: int
    epochs: int
    learning_rate: float
    batch_size: int
    utility: tuple[tuple[int, int], ...]  # (m, L) served at zero deletions
    retention: tuple[int, int, int]  # (m, L, B) of the retention model, cyclic sequences
    threshold: int  # retrain a shard when its serving depth falls below this
    checkpoints: tuple[int, ...]  # erased subjects at which accuracy is measured
    cost_records: int  # records of the training-cost subset
    cost_slices: int  # L of the training-cost model (m = 1, B = L!)
    cost_epochs: int


DEFAULT = Profile(
    subjects=300,
    epochs=1,
    learning_rate=5e-3,
    batch_size=32,
    utility=((1, 3), (2, 3), (4, 2)),
    retention=(4, 2, 2),
    threshold=1,
    checkpoints=(0, 5, 10, 20, 40),
    cost_records=300,
    cost_slices=3,
    cost_epochs=1,
)
QUICK = Profile(
    subjects=36,
    epochs=1,
    learning_rate=5e-3,
    batch_size=32,
    utility=((1, 2), (2, 2)),
    retention=(2, 2, 2),
    threshold=1,
    checkpoints=(0, 3, 6),
    cost_records=18,
    cost_slices=3,
    cost_epochs=1,
)


@dataclass
class Cost:
    """Training compute: wall seconds, example-epochs (examples × epochs), models/stages."""

    seconds: float = 0.0
    example_epochs: int = 0
    units: int = 0  # stages for S3T, models for full fine-tune / SISA

    def add(self, other: Cost) -> None:
        self.seconds += other.seconds
        self.example_epochs += other.example_epochs
        self.units += other.units

    def as_dict(self) -> dict[str, Any]:
        ms = self.seconds / self.example_epochs * 1000 if self.example_epochs else None
        return {
            "seconds": round(self.seconds, 2),
            "example_epochs": self.example_epochs,
            "units": self.units,
            "ms_per_example_epoch": None if ms is None else round(ms, 3),
        }


@dataclass
class Bench:
    """Shared state: data, hosts per L, settings, the test-probability cache."""

    train: dict[str, Example]
    subject_of: dict[str, str]
    test: list[Example]
    num_labels: int
    settings: TrainSettings
    collate: Collator
    root: Path
    hosts: dict[int, AdapterHost] = field(default_factory=dict)
    probs: dict[tuple[Any, ...], torch.Tensor] = field(default_factory=dict)
    eval_seconds: float = 0.0
    evals: int = 0
    full_cost: Cost = field(default_factory=Cost)
    sisa_cost: dict[int, Cost] = field(default_factory=dict)  # initial SISA training, by m

    def host(self, groups: int) -> AdapterHost:
        if groups not in self.hosts:
            base = build_base(BACKBONE, self.num_labels)
            self.hosts[groups] = AdapterHost(base, num_groups=groups, lora=LoraSettings())
        return self.hosts[groups]

    def store(self, name: str) -> LocalArtifactStore:
        return LocalArtifactStore(self.root / name)

    def test_probs(self, host: AdapterHost) -> torch.Tensor:
        """Class probabilities of the host's current model on the test split."""
        start = time.perf_counter()
        out = []
        with torch.inference_mode():
            for i in range(0, len(self.test), EVAL_BATCH):
                batch = [
                    Example(f"input-{j}", 0, e.payload)
                    for j, e in enumerate(self.test[i : i + EVAL_BATCH])
                ]
                out.append(host.model(**self.collate(batch)).logits.softmax(dim=-1))
        self.eval_seconds += time.perf_counter() - start
        self.evals += 1
        return torch.cat(out)

    def labels(self) -> torch.Tensor:
        return torch.tensor([e.label for e in self.test])


# --- training ---------------------------------------------------------------------------


def train_s3t(
    bench: Bench,
    store: LocalArtifactStore,
    *,
    num_slices: int,
    sequences: Mapping[int, Sequence[tuple[int, ...]]],
    slices: Mapping[int, Mapping[int, Sequence[Example]]],
    epochs: int | None = None,
) -> Cost:
    """Train every stage of the given shards' sequences into ``store`` (shared prefixes once)."""
    host = bench.host(num_slices)
    settings = bench.settings
    if epochs is not None:
        settings = TrainSettings(
            epochs=epochs, learning_rate=settings.learning_rate, batch_size=settings.batch_size
        )
    cost = Cost()

    def on_stage(artifact: StageArtifact, reused: bool) -> None:
        if not reused:
            cost.example_epochs += int(artifact.metrics["examples"]) * settings.epochs
            cost.units += 1

    for shard in sorted(sequences):
        start = time.perf_counter()
        train_shard(
            host,
            shard=shard,
            sequences=sequences[shard],
            slices=slices[shard],
            store=store,
            collate=bench.collate,
            settings=settings,
            model_seed=SEED,
            on_stage=on_stage,
        )
        cost.seconds += time.perf_counter() - start
    return cost


def train_all_groups(
    bench: Bench, examples: Sequence[Example], key: StageKey, epochs: int | None = None
) -> tuple[Cost, torch.Tensor]:
    """One LoRA model, every block's LoRA and the head trainable together; its test probs.

    ``unlearning.baseline.train_jointly``: a stage's loop, so the only differences from
    S3T are what is trainable and which records it reads. ``key`` only derives the seeds.
    """
    host = bench.host(1)
    settings = bench.settings
    if epochs is not None:
        settings = TrainSettings(
            epochs=epochs, learning_rate=settings.learning_rate, batch_size=settings.batch_size
        )
    start = time.perf_counter()
    train_jointly(
        host, examples, collate=bench.collate, settings=settings, model_seed=SEED, key=key
    )
    cost = Cost(time.perf_counter() - start, len(examples) * settings.epochs, 1)
    return cost, bench.test_probs(host)


def prefix_probs(
    bench: Bench, store_name: str, shard: int, prefix: tuple[int, ...], num_slices: int
) -> torch.Tensor:
    """Test probabilities of one S3T prefix model (cached per store, shard and prefix)."""
    cache_key = ("s3t", store_name, shard, prefix)
    if cache_key not in bench.probs:
        store = bench.store(store_name)
        host = bench.host(num_slices)
        host.activate([store.load(StageKey(shard, prefix[:d])) for d in range(1, len(prefix) + 1)])
        bench.probs[cache_key] = bench.test_probs(host)
    return bench.probs[cache_key]


def mean_probs(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """The mean over shards, summed in shard order as ``Ensemble.predict_proba`` does."""
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total / len(parts)


def served_accuracy(
    bench: Bench, store_of: Callable[[int], str], choices: Sequence[Any], num_slices: int
) -> float:
    """Test accuracy of the ensemble serving ``choices``: each shard's chosen prefix, from
    the store ``store_of(shard)`` names."""
    parts = [
        prefix_probs(bench, store_of(c.shard), c.shard, c.stages[-1].prefix, num_slices)
        for c in choices
    ]
    return acc(bench, mean_probs(parts))


def acc(bench: Bench, probs: torch.Tensor) -> float:
    return round(float((probs.argmax(dim=-1) == bench.labels()).float().mean()), 4)


def cells_of(
    bench: Bench, keys: Sequence[str], m: int, num_slices: int, seed: int
) -> dict[str, Cell]:
    return assign(
        [(k, bench.subject_of[k]) for k in keys], num_shards=m, num_slices=num_slices, seed=seed
    )


def slices_by_shard(bench: Bench, cells: Mapping[str, Cell]) -> dict[int, dict[int, list[Example]]]:
    out: dict[int, dict[int, list[Example]]] = {}
    for key, cell in cells.items():
        out.setdefault(cell.shard, {}).setdefault(cell.slice, []).append(bench.train[key])
    return out


# --- part 1: utility at zero deletions ---------------------------------------------------


def part_utility(bench: Bench, profile: Profile) -> dict[str, Any]:
    keys = sorted(bench.train)
    labels = Counter(e.label for e in bench.test)
    majority = max(Counter(e.label for e in bench.train.values()).items(), key=lambda kv: kv[1])
    result: dict[str, Any] = {
        "majority_class": {
            "label": majority[0],
            "accuracy": round(labels[majority[0]] / len(bench.test), 4),
        }
    }
    cost, probs = train_all_groups(bench, list(bench.train.values()), StageKey(-1, (0,)))
    bench.full_cost = cost
    result["full_finetune"] = {"accuracy": acc(bench, probs), "cost": cost.as_dict()}
    print(f"full fine-tune: {result['full_finetune']}", flush=True)

    configs = []
    rm, rl, _ = profile.retention
    for m, num_slices in profile.utility:
        cells = cells_of(bench, keys, m, num_slices, SEED)
        name = f"s3t-m{m}-L{num_slices}-seq0"
        first = cyclic(num_slices, 1)[0]
        if (m, num_slices) == (rm, rl):
            cost_d: dict[str, Any] | None = None  # trained by the retention part; filled there
            store_name = f"retention-m{m}-L{num_slices}-g0"
        else:
            cost = train_s3t(
                bench,
                bench.store(name),
                num_slices=num_slices,
                sequences={s: [first] for s in range(m)},
                slices=slices_by_shard(bench, cells),
            )
            cost_d, store_name = cost.as_dict(), name
        configs.append(
            {
                "m": m,
                "L": num_slices,
                "store": store_name,
                "cost": cost_d,
                "shard_records": [sum(c.shard == s for c in cells.values()) for s in range(m)],
            }
        )
    result["s3t"] = configs

    # SISA shards are the S3T shards of the same m (the first config with that m).
    slices_for = dict(reversed(profile.utility))
    slices_for[rm] = rl
    sisa = []
    for m in sorted(slices_for):
        if m == 1:
            bench.probs[("sisa", 0, 0)] = probs
            bench.sisa_cost[1] = bench.full_cost
            sisa.append(
                {
                    "m": 1,
                    "same_as": "full_finetune",
                    "accuracy": result["full_finetune"]["accuracy"],
                    "cost": result["full_finetune"]["cost"],
                }
            )
            continue
        cells = cells_of(bench, keys, m, slices_for[m], SEED)
        total, parts = Cost(), []
        for shard in range(m):
            shard_examples = [bench.train[k] for k, c in cells.items() if c.shard == shard]
            cost, probs = train_all_groups(bench, shard_examples, StageKey(shard, (0,)))
            bench.probs[("sisa", 0, shard)] = probs
            total.add(cost)
            parts.append(probs)
        bench.sisa_cost[m] = total
        sisa.append({"m": m, "accuracy": acc(bench, mean_probs(parts)), "cost": total.as_dict()})
        print(f"SISA m={m}: {sisa[-1]}", flush=True)
    result["sisa"] = sisa
    return result


def finish_utility(bench: Bench, utility: dict[str, Any], retention_cost: Cost) -> None:
    """Accuracy of each S3T config at zero deletions (after the retention model exists)."""
    for config in utility["s3t"]:
        m, num_slices = config["m"], config["L"]
        first = cyclic(num_slices, 1)[0]
        parts = [prefix_probs(bench, config["store"], s, first, num_slices) for s in range(m)]
        config["accuracy"] = acc(bench, mean_probs(parts))
        if config["cost"] is None:
            config["cost"] = retention_cost.as_dict()
            config["cost_note"] = "all B sequences of the retention model (part 2)"
        print(f"S3T m={m} L={num_slices}: {config['accuracy']}", flush=True)


# --- part 2: retention as erasures accumulate --------------------------------------------


def part_retention(bench: Bench, profile: Profile) -> tuple[dict[str, Any], Cost]:
    m, num_slices, budget = profile.retention
    sequences = cyclic(num_slices, budget)
    keys = sorted(bench.train)
    cells0 = cells_of(bench, keys, m, num_slices, SEED)
    plan = dict.fromkeys(range(m), sequences)

    # Generation 0: S3T (all B sequences) and SISA (one model per S3T shard).
    store0 = f"retention-m{m}-L{num_slices}-g0"
    initial = train_s3t(
        bench,
        bench.store(store0),
        num_slices=num_slices,
        sequences=plan,
        slices=slices_by_shard(bench, cells0),
    )
    # SISA's generation 0 is part 1's SISA model of the same m, on the same shards.
    sisa_initial = bench.sisa_cost[m]
    sisa_shard = {k: c.shard for k, c in cells0.items()}
    print(f"retention model trained: S3T {initial.as_dict()}", flush=True)

    # Check once that cached probabilities give what Ensemble serves.
    store = bench.store(store0)
    ensemble = Ensemble(
        bench.host(num_slices), serving_choices(plan, {}), StageCache(store.load), bench.collate
    )
    served = torch.cat(
        [
            ensemble.predict_proba([e.payload for e in bench.test[i : i + EVAL_BATCH]])
            for i in range(0, len(bench.test), EVAL_BATCH)
        ]
    )
    cached = mean_probs(
        [prefix_probs(bench, store0, s, sequences[0], num_slices) for s in range(m)]
    )
    ensemble_check = bool(torch.equal(served, cached))

    subjects = sorted({bench.subject_of[k] for k in keys})
    random.Random(SEED).shuffle(subjects)
    records_of: dict[str, list[str]] = {}
    for k in keys:
        records_of.setdefault(bench.subject_of[k], []).append(k)

    erased: set[str] = set()
    deleted0: dict[int, set[int]] = {s: set() for s in range(m)}  # deactivation only
    # Scheduled retraining: each shard's current generation store, cells, deleted slices.
    rt_store = dict.fromkeys(range(m), store0)
    rt_cell: dict[str, Cell] = dict(cells0)
    rt_deleted: dict[int, set[int]] = {s: set() for s in range(m)}
    generation = 0
    rt_cost = Cost()
    rt_cost.add(initial)
    # Suffix retraining (``model_retrain``'s default): cells kept, only dirty stages retrained.
    sx_store = dict.fromkeys(range(m), store0)
    sx_deleted: dict[int, set[int]] = {s: set() for s in range(m)}
    sx_generation = 0
    sx_cost = Cost()
    sx_cost.add(initial)
    sisa_cost = Cost()
    sisa_cost.add(sisa_initial)
    sisa_model = dict.fromkeys(range(m), 0)  # generation of each SISA shard model
    sisa_hits: Counter[int] = Counter()
    sisa_per_erasure = Cost()  # estimate: retrain the hit shard after every single erasure
    sisa_per_erasure.add(sisa_initial)
    full_cost = bench.full_cost
    rows = []
    done = 0
    for checkpoint in profile.checkpoints:
        for subject in subjects[done:checkpoint]:
            ks = records_of[subject]
            erased.update(ks)
            c0 = cells0[ks[0]]
            deleted0[c0.shard].add(c0.slice)
            c = rt_cell[ks[0]]
            rt_deleted[c.shard].add(c.slice)
            sx_deleted[c0.shard].add(c0.slice)
            sisa_hits[sisa_shard[ks[0]]] += 1
        done = checkpoint
        row: dict[str, Any] = {"erased_subjects": checkpoint, "erased_records": len(erased)}

        # S3T, deactivation only.
        choices = serving_choices(plan, deleted0)
        row["s3t_deactivation"] = {
            "serving_shards": len(choices),
            "depths": {str(c.shard): c.depth for c in choices},
            "accuracy": served_accuracy(bench, lambda _: store0, choices, num_slices)
            if choices
            else None,
            "servable": bool(choices),
            "cost": initial.as_dict(),
        }

        # S3T with scheduled retraining.
        depth = {}
        for s in range(m):
            serving = choose_serving(sequences, rt_deleted[s])
            depth[s] = 0 if serving is None else serving.depth
        due = [
            s
            for s in range(m)
            if needs_retraining(depth[s], profile.threshold, num_slices=num_slices)
        ]
        retrain = Cost()
        if due:
            generation += 1
            remaining = [k for k in keys if k not in erased and rt_cell[k].shard in due]
            fresh = cells_of(bench, remaining, len(due), num_slices, SEED + generation)
            if len(set(fresh.values())) < len(due) * num_slices:
                raise RuntimeError("retraining left a cell empty: use more subjects")
            name = f"retention-m{m}-L{num_slices}-g{generation}"
            placed = {k: Cell(due[c.shard], c.slice) for k, c in fresh.items()}
            retrain = train_s3t(
                bench,
                bench.store(name),
                num_slices=num_slices,
                sequences=dict.fromkeys(due, sequences),
                slices=slices_by_shard(bench, placed),
            )
            rt_cell.update(placed)
            for s in due:
                rt_store[s], rt_deleted[s] = name, set()
            rt_cost.add(retrain)
        rt_choices = serving_choices(plan, rt_deleted)
        row["s3t_retrain"] = {
            "retrained_shards": due,
            "depths_before": {str(s): d for s, d in depth.items()},
            "retrain": retrain.as_dict(),
            "accuracy": served_accuracy(bench, rt_store.__getitem__, rt_choices, num_slices),
            "cost": rt_cost.as_dict(),
        }

        sx_generation, sx_retrain, sx_due = _suffix_retrain(
            bench, profile, cells0, erased, sx_store, sx_deleted, sx_generation
        )
        sx_cost.add(sx_retrain)
        sx_choices = serving_choices(plan, sx_deleted)
        row["s3t_retrain_suffix"] = {
            "retrained_shards": sx_due,
            "retrain": sx_retrain.as_dict(),
            "accuracy": served_accuracy(bench, sx_store.__getitem__, sx_choices, num_slices),
            "cost": sx_cost.as_dict(),
        }

        # SISA: retrain every hit shard from scratch on its remaining records.
        hit = sorted(sisa_hits)
        retrain = Cost()
        for s in hit:
            remaining = [
                bench.train[k] for k, sh in sisa_shard.items() if sh == s and k not in erased
            ]
            sisa_model[s] += 1
            cost, probs = train_all_groups(bench, remaining, StageKey(s, (sisa_model[s],)))
            bench.probs[("sisa", sisa_model[s], s)] = probs
            retrain.add(cost)
            # After every erasure instead: one retrain per hit (each on about this many
            # records; the exact count shrinks by one subject per erasure).
            sisa_per_erasure.add(
                Cost(cost.seconds * sisa_hits[s], cost.example_epochs * sisa_hits[s], sisa_hits[s])
            )
        sisa_cost.add(retrain)
        row["sisa_retrain"] = {
            "retrained_shards": hit,
            "erasures_per_shard": {str(s): sisa_hits[s] for s in hit},
            "retrain": retrain.as_dict(),
            "accuracy": acc(
                bench, mean_probs([bench.probs[("sisa", sisa_model[s], s)] for s in range(m)])
            ),
            "cost": sisa_cost.as_dict(),
            "cost_if_retrained_after_every_erasure": sisa_per_erasure.as_dict(),
        }
        row["full_retrain_after_every_erasure"] = Cost(
            full_cost.seconds * (1 + checkpoint),
            full_cost.example_epochs * (1 + checkpoint),
            1 + checkpoint,
        ).as_dict()
        sisa_hits.clear()
        rows.append(row)
        print(
            f"erased {checkpoint}: S3T deact {row['s3t_deactivation']['accuracy']}, "
            f"S3T retrain {row['s3t_retrain']['accuracy']} (due {due}), "
            f"S3T suffix {row['s3t_retrain_suffix']['accuracy']} (due {sx_due}), "
            f"SISA {row['sisa_retrain']['accuracy']} (hit {hit})",
            flush=True,
        )
    result = {
        "m": m,
        "L": num_slices,
        "B": budget,
        "sequences": [list(s) for s in sequences],
        "policy": "cyclic",
        "threshold": profile.threshold,
        "erasure_order_seed": SEED,
        "subjects": len(subjects),
        "cells": _cell_counts(cells0, m, num_slices),
        "ensemble_check_equal": ensemble_check,
        "expected_erasures_until_not_servable": round(
            m * num_slices * _harmonic(m * min(budget, num_slices)), 1
        ),
        "initial": {"s3t": initial.as_dict(), "sisa": sisa_initial.as_dict()},
        "checkpoints": rows,
        "accounting": accounting_table(bench.subject_of, profile),
    }
    return result, initial


def _suffix_retrain(
    bench: Bench,
    profile: Profile,
    cells0: Mapping[str, Cell],
    erased: set[str],
    stores: dict[int, str],
    deleted: dict[int, set[int]],
    generation: int,
) -> tuple[int, Cost, list[int]]:
    """Retrain the due shards' dirty stages only, on their kept cells minus erased records.

    Clean stages are carried into the new generation's store as they are (same digests);
    ``train_shard`` reuses them and trains the rest from the kept parents.
    """
    m, num_slices, budget = profile.retention
    sequences = cyclic(num_slices, budget)
    due = []
    for s in range(m):
        serving = choose_serving(sequences, deleted[s])
        depth = 0 if serving is None else serving.depth
        if needs_retraining(depth, profile.threshold, num_slices=num_slices):
            due.append(s)
    cost = Cost()
    if not due:
        return generation, cost, due
    generation += 1
    name = f"retention-m{m}-L{num_slices}-suffix-g{generation}"
    new = bench.store(name)
    for s in due:
        old = bench.store(stores[s])
        for prefix in stage_plan(sequences):
            if not deleted[s] & set(prefix):
                new.save(old.load(StageKey(s, prefix)))
    remaining = {k: c for k, c in cells0.items() if k not in erased and c.shard in due}
    cost = train_s3t(
        bench,
        new,
        num_slices=num_slices,
        sequences=dict.fromkeys(due, sequences),
        slices=slices_by_shard(bench, remaining),
    )
    for s in due:
        stores[s], deleted[s] = name, set()
    return generation, cost, due


def _harmonic(n: int) -> float:
    return sum(1 / i for i in range(1, n + 1))


def _cell_counts(cells: Mapping[str, Cell], m: int, num_slices: int) -> list[list[int]]:
    counts = [[0] * num_slices for _ in range(m)]
    for c in cells.values():
        counts[c.shard][c.slice] += 1
    return counts


# --- exact compute accounting of the retention part (no training) ------------------------


def retention_accounting(
    subject_of: Mapping[str, str],
    *,
    m: int,
    num_slices: int,
    budget: int,
    threshold: int,
    checkpoints: Sequence[int],
    mode: str,
    epochs: int = 1,
    order_seed: int = SEED,
) -> dict[str, Any]:
    """Example-epochs of part 2's policies, from the plans and record counts alone.

    The same erasure order, cells and retraining rules as ``part_retention`` (a stage reads
    every record of its prefix's slices). ``mode``: "full" re-partitions a due shard and
    trains all its stages; "suffix" keeps its cells minus erased records and trains only
    the stages whose prefix holds a dirty slice, as ``model_retrain`` does. SISA retrains
    each hit shard once per checkpoint and, exactly, after every single erasure.
    ``order_seed``: the erasure order's seed (the bench's own by default).
    """
    keys = sorted(subject_of)
    sequences = cyclic(num_slices, budget)
    prefixes = stage_plan(sequences)
    cells0 = assign(
        [(k, subject_of[k]) for k in keys], num_shards=m, num_slices=num_slices, seed=SEED
    )
    subjects = sorted(set(subject_of.values()))
    random.Random(order_seed).shuffle(subjects)
    records_of: dict[str, list[str]] = {}
    for k in keys:
        records_of.setdefault(subject_of[k], []).append(k)
    cell, live = dict(cells0), set(keys)

    def shard_cost(s: int, dirty: set[int] | None) -> tuple[int, int]:
        counts = Counter(cell[k].slice for k in live if cell[k].shard == s)
        todo = [p for p in prefixes if dirty is None or dirty & set(p)]
        return sum(counts[x] for p in todo for x in p) * epochs, len(todo)

    def sisa_shard_size(s: int) -> int:
        return sum(cells0[k].shard == s for k in live) * epochs

    s3t_initial = sum(shard_cost(s, None)[0] for s in range(m))
    sisa_initial = len(keys) * epochs
    deleted: dict[int, set[int]] = {s: set() for s in range(m)}
    retrain = sisa_retrain = sisa_every = stages = events = generation = done = 0
    rows = []
    for checkpoint in checkpoints:
        hits = set()
        for subject in subjects[done:checkpoint]:
            ks = records_of[subject]
            live.difference_update(ks)
            deleted[cell[ks[0]].shard].add(cell[ks[0]].slice)
            hits.add(cells0[ks[0]].shard)
            sisa_every += sisa_shard_size(cells0[ks[0]].shard)
        done = checkpoint
        sisa_retrain += sum(sisa_shard_size(s) for s in hits)
        depth = [max(sequence_depth(o, deleted[s]) for o in sequences) for s in range(m)]
        due = [s for s in range(m) if needs_retraining(depth[s], threshold, num_slices=num_slices)]
        if due:
            generation += 1
            if mode == "full":
                remaining = [k for k in sorted(live) if cell[k].shard in due]
                fresh = assign(
                    [(k, subject_of[k]) for k in remaining],
                    num_shards=len(due),
                    num_slices=num_slices,
                    seed=SEED + generation,
                )
                cell.update({k: Cell(due[c.shard], c.slice) for k, c in fresh.items()})
            for s in due:
                cost, n = shard_cost(s, None if mode == "full" else deleted[s])
                retrain, stages, events = retrain + cost, stages + n, events + 1
                deleted[s] = set()
        rows.append({"erased_subjects": checkpoint, "due": due, "depths_before": depth})
    total, sisa = s3t_initial + retrain, sisa_initial + sisa_retrain
    return {
        "mode": mode,
        "m": m,
        "L": num_slices,
        "B": budget,
        "threshold": threshold,
        "s3t_initial": s3t_initial,
        "s3t_retrain": retrain,
        "s3t_stages_retrained": stages,
        "s3t_shard_retrains": events,
        "sisa_initial": sisa_initial,
        "sisa_retrain_per_checkpoint": sisa_retrain,
        "sisa_retrain_every_erasure": sisa_every,
        "vs_sisa": round(total / sisa, 3),
        "vs_sisa_retraining_only": round(retrain / sisa_retrain, 3) if sisa_retrain else None,
        "vs_sisa_every_erasure": round(total / (sisa_initial + sisa_every), 3),
        "checkpoints": rows,
    }


ACCOUNTING_CONFIGS = ((4, 2, 2, 1), (4, 2, 2, 2), (4, 2, 1, 1), (4, 3, 1, 1), (4, 3, 3, 3))
ACCOUNTING_CONFIGS += ((4, 4, 1, 1), (4, 4, 1, 4), (4, 4, 2, 4), (8, 3, 1, 1), (8, 4, 1, 1))
ACCOUNTING_ORDERS = 20  # erasure orders per configuration (seeds SEED .. SEED + 19)


def accounting_table(subject_of: Mapping[str, str], profile: Profile) -> dict[str, Any]:
    """Exact example-epochs of both retraining modes: the bench's own configuration and
    order (which the measured costs must equal), and a grid of (m, L, B, threshold), each
    as the mean ratio over ``ACCOUNTING_ORDERS`` erasure orders."""
    m, num_slices, budget = profile.retention
    own = {
        mode: retention_accounting(
            subject_of,
            m=m,
            num_slices=num_slices,
            budget=budget,
            threshold=profile.threshold,
            checkpoints=profile.checkpoints,
            mode=mode,
            epochs=profile.epochs,
        )
        for mode in ("full", "suffix")
    }
    grid = []
    keys = ("vs_sisa", "vs_sisa_retraining_only", "vs_sisa_every_erasure")
    configs = ACCOUNTING_CONFIGS if len(subject_of) > 500 else ()  # --quick: none
    for cm, cl, cb, ct in configs:
        for mode in ("full", "suffix"):
            runs = [
                retention_accounting(
                    subject_of,
                    m=cm,
                    num_slices=cl,
                    budget=cb,
                    threshold=ct,
                    checkpoints=profile.checkpoints,
                    mode=mode,
                    epochs=profile.epochs,
                    order_seed=SEED + i,
                )
                for i in range(ACCOUNTING_ORDERS)
            ]
            row: dict[str, Any] = {"m": cm, "L": cl, "B": cb, "threshold": ct, "mode": mode}
            for k in keys:
                values = [r[k] for r in runs if r[k] is not None]
                row[k] = round(sum(values) / len(values), 3) if values else None
            row["vs_sisa_min"] = min(r["vs_sisa"] for r in runs)
            row["vs_sisa_bench_order"] = runs[0]["vs_sisa"]
            grid.append(row)
    return {"bench": own, "grid": grid, "orders": ACCOUNTING_ORDERS}


def retention_summary(retention: dict[str, Any]) -> dict[str, Any]:
    """Headline compute ratios at the last checkpoint (example-epochs, same run)."""
    last = retention["checkpoints"][-1]
    s3t0 = retention["initial"]["s3t"]["example_epochs"]
    sisa0 = retention["initial"]["sisa"]["example_epochs"]
    every = retention["accounting"]["bench"]["suffix"]["sisa_retrain_every_erasure"]
    out: dict[str, Any] = {}
    for name, key in (("", "s3t_retrain_suffix"), ("_full_repartition", "s3t_retrain")):
        s3t = last[key]["cost"]["example_epochs"]
        sisa = last["sisa_retrain"]["cost"]["example_epochs"]
        out[f"retrain_compute_vs_sisa{name}"] = round(s3t / sisa, 3)
        out[f"retrain_compute_vs_sisa_retraining_only{name}"] = (
            round((s3t - s3t0) / (sisa - sisa0), 3) if sisa > sisa0 else None
        )
        out[f"retrain_compute_vs_sisa_every_erasure{name}"] = round(s3t / (sisa0 + every), 3)
    out["retrain_accuracy_last_checkpoint"] = last["s3t_retrain_suffix"]["accuracy"]
    out["sisa_accuracy_last_checkpoint"] = last["sisa_retrain"]["accuracy"]
    return out


# --- part 3: training cost with and without shared prefixes ------------------------------


def part_training(bench: Bench, profile: Profile) -> dict[str, Any]:
    num_slices, epochs = profile.cost_slices, profile.cost_epochs
    keys = sorted(bench.train)[: profile.cost_records]
    cells = cells_of(bench, keys, 1, num_slices, SEED)
    slices = slices_by_shard(bench, cells)
    sequences = full_budget(num_slices)

    shared = train_s3t(
        bench,
        bench.store("cost-shared"),
        num_slices=num_slices,
        sequences={0: sequences},
        slices=slices,
        epochs=epochs,
    )
    separate = Cost()
    for i, order in enumerate(sequences):
        separate.add(
            train_s3t(
                bench,
                bench.store(f"cost-separate-{i}"),
                num_slices=num_slices,
                sequences={0: [order]},
                slices=slices,
                epochs=epochs,
            )
        )
    # Sharing is exact: a prefix's stage is the same tensors however many sequences use it.
    shared_store = bench.store("cost-shared")
    identical = all(
        bench.store(f"cost-separate-{i}").load(StageKey(0, order[:d])).digest
        == shared_store.load(StageKey(0, order[:d])).digest
        for i, order in enumerate(sequences)
        for d in range(1, num_slices + 1)
    )
    full, _ = train_all_groups(bench, [bench.train[k] for k in keys], StageKey(-2, (0,)), epochs)
    print(
        f"cost: shared {shared.as_dict()}, separate {separate.as_dict()}, full {full.as_dict()}",
        flush=True,
    )
    return {
        "records": len(keys),
        "m": 1,
        "L": num_slices,
        "B": len(sequences),
        "policy": "full budget",
        "epochs": epochs,
        "shared_prefixes": shared.as_dict(),
        "no_sharing": separate.as_dict(),
        "full_finetune": {**full.as_dict(), "note": "SISA with m = 1 is this model"},
        "identical_stage_digests": identical,
        "analytic": analytic_table(),
    }


def plan_cost(sequences: Sequence[tuple[int, ...]], num_slices: int) -> dict[str, Any]:
    """Stages and shard-passes per epoch (a stage at depth d reads d/L of the shard)."""
    shared = stage_plan(sequences)
    return {
        "stages_shared": len(shared),
        "stages_no_sharing": len(sequences) * num_slices,
        "passes_shared": round(sum(len(p) for p in shared) / num_slices, 3),
        "passes_no_sharing": round(len(sequences) * (num_slices + 1) / 2, 3),
    }


def analytic_table() -> list[dict[str, Any]]:
    """Per shard and epoch, from the plans; a full fine-tune or SISA reads 1 shard-pass."""
    rows = []
    for num_slices, budgets in (
        (3, (1, 2, 3, 6)),
        (4, (1, 2, 4, 8, 24)),
        (6, (1, 2, 3, 6, 12, 24, 120, 720)),
    ):
        for budget in budgets:
            if budget == math.factorial(num_slices):
                sequences, policy = full_budget(num_slices), "full"
            else:
                sequences, policy = cyclic(num_slices, budget), "cyclic"
            rows.append(
                {"L": num_slices, "B": budget, "policy": policy, **plan_cost(sequences, num_slices)}
            )
    return rows


# --- main --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke test (< 2 minutes)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: 2 threads collapse under contention)",
    )
    args = parser.parse_args()
    profile = QUICK if args.quick else DEFAULT
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    data = generate(num_subjects=profile.subjects, seed=SEED)
    label_index = {name: i for i, name in enumerate(data.labels)}
    bench = Bench(
        train={
            r.external_id: Example(r.external_id, label_index[r.label], r.text) for r in data.train
        },
        subject_of={r.external_id: r.subject_id for r in data.train},
        test=[Example(r.external_id, label_index[r.label], r.text) for r in data.test],
        num_labels=len(data.labels),
        settings=TrainSettings(
            epochs=profile.epochs,
            learning_rate=profile.learning_rate,
            batch_size=profile.batch_size,
        ),
        collate=make_collator(BACKBONE),
        root=Path(tempfile.mkdtemp(prefix="bench-utility-")),
    )
    parts: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = fn()
        parts[name] = round(time.perf_counter() - start, 1)
        return value

    utility = timed("utility", lambda: part_utility(bench, profile))
    retention, retention_cost = timed("retention", lambda: part_retention(bench, profile))
    timed("utility_finish", lambda: finish_utility(bench, utility, retention_cost))
    training = timed("training_cost", lambda: part_training(bench, profile))
    wall = round(time.perf_counter() - started, 1)
    timing = {
        "parts_s": parts,
        "eval_s": round(bench.eval_seconds, 1),
        "evals": bench.evals,
        "total_s": wall,
    }
    training["utility_runs"] = _training_runs(utility, retention)
    write_results(
        "utility",
        {
            "machine": machine_info(postgres=False),
            "settings": {
                "profile": "quick" if args.quick else "default",
                "backbone": BACKBONE,
                "threads": args.threads,
                **asdict(profile),
                "lora": asdict(LoraSettings()),
                "optimiser": "AdamW, constant learning rate, no weight decay",
                "padding": "longest",
                "seed": SEED,
                "train_messages": len(bench.train),
                "train_subjects": len(set(bench.subject_of.values())),
                "test_messages": len(bench.test),
            },
            "utility": utility,
            "retention": retention,
            "training": training,
            "wall": timing,
            "summary": retention_summary(retention),
        },
    )
    shutil.rmtree(bench.root, ignore_errors=True)
    print(f"done in {wall} s: {timing}")


def _training_runs(utility: dict[str, Any], retention: dict[str, Any]) -> list[dict[str, Any]]:
    """Training cost of every model part 1 and 2 trained, for the training section's table."""
    runs = [{"model": "full fine-tune", "m": 1, **utility["full_finetune"]["cost"]}]
    for c in utility["s3t"]:
        budget = retention["B"] if c.get("cost_note") else 1
        runs.append(
            {
                "model": f"S3T m={c['m']} L={c['L']} B={budget}",
                "m": c["m"],
                "L": c["L"],
                "B": budget,
                **c["cost"],
            }
        )
    for s in utility["sisa"]:
        if s["m"] > 1:
            runs.append({"model": f"SISA m={s['m']}", "m": s["m"], **s["cost"]})
    return runs


if __name__ == "__main__":
    main()
