"""Accuracy kept by S3T, and behavioural (membership-inference) evidence of its erasures.

Engine only (no Django); MiniLM on the sample tickets (the data and split of
``bench_utility.py``: 300 subjects, seed 7). In one run:

1. **Baseline**: one LoRA fine-tune on all data (every block's LoRA and the head trainable
   together: ``unlearning.baseline.train_jointly``, a stage's loop), with the legacy settings and
   with the settings chosen in part 3.
2. **Variants of S3T m=2 L=3** at zero deletions (each shard serves sequence 1 at full
   depth, so only that sequence is trained): the legacy settings; rsLoRA; warm-up + linear
   decay; epochs per stage scaled to the data the stage reads. Every variant is served
   two ways from the same stages (mean of the shards' probabilities, Lethe's rule so far;
   softmax of their mean logits, the paper's): averaging costs no training.
3. **Chosen**: every single change that gained over the legacy S3T run, combined; with the
   better averaging rule. Minimum serving depth: the accuracy of the ensemble when every
   shard serves depth d, against the expected deletions a shard takes before it falls
   below d (``policy.expected_deletions_left``, B=3 cyclic).
4. **Membership inference** on the chosen model: the erased subjects are the demo's
   subject (most messages) and others of the same (shard, slice) cell. Per-record loss
   (cross entropy of the served probabilities; higher loss = non-member) of the erased
   records against the held-out test records, as ROC AUC, on (a) the model before the
   erasure, (b) after it (each shard serves its longest clean prefix, B=3 cyclic), and
   (c) a model trained from scratch without those subjects (same partition, seeds and
   settings). Exact unlearning predicts (b) = (c) up to the difference of the served
   models; the bench reports the paired bootstrap of (b) − (c). Stages of (c) that never
   read the erased slice are checked bit-identical (digests) to (b)'s.

Writes bench/results/accuracy.json (section bench/sections/accuracy.py).
Usage: python bench/bench_accuracy.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("MKL_CBWR", "AVX2,STRICT")
os.environ.setdefault("ATEN_CPU_CAPABILITY", "default")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.harness import machine_info, write_results  # noqa: E402
from unlearning.artifacts import LocalArtifactStore, StageKey  # noqa: E402
from unlearning.assembly import AdapterHost, LoraSettings  # noqa: E402
from unlearning.backbones import build_base, make_collator  # noqa: E402
from unlearning.baseline import train_jointly  # noqa: E402
from unlearning.data import Example  # noqa: E402
from unlearning.ensemble import (  # noqa: E402
    AVERAGING,
    Ensemble,
    StageCache,
    average_shards,
    serving_choices,
)
from unlearning.partition import Cell, assign  # noqa: E402
from unlearning.policy import expected_deletions_left  # noqa: E402
from unlearning.sample_data import generate  # noqa: E402
from unlearning.sequences import cyclic  # noqa: E402
from unlearning.training import (  # noqa: E402
    TrainSettings,
    train_shard,
)

BACKBONE = "minilm"
SEED = 7
EVAL_BATCH = 64
BOOTSTRAP = 2000
MIN_GAIN = 0.005  # half a point: about one held-out message in 242 is noise


@dataclass(frozen=True)
class Profile:
    subjects: int
    epochs: int
    learning_rate: float
    batch_size: int
    shards: int
    slices: int
    budget: int  # B of the membership-inference model (cyclic)
    mia_subjects: int  # erased subjects (all in one cell)


DEFAULT = Profile(300, 1, 5e-3, 32, 2, 3, 3, 25)
QUICK = Profile(36, 1, 5e-3, 32, 2, 3, 3, 3)


@dataclass(frozen=True)
class Variant:
    name: str
    settings: TrainSettings
    lora: LoraSettings


@dataclass
class Bench:
    train: dict[str, Example]
    subject_of: dict[str, str]
    test: list[Example]
    num_labels: int
    root: Path
    collate: Any = None
    hosts: dict[tuple[int, bool], AdapterHost] = field(default_factory=dict)
    logits: dict[tuple[Any, ...], torch.Tensor] = field(default_factory=dict)
    probe: list[Example] = field(default_factory=list)  # evaluated besides the test split

    def host(self, groups: int, lora: LoraSettings) -> AdapterHost:
        key = (groups, lora.rslora)
        if key not in self.hosts:
            base = build_base(BACKBONE, self.num_labels)
            self.hosts[key] = AdapterHost(base, num_groups=groups, lora=lora)
        return self.hosts[key]

    def eval_logits(self, host: AdapterHost) -> torch.Tensor:
        """Logits of the host's current model on the test split, then the probe records."""
        rows = self.test + self.probe
        out = []
        with torch.inference_mode():
            for i in range(0, len(rows), EVAL_BATCH):
                batch = [
                    Example(f"in-{j}", 0, e.payload) for j, e in enumerate(rows[i : i + EVAL_BATCH])
                ]
                out.append(host.model(**self.collate(batch)).logits.float())
        return torch.cat(out)

    def labels(self) -> torch.Tensor:
        return torch.tensor([e.label for e in self.test + self.probe])


