"""Erasure latency, approval to signed certificate, against SISA and full retraining.

One process, one throw-away PostgreSQL database (default ``lethe_bench_erasure``), three
parts:

A. **Trained model.** ``--train-records`` records (default 20,000: training all 64 stages
   on 100k records would take about 24 minutes here; see docs/benchmarks.md) from the
   sample tickets (ids cycled, about N/3.5 subjects) are ingested with ``records_upsert``
   in batches of 5,000; an m=4, L=4, B=4 cyclic model on ``tiny-bert`` is created with
   ``model_create`` and trained for real by ``model_train`` and ``training_task_run`` in
   this process (1 epoch, batch 32, LoRA r=8): 64 stages, real safetensors files. Then 3
   warm-up and ``--erasures`` measured subjects go through ``erasure_request_create``,
   ``erasure_request_approve`` and ``erasure_request_execute``. The approval's on-commit
   enqueue is captured (no broker), so "approval to certificate" is the approve call plus
   the execute call; the phases (``_deactivate``, ``_purge``, ``_certify``) are timed
   inside that same execute call. *Fresh* series: before each request the model is put
   back as trained (the previous subject's records restored, its stages set back to
   ``trained`` with their files copied from a snapshot, a manifest republished; untimed),
   so every request deactivates and purges the 10 stages of one slice (4+3+2+1 of its
   shard's 16). *Consecutive* series: no restoring, a stream of erasures with no
   retraining in between. The last certificate of each series is re-checked with
   ``certificate_claims_check``.
B. **Baselines, same data, same process.** One LoRA model with every layer group and the
   head trainable at once, through the engine's baseline
   (``unlearning.baseline.train_jointly``: same batches, seeds, AdamW, epochs), over (a)
   the remaining records of the shard the first erasure hit (SISA-style shard retrain)
   and (b) all remaining records (full retrain). Timed: fetching the records, training,
   saving the tensors.
C. **Flatness.** At each of ``--sizes`` (default 10k, 100k and 1M) the
   governance tables are emptied and rebuilt with COPY: N records and the same model
   shape with 64 ``trained`` stages (part A's files and digests), sequences, finished
   training tasks, assignments placed by ``unlearning.partition.assign``, manifest v1 from
   ``manifest_refresh``; ``VACUUM ANALYZE``; then the fresh series again. One more request
   runs with every query timed and traced to the service line that issued it; the
   slowest SELECT of the deactivation phase is run again under EXPLAIN (ANALYZE, BUFFERS).
   At ``--baseline-size`` (default 100k) the SISA shard retrain is measured on those
   records; the full retrain is measured with ``--full``, otherwise extrapolated from the
   shard retrain's time per record (marked ``measured: false``).

Torch runs with ``--threads`` (default 1) threads: on this 2-vCPU machine, shared with
other work, two threads collapsed to a tenth of the speed whenever another process was
busy (OpenMP waits), while one thread degrades only in proportion. S3T training and the
baselines use the same setting; the erasure path runs no torch.

Writes bench/results/erasure.json and prints tables. Drops and recreates the database
named by DATABASE_URL (``lethe_bench*`` names only) and drops it at the end; artifacts,
the signing key and the broker folder live in a temporary folder removed at the end.

Usage: python bench/bench_erasure.py [--train-records N] [--erasures K]
       [--sizes 10000,100000,1000000] [--threads 1] [--full] [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lethe_bench_erasure")

from bench.harness import (  # noqa: E402
    CAPTURED,
    Row,
    bulk_lineage,
    capture_enqueues,
    copy_records,
    database_options,
    django_setup,
    generate_rows,
    ingest,
    machine_info,
    postgres_url,
    prepared_statements,
    print_table,
    ratio,
    recreate_postgres,
    restore_as_trained,
    stage_folder,
    train,
    write_results,
)

SHARDS, SLICES, BUDGET, POLICY = 4, 4, 4, "cyclic"
BACKBONE, EPOCHS, BATCH, LR, SEED = "tiny-bert", 1, 32, 1e-3, 0
WARMUP = 3
PHASES = ("deactivate", "purge", "certify")

# Filled by the hooks installed in _install_hooks.
_PHASE_MS: dict[str, float] = {}
# The step running now, and (while profiling one request) every query: (step, sql, ms).
_STEP = [""]
_QUERY_LOG: list[tuple[str, str, Any, float, str]] = []
# 1-minute load average at each part: the machine is shared, so say how busy it was.
_LOAD: dict[str, float] = {}


def _note_load(when: str) -> None:
    _LOAD[when] = round(os.getloadavg()[0], 2)


# --- helpers -----------------------------------------------------------------------------


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[round(0.95 * (len(ordered) - 1))], 2),
        "max_ms": round(ordered[-1], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
        "n": len(ordered),
    }


def _install_hooks() -> None:
    """Capture the on-commit enqueues (no broker) and time execution's three phases.

    ``erasure_request_execute`` looks the phase functions up in its module when it runs,
    so replacing the module attributes reaches it.
    """
    from governance.services import erasure_execution as erasure

    capture_enqueues()

    def timed(phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _STEP[0] = phase
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                _PHASE_MS[phase] = (time.perf_counter() - start) * 1000
                _STEP[0] = "execute"

        return wrapper

    for phase in PHASES:
        setattr(erasure, f"_{phase}", timed(phase, getattr(erasure, f"_{phase}")))


def _truncate_all() -> None:
    """Empty every governance table but the users (CASCADE reaches the lineage).

    The audit trail refuses TRUNCATE (a trigger, migration 0006); this throw-away
    benchmark database sets it aside for the one statement, as the test suite's flush does
    (tests/conftest.py), with ``session_replication_role = replica`` (superuser only).
    """
    from django.db import connection

    from governance.models import AuditEvent, Dataset, Subject

    tables = ", ".join(m._meta.db_table for m in (Dataset, Subject, AuditEvent))
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")


def _vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


# --- erasures ----------------------------------------------------------------------------


def _erase(officer: Any, ref: str) -> dict[str, Any]:
    """File, approve and execute one request; every step timed."""
    from governance.models import DeletionCertificate, ErasureRequest
    from governance.services.erasure import (
        erasure_request_approve,
        erasure_request_create,
    )
    from governance.services.erasure_execution import erasure_request_execute

    _STEP[0] = "file"
    start = time.perf_counter()
    request, _ = erasure_request_create(
        actor=officer, subject_ref=ref, reason="bench", channel="email"
    )
    filed = time.perf_counter()
    CAPTURED["erasure"].clear()
    _STEP[0] = "approve"
    request = erasure_request_approve(actor=officer, request=request)
    approved = time.perf_counter()
    if CAPTURED["erasure"] != [request.pk]:
        sys.exit(f"approval of {request.pk} queued {CAPTURED['erasure']}")
    _PHASE_MS.clear()
    status = erasure_request_execute(request_id=request.pk)
    done = time.perf_counter()
    _STEP[0] = ""
    if (
        status != ErasureRequest.Status.COMPLETED
        or not DeletionCertificate.objects.filter(request=request.pk).exists()
    ):
        sys.exit(f"request {request.pk} for {ref} ended {status} without a certificate")
    execution = ErasureRequest.objects.get(pk=request.pk).execution
    approve_ms, execute_ms = (approved - filed) * 1000, (done - approved) * 1000
    return {
        "request": request.pk,
        "file_ms": (filed - start) * 1000,
        "approve_ms": approve_ms,
        "execute_ms": execute_ms,
        "approval_to_certificate_ms": approve_ms + execute_ms,
        **{f"{p}_ms": _PHASE_MS[p] for p in PHASES},
        "records": len(execution["records_erased"]),
        "stages": sum(len(m["stages"]) for m in execution["models"]),
        "shard": next((d["shard"] for m in execution["models"] for d in m["stage_details"]), None),
        "shards_serving_after": min(
            (len((m["manifest_after"] or {}).get("depths", {})) for m in execution["models"]),
            default=SHARDS,
        ),
        "min_depth_after": min(
            (
                min((m["manifest_after"] or {}).get("depths", {}).values(), default=0)
                for m in execution["models"]
            ),
            default=SLICES,
        ),
    }


def _series(
    officer: Any,
    model: Any,
    refs: list[str],
    *,
    texts: dict[str, tuple[str, str]],
    files: Path,
    restore: bool,
) -> dict[str, Any]:
    """Warm-up requests, then one measured request per subject."""
    rows = []
    for n, ref in enumerate(refs):
        if restore:
            restore_as_trained(model, texts, files)
        row = _erase(officer, ref)
        if n >= WARMUP:
            rows.append(row)
    out: dict[str, Any] = {
        key: _stats([r[f"{key}_ms"] for r in rows])
        for key in ("approval_to_certificate", "execute", *PHASES, "approve", "file")
    }
    out["stages_deactivated"] = _counts(r["stages"] for r in rows)
    out["records_per_request"] = _counts(r["records"] for r in rows)
    out["shards_serving_after"] = _counts(r["shards_serving_after"] for r in rows)
    out["min_serving_depth_after"] = _counts(r["min_depth_after"] for r in rows)
    out["first_shard"] = next((r["shard"] for r in rows if r["shard"] is not None), 0)
    # Before any restore: the last certificate's claims, re-checked against the database.
    out["certificate_claims_ok"] = _claims_ok(rows[-1]["request"])
    return out


def _counts(values: Iterable[int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in sorted(values):
        out[str(v)] = out.get(str(v), 0) + 1
    return out


def _query_profile(officer: Any, ref: str) -> dict[str, Any]:
    """One more request with every query timed and traced to the service line that ran it.

    Per step: query count, SQL time and the three slowest; the slowest SELECT of the
    deactivation phase is run again under EXPLAIN (ANALYZE, BUFFERS) (read-only).
    """
    from django.db import connection

    def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = (time.perf_counter() - start) * 1000
            _QUERY_LOG.append((_STEP[0], sql, params, elapsed, _origin()))

    _QUERY_LOG.clear()
    with connection.execute_wrapper(timed):
        row = _erase(officer, ref)
    steps: dict[str, Any] = {}
    for step in ("file", "approve", *PHASES):
        chunk = sorted((q for q in _QUERY_LOG if q[0] == step), key=lambda q: -q[3])
        steps[step] = {
            "wall_ms": round(row[f"{step}_ms"], 2),
            "queries": len(chunk),
            "sql_ms": round(sum(q[3] for q in chunk), 2),
            "slowest": [
                {"ms": round(ms, 2), "origin": origin, "sql": sql[:300]}
                for _, sql, _, ms, origin in chunk[:3]
            ],
        }
    selects = [q for q in _QUERY_LOG if q[0] == "deactivate" and q[1].startswith("SELECT")]
    _, sql, params, ms, origin = max(selects, key=lambda q: q[3])
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        plan = "\n".join(r[0] for r in cursor.fetchall())
    return {
        "queries_total": len(_QUERY_LOG),
        "approval_to_certificate_statements": sum(
            1 for q in _QUERY_LOG if q[0] in ("approve", "execute", *PHASES)
        ),
        "steps": steps,
        "stages": row["stages"],
        "deactivate_slowest_select": {"ms": round(ms, 2), "origin": origin, "sql": sql},
        "deactivate_slowest_plan": plan,
    }


def _python_profile(
    officer: Any, model: Any, refs: list[str], texts: dict[str, tuple[str, str]], files: Path
) -> list[dict[str, Any]]:
    """``--profile K``: K more fresh requests under cProfile (the restores between them
    are not profiled); the functions with the most cumulative time, per request."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    for ref in refs:
        restore_as_trained(model, texts, files)
        profiler.enable()
        _erase(officer, ref)
        profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    for (path, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{Path(path).name}:{line} {name}",
                "calls": round(calls / len(refs), 1),
                "own_ms": round(own * 1000 / len(refs), 2),
                "cumulative_ms": round(cumulative * 1000 / len(refs), 2),
            }
        )
    rows.sort(key=lambda r: -r["cumulative_ms"])
    return rows[:60]


