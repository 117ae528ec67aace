"""Scale-out costs: stage artifacts in an S3-compatible store, and more training workers.

One throw-away PostgreSQL database (default ``lethe_bench_scaleout``), a private
``redis-server`` (bench/stack.py) and a private SeaweedFS (``weed server -s3``, started as
the tests start it: tests/s3.py) on loopback. Every figure is a ratio against a baseline
measured in the same run:

A. **Training throughput, two training workers against one** (``--records`` records, an
   m=2, L=4, B=4 cyclic ``tiny-bert`` model: 8 sequence tasks, 32 stages). Real
   ``manage.py worker --queues=training`` processes, each with its own ARTIFACT_ROOT and
   stage cache, one torch thread each (one worker per core, as one per GPU), artifacts in
   the bucket. The same model spec is trained with one worker, then with two (a new
   model each time). Timed from ``model_train`` (the tasks go through the broker) until
   the job reads ``succeeded``: stages per second and example-epochs per second.
B. **Cold stage load from the store against the local cache**: ``StageStore.load`` of
   the two-worker model's stages, ``--loads`` times each way: *store* (the cache copy
   evicted first: a GET from SeaweedFS, the digest check, the cache write), *cache* (a hit
   in the process's cache folder plus the digest check), and, for reference, the plain
   local folder store (no cache; the embedded default). The same for one synthetic stage
   of ``--large-mib`` MiB (random fp32 tensors): tiny-bert stages are about 12 KB, so
   their loads measure round trips, the large one bandwidth.
C. **Erasure approval to certificate, SeaweedFS against the local folder**: the
   two-worker model's stages are copied into a local folder too, and ``--erasures``
   requests (after 2 warm-ups each) are approved and executed in this process
   (``erasure_request_approve`` + ``erasure_request_execute``; the enqueue is captured),
   alternating backends request by request so the machine's load drifts alike for both.
   Before each request the model is put back as trained (untimed: records, stages, every
   stage object present in the active store), so every request destroys the stages of
   its subject's slices (10 for one slice of a shard; more when its records span
   slices). The S3 run deletes every version (the bucket is versioned) and evicts the
   cache; its certificate asks the bucket (HEAD) that the bytes are gone.

Nothing here runs on a GPU. Writes bench/results/scaleout.json; drops the database at
the end; every folder, the Redis and the SeaweedFS live in a temporary folder removed at
the end.

Usage: python bench/bench_scaleout.py [--records N] [--erasures K] [--loads K]
       [--large-mib M] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lethe_bench_scaleout")

from bench.harness import (  # noqa: E402
    CAPTURED,
    capture_enqueues,
    django_setup,
    generate_rows,
    ingest,
    machine_info,
    postgres_url,
    print_table,
    ratio,
    recreate_postgres,
    restore_as_trained,
    stats_ms,
    write_results,
)
from bench.stack import Redis  # noqa: E402

SHARDS, SLICES, BUDGET, POLICY = 2, 4, 4, "cyclic"
BACKBONE, EPOCHS, BATCH, LR, SEED = "tiny-bert", 1, 32, 1e-3, 0
WARMUP = 2
START_TIMEOUT_S, TRAIN_TIMEOUT_S = 180.0, 3600.0


# --- the deployment's shared parts ---------------------------------------------------------


def _keys() -> dict[str, str]:
    """One deployment's keys (a shared deployment refuses to start without them)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "LETHE_SIGNING_KEY": pem.decode(),
        "LETHE_AUDIT_KEY": secrets.token_hex(32),
        "SECRET_KEY": secrets.token_urlsafe(50),
    }


def _s3_env(server: Any, bucket: str, prefix: str) -> dict[str, str]:
    return {
        "LETHE_ARTIFACTS_S3_BUCKET": bucket,
        "LETHE_ARTIFACTS_S3_ENDPOINT_URL": server.endpoint_url,
        "LETHE_ARTIFACTS_S3_PREFIX": prefix,
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
    }


