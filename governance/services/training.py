"""Models and training (flow 2): create, partition, plan, and train on Celery workers.

``model_train`` writes the whole lineage of a new generation in one transaction (shards,
slices, record assignments, sequences, stages) and queues one task per (shard, sequence)
after commit. ``training_task_run`` is what a worker executes: it claims each stage of its
sequence with a conditional UPDATE and a lease, trains it with the engine, and records it.
Finished stages are never retrained, so a killed worker's task resumes where it stopped,
and a prefix shared by two sequences is trained once whichever task gets there first.
"""

from __future__ import annotations

from collections.abc import Collection
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
    ServingManifest,
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
        _check_every_cell_filled(placement, model.num_shards * model.num_slices)
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
            tasks += _plan_shard(model, job, shard_index, slices)
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


def _check_every_cell_filled(placement: dict[str, Any], cells: int) -> None:
    """A subject's records share one cell, so fewer subjects than cells leaves a slice empty
    and its stages with nothing to train on: refuse the plan instead of failing in a worker."""
    filled = len({(c.shard, c.slice) for c in placement.values()})
    if filled < cells:
        raise _invalid(
            "dataset",
            f"its data subjects fill only {filled} of {cells} shard x slice cells "
            "(a subject's records stay in one cell); add subjects or use fewer shards/slices",
        )


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


def _plan_shard(
    model: UnlearningModel, job: TrainingJob, shard_index: int, slices: dict[tuple[int, int], Slice]
) -> list[TrainingTask]:
    """Sequences and stages of one shard under the model's policy; its unsaved tasks."""
    from unlearning.training import stage_plan

    shard = slices[(shard_index, 0)].shard
    plan = engine.sequence_plan(model, shard_index)
    _create_stages(shard, stage_plan(plan), slices)
    return [
        TrainingTask(
            job=job, sequence=Sequence.objects.create(shard=shard, index=i, order=list(order))
        )
        for i, order in enumerate(plan)
    ]


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

    manifest = manifest_refresh(model=model, reason=f"training job {job.pk}")
    if manifest is not None and manifest.generation > 1:
        generations_retire(model=model)  # a new generation took over: retire the old


def stage_leases_release(*, model: UnlearningModel, keep: Collection[int] = ()) -> int:
    """Let the leases this process holds on ``model``'s training stages lapse now.

    A process that stops mid-stage (Ctrl-C, an error) calls this so the next run resumes
    at once instead of waiting out the lease. ``keep``: stages leased by other processes
    before this one started, which stay theirs. Returns how many leases were released.
    """
    training = Stage.objects.filter(shard__model=model, state=Stage.State.TRAINING)
    return training.exclude(pk__in=list(keep)).update(claimed_until=timezone.now())


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


# --- Scheduled retraining (flow 4) --------------------------------------------------------


def shards_due_for_retraining(model: UnlearningModel) -> list[int]:
    """Shards of the serving generation whose serving depth is below the threshold.

    A shard missing from the manifest (no clean prefix left) serves at depth 0.
    """
    from governance.selectors.manifests import manifest_current

    manifest = manifest_current(model)
    depths = {e["shard"]: e["depth"] for e in manifest.entries}
    return [i for i in range(model.num_shards) if depths.get(i, 0) < model.retrain_threshold]


def models_retrain_due(*, actor: Any) -> list[TrainingJob]:
    """Beat entry point: queue a retrain for every ready model with shards below threshold."""
    jobs = []
    for model in UnlearningModel.objects.filter(status=UnlearningModel.Status.READY):
        if not ServingManifest.objects.filter(model=model).exists():
            continue
        if shards_due_for_retraining(model):
            try:
                job = model_retrain(
                    actor=actor, model=model, reason="serving depth below threshold"
                )
            except ApplicationError:
                continue  # a job started meanwhile, or too few records: next round
            if job is not None:
                jobs.append(job)
    return jobs


