"""Engine demo: train a small S3T model on the sample data, erase a subject, compare.

Run through ``python manage.py demo`` (or ``python -m unlearning.demo``). It generates the
sample support-ticket dataset, partitions it by data subject into m shards × L slices,
trains B cyclic sequences per shard on the packaged MiniLM, then erases one subject: the
slice holding their records is marked deleted, every stage whose prefix read it is
deactivated and its bytes destroyed, and the ensemble serves each shard's longest clean
prefix. It prints depths, serving choices, accuracy and predictions before and after.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from unlearning.artifacts import LocalArtifactStore, StageArtifact, StageKey
from unlearning.assembly import AdapterHost, LoraSettings
from unlearning.backbones import build_base, make_collator
from unlearning.data import Example
from unlearning.demo_config import DemoConfig
from unlearning.ensemble import Ensemble, StageCache, accuracy, serving_choices
from unlearning.partition import Cell, assign
from unlearning.policy import deactivated_prefixes, shard_report
from unlearning.sample_data import SampleRecord, generate
from unlearning.sequences import plan_sequences
from unlearning.training import TrainSettings, stage_plan, train_shard


def _progress(done: int, total: int, label: str) -> None:
    width = 30
    filled = width * done // total
    bar = "#" * filled + "-" * (width - filled)
    sys.stderr.write(f"\r  training [{bar}] {done}/{total} stages  {label:<32}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _examples(records: Sequence[SampleRecord], labels: Sequence[str]) -> list[Example]:
    index = {label: i for i, label in enumerate(labels)}
    return [Example(r.external_id, index[r.label], r.text) for r in records]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns a process exit code."""
    parser = argparse.ArgumentParser(prog="demo", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    parser.add_argument("--artifacts", type=Path, default=Path("var/demo/artifacts"))
    parser.add_argument("--backbone", default="minilm", help="minilm, a tiny-* model or a path")
    args = parser.parse_args(argv)
    config = DemoConfig.quick() if args.quick else DemoConfig()
    config = replace(config, backbone=args.backbone)
    _run(config, args.artifacts)
    return 0


def _run(config: DemoConfig, root: Path) -> None:
    data = generate(num_subjects=config.subjects, seed=config.seed)
    train, test = _examples(data.train, data.labels), _examples(data.test, data.labels)
    by_key = {r.external_id: r for r in data.train}
    cells = assign(
        [(r.external_id, r.subject_id) for r in data.train],
        num_shards=config.shards,
        num_slices=config.slices,
        seed=config.seed,
    )
    print(
        f"Sample data: {len(train)} training messages from {len(data.subjects())} subjects, "
        f"{len(test)} held-out test messages, intents: {', '.join(data.labels)}"
    )
    sequences = plan_sequences("cyclic", config.slices, config.budget)
    print(
        f"S3T plan: m={config.shards} shards × L={config.slices} slices, B={config.budget} "
        f"cyclic sequences per shard: {sequences}; backbone {config.backbone}"
    )

    if root.exists():
        print(f"Resetting demo artifacts in {root}")
        shutil.rmtree(root)
    store = LocalArtifactStore(root)
    host = AdapterHost(
        build_base(config.backbone, len(data.labels)),
        num_groups=config.slices,
        lora=LoraSettings(),
    )
    collate = make_collator(config.backbone)
    settings = TrainSettings(
        epochs=config.epochs,
        learning_rate=config.learning_rate,
        stage_epochs=config.stage_epochs,
    )
    total = config.shards * len(stage_plan(sequences))
    done = 0

    def tick(artifact: StageArtifact, reused: bool) -> None:
        nonlocal done
        done += 1
        _progress(done, total, f"shard {artifact.key.shard} prefix {artifact.key.prefix}")

    started = time.perf_counter()
    for shard in range(config.shards):
        slices = {
            s: [e for e in train if cells[e.key] == Cell(shard, s)] for s in range(config.slices)
        }
        train_shard(
            host,
            shard=shard,
            sequences=sequences,
            slices=slices,
            store=store,
            collate=collate,
            settings=settings,
            model_seed=config.seed,
            on_stage=tick,
        )
    print(f"Trained {total} stages in {time.perf_counter() - started:.1f} s")

    plan = dict.fromkeys(range(config.shards), sequences)
    cache = StageCache(store.load)
    samples = test[:: max(1, len(test) // 5)][:5]
    before = Ensemble(host, serving_choices(plan, {}), cache, collate)
    acc_before = accuracy(before.predict, test)
    preds_before = before.predict([e.payload for e in samples])

    # Erase the subject with the most training messages: the most personal data to forget.
    subject = max(data.by_subject(), key=lambda s: (len(data.by_subject()[s]), s))
    erased = [k for k, r in by_key.items() if r.subject_id == subject]
    hit = {cells[k] for k in erased}
    print(
        f"\nErasure request for {subject}: {len(erased)} records, all in "
        f"{', '.join(f'shard {c.shard} slice {c.slice}' for c in sorted(hit))}"
    )
    deleted = {shard: {c.slice for c in hit if c.shard == shard} for shard in plan}
    for shard in sorted({c.shard for c in hit}):
        old, new = (
            shard_report(sequences, set(), config.slices),
            shard_report(sequences, deleted[shard], config.slices),
        )
        print(
            f"  shard {shard}: sequence depths {list(old.depths)} -> {list(new.depths)}; "
            f"serving sequence {old.serving.sequence_index if old.serving else None} at depth "
            f"{old.serving.depth if old.serving else 0} -> "
            f"{new.serving.sequence_index if new.serving else None} at depth "
            f"{new.serving.depth if new.serving else 0}; retraining needed: "
            f"{'yes' if new.needs_retraining else 'no'}; "
            f"expected deletions left {old.deletions_left:.1f} -> {new.deletions_left:.1f}"
        )
    destroyed = _purge(store, cache, plan, deleted)
    print(
        f"  deactivated and destroyed {len(destroyed)} stages: "
        f"{', '.join(k.slug() for k in destroyed)}"
    )
    after = Ensemble(host, serving_choices(plan, deleted), cache, collate)
    acc_after = accuracy(after.predict, test)
    preds_after = after.predict([e.payload for e in samples])

    print(
        f"\nHeld-out accuracy: {acc_before:.3f} before, {acc_after:.3f} after the erasure "
        f"(chance {1 / len(data.labels):.3f})"
    )
    for example, p_before, p_after in zip(samples, preds_before, preds_after, strict=True):
        print(
            f"  {str(example.payload)[:70]!r:<74} truth {data.labels[example.label]:<9} "
            f"before {data.labels[p_before]:<9} after {data.labels[p_after]}"
        )


def _purge(
    store: LocalArtifactStore,
    cache: StageCache,
    plan: dict[int, list[tuple[int, ...]]],
    deleted: dict[int, set[int]],
) -> list[StageKey]:
    """Destroy every stage whose prefix read a deleted slice, on disk and in memory."""
    dirty = [
        StageKey(shard, prefix)
        for shard, sequences in plan.items()
        for prefix in deactivated_prefixes(sequences, deleted.get(shard, set()))
    ]
    for key in dirty:
        store.delete(key)
    cache.evict(dirty)
    return dirty


if __name__ == "__main__":
    raise SystemExit(main())