@contextlib.contextmanager
def _artifacts_in(
    backend: str, server: Any, bucket: str, prefix: str, cache: Path
) -> Iterator[None]:
    """This process's ``STORAGES["artifacts"]`` on the bucket (``s3``) or the folder
    (``local``, the settings' default); the stage-cache object follows."""
    from django.test.utils import override_settings

    from governance.artifacts import stage_cache_reset
    from governance.setting_values import s3_artifacts_storage

    if backend == "local":
        stage_cache_reset()
        yield
        stage_cache_reset()
        return
    from django.conf import settings

    storages = {
        **settings.STORAGES,
        "artifacts": s3_artifacts_storage(
            bucket=bucket, endpoint_url=server.endpoint_url, region=None, prefix=prefix
        ),
    }
    with override_settings(
        STORAGES=storages,
        LETHE_ARTIFACTS_S3_BUCKET=bucket,
        LETHE_ARTIFACTS_S3_ENDPOINT_URL=server.endpoint_url,
        LETHE_ARTIFACTS_S3_PREFIX=prefix,
        LETHE_ARTIFACT_CACHE_DIR=cache,
    ):
        stage_cache_reset()
        try:
            yield
        finally:
            stage_cache_reset()


class TrainingWorker:
    """``manage.py worker --queues=training`` as its own machine: own folders, one thread."""

    def __init__(self, name: str, folder: Path, env: dict[str, str]) -> None:
        self.name = name
        for sub in ("artifacts", "cache", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        self.log_path = folder / "worker.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "worker", "--queues=training", "--loglevel=info"],
            cwd=REPO,
            env={
                **env,
                "ARTIFACT_ROOT": str(folder / "artifacts"),
                "LETHE_ARTIFACT_CACHE_DIR": str(folder / "cache"),
                "TMPDIR": str(folder / "tmp"),
                "LETHE_TORCH_THREADS": "1",
                "LETHE_DEVICE": "cpu",
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def ready(self) -> bool:
        """Celery logs "<name> ready." once its ``worker_ready`` hooks ran."""
        return " ready." in self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM (warm shutdown: its heartbeat row goes), SIGKILL after 30 s."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self._log.close()


def _wait(predicate: Any, workers: list[TrainingWorker], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for worker in workers:
            if not worker.alive():
                sys.exit(f"{worker.name} exited while waiting for {what}:\n{worker.log()}")
        time.sleep(0.2)
    logs = "\n".join(f"--- {w.name}\n{w.log()}" for w in workers)
    sys.exit(f"timed out waiting for {what}:\n{logs}")


# --- A: training throughput ------------------------------------------------------------


def _spec(dataset: Any, name: str) -> Any:
    from governance.services.training import ModelSpec

    return ModelSpec(
        name=name,
        dataset=dataset,
        base_model=BACKBONE,
        shards=SHARDS,
        slices=SLICES,
        sequences=BUDGET,
        sequence_policy=POLICY,
        epochs=EPOCHS,
        learning_rate=LR,
        batch_size=BATCH,
        seed=SEED,
    )


def _train_with(count: int, engineer: Any, dataset: Any, env: dict[str, str], tmp: Path) -> Any:
    """Train a new model of the same spec with ``count`` training workers; timed."""
    from governance.models import Stage, TrainingJob, WorkerHeartbeat
    from governance.services.training import model_create, model_train

    WorkerHeartbeat.objects.all().delete()
    workers = [
        TrainingWorker(f"training-{count}-{n}", tmp / f"workers-{count}" / str(n), env)
        for n in range(count)
    ]
    try:
        _wait(
            lambda: all(w.ready() for w in workers) and WorkerHeartbeat.objects.count() >= count,
            workers,
            START_TIMEOUT_S,
            f"{count} workers ready",
        )
        model = model_create(actor=engineer, spec=_spec(dataset, f"bench-scaleout-{count}"))
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        model_train(actor=engineer, model=model)  # on commit: 8 tasks to the broker
        _wait(
            lambda: TrainingJob.objects.get(model=model).status == "succeeded",
            workers,
            TRAIN_TIMEOUT_S,
            f"training with {count} worker(s)",
        )
        wall = time.perf_counter() - start
    finally:
        for worker in workers:
            worker.stop()
    stages = list(Stage.objects.filter(shard__model=model))
    if len(stages) != SHARDS * SLICES * BUDGET or {s.state for s in stages} != {"trained"}:
        sys.exit(f"training with {count} worker(s) left {len(stages)} stages")
    example_epochs = int(sum(s.metrics["examples"] for s in stages) * EPOCHS)
    return model, {
        "workers": count,
        "wall_s": round(wall, 2),
        "stages": len(stages),
        "stages_per_s": round(len(stages) / wall, 4),
        "example_epochs": example_epochs,
        "example_epochs_per_s": round(example_epochs / wall, 2),
        "stage_seconds_sum": round(sum(s.metrics["seconds"] for s in stages), 2),
        "load_1min_before": round(load_before, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
    }


# --- B: cold load from the store against the cache -------------------------------------------


def _stage_items(model: Any) -> list[tuple[Any, str, str]]:
    """(stage key, tensor digest, object key) of every stage of the model."""
    from governance import engine
    from governance.models import Stage

    stages = Stage.objects.filter(shard__model=model).select_related("shard").order_by("pk")
    return [(engine.stage_key(s), s.tensor_digest, s.artifact_key) for s in stages]


def _large_item(store: Any, mib: int) -> tuple[Any, str, str]:
    """A synthetic stage of ``mib`` MiB (random fp32 tensors) saved in ``store``: the
    tiny-bert stages are ~12 KB, a real backbone's LoRA group and head are larger."""
    import torch

    from unlearning.artifacts import StageArtifact, StageKey

    key = StageKey(99, (0,))  # a shard no model has
    floats = mib * 1024 * 1024 // 4
    generator = torch.Generator().manual_seed(SEED)
    tensors = {
        "lora_A": torch.randn(floats // 2, generator=generator),
        "lora_B": torch.randn(floats - floats // 2, generator=generator),
    }
    digest = store.save(StageArtifact(key=key, tensors=tensors))
    return key, digest, store.object_key(key)


def _load_series(store: Any, items: list[tuple[Any, str, str]], count: int) -> dict[str, Any]:
    """``count`` ``StageStore.load`` calls cycling through ``items``. With a cache: each
    copy evicted first (*store*: GET, digest check, cache write), then loaded again
    (*cache*: a hit plus the digest check); without one, plain loads (*local_folder*)."""
    cold: list[float] = []
    hot: list[float] = []
    sizes: list[int] = []
    for n in range(count):
        key, digest, object_key = items[n % len(items)]
        if store.cache is not None:
            store.cache.evict(object_key)
        start = time.perf_counter()
        store.load(key, digest, object_key)
        cold.append((time.perf_counter() - start) * 1000)
        if store.cache is not None:
            start = time.perf_counter()
            store.load(key, digest, object_key)
            hot.append((time.perf_counter() - start) * 1000)
            sizes.append(store.cache.path(object_key).stat().st_size)
    if store.cache is None:
        return {"local_folder": stats_ms(cold)}
    return {
        "store": stats_ms(cold),
        "cache": stats_ms(hot),
        "bytes_mean": int(statistics.fmean(sizes)),
    }


def _loads(model: Any, count: int, large_mib: int) -> dict[str, Any]:
    """Part B in the active store: the model's stages, then one synthetic large stage."""
    from governance.artifacts import stage_store

    store = stage_store(model.pk, model.generation)
    large = _large_item(store, large_mib)
    try:
        return {
            "stages": _load_series(store, _stage_items(model), count),
            "large": _load_series(store, [large], max(10, count // 4)),
        }
    finally:
        store.delete(large[0])


# --- C: erasure approval to certificate ---------------------------------------------------


def _snapshot(model: Any, folder: Path) -> None:
    """Every object of the model's generation, from the active store into ``folder``."""
    from governance.artifacts import stage_store

    store = stage_store(model.pk, model.generation)
    for key in store.objects.list(f"{store.prefix}/"):
        target = folder / key.removeprefix(f"{store.prefix}/")
        target.parent.mkdir(parents=True, exist_ok=True)
        with store.objects.open(key) as f:
            target.write_bytes(f.read())


def _restore(model: Any, texts: dict[str, tuple[str, str]], snapshot: Path) -> None:
    """As trained again (untimed), with every stage object present in the active store:
    the other backend's erasures left this store's copies of their stages in place or
    gone, which would make this store's next erasure cheaper or dearer."""
    from governance.artifacts import stage_store
    from governance.models import Stage

    restore_as_trained(model, texts, snapshot)
    store = stage_store(model.pk, model.generation)
    for key in Stage.objects.filter(shard__model=model).values_list("artifact_key", flat=True):
        if not store.objects.exists(key):
            store.objects.put(key, (snapshot / key.removeprefix(f"{store.prefix}/")).read_bytes())


def _erase(officer: Any, ref: str) -> dict[str, Any]:
    """File (untimed), approve and execute one request."""
    from governance.models import DeletionCertificate, ErasureRequest
    from governance.services.erasure import erasure_request_approve, erasure_request_create
    from governance.services.erasure_execution import erasure_request_execute

    request, _ = erasure_request_create(
        actor=officer, subject_ref=ref, reason="bench", channel="email"
    )
    CAPTURED["erasure"].clear()
    start = time.perf_counter()
    request = erasure_request_approve(actor=officer, request=request)
    status = erasure_request_execute(request_id=request.pk)
    elapsed = (time.perf_counter() - start) * 1000
    if status != "completed" or not DeletionCertificate.objects.filter(request=request).exists():
        sys.exit(f"request {request.pk} for {ref} ended {status} without a certificate")
    execution = ErasureRequest.objects.get(pk=request.pk).execution
    return {
        "request": request.pk,
        "ms": elapsed,
        "stages": sum(len(m["stages"]) for m in execution["models"]),
    }


def _claims_ok(request_id: int) -> bool:
    from governance.certificates.claims import certificate_claims_check
    from governance.models import DeletionCertificate

    envelope = DeletionCertificate.objects.get(request=request_id).envelope
    return all(c["ok"] for c in certificate_claims_check(envelope))


def _subjects(model: Any, count: int) -> list[str]:
    from governance.models import Record

    refs = sorted(
        set(
            Record.objects.filter(assignments__model=model).values_list(
                "subject__external_ref", flat=True
            )
        )
    )
    return random.Random(SEED).sample(refs, count)


# --- the run ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--erasures", type=int, default=20, help="measured requests per backend")
    parser.add_argument("--loads", type=int, default=200, help="loads per mode")
    parser.add_argument("--large-mib", type=int, default=8, help="size of the synthetic stage")
    parser.add_argument("--quick", action="store_true", help="smoke run: 600 records, 3 requests")
    args = parser.parse_args()
    if args.quick:
        args.records, args.erasures, args.loads = 600, 3, 20
    started = time.perf_counter()
    load_start = os.getloadavg()
    url = postgres_url()
    recreate_postgres(url)
    tmp = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
    try:
        results = _run(args, url, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        from bench.bench_erasure import _drop

        _drop(url)
    results["run_s"] = round(time.perf_counter() - started, 1)
    results["machine"]["loadavg_start"] = [round(x, 2) for x in load_start]
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    path = write_results("scaleout", results)
    _print(results)
    print(f"\nran {results['run_s']} s; wrote {path.relative_to(REPO)}")


def _run(args: argparse.Namespace, url: str, tmp: Path) -> dict[str, Any]:
    from tests.s3 import VERSIONED_BUCKET, s3_server_running

    redis = Redis(tmp / "redis")
    redis.start()
    try:
        with s3_server_running() as server:
            return _measure(args, url, tmp, redis.url, server, VERSIONED_BUCKET)
    finally:
        redis.stop()


def _measure(
    args: argparse.Namespace, url: str, tmp: Path, broker: str, server: Any, bucket: str
) -> dict[str, Any]:
    prefix = f"bench-scaleout-{uuid.uuid4().hex[:8]}"
    keys = _keys()
    s3 = _s3_env(server, bucket, prefix)
    os.environ.update({"AWS_ACCESS_KEY_ID": s3["AWS_ACCESS_KEY_ID"]})
    os.environ.update({"AWS_SECRET_ACCESS_KEY": s3["AWS_SECRET_ACCESS_KEY"]})
    django_setup(
        url,
        ARTIFACT_ROOT=str(tmp / "artifacts"),
        LETHE_ARTIFACT_CACHE_DIR=str(tmp / "cache-local"),
        LETHE_BROKER_DIR=str(tmp / "broker"),
        LETHE_MODEL_ROOT=str(tmp / "models"),
        LETHE_TORCH_THREADS="1",
        CELERY_BROKER_URL=broker,
        **keys,
    )
    import torch

    torch.set_num_threads(1)  # as each worker; this process only loads and checks digests
    from governance.permissions import Role
    from governance.services.accounts import user_create_with_role

    officer, _ = user_create_with_role(username="olivia", role=Role.PRIVACY_OFFICER)
    engineer, _ = user_create_with_role(username="emil", role=Role.ML_ENGINEER)
    integration, _ = user_create_with_role(username="ingo", role=Role.INTEGRATION)
    rows = [r.as_dict() for r in generate_rows(args.records)]
    texts = {r["external_id"]: (r["text"], r["label"]) for r in rows}
    dataset = ingest(rows, integration, "bench-scaleout")
    worker_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LETHE_ARTIFACT")},
        **s3,
        **keys,
        "DATABASE_URL": url,
        "CELERY_BROKER_URL": broker,
        "DEBUG": "false",
    }

    # A: one training worker, then two, on the same spec.
    print("A: training with 1 worker, then 2 ...", flush=True)
    _, one = _train_with(1, engineer, dataset, worker_env, tmp)
    print(f"   1 worker: {one['wall_s']} s for {one['stages']} stages", flush=True)
    model, two = _train_with(2, engineer, dataset, worker_env, tmp)
    print(f"   2 workers: {two['wall_s']} s", flush=True)

    cache_dir = tmp / "cache-bench"
    with _artifacts_in("s3", server, bucket, prefix, cache_dir):
        # B: cold loads from the bucket against cache hits.
        print("B: stage loads ...", flush=True)
        loads = _loads(model, args.loads, args.large_mib)
        snapshot = tmp / "snapshot"
        _snapshot(model, snapshot)
    with _artifacts_in("local", server, bucket, prefix, cache_dir):
        from governance.artifacts import stage_store

        local = stage_store(model.pk, model.generation)
        for path in sorted(p for p in snapshot.rglob("*") if p.is_file()):
            local.objects.put(
                f"{local.prefix}/{path.relative_to(snapshot).as_posix()}", path.read_bytes()
            )
        for size, series in _loads(model, args.loads, args.large_mib).items():
            loads[size].update(series)

    # C: erasures, alternating backends request by request.
    print(f"C: {WARMUP} + {args.erasures} erasures per backend, alternating ...", flush=True)
    capture_enqueues()
    subjects = _subjects(model, 2 * (WARMUP + args.erasures))
    series: dict[str, list[dict[str, Any]]] = {"local": [], "s3": []}
    for n in range(WARMUP + args.erasures):
        order = ("local", "s3") if n % 2 == 0 else ("s3", "local")
        for backend in order:
            with _artifacts_in(backend, server, bucket, prefix, cache_dir):
                _restore(model, texts, snapshot)
                row = _erase(officer, subjects.pop())
                row["claims_ok"] = (
                    _claims_ok(row["request"]) if n == WARMUP + args.erasures - 1 else None
                )
            if n >= WARMUP:
                series[backend].append(row)
    erasure = {
        backend: {
            "approval_to_certificate": stats_ms([r["ms"] for r in rows_]),
            "stages_destroyed_per_request": sorted({r["stages"] for r in rows_}),
            "last_certificate_claims_ok": rows_[-1]["claims_ok"],
        }
        for backend, rows_ in series.items()
    }
    a2c = {b: erasure[b]["approval_to_certificate"] for b in erasure}
    return {
        "settings": {
            "records": args.records,
            "shards": SHARDS,
            "slices": SLICES,
            "budget": BUDGET,
            "policy": POLICY,
            "backbone": BACKBONE,
            "epochs": EPOCHS,
            "batch_size": BATCH,
            "torch_threads_per_worker": 1,
            "erasures_per_backend": args.erasures,
            "warmup_per_backend": WARMUP,
            "loads_per_mode": args.loads,
            "large_stage_mib": args.large_mib,
            "object_store": f"SeaweedFS {_weed_version()} on loopback, versioned bucket",
            "broker": "private redis-server on loopback",
            "gpu": "none: everything here ran on CPU",
            "quick": args.quick,
        },
        "training": {"one_worker": one, "two_workers": two},
        "stage_load": loads,
        "erasure": erasure,
        "ratios": {
            "two_over_one_workers_stages_per_s": ratio(two["stages_per_s"], one["stages_per_s"]),
            "s3_over_local_erasure_p50": ratio(a2c["s3"]["p50_ms"], a2c["local"]["p50_ms"]),
            "s3_over_local_erasure_p95": ratio(a2c["s3"]["p95_ms"], a2c["local"]["p95_ms"]),
            **{
                f"store_over_cache_load_p50_{size}": ratio(
                    loads[size]["store"]["p50_ms"], loads[size]["cache"]["p50_ms"]
                )
                for size in ("stages", "large")
            },
            **{
                f"cache_over_local_folder_load_p50_{size}": ratio(
                    loads[size]["cache"]["p50_ms"], loads[size]["local_folder"]["p50_ms"]
                )
                for size in ("stages", "large")
            },
        },
        "machine": machine_info(postgres=True),
    }


def _weed_version() -> str:
    from tests.s3 import WEED

    out = subprocess.run([str(WEED), "version"], capture_output=True, text=True, check=False)
    words = out.stdout.split()
    return words[2] if len(words) > 2 else "?"


def _print(results: dict[str, Any]) -> None:
    t, ld, er, r = results["training"], results["stage_load"], results["erasure"], results["ratios"]
    print_table(
        "Training workers (same spec)",
        ["workers", "wall s", "stages/s", "example-epochs/s"],
        [
            [b["workers"], b["wall_s"], b["stages_per_s"], b["example_epochs_per_s"]]
            for b in (t["one_worker"], t["two_workers"])
        ],
    )
    for size, series in ld.items():
        print_table(
            f"Stage load, {size} ({series['bytes_mean']:,} bytes mean)",
            ["from", "p50 ms", "p95 ms"],
            [
                [k, series[k]["p50_ms"], series[k]["p95_ms"]]
                for k in ("store", "cache", "local_folder")
            ],
        )
    print_table(
        "Erasure approval -> certificate",
        ["artifacts in", "p50 ms", "p95 ms", "claims ok"],
        [
            [
                b,
                er[b]["approval_to_certificate"]["p50_ms"],
                er[b]["approval_to_certificate"]["p95_ms"],
                er[b]["last_certificate_claims_ok"],
            ]
            for b in ("local", "s3")
        ],
    )
    print("\nratios:", r)


if __name__ == "__main__":
    main()