def model_retrain(
    *, actor: Any, model: UnlearningModel, shards: Seq[int] | None = None, reason: str
) -> TrainingJob | None:
    """Retrain shards on their remaining records as a new generation; others carry over.

    The new generation copies every other shard as it is (slices, lineage, sequences and
    stage rows; stage files are hard-linked, so digests and bytes are the same) and trains
    the chosen shards anew on their active records plus records not yet trained by any
    generation, re-partitioned into fresh slices under the model's sequence policy. The
    previous generation keeps serving (and keeps honouring erasures) until every shard of
    the new one can serve; then the manifest swaps in one transaction and the old
    generation's stages are retired, their bytes destroyed.

    Returns:
        The job, or None when no shard is due.
    """
    from governance.selectors.manifests import manifest_current
    from unlearning.partition import assign

    with transaction.atomic():
        model = UnlearningModel.objects.select_for_update().get(pk=model.pk)
        if TrainingJob.objects.filter(model=model, status__in=["queued", "running"]).exists():
            raise ApplicationError(
                code="conflict", status=409, message="model: a training job is already running"
            )
        previous = manifest_current(model).generation
        due = sorted(set(shards if shards is not None else shards_due_for_retraining(model)))
        if not due:
            return None
        if any(not 0 <= i < model.num_shards for i in due):
            raise _invalid("shards", f"must be between 0 and {model.num_shards - 1}")
        generation = model.generation + 1
        slices = _create_generation(model, generation)
        old_shards = {s.index: s for s in Shard.objects.filter(model=model, generation=previous)}
        tasks: list[TrainingTask] = []
        job = TrainingJob.objects.create(
            model=model,
            generation=generation,
            kind=TrainingJob.Kind.RETRAIN,
            retrained_shards=due,
            reason=reason[:200],
            created_by=_user(actor),
        )
        carried = [i for i in range(model.num_shards) if i not in due]
        for index in carried:
            tasks += _carry_shard(model, job, old_shards[index], slices)
        # Active records of the due shards, plus records no generation has trained yet.
        trained_elsewhere = SliceAssignment.objects.filter(
            model=model, generation=previous, slice__shard__index__in=carried
        ).values_list("record_id", flat=True)
        records = list(
            Record.objects.filter(dataset=model.dataset_id, status=Record.Status.ACTIVE)
            .exclude(pk__in=trained_elsewhere)
            .values_list("pk", "external_id", "subject__external_ref")
        )
        if len(records) < len(due) * model.num_slices:
            raise _invalid(
                "dataset",
                f"has {len(records)} active records for {len(due)} shards; "
                f"need at least {len(due) * model.num_slices}",
            )
        pk_of = {external_id: pk for pk, external_id, _ in records}
        placement = assign(
            [(external_id, subject) for _, external_id, subject in records],
            num_shards=len(due),
            num_slices=model.num_slices,
            seed=model.seed + generation,
        )
        _check_every_cell_filled(placement, len(due) * model.num_slices)
        SliceAssignment.objects.bulk_create(
            [
                SliceAssignment(
                    record_id=pk_of[key],
                    slice=slices[(due[c.shard], c.slice)],
                    model=model,
                    generation=generation,
                )
                for key, c in placement.items()
            ],
            batch_size=5000,
        )
        for shard_index in due:
            tasks += _plan_shard(model, job, shard_index, slices)
        TrainingTask.objects.bulk_create(tasks)
        job.stages_total = Stage.objects.filter(
            shard__model=model, shard__generation=generation, shard__index__in=due
        ).count()
        job.save(update_fields=["stages_total"])
        model.generation, model.status = generation, UnlearningModel.Status.TRAINING
        model.save(update_fields=["generation", "status"])
        audit_event_append(
            actor=actor,
            action="model.retraining_queued",
            obj=model,
            payload={
                "job": job.pk,
                "generation": generation,
                "previous_generation": previous,
                "shards": due,
                "records": len(placement),
                "reason": reason,
            },
        )
        task_ids = [
            t.pk for t in TrainingTask.objects.filter(job=job, status="queued").order_by("pk")
        ]
        transaction.on_commit(lambda: _enqueue(task_ids))
    return job