def _floor() -> dict[str, Any]:
    """What any erasure costs here before it does anything: p50 of a bare ``SELECT 1``
    through Django, and of a one-row write transaction (its commit waits for the WAL
    flush), 50 each on this database; an erasure commits ``transactions`` of them."""
    from django.db import connection, transaction

    selects, commits = [], []
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_floor (x integer)")
        for _ in range(50):
            start = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            selects.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            with transaction.atomic():
                cursor.execute("INSERT INTO bench_floor VALUES (1)")
            commits.append((time.perf_counter() - start) * 1000)
        cursor.execute("DROP TABLE bench_floor")
    return {
        "select_ms": round(statistics.median(selects), 3),
        "commit_ms": round(statistics.median(commits), 3),
        "transactions": 3,
    }


def _origin() -> str:
    """The innermost governance frame that issued the current query: file:line function."""
    for frame in reversed(traceback.extract_stack()):
        if f"{os.sep}governance{os.sep}" in frame.filename:
            return f"{Path(frame.filename).relative_to(REPO)}:{frame.lineno} {frame.name}"
    return ""


def _claims_ok(request_id: int) -> bool:
    from governance.certificates.claims import certificate_claims_check
    from governance.models import DeletionCertificate

    envelope = DeletionCertificate.objects.get(request=request_id).envelope
    return all(c["ok"] for c in certificate_claims_check(envelope))


