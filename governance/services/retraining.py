"""Scheduled retraining (flow 4): shards that serve too shallow are trained again.

A retrain is a new generation; every shard that is not due is carried over unchanged, and
the old generation serves until the new one can, and is then retired. A due shard is
retrained in one of two modes (``TrainingJob.retrain_mode``):

- **suffix** (the default): the shard keeps its slices minus the erased records, and every
  stage whose lineage is still clean (trained, no slice of its prefix lost a record, its
  parents kept) is copied as it is, bytes and digests the same; only the stages at and
  after the first dirty slice of each sequence are trained again, on the remaining records
  of their prefix's slices, from the kept parent stages. Records no generation has trained
  yet join the *dirty* slices of the due shards (whose stages are trained again anyway),
  subject by subject, each into the dirty slice holding the fewest records
  (``unlearning.partition.assign`` over those cells).
- **full**: the due shards are re-partitioned from their remaining records into fresh
  slices and planned through the same helper as a first training
  (``training.generation_plan``). A suffix retrain falls back to it when nothing of the due
  shards would be trained again, when records wait but no due shard has a dirty slice, when
  more records wait than ``NEW_RECORDS_MAX_SHARE`` of the due shards' remaining records
  (they would unbalance the slices), or when a slice would be left empty.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
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
    RecordRow,
    actor_user,
    field_invalid,
    generation_create,
    generation_plan,
    generation_queue,
    model_lock_idle,
)

Mode = TrainingJob.RetrainMode
# A suffix retrain takes waiting records into its dirty slices up to this share of the
# due shards' remaining records; more fall back to a full re-partition.
NEW_RECORDS_MAX_SHARE = 0.25


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
    *,
    actor: Any,
    model: UnlearningModel,
    shards: Seq[int] | None = None,
    reason: str,
    mode: str = Mode.SUFFIX,
) -> TrainingJob | None:
    """Retrain shards as a new generation, only what was lost by default; others carry over.

    The new generation copies every other shard as it is (slices, lineage, sequences and
    stage rows; stage objects are copied inside the store, so digests and bytes are the
    same). The chosen shards are retrained in ``mode`` (see the module docstring; the job
    records the mode that ran, "full" when a suffix retrain fell back). The previous
    generation keeps serving (and keeps honouring erasures) until every shard of the new
    one can serve; then the manifest swaps in one transaction and the old generation's
    stages are retired, their bytes destroyed.

    Returns:
        The job, or None when no shard is due.
    """
    if mode not in Mode.values:
        raise field_invalid("mode", f"must be one of {', '.join(Mode.values)}")
    with transaction.atomic():
        model = model_lock_idle(model)
        previous = manifest_current(model).generation
        due = sorted(set(shards if shards is not None else shards_due_for_retraining(model)))
        if not due:
            return None
        if any(not 0 <= i < model.num_shards for i in due):
            raise field_invalid("shards", f"must be between 0 and {model.num_shards - 1}")
        generation = model.generation + 1
        old_shards = {s.index: s for s in Shard.objects.filter(model=model, generation=previous)}
        plan = None
        if mode == Mode.SUFFIX:
            plan = _suffix_plan(model, old_shards, due, seed=model.seed + generation)
        slices = generation_create(model, generation)
        job = TrainingJob.objects.create(
            model=model,
            generation=generation,
            kind=TrainingJob.Kind.RETRAIN,
            retrained_shards=due,
            retrain_mode=Mode.FULL if plan is None else Mode.SUFFIX,
            reason=reason[:200],
            created_by=actor_user(actor),
        )
        carried = [i for i in range(model.num_shards) if i not in due]
        tasks: list[TrainingTask] = []
        for index in carried:
            tasks += _carry_shard(model, job, old_shards[index], slices)
        if plan is None:
            placed, kept = _retrain_full(model, job, previous, due, carried, slices, tasks), 0
        else:
            placed, kept = _retrain_suffix(model, job, old_shards, plan, slices, tasks)
        audit_event_append(
            actor=actor,
            action="model.retraining_queued",
            obj=model,
            payload={
                "job": job.pk,
                "generation": generation,
                "previous_generation": previous,
                "shards": due,
                "mode": job.retrain_mode,
                "records": placed,
                "stages_kept": kept,
                "stages_to_train": job.stages_total,
                "reason": reason,
            },
        )
    return job


def _retrain_full(
    model: UnlearningModel,
    job: TrainingJob,
    previous: int,
    due: list[int],
    carried: list[int],
    slices: dict[tuple[int, int], Slice],
    tasks: list[TrainingTask],
) -> int:
    """Re-partition the due shards' remaining records (and waiting ones) and plan them."""
    records = _records_to_retrain(model, previous=previous, carried=carried)
    if len(records) < len(due) * model.num_slices:
        raise field_invalid(
            "dataset",
            f"has {len(records)} active records for {len(due)} shards; "
            f"need at least {len(due) * model.num_slices}",
        )
    return generation_plan(
        model=model,
        job=job,
        records=records,
        shards=due,
        seed=model.seed + job.generation,
        slices=slices,
        carried=tasks,
    )


@dataclass
class SuffixPlan:
    """What a suffix retrain keeps and places, per due shard, decided before any write."""

    # (record pk, shard index, slice index) of every record the due shards keep or take in.
    placement: list[tuple[int, int, int]] = field(default_factory=list)
    # Prefixes ("0-1") of the stages kept as they are, per due shard index.
    kept: dict[int, set[str]] = field(default_factory=dict)


