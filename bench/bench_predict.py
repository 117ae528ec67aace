"""Predict latency through the API against the engine called directly, on a trained MiniLM.

Set-up (not timed): the sample tickets of ``generate(num_subjects=150)`` are ingested into
a temporary SQLite database, a model is created (base_model "minilm", 2 shards, 3 slices,
2 cyclic sequences, 1 epoch) and trained inline: ``model_train`` partitions and queues
(into a temporary file-system broker nobody reads), then
``governance.services.training_tasks.training_task_run`` runs each TrainingTask in this process.
Artifacts go to a temporary ARTIFACT_ROOT.

Measured, for one input and for a batch of 32 (held-out test messages):
- API: ``POST /api/v1/models/{id}/predict/`` through DRF's in-process ``APIClient`` with an
  ML engineer's token (manifest lookup, serializer, lock, ensemble, label scores);
- baseline: an ``unlearning.ensemble.Ensemble`` over the same stages (the engine's own
  ``serving_choices`` for the model's sequences, checked against the manifest), on its own
  adapter host, called directly with the same inputs.
The first request of each is reported separately (cold: the API builds its serving host and
loads the stages; the baseline's cold figure includes building its host the same way).
Then a warm-up, and interleaved repeats (alternating which runs first) for p50/p95.

Writes bench/results/predict.json and prints a table.

Usage: python bench/bench_predict.py [--subjects 150] [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.harness import (  # noqa: E402
    api_client,
    django_setup,
    machine_info,
    print_table,
    ratio,
    stats_ms,
    timed_ms,
    write_results,
)

SHARDS, SLICES, BUDGET, EPOCHS, POLICY = 2, 3, 2, 1, "cyclic"
BASE_MODEL = "minilm"
BATCH = 32


def _train(subjects: int, user: Any) -> tuple[Any, Any, float]:
    """Ingest the sample data, create the model and train every task inline."""
    from governance.models import TrainingTask
    from governance.services.datasets import dataset_create, records_upsert
    from governance.services.record_rows import validate_rows
    from governance.services.training import ModelSpec, model_create, model_train
    from governance.services.training_tasks import training_task_run
    from unlearning.sample_data import generate

    data = generate(num_subjects=subjects, seed=0)
    dataset = dataset_create(actor=user, name="bench-predict", labels=data.labels)
    rows = [
        {"external_id": r.external_id, "subject_id": r.subject_id, "text": r.text, "label": r.label}
        for r in data.train
    ]
    valid, errors = validate_rows(rows, labels=data.labels, max_rows=len(rows))
    assert not errors, errors[:3]
    records_upsert(actor=user, dataset=dataset, rows=valid)
    spec = ModelSpec(
        name="bench-predict",
        dataset=dataset,
        base_model=BASE_MODEL,
        shards=SHARDS,
        slices=SLICES,
        sequences=BUDGET,
        sequence_policy=POLICY,
        epochs=EPOCHS,
        seed=0,
    )
    model = model_create(actor=user, spec=spec)
    job = model_train(actor=user, model=model)
    start = time.perf_counter()
    for task in TrainingTask.objects.filter(job=job).order_by("pk"):
        training_task_run(task_id=task.pk)
    seconds = time.perf_counter() - start
    model.refresh_from_db()
    job.refresh_from_db()
    if (model.status, job.status) != ("ready", "succeeded"):
        sys.exit(f"training did not finish: model {model.status}, job {job.status} {job.error}")
    return model, data, seconds


def _engine_ensemble(model: Any) -> Any:
    """The engine's own serving choice for the model's sequences, on a fresh host."""
    from governance import engine
    from governance.models import Shard
    from governance.selectors.manifests import manifest_current
    from unlearning.assembly import AdapterHost
    from unlearning.backbones import build_base
    from unlearning.ensemble import Ensemble, StageCache, serving_choices

    sequences = {
        shard.index: [tuple(s.order) for s in shard.sequences.order_by("index")]
        for shard in Shard.objects.filter(model=model, generation=model.generation)
    }
    choices = serving_choices(sequences, {})
    served = [
        (e["shard"], tuple(s["prefix"] for s in e["stages"]))
        for e in manifest_current(model).entries
    ]
    mine = [(c.shard, tuple(engine.prefix_text(k.prefix) for k in c.stages)) for c in choices]
    if mine != served:
        sys.exit(f"engine serving choice {mine} differs from the manifest {served}")
    host = AdapterHost(
        build_base(model.base_model, len(model.dataset.labels)),
        num_groups=model.num_slices,
        lora=engine.lora_settings(model),
    )
    store = engine.artifact_store(model, model.generation)
    return Ensemble(host, choices, StageCache(store.load), engine.collator(model))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=150)
    parser.add_argument("--repeats-one", type=int, default=40)
    parser.add_argument("--repeats-batch", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke run: 24 subjects, few repeats")
    args = parser.parse_args()
    if args.quick:
        args.subjects, args.repeats_one, args.repeats_batch, args.warmup = 24, 6, 3, 1

    tmp = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    try:
        _run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args: argparse.Namespace, tmp: Path) -> None:
    django_setup(
        f"sqlite:///{tmp / 'bench.sqlite3'}",
        ARTIFACT_ROOT=str(tmp / "artifacts"),
        LETHE_BROKER_DIR=str(tmp / "broker"),
        CELERY_BROKER_URL="",  # the embedded file-system broker, in tmp: no one consumes it
        CELERY_TASK_ALWAYS_EAGER="false",
    )
    from governance.permissions import Role

    client = api_client("emil", Role.ML_ENGINEER)
    from django.contrib.auth.models import User

    model, data, train_s = _train(args.subjects, User.objects.get(username="emil"))
    labels = list(data.labels)
    texts = [r.text for r in (*data.test, *data.train)]
    inputs = {"one": texts[:1], f"batch{BATCH}": texts[:BATCH]}
    url = f"/api/v1/models/{model.pk}/predict/"

    def api(payload: list[str]) -> list[str]:
        response = client.post(url, {"inputs": payload}, format="json")
        if response.status_code != 200:
            sys.exit(f"predict answered {response.status_code}: {response.content[:500]!r}")
        return [p["label"] for p in response.json()["predictions"]]

    cold: dict[str, float] = {}
    cold["api_first_request_ms"], _ = timed_ms(lambda: api(inputs["one"]))
    baseline: dict[str, Any] = {}

    def engine_call(payload: list[str]) -> list[str]:
        if "ensemble" not in baseline:
            baseline["ensemble"] = _engine_ensemble(model)
        return [labels[i] for i in baseline["ensemble"].predict(payload)]

    cold["engine_first_call_ms"], _ = timed_ms(lambda: engine_call(inputs["one"]))

    results_by_input: dict[str, Any] = {}
    for name, payload in inputs.items():
        repeats = args.repeats_one if name == "one" else args.repeats_batch
        for _ in range(args.warmup):
            api(payload)
            engine_call(payload)
        api_ms, engine_ms, agree = [], [], True
        for i in range(repeats):
            first, second = (api, engine_call) if i % 2 == 0 else (engine_call, api)
            a_ms, a = timed_ms(partial(first, payload))
            b_ms, b = timed_ms(partial(second, payload))
            (api_ms if first is api else engine_ms).append(a_ms)
            (engine_ms if first is api else api_ms).append(b_ms)
            agree = agree and a == b
        api_stats, engine_stats = stats_ms(api_ms), stats_ms(engine_ms)
        results_by_input[name] = {
            "inputs": len(payload),
            "api": api_stats,
            "engine": engine_stats,
            "api_over_engine_p50": ratio(api_stats["p50_ms"], engine_stats["p50_ms"]),
            "api_over_engine_p95": ratio(api_stats["p95_ms"], engine_stats["p95_ms"]),
            "same_predictions": agree,
        }

    results = {
        "machine": machine_info(postgres=False),
        "settings": {
            "base_model": BASE_MODEL,
            "shards": SHARDS,
            "slices": SLICES,
            "budget": BUDGET,
            "sequence_policy": POLICY,
            "epochs": EPOCHS,
            "subjects": args.subjects,
            "train_records": len(data.train),
            "inputs": "held-out test messages (then train messages), first 1 and first 32",
            "warmup": args.warmup,
            "database": "sqlite (temporary)",
            "client": "rest_framework.test.APIClient, in process, ml_engineer token",
            "quick": args.quick,
        },
        "training_inline_s": round(train_s, 2),
        "cold": {k: round(v, 2) for k, v in cold.items()},
        "predict": results_by_input,
    }
    path = write_results("predict", results)
    print(f"\ntrained {SHARDS}x{SLICES}x{BUDGET} {BASE_MODEL} on {len(data.train)} records "
          f"in {train_s:.1f} s (inline)")  # fmt: skip
    print_table(
        "Predict latency (ms)",
        ["inputs", "API p50", "API p95", "engine p50", "engine p95", "API/engine p50", "same"],
        [
            [
                name,
                r["api"]["p50_ms"],
                r["api"]["p95_ms"],
                r["engine"]["p50_ms"],
                r["engine"]["p95_ms"],
                r["api_over_engine_p50"],
                r["same_predictions"],
            ]
            for name, r in results_by_input.items()
        ],
    )
    print(
        f"\ncold: API first request {cold['api_first_request_ms']:.0f} ms, "
        f"engine first call {cold['engine_first_call_ms']:.0f} ms"
    )
    print(f"\nwrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