# --- part A: a trained model ---------------------------------------------------------------


def _train(engineer: Any, dataset: Any) -> tuple[Any, dict[str, Any]]:
    from governance.models import Stage
    from governance.services.training import ModelSpec

    spec = ModelSpec(
        name="bench-erasure",
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
    model, elapsed = train(engineer, spec)
    stages = list(Stage.objects.filter(shard__model=model))
    if len(stages) != SHARDS * SLICES * BUDGET:
        sys.exit(f"training made {len(stages)} stages")
    by_position: dict[str, list[float]] = {}
    for s in stages:
        by_position.setdefault(str(s.position), []).append(
            s.metrics["seconds"] / s.metrics["examples"] / EPOCHS * 1000
        )
    return model, {
        "total_s": round(elapsed, 1),
        "stages": len(stages),
        "example_epochs": int(sum(s.metrics["examples"] for s in stages) * EPOCHS),
        "stage_seconds_sum": round(sum(s.metrics["seconds"] for s in stages), 1),
        "stage_ms_per_example_epoch": {
            k: round(statistics.fmean(v), 3) for k, v in sorted(by_position.items())
        },
    }


# --- part B: baselines ---------------------------------------------------------------------


def _retrain_all_groups(model: Any, records: Any, out: Path, shard: int) -> dict[str, Any]:
    """A SISA-style retrain: one LoRA model, every group and the head trainable at once
    (``unlearning.baseline.train_jointly``: a stage's loop, so the only difference from S3T
    stage training is what is trainable and how much data it reads)."""
    import torch
    from safetensors.torch import save_file

    from governance import engine
    from unlearning.artifacts import StageKey
    from unlearning.assembly import AdapterHost
    from unlearning.backbones import build_base
    from unlearning.baseline import train_jointly

    host = AdapterHost(
        build_base(model.base_model, len(model.dataset.labels)),
        num_groups=model.num_slices,
        lora=engine.lora_settings(model),
    )
    collate, settings = engine.collator(model), engine.train_settings(model)
    key = StageKey(shard, tuple(range(model.num_slices)))
    start = time.perf_counter()
    rows = list(records)
    fetched = time.perf_counter()
    train_jointly(
        host,
        engine.examples(rows, model),
        collate=collate,
        settings=settings,
        model_seed=model.seed,
        key=key,
        groups=model.num_slices,
    )
    trained = time.perf_counter()
    named = [pair for g in range(1, model.num_slices + 1) for pair in host.parameters_of(g)]
    with torch.no_grad():
        tensors = {n: p.detach().clone().contiguous() for n, p in named + host.head_parameters()}
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / f"retrain-shard-{shard}.safetensors"))
    done = time.perf_counter()
    return {
        "records": len(rows),
        "total_s": round(done - start, 2),
        "fetch_s": round(fetched - start, 3),
        "train_s": round(trained - fetched, 2),
        "save_s": round(done - trained, 3),
        "ms_per_record": round((done - start) / len(rows) * 1000, 3),
        "measured": True,
    }