def accuracy_of(bench: Bench, probs: torch.Tensor) -> float:
    n = len(bench.test)
    hits = probs[:n].argmax(dim=-1) == bench.labels()[:n]
    return round(float(hits.float().mean()), 4)


def train_full(bench: Bench, variant: Variant) -> tuple[dict[str, Any], torch.Tensor]:
    """One LoRA model (all blocks, one group) + head on all training data; its logits."""
    host = bench.host(1, variant.lora)
    start = time.perf_counter()
    train_jointly(
        host,
        list(bench.train.values()),
        collate=bench.collate,
        settings=variant.settings,
        model_seed=SEED,
        key=StageKey(-1, (0,)),
    )
    seconds = time.perf_counter() - start
    logits = bench.eval_logits(host)
    examples = len(bench.train) * variant.settings.epochs
    cost = {"seconds": round(seconds, 1), "example_epochs": examples}
    return cost, logits


def train_s3t(
    bench: Bench,
    variant: Variant,
    store_name: str,
    sequences: Mapping[int, Sequence[tuple[int, ...]]],
    slices: Mapping[int, Mapping[int, Sequence[Example]]],
    num_slices: int,
) -> dict[str, Any]:
    """Train the given shards' sequences into a store (stages already there are reused)."""
    host = bench.host(num_slices, variant.lora)
    store = LocalArtifactStore(bench.root / store_name)
    cost = {"seconds": 0.0, "example_epochs": 0, "stages": 0}

    def on_stage(artifact: Any, reused: bool) -> None:
        if not reused:
            epochs = variant.settings.epochs_at(artifact.key.position, num_slices)
            cost["example_epochs"] += int(artifact.metrics["examples"]) * epochs
            cost["stages"] += 1

    for shard in sorted(sequences):
        start = time.perf_counter()
        train_shard(
            host,
            shard=shard,
            sequences=sequences[shard],
            slices=slices[shard],
            store=store,
            collate=bench.collate,
            settings=variant.settings,
            model_seed=SEED,
            on_stage=on_stage,
        )
        cost["seconds"] = round(cost["seconds"] + time.perf_counter() - start, 1)
    return cost


def prefix_logits(
    bench: Bench,
    variant: Variant,
    store_name: str,
    shard: int,
    prefix: tuple[int, ...],
    num_slices: int,
) -> torch.Tensor:
    key = (store_name, shard, prefix)
    if key not in bench.logits:
        store = LocalArtifactStore(bench.root / store_name)
        host = bench.host(num_slices, variant.lora)
        host.activate([store.load(StageKey(shard, prefix[:d])) for d in range(1, len(prefix) + 1)])
        bench.logits[key] = bench.eval_logits(host)
    return bench.logits[key]


def slices_by_shard(
    bench: Bench, cells: Mapping[str, Cell], skip: set[str] | None = None
) -> dict[int, dict[int, list[Example]]]:
    out: dict[int, dict[int, list[Example]]] = {}
    for key, cell in cells.items():
        if skip and key in skip:
            continue
        out.setdefault(cell.shard, {}).setdefault(cell.slice, []).append(bench.train[key])
    return out


# --- membership inference -----------------------------------------------------------------


