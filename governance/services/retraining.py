"""Scheduled retraining (flow 4): shards that serve too shallow are trained anew.

A retrain is a new generation: the due shards are re-partitioned from their remaining
records and planned through the same helper as a first training
(``training.generation_plan``); every other shard is carried over unchanged. The old
generation serves until the new one can, and is then retired.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from typing import Any

from django.db import transaction
from django.utils import timezone

from governance import engine
from governance.artifacts import (
    artifact_keys_evict_everywhere,
    artifact_objects,
    generation_prefix,
    stage_bytes_destroy,
    stage_object_key,
)
from governance.errors import ApplicationError
from governance.models import (
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
from governance.selectors.manifests import manifest_current
from governance.services.audit import audit_event_append
from governance.services.training import (
    actor_user,
    field_invalid,
    generation_create,
    generation_plan,
    model_lock_idle,
)


def shards_due_for_retraining(model: UnlearningModel) -> list[int]:
    """Shards of the serving generation whose serving depth is below the threshold.

    A shard missing from the manifest (no clean prefix left) serves at depth 0.
    """
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
    with transaction.atomic():
        model = model_lock_idle(model)
        previous = manifest_current(model).generation
        due = sorted(set(shards if shards is not None else shards_due_for_retraining(model)))
        if not due:
            return None
        if any(not 0 <= i < model.num_shards for i in due):
            raise field_invalid("shards", f"must be between 0 and {model.num_shards - 1}")
        generation = model.generation + 1
        slices = generation_create(model, generation)
        old_shards = {s.index: s for s in Shard.objects.filter(model=model, generation=previous)}
        job = TrainingJob.objects.create(
            model=model,
            generation=generation,
            kind=TrainingJob.Kind.RETRAIN,
            retrained_shards=due,
            reason=reason[:200],
            created_by=actor_user(actor),
        )
        carried = [i for i in range(model.num_shards) if i not in due]
        tasks: list[TrainingTask] = []
        for index in carried:
            tasks += _carry_shard(model, job, old_shards[index], slices)
        records = _records_to_retrain(model, previous=previous, carried=carried)
        if len(records) < len(due) * model.num_slices:
            raise field_invalid(
                "dataset",
                f"has {len(records)} active records for {len(due)} shards; "
                f"need at least {len(due) * model.num_slices}",
            )
        placed = generation_plan(
            model=model,
            job=job,
            records=records,
            shards=due,
            seed=model.seed + generation,
            slices=slices,
            carried=tasks,
        )
        audit_event_append(
            actor=actor,
            action="model.retraining_queued",
            obj=model,
            payload={
                "job": job.pk,
                "generation": generation,
                "previous_generation": previous,
                "shards": due,
                "records": placed,
                "reason": reason,
            },
        )
    return job


def _records_to_retrain(
    model: UnlearningModel, *, previous: int, carried: Seq[int]
) -> list[tuple[int, str, str]]:
    """Active records of the due shards, plus records no generation has trained yet."""
    trained_elsewhere = SliceAssignment.objects.filter(
        model=model, generation=previous, slice__shard__index__in=carried
    ).values_list("record_id", flat=True)
    return list(
        Record.objects.filter(dataset=model.dataset_id, status=Record.Status.ACTIVE)
        .exclude(pk__in=trained_elsewhere)
        .values_list("pk", "external_id", "subject__external_ref")
    )


def _carry_shard(
    model: UnlearningModel,
    job: TrainingJob,
    old: Shard,
    slices: dict[tuple[int, int], Slice],
) -> list[TrainingTask]:
    """Copy one shard into the new generation unchanged: lineage, sequences, stages, bytes.

    Returns its tasks, already done: nothing of a carried shard is trained again.
    """
    new_slice = {s.index: slices[(old.index, s.index)] for s in old.slices.all()}
    _carry_assignments(model, job, old, new_slice)
    _carry_stages(model, job, old, new_slice)
    shard = new_slice[0].shard
    tasks = []
    for seq in old.sequences.order_by("index"):
        sequence = Sequence.objects.create(shard=shard, index=seq.index, order=seq.order)
        tasks.append(TrainingTask(job=job, sequence=sequence, status=TrainingTask.Status.DONE))
    return tasks


def _carry_assignments(
    model: UnlearningModel, job: TrainingJob, old: Shard, new_slice: dict[int, Slice]
) -> None:
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


def _carry_stages(
    model: UnlearningModel, job: TrainingJob, old: Shard, new_slice: dict[int, Slice]
) -> None:
    """Stage rows as they are (a stage caught training starts over as pending); the trained
    ones' objects are copied inside the store (server-side on S3) to the new generation's
    keys: a copy, never a link, so retiring one generation never touches the other's."""
    shard = new_slice[0].shard
    old_store = engine.artifact_store(model, old.generation)
    new_store = engine.artifact_store(model, job.generation)
    copies = []
    for stage in old.stages.all().order_by("pk"):
        object_key = ""
        if stage.state == Stage.State.TRAINED:
            object_key = new_store.copy_from(
                old_store, engine.stage_key(stage), stage_object_key(stage)
            )
        training = stage.state == Stage.State.TRAINING
        copies.append(
            Stage(
                shard=shard,
                prefix=stage.prefix,
                position=stage.position,
                state=Stage.State.PENDING if training else stage.state,
                artifact_key=object_key,
                tensor_digest=stage.tensor_digest,
                lineage_digest=stage.lineage_digest,
                metrics=stage.metrics,
                recipe=stage.recipe,
                trained_at=stage.trained_at,
                destroyed_at=stage.destroyed_at,
            )
        )
    created = Stage.objects.bulk_create(copies)
    Stage.slices.through.objects.bulk_create(
        [
            Stage.slices.through(stage_id=new.pk, slice_id=new_slice[int(s)].pk)
            for new in created
            for s in new.prefix.split("-")
        ]
    )


def generations_retire(*, model: UnlearningModel, actor: Any = "worker") -> list[int]:
    """Retire stages of generations older than the serving one: bytes destroyed, audited."""
    serving = manifest_current(model).generation
    stages = list(
        Stage.objects.filter(shard__model=model, shard__generation__lt=serving)
        .exclude(state__in=[Stage.State.DESTROYED, Stage.State.RETIRED])
        .select_related("shard")
    )
    gone = [key for stage in stages for key in stage_bytes_destroy(stage)]
    # Objects no row names (an attempt whose worker died before recording it) go too.
    old_generations = set(
        Shard.objects.filter(model=model, generation__lt=serving).values_list(
            "generation", flat=True
        )
    )
    objects = artifact_objects()
    for generation in sorted(old_generations):
        for key in objects.list(generation_prefix(model.pk, generation) + "/"):
            objects.delete(key)
            gone.append(key)
    artifact_keys_evict_everywhere(gone)
    if not stages:
        return []
    ids = [s.pk for s in stages]
    with transaction.atomic():
        Stage.objects.filter(pk__in=ids).update(
            state=Stage.State.RETIRED, destroyed_at=timezone.now()
        )
        audit_event_append(
            actor=actor,
            action="generation.retired",
            obj=model,
            payload={"serving_generation": serving, "stages": ids},
        )
    return ids