def _suffix_plan(
    model: UnlearningModel, old_shards: dict[int, Shard], due: list[int], *, seed: int
) -> SuffixPlan | None:
    """Kept stages and record placement of a suffix retrain; None: fall back to full."""
    from unlearning.partition import Cell, assign

    rows = list(
        SliceAssignment.objects.filter(slice__shard__in=[old_shards[i] for i in due]).values_list(
            "record_id",
            "record__external_id",
            "record__subject__external_ref",
            "record__status",
            "slice__shard__index",
            "slice__index",
        )
    )
    dirty = {(sh, sl) for *_, status, sh, sl in rows if status != Record.Status.ACTIVE}
    plan = SuffixPlan()
    to_train = 0
    for index in due:
        stages = sorted(old_shards[index].stages.all(), key=lambda s: s.position)
        kept: set[str] = set()
        for stage in stages:
            prefix = stage.prefix_tuple
            parent = engine.prefix_text(prefix[:-1]) if len(prefix) > 1 else None
            if (
                stage.state == Stage.State.TRAINED
                and not any((index, s) in dirty for s in prefix)
                and (parent is None or parent in kept)
            ):
                kept.add(stage.prefix)
        plan.kept[index] = kept
        to_train += len(stages) - len(kept)
    keep = [(pk, ext, subj, sh, sl) for pk, ext, subj, st, sh, sl in rows if st == "active"]
    waiting = _records_never_trained(model, old_shards)
    dirty_cells = sorted(dirty)
    if (
        to_train == 0
        or (waiting and not dirty_cells)
        or len(waiting) > NEW_RECORDS_MAX_SHARE * len(keep)
    ):
        return None
    plan.placement = [(pk, sh, sl) for pk, _, _, sh, sl in keep]
    if waiting:
        cell_of = {cell: Cell(i, 0) for i, cell in enumerate(dirty_cells)}
        inside = [
            (ext, subj, cell_of[(sh, sl)]) for _, ext, subj, sh, sl in keep if (sh, sl) in cell_of
        ]
        placed = assign(
            [(ext, subj) for ext, subj, _ in inside] + [(ext, subj) for _, ext, subj in waiting],
            num_shards=len(dirty_cells),
            num_slices=1,
            seed=seed,
            existing={ext: cell for ext, _, cell in inside},
        )
        pk_of = {ext: pk for pk, ext, _ in waiting}
        plan.placement += [(pk_of[k], *dirty_cells[c.shard]) for k, c in placed.items()]
    filled = {(sh, sl) for _, sh, sl in plan.placement}
    if len(filled) < len(due) * model.num_slices:
        return None  # a slice lost every record: re-partition instead
    return plan


def _records_never_trained(model: UnlearningModel, old_shards: dict[int, Shard]) -> list[RecordRow]:
    """Active records of the dataset with no assignment in the serving generation."""
    placed = SliceAssignment.objects.filter(slice__shard__in=list(old_shards.values()))
    return list(
        Record.objects.filter(dataset=model.dataset_id, status=Record.Status.ACTIVE)
        .exclude(pk__in=placed.values_list("record_id", flat=True))
        .order_by("pk")
        .values_list("pk", "external_id", "subject__external_ref")
    )


def _retrain_suffix(
    model: UnlearningModel,
    job: TrainingJob,
    old_shards: dict[int, Shard],
    plan: SuffixPlan,
    slices: dict[tuple[int, int], Slice],
    carried: list[TrainingTask],
) -> tuple[int, int]:
    """Write a suffix retrain: lineage, kept stages copied, the rest pending; queue it.

    Returns how many records the due shards hold and how many stages were kept.
    """
    SliceAssignment.objects.bulk_create(
        [
            SliceAssignment(
                record_id=pk, slice=slices[(sh, sl)], model=model, generation=job.generation
            )
            for pk, sh, sl in plan.placement
        ],
        batch_size=5000,
    )
    tasks = list(carried)
    for index, kept in plan.kept.items():
        old = old_shards[index]
        new_slice = {s.index: slices[(index, s.index)] for s in old.slices.all()}
        _carry_stages(model, job, old, new_slice, keep=kept)
        shard = new_slice[0].shard
        for seq in old.sequences.order_by("index"):
            sequence = Sequence.objects.create(shard=shard, index=seq.index, order=seq.order)
            done = all(
                engine.prefix_text(seq.order[:d]) in kept for d in range(1, len(seq.order) + 1)
            )
            status = TrainingTask.Status.DONE if done else TrainingTask.Status.QUEUED
            tasks.append(TrainingTask(job=job, sequence=sequence, status=status))
    pending = Stage.objects.filter(
        shard__model=model, shard__generation=job.generation, state=Stage.State.PENDING
    )
    kept_total = sum(len(k) for k in plan.kept.values())
    generation_queue(
        model=model,
        job=job,
        tasks=tasks,
        stages_total=pending.filter(shard__index__in=list(plan.kept)).count(),
    )
    return len(plan.placement), kept_total


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
    model: UnlearningModel,
    job: TrainingJob,
    old: Shard,
    new_slice: dict[int, Slice],
    keep: set[str] | None = None,
) -> None:
    """Stage rows as they are (a stage caught training starts over as pending); the trained
    ones' objects are copied inside the store (server-side on S3) to the new generation's
    keys: a copy, never a link, so retiring one generation never touches the other's.

    ``keep``: only these prefixes are copied; every other stage is planned anew (pending,
    nothing of the old row but its prefix): a suffix retrain trains it again."""
    shard = new_slice[0].shard
    old_store = engine.artifact_store(model, old.generation)
    new_store = engine.artifact_store(model, job.generation)
    copies = []
    for stage in old.stages.all().order_by("pk"):
        if keep is not None and stage.prefix not in keep:
            copies.append(Stage(shard=shard, prefix=stage.prefix, position=stage.position))
            continue
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
