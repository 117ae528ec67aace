"""Models and training (flow 2): create a model, plan a generation, queue its tasks.

``model_train`` writes the whole lineage of a new generation in one transaction (shards,
slices, record assignments, sequences, stages) and queues one task per (shard, sequence)
after commit; ``model_retrain`` (services/retraining.py) plans its new generation through
the same helpers (a full retrain through ``generation_plan``, a suffix retrain, which keeps
its slices, through ``generation_queue``). What a worker executes lives in
services/training_tasks.py.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass
from typing import Any

from django.db import transaction

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

# (pk, external_id, subject external_ref): what the partitioner needs of a record.
RecordRow = tuple[int, str, str]


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
    lora_targets: list[str] | None = None  # None: the backbone's default for the task
    epochs: int = 2
    stage_epochs: str = UnlearningModel.StageEpochs.SCALED
    learning_rate: float = 1e-3
    batch_size: int = 32
    precision: str = "fp32"
    seed: int = 0
    retrain_threshold: int = 1
    slice_priors: list[float] | None = None


def field_invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(
        code="invalid", message=f"{field}: {message}", details={field: [message]}
    )


def _lora_targets_check(targets: Seq[str]) -> list[str]:
    """Module names as the API may name them: distinct dotted identifiers, at least one.

    Whether each exists in the backbone's blocks is the engine's to say when it wraps the
    model; the names are recorded in every stage's recipe either way.
    """
    names = [t.strip() for t in targets]
    if not names or any(not n.replace(".", "_").isidentifier() for n in names):
        raise field_invalid("lora.targets", "module names such as q_proj, v_proj (at least one)")
    if len(set(names)) != len(names):
        raise field_invalid("lora.targets", "each module at most once")
    return names


def model_create(*, actor: Any, spec: ModelSpec) -> UnlearningModel:
    """Validate the S3T plan against the backbone and create the model."""
    if not engine.backbone_allowed(spec.base_model):
        # A free path would let an API client probe the server's file system.
        known = ", ".join(engine.backbone_names())
        raise field_invalid(
            "base_model",
            f"{spec.base_model!r} is neither a packaged backbone ({known}) "
            "nor a checkpoint folder under LETHE_MODEL_ROOT",
        )
    if spec.slice_priors is not None and spec.sequence_policy != "bms":
        raise field_invalid("slice_priors", "only the bms policy uses deletion priors")
    task = spec.dataset.task  # a model's task is its dataset's
    try:
        blocks = engine.backbone_blocks(spec.base_model)
        # Here, not in the worker: an image backbone on text records (or an encoder asked
        # to generate) would be accepted and fail at its first stage.
        engine.backbone_task_check(spec.base_model, task)
        targets = engine.lora_targets_default(spec.base_model, task)
    except (ValueError, OSError) as exc:
        raise field_invalid("base_model", str(exc).removeprefix("base_model: ")) from None
    if spec.lora_targets is not None:
        targets = _lora_targets_check(spec.lora_targets)
    if not 1 <= spec.slices <= blocks:
        raise field_invalid("slices", f"must be between 1 and the backbone's {blocks} blocks")
    if not 1 <= spec.retrain_threshold <= spec.slices:
        raise field_invalid("retrain_threshold", "must be between 1 and slices")
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
        lora_targets=targets,
        epochs=spec.epochs,
        stage_epochs=spec.stage_epochs,
        learning_rate=spec.learning_rate,
        batch_size=spec.batch_size,
        precision=spec.precision,
        seed=spec.seed,
        retrain_threshold=spec.retrain_threshold,
        created_by=actor_user(actor),
    )
    try:
        engine.sequence_plan(model, 0)
    except ValueError as exc:
        field = "slice_priors" if "prior" in str(exc) else "sequences"
        raise field_invalid(field, str(exc)) from None
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
                "task": task,
                "plan": [spec.shards, spec.slices, spec.sequences, spec.sequence_policy],
            },
        )
    return model


def actor_user(actor: Any) -> Any:
    """The user behind ``actor``, or None for a system actor ("worker", "scheduler")."""
    return actor if getattr(actor, "is_authenticated", False) else None


def model_train(*, actor: Any, model: UnlearningModel) -> TrainingJob:
    """Partition the dataset's active records into a new generation and queue training."""
    caller_model = model
    with transaction.atomic():
        model = model_lock_idle(model)
        records = list(
            Record.objects.filter(
                dataset=model.dataset_id, status=Record.Status.ACTIVE
            ).values_list("pk", "external_id", "subject__external_ref")
        )
        cells = model.num_shards * model.num_slices
        if len(records) < cells:
            raise field_invalid(
                "dataset", f"has {len(records)} active records; need at least {cells}"
            )
        generation = model.generation + 1
        slices = generation_create(model, generation)
        job = TrainingJob.objects.create(
            model=model, generation=generation, created_by=actor_user(actor)
        )
        placed = generation_plan(
            model=model,
            job=job,
            records=records,
            shards=range(model.num_shards),
            seed=model.seed,
            slices=slices,
        )
        audit_event_append(
            actor=actor,
            action="model.training_queued",
            obj=model,
            payload={
                "job": job.pk,
                "generation": generation,
                "records": placed,
                "stages": job.stages_total,
            },
        )
    caller_model.generation, caller_model.status = model.generation, model.status
    return job