def auc(members: np.ndarray, nonmembers: np.ndarray) -> float:
    """P(loss of a non-member > loss of a member), ties counted half (Mann-Whitney)."""
    diff = nonmembers[None, :] - members[:, None]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def losses(bench: Bench, probs: torch.Tensor) -> np.ndarray:
    picked = probs.gather(1, bench.labels()[:, None]).squeeze(1)
    return (-picked.clamp_min(1e-12).log()).numpy()


# Paired bootstrap differences reported by ``mia``.
_MIA_PAIRS = (
    ("after", "never_trained"),
    ("before", "never_trained"),
    ("after", "never_trained_same_serving"),
)


def mia(bench: Bench, models: Mapping[str, torch.Tensor], members: slice) -> dict[str, Any]:
    """AUC per model with bootstrap stderr; paired bootstrap of the ``_MIA_PAIRS``."""
    n = len(bench.test)
    loss = {name: losses(bench, p) for name, p in models.items()}
    rng = np.random.default_rng(SEED)
    m_idx = np.arange(members.start, members.stop)
    t_idx = np.arange(n)
    boots: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(BOOTSTRAP):
        mb = rng.choice(m_idx, size=len(m_idx))
        tb = rng.choice(t_idx, size=len(t_idx))
        for name, values in loss.items():
            boots[name].append(auc(values[mb], values[tb]))
    out: dict[str, Any] = {}
    for name, values in loss.items():
        b = np.array(boots[name])
        out[name] = {
            "auc": round(auc(values[m_idx], values[t_idx]), 4),
            "stderr": round(float(b.std()), 4),
            "ci95": [
                round(float(np.quantile(b, 0.025)), 4),
                round(float(np.quantile(b, 0.975)), 4),
            ],
            "mean_loss_erased": round(float(values[m_idx].mean()), 4),
            "mean_loss_heldout": round(float(values[t_idx].mean()), 4),
        }
    for first, second in _MIA_PAIRS:
        diff = np.array(boots[first]) - np.array(boots[second])
        out[f"{first}_minus_{second}"] = {
            "auc": round(out[first]["auc"] - out[second]["auc"], 4),
            "stderr": round(float(diff.std()), 4),
            "ci95": [
                round(float(np.quantile(diff, 0.025)), 4),
                round(float(np.quantile(diff, 0.975)), 4),
            ],
        }
    return out