def _carry_shard(
    model: UnlearningModel,
    job: TrainingJob,
    old: Shard,
    slices: dict[tuple[int, int], Slice],
) -> list[TrainingTask]:
    """Copy one shard into the new generation unchanged: lineage, sequences, stages, bytes."""
    new_slice = {s.index: slices[(old.index, s.index)] for s in old.slices.all()}
    old_slice_index = {s.pk: s.index for s in old.slices.all()}
    SliceAssignment.objects.bulk_create(
        [
            SliceAssignment(
                record_id=a.record_id,
                slice=new_slice[old_slice_index[a.slice_id]],
                model=model,
                generation=job.generation,
            )
            for a in SliceAssignment.objects.filter(slice__shard=old).only("record_id", "slice_id")
        ],
        batch_size=5000,
    )
    shard = new_slice[0].shard
    old_store = engine.artifact_store(model, old.generation)
    new_store = engine.artifact_store(model, job.generation)
    copies = []
    for stage in old.stages.all().order_by("pk"):
        path = ""
        if stage.state == Stage.State.TRAINED:
            key = engine.stage_key(stage)
            target = new_store.path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(old_store.path(key), target)
            path = str(target)
        copies.append(
            (
                stage,
                Stage(
                    shard=shard,
                    prefix=stage.prefix,
                    position=stage.position,
                    state=stage.state
                    if stage.state != Stage.State.TRAINING
                    else Stage.State.PENDING,
                    artifact_path=path,
                    tensor_digest=stage.tensor_digest,
                    lineage_digest=stage.lineage_digest,
                    metrics=stage.metrics,
                    recipe=stage.recipe,
                    trained_at=stage.trained_at,
                    destroyed_at=stage.destroyed_at,
                ),
            )
        )
    created = Stage.objects.bulk_create([c for _, c in copies])
    Stage.slices.through.objects.bulk_create(
        [
            Stage.slices.through(stage_id=new.pk, slice_id=new_slice[int(s)].pk)
            for (_, new) in zip(copies, created, strict=True)
            for s in new.prefix.split("-")
        ]
    )
    tasks = []
    for seq in old.sequences.order_by("index"):
        sequence = Sequence.objects.create(shard=shard, index=seq.index, order=seq.order)
        tasks.append(TrainingTask(job=job, sequence=sequence, status=TrainingTask.Status.DONE))
    return tasks


def _link_or_copy(source: Any, target: Any) -> None:
    import os
    import shutil

    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def generations_retire(*, model: UnlearningModel, actor: Any = "worker") -> list[int]:
    """Retire stages of generations older than the serving one: bytes destroyed, audited."""
    from pathlib import Path

    from governance.selectors.manifests import manifest_current

    serving = manifest_current(model).generation
    stages = list(
        Stage.objects.filter(shard__model=model, shard__generation__lt=serving)
        .exclude(state__in=[Stage.State.DESTROYED, Stage.State.RETIRED])
        .select_related("shard")
    )
    for stage in stages:
        engine.artifact_store(model, stage.shard.generation).delete(engine.stage_key(stage))
        if stage.artifact_path:
            Path(stage.artifact_path).unlink(missing_ok=True)
    if not stages:
        return []
    ids = [s.pk for s in stages]
    with transaction.atomic():
        Stage.objects.filter(pk__in=ids).update(
            state=Stage.State.RETIRED, destroyed_at=timezone.now(), artifact_path=""
        )
        audit_event_append(
            actor=actor,
            action="generation.retired",
            obj=model,
            payload={"serving_generation": serving, "stages": ids},
        )
    return ids
