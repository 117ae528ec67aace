"""Training on Celery workers: run one (shard, sequence) task, stage by stage, under leases.

``training_task_run`` is what a worker executes: it claims each stage of its sequence with
a conditional UPDATE and a lease, trains it with the engine, and records it. Finished
stages are never retrained, so a killed worker's task resumes where it stopped, and a
prefix shared by two sequences is trained once whichever task gets there first.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from governance import engine
from governance.artifacts import stage_load
from governance.models import Record, Stage, TrainingJob, TrainingTask, UnlearningModel
from governance.services import training
from governance.services.audit import audit_event_append
from governance.services.lineage_events import lineage_training_event
from governance.services.retraining import generations_retire
from governance.services.webhooks import model_notify

LIVE_JOB = (TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING)


class StageBusy(Exception):
    """Another worker holds a live lease on the stage; retry the task later."""


def _lease() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "LETHE_STAGE_LEASE_SECONDS", 600)))


def training_task_run(*, task_id: int) -> None:
    """Train the stages of one (shard, sequence) that are not trained yet.

    Idempotent: a task whose stages are all trained only refreshes the manifest. Raises
    ``StageBusy`` when another live worker is training a stage this sequence needs.
    """
    claimed = (
        TrainingTask.objects.filter(pk=task_id)
        .exclude(status=TrainingTask.Status.DONE)
        .update(status=TrainingTask.Status.RUNNING, attempts=F("attempts") + 1)
    )
    if not claimed:
        return
    task = TrainingTask.objects.select_related("job__model__dataset", "sequence__shard").get(
        pk=task_id
    )
    job, model, sequence = task.job, task.job.model, task.sequence
    if TrainingJob.objects.filter(pk=job.pk, status=TrainingJob.Status.QUEUED).update(
        status=TrainingJob.Status.RUNNING, started_at=timezone.now()
    ):
        lineage_training_event(job=job, state="START")
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
        # The job's row lock serialises the last tasks of two workers: without it each
        # sees the other's task still running and neither finishes the job.
        TrainingJob.objects.select_for_update().filter(pk=job.pk).first()
        TrainingTask.objects.filter(pk=task_id).update(status=TrainingTask.Status.DONE)
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
        .filter(Q(state=Stage.State.PENDING) | Q(state=Stage.State.TRAINING, claimed_until__lt=now))
        .update(state=Stage.State.TRAINING, claimed_until=now + _lease())
    )


def _train_stage(model: UnlearningModel, job: TrainingJob, stage: Stage) -> bool:
    """Train and record one stage; False when its lineage turned out to hold erased data."""
    from unlearning.training import train_stage

    if not _claim(stage):
        raise StageBusy(f"stage {stage.pk} is being trained by another worker")
    records = list(Record.objects.filter(assignments__slice__stages=stage))
    if any(r.status == Record.Status.ERASED for r in records):
        Stage.objects.filter(pk=stage.pk).update(state=Stage.State.DEACTIVATED, claimed_until=None)
        return False
    store = engine.artifact_store(model, stage.shard.generation)
    # Parents may have been trained on another machine: read from the shared store (or
    # this process's cache), each checked against the digest its row recorded.
    parents = [stage_load(p) for p in _parents(stage)]
    host, lock = engine.hosts.get(model, "training")
    renew = _lease_renewer(stage)
    with lock:
        artifact = train_stage(
            host,
            key=engine.stage_key(stage),
            parents=parents,
            examples=engine.examples(records, model),
            collate=engine.collator(model),
            settings=engine.train_settings(model),
            model_seed=model.seed,
            on_step=renew,
        )
    attempt = secrets.token_hex(4)  # this attempt's own object (StageStore.object_key)
    store.save(artifact, attempt)
    return _record_trained(model, job, stage, artifact, store.object_key(artifact.key, attempt))


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
            leased = Stage.objects.filter(pk=stage.pk, state=Stage.State.TRAINING)
            leased.update(claimed_until=now + _lease())
            last[0] = now

    return renew


def _record_trained(
    model: UnlearningModel, job: TrainingJob, stage: Stage, artifact: Any, object_key: str
) -> bool:
    with transaction.atomic():
        # A record of this stage's lineage erased while it trained makes it unusable (I5):
        # it never becomes trained, and its bytes are destroyed below.
        erased = Record.objects.filter(
            assignments__slice__stages=stage, status=Record.Status.ERASED
        ).exists()
        updated = Stage.objects.filter(pk=stage.pk, state=Stage.State.TRAINING).update(
            state=Stage.State.DEACTIVATED if erased else Stage.State.TRAINED,
            artifact_key=object_key,
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
        # Only this attempt's object: a stage another worker recorded keeps its own bytes.
        engine.artifact_store(model, stage.shard.generation).delete(artifact.key, object_key)
        return False
    return True


def _finish_job_if_done(job: TrainingJob) -> None:
    if TrainingTask.objects.filter(job=job).exclude(status=TrainingTask.Status.DONE).exists():
        return
    finished = TrainingJob.objects.filter(pk=job.pk, status__in=LIVE_JOB).update(
        status=TrainingJob.Status.SUCCEEDED, finished_at=timezone.now()
    )
    if finished:
        UnlearningModel.objects.filter(pk=job.model_id).update(status=UnlearningModel.Status.READY)
        audit_event_append(
            actor="worker",
            action="model.training_finished",
            obj=job.model,
            payload={"job": job.pk, "generation": job.generation},
        )
        retrained = job.kind == TrainingJob.Kind.RETRAIN
        model_notify(
            "model.retrained" if retrained else "model.trained",
            job.model_id,
            job=job.pk,
            generation=job.generation,
        )
        lineage_training_event(job=job, state="COMPLETE")


def training_task_fail(*, task_id: int, error: str) -> None:
    """Record a task that exhausted its retries; the job and model are marked failed."""
    with transaction.atomic():
        task = TrainingTask.objects.select_related("job__model").get(pk=task_id)
        TrainingTask.objects.filter(pk=task_id).update(status=TrainingTask.Status.FAILED)
        TrainingJob.objects.filter(pk=task.job_id).update(
            status=TrainingJob.Status.FAILED, error=error[:2000], finished_at=timezone.now()
        )
        failed = UnlearningModel.Status.FAILED
        UnlearningModel.objects.filter(pk=task.job.model_id).update(status=failed)
        audit_event_append(
            actor="worker",
            action="model.training_failed",
            obj=task.job.model,
            payload={"job": task.job_id, "task": task_id, "error": error[:500]},
        )
        lineage_training_event(job=task.job, state="FAIL")


def training_requeue_stalled(*, older_than: timedelta | None = None) -> list[int]:
    """Queue again every unfinished task of a live job (sweeper; harmless if duplicated).

    A duplicate finds its stages trained or leased and does nothing or retries later.
    """
    cutoff = timezone.now() - (older_than or timedelta(0))
    ids = list(
        TrainingTask.objects.filter(
            status__in=[TrainingTask.Status.QUEUED, TrainingTask.Status.RUNNING],
            job__status__in=LIVE_JOB,
            updated_at__lte=cutoff,
        ).values_list("pk", flat=True)
    )
    if ids:
        training.training_tasks_enqueue(task_ids=ids)
    return ids
