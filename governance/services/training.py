"""Models and training (flow 2): create, partition, plan, and train on Celery workers.

``model_train`` writes the whole lineage of a new generation in one transaction (shards,
slices, record assignments, sequences, stages) and queues one task per (shard, sequence)
after commit. ``training_task_run`` is what a worker executes: it claims each stage of its
sequence with a conditional UPDATE and a lease, trains it with the engine, and records it.
Finished stages are never retrained, so a killed worker's task resumes where it stopped,
and a prefix shared by two sequences is trained once whichever task gets there first.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from governance import engine
from governance.errors import ApplicationError
from governance.models import (
    Dataset,
    Record,
    Sequence,
    Shard,
    Slice,
    SliceAssignment,
    Stage,
    TrainingJob,
    TrainingTask,
    UnlearningModel,
)
from governance.services.audit import audit_event_append


class StageBusy(Exception):
    """Another worker holds a live lease on the stage; retry the task later."""


@dataclass(frozen=True)
class ModelSpec:
    """What ``POST models/`` carries, already type-checked by the API."""

    name: str
    dataset: Dataset
    base_model: str
    shards: int
    slices: int
    sequences: int
    sequence_policy: str
    lora_rank: int = 8
    lora_alpha: int = 16
    epochs: int = 2
    learning_rate: float = 1e-3
    batch_size: int = 32
    seed: int = 0
    retrain_threshold: int = 1
    slice_priors: list[float] | None = None


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(
        code="invalid", message=f"{field}: {message}", details={field: [message]}
    )


def model_create(*, actor: Any, spec: ModelSpec) -> UnlearningModel:
    """Validate the S3T plan against the backbone and create the model."""
    if not engine.backbone_allowed(spec.base_model):
        # A free path would let an API client probe the server's file system.
        known = ", ".join(engine.backbone_names())
        raise _invalid(
            "base_model",
            f"{spec.base_model!r} is neither a packaged backbone ({known}) "
            "nor a checkpoint folder under LETHE_MODEL_ROOT",
        )
    if spec.slice_priors is not None and spec.sequence_policy != "bms":
        raise _invalid("slice_priors", "only the bms policy uses deletion priors")
    try:
        blocks = engine.backbone_blocks(spec.base_model)
        modality = engine.backbone_modality(spec.base_model)
    except (ValueError, OSError) as exc:
        raise _invalid("base_model", str(exc).removeprefix("base_model: ")) from None
    if modality != "text":
        # Records are text; an image backbone would be accepted here and fail in training.
        raise _invalid("base_model", f"{spec.base_model!r} reads {modality}s, records are text")
    if not 1 <= spec.slices <= blocks:
        raise _invalid("slices", f"must be between 1 and the backbone's {blocks} blocks")
    if not 1 <= spec.retrain_threshold <= spec.slices:
        raise _invalid("retrain_threshold", "must be between 1 and slices")
    model = UnlearningModel(
        name=spec.name.strip(),
        dataset=spec.dataset,
        base_model=spec.base_model,
        num_shards=spec.shards,
        num_slices=spec.slices,
        budget=spec.sequences,
        sequence_policy=spec.sequence_policy,
        slice_priors=spec.slice_priors,
        lora_rank=spec.lora_rank,
        lora_alpha=spec.lora_alpha,
        epochs=spec.epochs,
        learning_rate=spec.learning_rate,
        batch_size=spec.batch_size,
        seed=spec.seed,
        retrain_threshold=spec.retrain_threshold,
        created_by=_user(actor),
    )
    try:
        engine.sequence_plan(model, 0)
    except ValueError as exc:
        field = "slice_priors" if "prior" in str(exc) else "sequences"
        raise _invalid(field, str(exc)) from None
    with transaction.atomic():
        if UnlearningModel.objects.filter(name=model.name).exists():
            raise ApplicationError(
                code="conflict",
                message=f"name: model {model.name!r} exists",
                details={"name": ["unique"]},
                status=409,
            )
        model.save()
        audit_event_append(
            actor=actor,
            action="model.created",
            obj=model,
            payload={
                "name": model.name,
                "dataset": spec.dataset.pk,
                "plan": [spec.shards, spec.slices, spec.sequences, spec.sequence_policy],
            },
        )
    return model


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) else None


def model_train(*, actor: Any, model: UnlearningModel) -> TrainingJob:
    """Partition the dataset's active records into a new generation and queue training."""
    from unlearning.partition import assign
    from unlearning.training import stage_plan

    caller_model = model
    with transaction.atomic():
        model = UnlearningModel.objects.select_for_update().get(pk=model.pk)
        if TrainingJob.objects.filter(model=model, status__in=["queued", "running"]).exists():
            raise ApplicationError(
                code="conflict", status=409, message="model: a training job is already running"
            )
        records = list(
            Record.objects.filter(
                dataset=model.dataset_id, status=Record.Status.ACTIVE
            ).values_list("pk", "external_id", "subject__external_ref")
        )
        cells = model.num_shards * model.num_slices
        if len(records) < cells:
            raise _invalid("dataset", f"has {len(records)} active records; need at least {cells}")
        generation = model.generation + 1
        # Keyed by the platform's ids (record and subject), so the same data under another
        # database gives the same lineage; all of a subject's records share one slice.
        pk_of = {external_id: pk for pk, external_id, _ in records}
        placement = assign(
            [(external_id, subject) for _, external_id, subject in records],
            num_shards=model.num_shards,
            num_slices=model.num_slices,
            seed=model.seed,
        )
        slices = _create_generation(model, generation)
        SliceAssignment.objects.bulk_create(
            [
                SliceAssignment(
                    record_id=pk_of[key],
                    slice=slices[(c.shard, c.slice)],
                    model=model,
                    generation=generation,
                )
                for key, c in placement.items()
            ],
            batch_size=5000,
        )
        tasks: list[TrainingTask] = []
        job = TrainingJob.objects.create(
            model=model, generation=generation, created_by=_user(actor)
        )
        for shard_index in range(model.num_shards):
            shard = slices[(shard_index, 0)].shard
            plan = engine.sequence_plan(model, shard_index)
            _create_stages(shard, stage_plan(plan), slices)
            for index, order in enumerate(plan):
                sequence = Sequence.objects.create(shard=shard, index=index, order=list(order))
                tasks.append(TrainingTask(job=job, sequence=sequence))
        TrainingTask.objects.bulk_create(tasks)
        job.stages_total = Stage.objects.filter(
            shard__model=model, shard__generation=generation
        ).count()
        job.save(update_fields=["stages_total"])
        model.generation, model.status = generation, UnlearningModel.Status.TRAINING
        model.save(update_fields=["generation", "status"])
        audit_event_append(
            actor=actor,
            action="model.training_queued",
            obj=model,
            payload={
                "job": job.pk,
                "generation": generation,
                "records": len(placement),
                "stages": job.stages_total,
            },
        )
        task_ids = [t.pk for t in TrainingTask.objects.filter(job=job).order_by("pk")]
        transaction.on_commit(lambda: _enqueue(task_ids))
    caller_model.generation, caller_model.status = model.generation, model.status
    return job