# --- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke test")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--variants",
        default="legacy,rslora,warmup_decay,scaled_epochs",
        help="comma-separated subset of the variants to train (legacy is always trained)",
    )
    parser.add_argument(
        "--no-matched-compute",
        action="store_true",
        help="skip the full fine-tune given the chosen S3T model's example-epochs",
    )
    parser.add_argument(
        "--earlier",
        type=Path,
        help="a JSON file of variant rows measured by an earlier run, shown as such",
    )
    args = parser.parse_args()
    profile = QUICK if args.quick else DEFAULT
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    data = generate(num_subjects=profile.subjects, seed=SEED)
    index = {name: i for i, name in enumerate(data.labels)}
    bench = Bench(
        train={r.external_id: Example(r.external_id, index[r.label], r.text) for r in data.train},
        subject_of={r.external_id: r.subject_id for r in data.train},
        test=[Example(r.external_id, index[r.label], r.text) for r in data.test],
        num_labels=len(data.labels),
        root=Path(tempfile.mkdtemp(prefix="bench-accuracy-")),
    )
    bench.collate = make_collator(BACKBONE)
    m, num_slices = profile.shards, profile.slices
    keys = sorted(bench.train)
    cells = assign(
        [(k, bench.subject_of[k]) for k in keys], num_shards=m, num_slices=num_slices, seed=SEED
    )

    # The erased subjects: the demo's (most messages), then others of its cell, seeded.
    by_subject = data.by_subject()
    top = max(by_subject, key=lambda s: (len(by_subject[s]), s))
    cell = cells[by_subject[top][0].external_id]
    mates = sorted({bench.subject_of[k] for k, c in cells.items() if c == cell} - {top})
    random.Random(SEED).shuffle(mates)
    erased_subjects = [top, *mates[: profile.mia_subjects - 1]]
    erased = sorted(k for k in keys if bench.subject_of[k] in erased_subjects)
    bench.probe = [bench.train[k] for k in erased]
    members = slice(len(bench.test), len(bench.test) + len(erased))

    legacy = Variant(
        "legacy",
        TrainSettings(
            epochs=profile.epochs,
            learning_rate=profile.learning_rate,
            batch_size=profile.batch_size,
        ),
        LoraSettings(),
    )
    variants = [
        legacy,
        replace(legacy, name="rslora", lora=LoraSettings(rslora=True)),
        replace(
            legacy, name="warmup_decay", settings=replace(legacy.settings, schedule="warmup_decay")
        ),
        replace(
            legacy, name="scaled_epochs", settings=replace(legacy.settings, stage_epochs="scaled")
        ),
    ]
    wanted = {"legacy", *args.variants.split(",")}
    variants = [v for v in variants if v.name in wanted]
    first = cyclic(num_slices, 1)[0]
    plan0 = {s: [first] for s in range(m)}
    slices = slices_by_shard(bench, cells)

    def serve(
        variant: Variant, store: str, choices: Sequence[tuple[int, tuple[int, ...]]]
    ) -> dict[str, torch.Tensor]:
        parts = [prefix_logits(bench, variant, store, s, p, num_slices) for s, p in choices]
        return {rule: average_shards(parts, rule) for rule in AVERAGING}

    rows: dict[str, Any] = {}
    timing: dict[str, float] = {}
    for variant in variants:
        t0 = time.perf_counter()
        cost = train_s3t(bench, variant, variant.name, plan0, slices, num_slices)
        probs = serve(variant, variant.name, [(s, first) for s in range(m)])
        rows[variant.name] = {
            "settings": variant.settings.recipe(),
            "lora": variant.lora.recipe(),
            "cost": cost,
            "accuracy": {rule: accuracy_of(bench, p) for rule, p in probs.items()},
        }
        timing[variant.name] = round(time.perf_counter() - t0, 1)
        print(f"{variant.name}: {rows[variant.name]}", flush=True)

    # Chosen: logit averaging only if it gains at least MIN_GAIN on the mean over all
    # variants (the same stages served both ways); then every training change that gained.
    base = rows["legacy"]["accuracy"]
    mean = {r: sum(v["accuracy"][r] for v in rows.values()) / len(rows) for r in AVERAGING}
    rule = "logits" if mean["logits"] - mean["probs"] >= MIN_GAIN else "probs"
    gains = {v.name: rows[v.name]["accuracy"][rule] - base[rule] for v in variants[1:]}
    chosen = legacy
    for name in gains:
        if gains[name] > 0:
            v = next(x for x in variants if x.name == name)
            chosen = replace(
                chosen,
                settings=replace(chosen.settings, schedule=v.settings.schedule)
                if name == "warmup_decay"
                else replace(chosen.settings, stage_epochs=v.settings.stage_epochs)
                if name == "scaled_epochs"
                else chosen.settings,
                lora=v.lora if name == "rslora" else chosen.lora,
            )
    names = [n for n in gains if gains[n] > 0]
    existing = {(v.settings, v.lora): v.name for v in variants}
    chosen_store = existing.get((chosen.settings, chosen.lora), "chosen")
    chosen = replace(chosen, name=chosen_store)
    t0 = time.perf_counter()
    if chosen_store == "chosen":
        rows["chosen"] = {
            "settings": chosen.settings.recipe(),
            "lora": chosen.lora.recipe(),
            "cost": train_s3t(bench, chosen, "chosen", plan0, slices, num_slices),
        }
        probs = serve(chosen, "chosen", [(s, first) for s in range(m)])
        rows["chosen"]["accuracy"] = {r: accuracy_of(bench, p) for r, p in probs.items()}
        print(f"chosen: {rows['chosen']}", flush=True)
    chosen_acc = rows[chosen_store]["accuracy"][rule]

    # Minimum serving depth: accuracy when every shard serves depth d, and the headroom.
    budget_plan = cyclic(num_slices, profile.budget)
    depth_rows = []
    for depth in range(1, num_slices + 1):
        probs = serve(chosen, chosen_store, [(s, first[:depth]) for s in range(m)])
        depth_rows.append(
            {
                "depth": depth,
                "accuracy": accuracy_of(bench, probs[rule]),
                "expected_deletions_per_shard": round(
                    expected_deletions_left(budget_plan, set(), num_slices, threshold=depth), 2
                ),
            }
        )
    timing["chosen_and_depths"] = round(time.perf_counter() - t0, 1)

    # Baselines: the full fine-tune with the legacy and with the chosen settings.
    t0 = time.perf_counter()
    full_cost, full_logits = train_full(bench, legacy)
    full = {"legacy": {"cost": full_cost, "accuracy": accuracy_of(bench, full_logits.softmax(-1))}}
    # One model is one stage: "scaled" epochs do not apply to it.
    full_variant = replace(chosen, settings=replace(chosen.settings, stage_epochs="fixed"))
    if (full_variant.settings, full_variant.lora) != (legacy.settings, legacy.lora):
        cost, logits = train_full(bench, full_variant)
        full["chosen"] = {"cost": cost, "accuracy": accuracy_of(bench, logits.softmax(-1))}
    else:
        full["chosen"] = {**full["legacy"], "same_as": "legacy"}
    # And with the chosen S3T model's training compute (example-epochs), rounded to epochs.
    s3t_epochs = rows[chosen_store]["cost"]["example_epochs"] / len(bench.train)
    matched = replace(
        full_variant,
        settings=replace(full_variant.settings, epochs=max(1, round(s3t_epochs))),
    )
    if args.no_matched_compute:
        full["matched_compute"] = None
    elif matched.settings.epochs != full_variant.settings.epochs:
        cost, logits = train_full(bench, matched)
        full["matched_compute"] = {
            "epochs": matched.settings.epochs,
            "cost": cost,
            "accuracy": accuracy_of(bench, logits.softmax(-1)),
        }
    else:
        full["matched_compute"] = {"epochs": matched.settings.epochs, **full["chosen"]}
    timing["full"] = round(time.perf_counter() - t0, 1)
    print(f"full: {full}", flush=True)

    # Membership inference on the chosen model, B cyclic sequences on the erased shard.
    t0 = time.perf_counter()
    plan = {s: (budget_plan if s == cell.shard else [first]) for s in range(m)}
    before = serving_choices(plan, {})
    after = serving_choices(plan, {cell.shard: {cell.slice}})
    # Only the stages served before or after are trained (the other sequences' stages are
    # the same function of their prefixes whether trained or not).
    clean = next(c for c in after if c.shard == cell.shard).stages[-1].prefix
    needed = {s: [first, clean] if s == cell.shard else [first] for s in range(m)}
    mia_cost = train_s3t(bench, chosen, chosen_store, needed, slices, num_slices)
    served_before = serve(chosen, chosen_store, [(c.shard, c.stages[-1].prefix) for c in before])
    served_after = serve(chosen, chosen_store, [(c.shard, c.stages[-1].prefix) for c in after])
    # Check once that the cached per-shard logits give what Ensemble serves.
    store = LocalArtifactStore(bench.root / chosen_store)
    ens = Ensemble(
        bench.host(num_slices, chosen.lora),
        after,
        StageCache(store.load),
        bench.collate,
        averaging=rule,
    )
    rows_all = bench.test + bench.probe
    served = torch.cat(
        [
            ens.predict_proba([e.payload for e in rows_all[i : i + EVAL_BATCH]])
            for i in range(0, len(rows_all), EVAL_BATCH)
        ]
    )
    ensemble_check = bool(torch.equal(served, served_after[rule]))
    # Never trained: the same partition minus the erased records, same seeds and settings.
    # The erased shard trains sequence 1 (what it serves with nothing deleted) and the
    # clean prefix that (b) serves, which must come out bit-identical to (b)'s stages.
    never_plan = {cell.shard: [first, clean]}
    never_slices = slices_by_shard(bench, cells, skip=set(erased))
    never_cost = train_s3t(bench, chosen, "never", never_plan, never_slices, num_slices)
    never_parts = []
    for s in range(m):
        store_name = "never" if s == cell.shard else chosen_store
        never_parts.append(prefix_logits(bench, chosen, store_name, s, first, num_slices))
    served_never = {r: average_shards(never_parts, r) for r in AVERAGING}
    # The same from-scratch training served the way (b) serves after its erasure: exact
    # unlearning predicts the very same model, so the very same scores. Evaluated from the
    # "never" store's own tensors, not from (b)'s cached logits.
    same_parts = [
        prefix_logits(
            bench,
            chosen,
            "never" if c.shard == cell.shard else chosen_store,
            c.shard,
            c.stages[-1].prefix,
            num_slices,
        )
        for c in after
    ]
    served_never_same = {r: average_shards(same_parts, r) for r in AVERAGING}
    never_store = LocalArtifactStore(bench.root / "never")
    identical = all(
        never_store.load(StageKey(cell.shard, clean[:d])).digest
        == store.load(StageKey(cell.shard, clean[:d])).digest
        for d in range(1, len(clean) + 1)
    )
    mia_result = mia(
        bench,
        {
            "before": served_before[rule],
            "after": served_after[rule],
            "never_trained": served_never[rule],
            "never_trained_same_serving": served_never_same[rule],
        },
        members,
    )
    timing["mia"] = round(time.perf_counter() - t0, 1)
    print(f"mia: {mia_result}", flush=True)
    wall = round(time.perf_counter() - started, 1)
    accuracy_after = accuracy_of(bench, served_after[rule])
    write_results(
        "accuracy",
        {
            "summary": {
                "accuracy_full": full["chosen"]["accuracy"],
                "accuracy_full_legacy": full["legacy"]["accuracy"],
                "accuracy_full_matched_compute": (full["matched_compute"] or {}).get("accuracy"),
                "accuracy_s3t_m2": chosen_acc,
                "accuracy_s3t_m2_legacy": base["probs"],
                "accuracy_s3t_m2_after_erasure": accuracy_after,
                "mia_auc_before": mia_result["before"]["auc"],
                "mia_auc_after": mia_result["after"]["auc"],
                "mia_auc_never_trained": mia_result["never_trained"]["auc"],
                "mia_auc_never_trained_same_serving": mia_result["never_trained_same_serving"][
                    "auc"
                ],
                "mia_auc_after_minus_never_stderr": mia_result["after_minus_never_trained"][
                    "stderr"
                ],
            },
            "machine": machine_info(postgres=False),
            "settings": {
                "profile": "quick" if args.quick else "default",
                "backbone": BACKBONE,
                "threads": args.threads,
                **asdict(profile),
                "seed": SEED,
                "train_messages": len(bench.train),
                "test_messages": len(bench.test),
                "bootstrap": BOOTSTRAP,
            },
            "variants": rows,
            "earlier_variants": json.loads(args.earlier.read_text()) if args.earlier else None,
            "choice": {
                "averaging": rule,
                "mean_accuracy_by_rule": {r: round(v, 4) for r, v in mean.items()},
                "min_gain": MIN_GAIN,
                "gains_over_legacy": {k: round(v, 4) for k, v in gains.items()},
                "combined": names,
                "store": chosen_store,
                "settings": chosen.settings.recipe(),
                "lora": chosen.lora.recipe(),
            },
            "depths": depth_rows,
            "full_finetune": full,
            "mia": {
                "erased_subjects": len(erased_subjects),
                "erased_records": len(erased),
                "heldout_records": len(bench.test),
                "cell": {"shard": cell.shard, "slice": cell.slice},
                "plan": {str(s): [list(o) for o in p] for s, p in plan.items()},
                "serving_after": {str(c.shard): list(c.stages[-1].prefix) for c in after},
                "accuracy_before": accuracy_of(bench, served_before[rule]),
                "accuracy_after": accuracy_after,
                "accuracy_never_trained": accuracy_of(bench, served_never[rule]),
                "ensemble_check_equal": ensemble_check,
                "clean_prefix_stages_identical": identical,
                "same_serving_scores_equal": bool(
                    torch.equal(served_never_same[rule], served_after[rule])
                ),
                "cost": {"extra_sequences": mia_cost, "never_trained": never_cost},
                **mia_result,
            },
            "wall": {"parts_s": timing, "total_s": wall},
        },
    )
    shutil.rmtree(bench.root, ignore_errors=True)
    print(f"done in {wall} s")


if __name__ == "__main__":
    main()