def model_lock_idle(model: UnlearningModel) -> UnlearningModel:
    """Lock the model's row for planning; 409 while one of its training jobs is live."""
    model = UnlearningModel.objects.select_for_update().get(pk=model.pk)
    live = [TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING]
    if TrainingJob.objects.filter(model=model, status__in=live).exists():
        raise ApplicationError(
            code="conflict", status=409, message="model: a training job is already running"
        )
    return model


def generation_create(model: UnlearningModel, generation: int) -> dict[tuple[int, int], Slice]:
    """Every shard and slice row of a new generation, keyed by (shard, slice) index."""
    shards = Shard.objects.bulk_create(
        [Shard(model=model, generation=generation, index=i) for i in range(model.num_shards)]
    )
    created = Slice.objects.bulk_create(
        [Slice(shard=shard, index=s) for shard in shards for s in range(model.num_slices)]
    )
    return {(sl.shard.index, sl.index): sl for sl in created}


def generation_plan(
    *,
    model: UnlearningModel,
    job: TrainingJob,
    records: Seq[RecordRow],
    shards: Seq[int],
    seed: int,
    slices: dict[tuple[int, int], Slice],
    carried: Seq[TrainingTask] = (),
) -> int:
    """Place ``records`` on ``shards`` of the job's generation, plan them, queue the tasks.

    The one planning path of a first training and a retrain: the shards are partitioned
    anew, get their sequences and stages, and every queued task of the job is sent after
    commit. ``carried``: the (done) tasks of shards copied unchanged. Returns how many
    records were placed.
    """
    placed = _records_place(
        model=model,
        generation=job.generation,
        records=records,
        shards=shards,
        seed=seed,
        slices=slices,
    )
    tasks = list(carried)
    for shard_index in shards:
        tasks += _plan_shard(model, job, shard_index, slices)
    generation_queue(
        model=model,
        job=job,
        tasks=tasks,
        stages_total=Stage.objects.filter(
            shard__model=model, shard__generation=job.generation, shard__index__in=list(shards)
        ).count(),
    )
    return placed


def generation_queue(
    *, model: UnlearningModel, job: TrainingJob, tasks: Seq[TrainingTask], stages_total: int
) -> None:
    """Save a planned generation's tasks, make it the model's newest, queue what is queued.

    ``stages_total``: the stages the job trains (its progress bar); the tasks of carried
    shards and of sequences whose stages were all kept come already done.
    """
    TrainingTask.objects.bulk_create(tasks)
    job.stages_total = stages_total
    job.save(update_fields=["stages_total"])
    model.generation, model.status = job.generation, UnlearningModel.Status.TRAINING
    model.save(update_fields=["generation", "status"])
    queued = TrainingTask.objects.filter(job=job, status=TrainingTask.Status.QUEUED)
    training_tasks_enqueue(task_ids=list(queued.order_by("pk").values_list("pk", flat=True)))


def _records_place(
    *,
    model: UnlearningModel,
    generation: int,
    records: Seq[RecordRow],
    shards: Seq[int],
    seed: int,
    slices: dict[tuple[int, int], Slice],
) -> int:
    """Partition ``records`` over ``shards`` x the model's slices and write the assignments.

    Keyed by the platform's ids (record and subject), so the same data under another
    database gives the same lineage; all of a subject's records share one slice.
    """
    from unlearning.partition import assign

    pk_of = {external_id: pk for pk, external_id, _ in records}
    placement = assign(
        [(external_id, subject) for _, external_id, subject in records],
        num_shards=len(shards),
        num_slices=model.num_slices,
        seed=seed,
    )
    _check_every_cell_filled(placement, len(shards) * model.num_slices)
    SliceAssignment.objects.bulk_create(
        [
            SliceAssignment(
                record_id=pk_of[key],
                slice=slices[(shards[c.shard], c.slice)],
                model=model,
                generation=generation,
            )
            for key, c in placement.items()
        ],
        batch_size=5000,
    )
    return len(placement)


def _check_every_cell_filled(placement: dict[str, Any], cells: int) -> None:
    """A subject's records share one cell, so fewer subjects than cells leaves a slice empty
    and its stages with nothing to train on: refuse the plan instead of failing in a worker."""
    filled = len({(c.shard, c.slice) for c in placement.values()})
    if filled < cells:
        raise field_invalid(
            "dataset",
            f"its data subjects fill only {filled} of {cells} shard x slice cells "
            "(a subject's records stay in one cell); add subjects or use fewer shards/slices",
        )


def _enqueue(task_ids: Seq[int]) -> None:
    # Looked up in this module when a transaction commits: the bench harness and the
    # browser tests replace it to run the tasks in their own process.
    from celery_worker.tasks import train_sequence as train_sequence_task

    for task_id in task_ids:
        train_sequence_task.delay(task_id)


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


def training_tasks_enqueue(*, task_ids: Seq[int]) -> None:
    """Send ``task_ids`` to the training queue once the current transaction commits."""
    transaction.on_commit(lambda: _enqueue(task_ids))