def _enqueue(task_ids: Seq[int]) -> None:
    from celery_worker.tasks import train_sequence as train_sequence_task

    for task_id in task_ids:
        train_sequence_task.delay(task_id)


def _create_generation(model: UnlearningModel, generation: int) -> dict[tuple[int, int], Slice]:
    shards = Shard.objects.bulk_create(
        [Shard(model=model, generation=generation, index=i) for i in range(model.num_shards)]
    )
    created = Slice.objects.bulk_create(
        [Slice(shard=shard, index=s) for shard in shards for s in range(model.num_slices)]
    )
    return {(sl.shard.index, sl.index): sl for sl in created}


def _create_stages(
    shard: Shard, prefixes: Seq[tuple[int, ...]], slices: dict[tuple[int, int], Slice]
) -> None:
    stages = Stage.objects.bulk_create(
        [Stage(shard=shard, prefix=engine.prefix_text(p), position=len(p)) for p in prefixes]
    )
    links = [
        Stage.slices.through(stage_id=stage.pk, slice_id=slices[(shard.index, s)].pk)
        for stage, prefix in zip(stages, prefixes, strict=True)
        for s in prefix
    ]
    Stage.slices.through.objects.bulk_create(links)


# --- Worker side ------------------------------------------------------------------------


def _lease() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "LETHE_STAGE_LEASE_SECONDS", 600)))


def training_task_run(*, task_id: int) -> None:
    """Train the stages of one (shard, sequence) that are not trained yet.

    Idempotent: a task whose stages are all trained only refreshes the manifest. Raises
    ``StageBusy`` when another live worker is training a stage this sequence needs.
    """
    claimed = (
        TrainingTask.objects.filter(pk=task_id)
        .exclude(status="done")
        .update(status="running", attempts=F("attempts") + 1)
    )
    if not claimed:
        return
    task = TrainingTask.objects.select_related("job__model__dataset", "sequence__shard").get(
        pk=task_id
    )
    job, model, sequence = task.job, task.job.model, task.sequence
    TrainingJob.objects.filter(pk=job.pk, status="queued").update(
        status="running", started_at=timezone.now()
    )
    for depth in range(1, len(sequence.order) + 1):
        stage = Stage.objects.get(
            shard=sequence.shard, prefix=engine.prefix_text(sequence.order[:depth])
        )
        if stage.state == Stage.State.TRAINED:
            continue
        if stage.state in (Stage.State.DEACTIVATED, Stage.State.DESTROYED):
            break  # the prefix read an erased record: nothing past it can serve
        if not _train_stage(model, job, stage):
            break
    with transaction.atomic():
        TrainingTask.objects.filter(pk=task_id).update(status="done")
        _finish_job_if_done(job)
    from governance.services.serving import manifest_refresh

    manifest_refresh(model=model, reason=f"training job {job.pk}")


def _claim(stage: Stage) -> bool:
    now = timezone.now()
    return bool(
        Stage.objects.filter(pk=stage.pk)
        .filter(Q(state="pending") | Q(state="training", claimed_until__lt=now))
        .update(state="training", claimed_until=now + _lease())
    )