def _baselines(model: Any, shard: int, out: Path, *, full: bool) -> dict[str, Any]:
    from governance.models import Record

    active = Record.objects.filter(dataset=model.dataset_id, status="active")
    in_shard = active.filter(
        assignments__model=model,
        assignments__generation=model.generation,
        assignments__slice__shard__index=shard,
    )
    result = {"sisa_shard": {"shard": shard, **_retrain_all_groups(model, in_shard, out, shard)}}
    remaining = active.count()
    if full:
        result["full"] = _retrain_all_groups(model, active, out, -1)
    else:
        per = result["sisa_shard"]["ms_per_record"]
        result["full"] = {
            "records": remaining,
            "total_s": round(per * remaining / 1000, 1),
            "ms_per_record": per,
            "measured": False,
            "extrapolated_from": "sisa_shard ms_per_record x remaining records",
        }
    return result


# --- part C: synthetic lineage at a size ---------------------------------------------------


def _build(rows: list[Row], files: Path, digests: dict[tuple[int, str], str]) -> Any:
    """Empty the tables and load ``rows`` with a trained 4x4x4 model (part A's stage files)."""
    from django.db import transaction
    from django.utils import timezone

    from governance import engine
    from governance.models import Dataset, TrainingJob, TrainingTask, UnlearningModel
    from governance.services.serving import manifest_refresh
    from unlearning.artifacts import StageKey
    from unlearning.partition import assign
    from unlearning.sample_data import LABELS

    _truncate_all()
    now = timezone.now()
    with transaction.atomic():
        dataset = Dataset.objects.create(name="bench-erasure", labels=list(LABELS))
        copy_records(rows, dataset, now)
    cells = assign(
        [(r.external_id, r.subject_id) for r in rows],
        num_shards=SHARDS,
        num_slices=SLICES,
        seed=SEED,
    )
    with transaction.atomic():
        model = UnlearningModel.objects.create(
            name="bench-erasure",
            dataset=dataset,
            base_model=BACKBONE,
            num_shards=SHARDS,
            num_slices=SLICES,
            budget=BUDGET,
            sequence_policy=POLICY,
            epochs=EPOCHS,
            learning_rate=LR,
            batch_size=BATCH,
            seed=SEED,
            status=UnlearningModel.Status.READY,
            generation=1,
        )
        store = engine.artifact_store(model, 1)
        folder = stage_folder(store)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(files, folder)
        job = TrainingJob.objects.create(
            model=model,
            generation=1,
            status="succeeded",
            stages_total=SHARDS * SLICES * BUDGET,
            stages_done=SHARDS * SLICES * BUDGET,
            started_at=now,
            finished_at=now,
        )

        def stage_fields(shard: int, prefix: tuple[int, ...]) -> dict[str, Any]:
            # The snapshot's file of this stage, whichever training attempt named it.
            slug = StageKey(shard, prefix).slug()
            (name,) = [p.relative_to(files).as_posix() for p in files.glob(f"{slug}.*safetensors")]
            return {
                "artifact_key": f"{store.prefix}/{name}",
                "tensor_digest": digests[(shard, engine.prefix_text(prefix))],
            }

        for built in bulk_lineage(model, rows, cells, stage_fields):
            TrainingTask.objects.bulk_create(
                [
                    TrainingTask(job=job, sequence=s, status="done", attempts=1)
                    for s in built.sequences
                ]
            )
    if manifest_refresh(model=model, reason="bench: built") is None:
        sys.exit("the built model publishes no manifest")
    _vacuum()
    return model