def _train_stage(model: UnlearningModel, job: TrainingJob, stage: Stage) -> bool:
    """Train and record one stage; False when its lineage turned out to hold erased data."""
    from unlearning.training import train_stage

    if not _claim(stage):
        raise StageBusy(f"stage {stage.pk} is being trained by another worker")
    records = list(Record.objects.filter(assignments__slice__stages=stage))
    if any(r.status == Record.Status.ERASED for r in records):
        Stage.objects.filter(pk=stage.pk).update(state="deactivated", claimed_until=None)
        return False
    store = engine.artifact_store(model, stage.shard.generation)
    parents = [store.load(engine.stage_key(p)) for p in _parents(stage)]
    host, lock = engine.hosts.get(model, "training")
    renew = _lease_renewer(stage)
    with lock:
        artifact = train_stage(
            host,
            key=engine.stage_key(stage),
            parents=parents,
            examples=engine.examples(records, model.dataset.labels),
            collate=engine.collator(model),
            settings=engine.train_settings(model),
            model_seed=model.seed,
            on_step=renew,
        )
    path = store.path(artifact.key)
    store.save(artifact)
    return _record_trained(model, job, stage, artifact, str(path))


def _parents(stage: Stage) -> list[Stage]:
    prefix = stage.prefix_tuple
    names = [engine.prefix_text(prefix[:d]) for d in range(1, len(prefix))]
    by_prefix = {s.prefix: s for s in Stage.objects.filter(shard=stage.shard, prefix__in=names)}
    return [by_prefix[n] for n in names]


def _lease_renewer(stage: Stage) -> Any:
    last = [timezone.now()]

    def renew(step: int, loss: float) -> None:
        now = timezone.now()
        if now - last[0] > _lease() / 4:
            Stage.objects.filter(pk=stage.pk, state="training").update(claimed_until=now + _lease())
            last[0] = now

    return renew


def _record_trained(
    model: UnlearningModel, job: TrainingJob, stage: Stage, artifact: Any, path: str
) -> bool:
    with transaction.atomic():
        # A record of this stage's lineage erased while it trained makes it unusable (I5):
        # it never becomes trained, and its bytes are destroyed below.
        erased = Record.objects.filter(
            assignments__slice__stages=stage, status=Record.Status.ERASED
        ).exists()
        updated = Stage.objects.filter(pk=stage.pk, state="training").update(
            state="deactivated" if erased else "trained",
            artifact_path=path,
            tensor_digest=artifact.digest,
            lineage_digest=artifact.recipe["lineage"]["digest"],
            metrics=dict(artifact.metrics),
            recipe=dict(artifact.recipe),
            trained_at=timezone.now(),
            claimed_until=None,
        )
        if updated and not erased:
            TrainingJob.objects.filter(pk=job.pk).update(
                stages_done=F("stages_done") + 1, current_loss=artifact.metrics["final_loss"]
            )
            audit_event_append(
                actor="worker",
                action="stage.trained",
                obj=stage,
                payload={"model": model.pk, "prefix": stage.prefix, "digest": artifact.digest},
            )
    if erased or not updated:
        engine.artifact_store(model, stage.shard.generation).delete(artifact.key)
        return False
    return True


def _finish_job_if_done(job: TrainingJob) -> None:
    if TrainingTask.objects.filter(job=job).exclude(status="done").exists():
        return
    finished = TrainingJob.objects.filter(pk=job.pk, status__in=["queued", "running"]).update(
        status="succeeded", finished_at=timezone.now()
    )
    if finished:
        UnlearningModel.objects.filter(pk=job.model_id).update(status="ready")
        audit_event_append(
            actor="worker",
            action="model.training_finished",
            obj=job.model,
            payload={"job": job.pk, "generation": job.generation},
        )


def training_task_fail(*, task_id: int, error: str) -> None:
    """Record a task that exhausted its retries; the job and model are marked failed."""
    with transaction.atomic():
        task = TrainingTask.objects.select_related("job__model").get(pk=task_id)
        TrainingTask.objects.filter(pk=task_id).update(status="failed")
        TrainingJob.objects.filter(pk=task.job_id).update(
            status="failed", error=error[:2000], finished_at=timezone.now()
        )
        UnlearningModel.objects.filter(pk=task.job.model_id).update(status="failed")
        audit_event_append(
            actor="worker",
            action="model.training_failed",
            obj=task.job.model,
            payload={"job": task.job_id, "task": task_id, "error": error[:500]},
        )


def training_requeue_stalled(*, older_than: timedelta | None = None) -> list[int]:
    """Queue again every unfinished task of a live job (sweeper; harmless if duplicated).

    A duplicate finds its stages trained or leased and does nothing or retries later.
    """
    cutoff = timezone.now() - (older_than or timedelta(0))
    ids = list(
        TrainingTask.objects.filter(
            status__in=["queued", "running"],
            job__status__in=["queued", "running"],
            updated_at__lte=cutoff,
        ).values_list("pk", flat=True)
    )
    if ids:
        transaction.on_commit(lambda: _enqueue(ids))
    return ids