# --- part D: a real control worker -------------------------------------------------------


def _worker_series(
    officer: Any,
    model: Any,
    refs: list[str],
    *,
    texts: dict[str, tuple[str, str]],
    files: Path,
    enqueue: Callable[[int], Any],
    tmp: Path,
) -> dict[str, Any]:
    """Approval to certificate with the execution on a real ``manage.py worker`` process.

    The approval's on-commit enqueue goes to the broker (``--worker-broker``); the clock
    stops when this process reads ``completed`` (polling every 2 ms). The model is put back
    as trained before each request (untimed), as in the fresh series.
    """
    import subprocess
    from datetime import datetime

    from celery_worker.celery import app
    from governance.models import DeletionCertificate, ErasureRequest
    from governance.services import erasure as erasure_service

    erasure_service.erasure_request_enqueue = enqueue  # type: ignore[assignment]
    app.control.purge()
    log_path = tmp / "worker.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "worker", "--queues=control", "--loglevel=info"],
            cwd=REPO,
            env=dict(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while " ready." not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"worker did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        samples: list[float] = []
        pickup: list[float] = []
        inside: list[float] = []
        for n, ref in enumerate(refs):
            restore_as_trained(model, texts, files)
            request, _ = erasure_service.erasure_request_create(
                actor=officer, subject_ref=ref, reason="bench", channel="email"
            )
            start = time.perf_counter()
            erasure_service.erasure_request_approve(actor=officer, request=request)
            status = ErasureRequest.objects.filter(pk=request.pk)
            while status.values_list("status", flat=True)[0] != ErasureRequest.Status.COMPLETED:
                if time.perf_counter() > start + 60:
                    sys.exit(f"erasure {request.pk} did not complete:\n{log_path.read_text()}")
                time.sleep(0.002)
            elapsed = (time.perf_counter() - start) * 1000
            if not DeletionCertificate.objects.filter(request=request.pk).exists():
                sys.exit(f"erasure {request.pk} completed without a certificate")
            if n >= WARMUP:
                samples.append(elapsed)
                done = ErasureRequest.objects.get(pk=request.pk)
                executed = datetime.fromisoformat(done.execution["executed_at"])
                # The database's own clock: approval → the worker's phase 1, and phase 1 →
                # the certificate, in the rows each step wrote.
                pickup.append((executed - done.approved_at).total_seconds() * 1000)
                inside.append((done.completed_at - executed).total_seconds() * 1000)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
        capture_enqueues()
    return {
        "approval_to_certificate": _stats(samples),
        "approved_to_worker_phase1": _stats(pickup),
        "worker_phase1_to_certificate": _stats(inside),
        "worker": "manage.py worker --queues=control (a separate process)",
        "poll_ms": 2,
    }


# --- results -------------------------------------------------------------------------------


def _previous(key: str) -> Any:
    """A part kept from the last full run's results (``--skip-training``)."""
    import json

    path = REPO / "bench" / "results" / "erasure.json"
    if not path.exists():
        sys.exit("--skip-training needs bench/results/erasure.json from a full run")
    part = json.loads(path.read_text()).get(key)
    if not part:
        sys.exit(f"bench/results/erasure.json holds no {key!r} to keep")
    return part


def _refresh_at_size(at: dict[str, Any], flatness: dict[str, Any]) -> dict[str, Any]:
    """The kept retrain baselines against this run's erasure at their size (--skip-training):
    the retrain times do not depend on the erasure path, the erasure latency does."""
    series = flatness.get(str(at["records"]))
    if series is None:
        return at
    return {
        **at,
        "erasure": {k: series[k] for k in ("approval_to_certificate", "execute", *PHASES)},
        "ratios": _ratios(series, at["baselines"]),
        "baselines_from": "the previous full run (--skip-training)",
    }


def _summary(flatness: dict[str, Any], worker: dict[str, Any]) -> dict[str, Any]:
    """Issue 16's headline keys: p50 / p95 per size, the worker p50, statements per erasure."""
    counts = {s["query_profile"]["approval_to_certificate_statements"] for s in flatness.values()}
    return {
        "erasure_p50_ms": {k: s["approval_to_certificate"]["p50_ms"] for k, s in flatness.items()},
        "erasure_p95_ms": {k: s["approval_to_certificate"]["p95_ms"] for k, s in flatness.items()},
        "erasure_worker_p50_ms": (worker["approval_to_certificate"]["p50_ms"] if worker else None),
        "erasure_sql_statements": max(counts) if counts else None,
        "erasure_sql_statements_equal_across_sizes": len(counts) == 1,
    }


def _synthetic_stage_files(folder: Path) -> tuple[Path, dict[tuple[int, str], str]]:
    """Stage files of the 4x4x4 plan without training: 64 KiB of seeded bytes each, and their
    digests. The erasure path deletes and checks them but never loads them."""
    import hashlib

    from unlearning.artifacts import StageKey
    from unlearning.sequences import plan_sequences
    from unlearning.training import stage_plan

    digests = {}
    rng = random.Random(SEED)
    for shard in range(SHARDS):
        plan = plan_sequences(POLICY, SLICES, BUDGET, seed=SEED + shard, priors=None)
        for prefix in stage_plan(plan):
            data = rng.randbytes(64 * 1024)
            path = folder / f"{StageKey(shard, tuple(prefix)).slug()}.safetensors"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            digests[(shard, "-".join(map(str, prefix)))] = (
                "sha256:" + hashlib.sha256(data).hexdigest()
            )
    return folder, digests


# --- main ----------------------------------------------------------------------------------


def _drop(url: str) -> None:
    """Close Django's connection and drop the benchmark database."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg
    from django.db import connections

    connections.close_all()
    parts = urlsplit(url)
    admin = urlunsplit(("postgresql", parts.netloc, "/postgres", "", ""))
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


def _subjects(rows: list[Row], count: int, seed: int, exclude: set[str]) -> list[str]:
    refs = sorted({r.subject_id for r in rows} - exclude)
    return random.Random(seed).sample(refs, min(count, len(refs)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-records", type=int, default=20_000)
    parser.add_argument("--erasures", type=int, default=30, help="measured requests per series")
    parser.add_argument("--sizes", default="", help="flatness sizes (default 10000,100000,1000000)")
    parser.add_argument("--baseline-size", type=int, default=100_000)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for training and the baselines (LETHE_TORCH_THREADS)",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="measure the full retrain at --baseline-size instead of extrapolating it",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2k records, 5 requests")
    parser.add_argument(
        "--skip-training",
        action="store_true",
        help="skip parts A and B (the ~400 s training and the retrain baselines): part C uses "
        "synthetic stage files, and parts A and B are kept from bench/results/erasure.json",
    )
    parser.add_argument(
        "--worker-broker",
        default="redis://127.0.0.1:6379/5",
        help="part D: the broker a real control worker consumes ('' skips part D)",
    )
    parser.add_argument("--worker-erasures", type=int, default=20)
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="K",
        help="at the first size, K more requests under cProfile (results: query_profile.python)",
    )
    args = parser.parse_args()
    sizes_text = args.sizes or "10000,100000,1000000"
    if args.quick:
        args.train_records, args.erasures, args.baseline_size = 2000, 5, 10_000
        sizes_text = args.sizes or "2000,10000"
    sizes = sorted(int(s.replace("_", "")) for s in sizes_text.split(","))
    started = time.perf_counter()
    load_start = os.getloadavg()

    url = postgres_url()
    recreate_postgres(url)
    tmp = Path(tempfile.mkdtemp(prefix="bench-erasure-"))
    try:
        results = _run(args, sizes, url, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _drop(url)
    results["run_s"] = round(time.perf_counter() - started, 1)
    results["machine"]["loadavg_start"] = [round(x, 2) for x in load_start]
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["machine"]["load_1min_during"] = _LOAD
    path = write_results("erasure", results)
    _print(results)
    print(f"\nran {results['run_s']} s; wrote {path.relative_to(REPO)}")


def _run(args: argparse.Namespace, sizes: list[int], url: str, tmp: Path) -> dict[str, Any]:
    django_setup(
        url,
        ARTIFACT_ROOT=str(tmp / "artifacts"),
        LETHE_SIGNING_KEY_PATH=str(tmp / "keys" / "signing-ed25519.pem"),
        LETHE_BROKER_DIR=str(tmp / "broker"),
        LETHE_MODEL_ROOT=str(tmp / "models"),
        LETHE_TORCH_THREADS=str(args.threads),
        LETHE_AUDIT_KEY_PATH=str(tmp / "keys" / "audit.key"),
        **({"CELERY_BROKER_URL": args.worker_broker} if args.worker_broker else {}),
    )
    import torch

    torch.set_num_threads(args.threads)
    from governance import engine
    from governance.models import Stage
    from governance.permissions import Role
    from governance.services import erasure as erasure_service
    from governance.services.accounts import user_create_with_role
    from governance.services.audit_integrity import audit_chain_verify

    enqueue = erasure_service.erasure_request_enqueue  # the real one, for part D
    _install_hooks()
    officer, _ = user_create_with_role(username="olivia", role=Role.PRIVACY_OFFICER)
    engineer, _ = user_create_with_role(username="emil", role=Role.ML_ENGINEER)
    integration, _ = user_create_with_role(username="ingo", role=Role.INTEGRATION)

    count = WARMUP + args.erasures
    if args.skip_training:
        files, digests = _synthetic_stage_files(tmp / "snapshot")
        trained_part = _previous("trained_model")
    else:
        # A: ingest and train for real.
        rows = list(generate_rows(args.train_records))
        texts = {r.external_id: (r.text, r.label) for r in rows}
        _note_load("A: training start")
        print(f"A: ingesting {len(rows):,} records and training m=4 L=4 B=4 ...", flush=True)
        ingest_start = time.perf_counter()
        dataset = ingest([r.as_dict() for r in rows], integration, "bench-erasure")
        ingest_s = time.perf_counter() - ingest_start
        model, training = _train(engineer, dataset)
        _vacuum()
        print(f"   trained 64 stages in {training['total_s']} s", flush=True)
        _note_load("A: training end")
        store = engine.artifact_store(model, 1)
        files = tmp / "snapshot"
        shutil.copytree(stage_folder(store), files)
        digests = {
            (s.shard.index, s.prefix): s.tensor_digest
            for s in Stage.objects.filter(shard__model=model).select_related("shard")
        }
        fresh_refs = _subjects(rows, count, seed=1, exclude=set())
        stream_refs = _subjects(rows, count, seed=2, exclude=set(fresh_refs))
        fresh = _series(officer, model, fresh_refs, texts=texts, files=files, restore=True)
        restore_as_trained(model, texts, files)
        stream = _series(officer, model, stream_refs, texts=texts, files=files, restore=False)
        print(
            f"   fresh approval->certificate p50 {fresh['approval_to_certificate']['p50_ms']} ms",
            flush=True,
        )

        # B: baselines on the same data (after the consecutive series' erasures).
        _note_load("B: baselines start")
        print("B: SISA shard retrain and full retrain on the same records ...", flush=True)
        baselines = _baselines(model, fresh["first_shard"], tmp / "baselines", full=True)
        chain = audit_chain_verify()
        trained_part = {
            "records": len(rows),
            "subjects": len({r.subject_id for r in rows}),
            "ingest_s": round(ingest_s, 1),
            "training": training,
            "erasure_fresh": fresh,
            "erasure_consecutive": stream,
            "baselines": baselines,
            "ratios": _ratios(fresh, baselines),
            "audit_chain_ok": chain.ok,
            "audit_events": chain.checked,
        }

    # C: flatness on synthetic lineage with the same model shape and stage files.
    flatness: dict[str, Any] = {}
    at_size: dict[str, Any] = {}
    for size in sizes:
        _note_load(f"C: {size} start")
        print(f"C: building {size:,} records ...", flush=True)
        start = time.perf_counter()
        size_rows = list(generate_rows(size))
        size_texts = {r.external_id: (r.text, r.label) for r in size_rows}
        synthetic = _build(size_rows, files, digests)
        build_s = time.perf_counter() - start
        refs = _subjects(size_rows, count + 1, seed=size, exclude=set())
        series = _series(officer, synthetic, refs[:-1], texts=size_texts, files=files, restore=True)
        restore_as_trained(synthetic, size_texts, files)
        profile = _query_profile(officer, refs[-1])
        profile["floor"] = _floor()
        if size == sizes[0]:
            # The opt-in variant in the same run: prepared statements (DATABASE_PREPARE_...).
            extra = _subjects(size_rows, count, seed=size + 2, exclude=set(refs))
            with prepared_statements(True) as options:
                variant = _series(
                    officer, synthetic, extra, texts=size_texts, files=files, restore=True
                )
            restore_as_trained(synthetic, size_texts, files)
            profile["prepared"] = {
                k: variant[k] for k in ("approval_to_certificate", "execute", *PHASES, "approve")
            }
            profile["prepared"]["database_options"] = options
        if args.profile and size == sizes[0]:
            extra = _subjects(size_rows, args.profile, seed=size + 1, exclude=set(refs))
            profile["python"] = _python_profile(officer, synthetic, extra, size_texts, files)
        flatness[str(size)] = {"build_s": round(build_s, 1), **series, "query_profile": profile}
        print(
            f"   deactivate p50 {series['deactivate']['p50_ms']} ms, "
            f"approval->certificate p50 {series['approval_to_certificate']['p50_ms']} ms",
            flush=True,
        )
        if size == args.baseline_size and not args.skip_training:
            _note_load(f"C: {size} baselines start")
            print(f"   SISA shard retrain at {size:,} records ...", flush=True)
            restore_as_trained(synthetic, size_texts, files)
            base = _baselines(synthetic, 0, tmp / "baselines", full=args.full)
            at_size = {
                "records": size,
                "erasure": {k: series[k] for k in ("approval_to_certificate", "execute", *PHASES)},
                "baselines": base,
                "ratios": _ratios(series, base),
            }
        last = (synthetic, size_rows, size_texts)
        del size_rows, size_texts

    # D: approval to certificate through a real control worker on the broker.
    worker_part: dict[str, Any] = {}
    if args.worker_broker:
        synthetic, size_rows, size_texts = last
        refs = _subjects(size_rows, WARMUP + args.worker_erasures, seed=7, exclude=set())
        del last, size_rows
        worker_part = _worker_series(
            officer, synthetic, refs, texts=size_texts, files=files, enqueue=enqueue, tmp=tmp
        )
        worker_part["records"] = sizes[-1]
        worker_part["broker"] = args.worker_broker.split("@")[-1]
    if args.skip_training:
        at_size = _refresh_at_size(_previous("at_baseline_size"), flatness)
    return {
        "machine": machine_info(postgres=True),
        "settings": {
            "model": {
                "backbone": BACKBONE,
                "shards": SHARDS,
                "slices": SLICES,
                "budget": BUDGET,
                "policy": POLICY,
                "epochs": EPOCHS,
                "batch_size": BATCH,
                "learning_rate": LR,
                "lora_rank": 8,
                "seed": SEED,
            },
            "train_records": args.train_records,
            "erasures_per_series": args.erasures,
            "warmup_requests": WARMUP,
            "sizes": sizes,
            "baseline_size": args.baseline_size,
            "full": args.full,
            "torch_threads": args.threads,
            "skip_training": args.skip_training,
            "parts_a_b": (
                "kept from the previous run of this script (--skip-training); part C's stage "
                "files are synthetic bytes with their digests (the erasure path never loads them)"
                if args.skip_training
                else "measured in this run"
            ),
            "full_retrain_at_baseline_size": "measured" if args.full else "extrapolated",
            "quick": args.quick,
            "clock": (
                "approval_to_certificate = erasure_request_approve + erasure_request_execute "
                "in this process; the broker hop between them is not included"
            ),
            "fresh_series": "model restored as trained before each request (untimed)",
            "consecutive_series": "no restore: a stream of erasures with no retraining",
            "baseline": (
                "one LoRA model, all 4 groups + head trainable, unlearning.baseline.train_jointly, "
                "same epochs/batch/lr; timed: fetch records + train + save tensors"
            ),
            "database": "postgresql",
            "database_options": database_options(),
            "prepared": (
                "at the first size, a second fresh series with DATABASE_PREPARE_THRESHOLD=5 "
                "(server-side binding, statements prepared; query_profile.prepared)"
            ),
        },
        "trained_model": trained_part,
        "flatness": flatness,
        "at_baseline_size": at_size,
        "worker": worker_part,
        "summary": _summary(flatness, worker_part),
    }


def _ratios(series: dict[str, Any], baselines: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("sisa_shard", "full"):
        seconds = baselines[name]["total_s"]
        for q in ("p50_ms", "p95_ms"):
            out[f"{name}_over_erasure_{q[:3]}"] = ratio(
                seconds * 1000, series["approval_to_certificate"][q], 0
            )
    return out


def _print(results: dict[str, Any]) -> None:
    a = results["trained_model"]
    rows = []
    for label, series in (("fresh", a["erasure_fresh"]), ("consecutive", a["erasure_consecutive"])):
        for key in ("approval_to_certificate", "approve", "execute", *PHASES):
            s = series[key]
            rows.append([f"{label}: {key}", s["p50_ms"], s["p95_ms"], s["max_ms"]])
    print_table(
        f"A. Trained model, {a['records']:,} records (ms)", ["step", "p50", "p95", "max"], rows
    )
    b = a["baselines"]
    print_table(
        "B. Baselines on the same records",
        ["retrain", "records", "seconds", "measured", "/ erasure p50", "/ erasure p95"],
        [
            [
                name,
                b[name]["records"],
                b[name]["total_s"],
                b[name]["measured"],
                a["ratios"][f"{name}_over_erasure_p50"],
                a["ratios"][f"{name}_over_erasure_p95"],
            ]
            for name in ("sisa_shard", "full")
        ],
    )
    print_table(
        "C. Flatness (ms)",
        ["records", "deact p50", "deact p95", "appr->cert p50", "appr->cert p95", "queries"],
        [
            [
                int(size),
                s["deactivate"]["p50_ms"],
                s["deactivate"]["p95_ms"],
                s["approval_to_certificate"]["p50_ms"],
                s["approval_to_certificate"]["p95_ms"],
                s["query_profile"]["queries_total"],
            ]
            for size, s in results["flatness"].items()
        ],
    )
    at = results["at_baseline_size"]
    if at:
        print_table(
            f"At {at['records']:,} records",
            ["retrain", "seconds", "measured", "/ erasure p50", "/ erasure p95"],
            [
                [
                    name,
                    at["baselines"][name]["total_s"],
                    at["baselines"][name]["measured"],
                    at["ratios"][f"{name}_over_erasure_p50"],
                    at["ratios"][f"{name}_over_erasure_p95"],
                ]
                for name in ("sisa_shard", "full")
            ],
        )


if __name__ == "__main__":
    main()
