"""Reads: lineage and model status. Indexed lookups only, no scans.

``subject_lineage`` answers "which model components learned from this person?" with a fixed
number of queries, each driven by an index: records by subject, assignments by record,
stage links by slice, the current manifest by model.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import F

from governance.models import (
    AuditEvent,
    Record,
    ServingManifest,
    SliceAssignment,
    Stage,
    TrainingJob,
    UnlearningModel,
)


def _serving_stage_ids(models: list[UnlearningModel]) -> dict[int, tuple[int | None, set[int]]]:
    out: dict[int, tuple[int | None, set[int]]] = {}
    for model in models:
        manifest = ServingManifest.objects.filter(model=model).order_by("-version").first()
        ids = {s["id"] for e in manifest.entries for s in e["stages"]} if manifest else set()
        out[model.pk] = (manifest.version if manifest else None, ids)
    return out


def subject_lineage(*, subject_ref: str) -> dict[str, Any]:
    """A subject's records and, per model, the shard, slice and stages that read them."""
    records = list(
        Record.objects.filter(subject__external_ref=subject_ref)
        .select_related("dataset")
        .order_by("dataset_id", "external_id")
    )
    models = list(
        UnlearningModel.objects.filter(
            dataset__in={r.dataset_id for r in records}, generation__gt=0
        )
    )
    assignments = list(
        SliceAssignment.objects.filter(
            record__in=records, model__in=models, generation=F("model__generation")
        ).select_related("slice__shard")
    )
    links = Stage.slices.through.objects.filter(
        slice_id__in={a.slice_id for a in assignments}
    ).select_related("stage")
    stages_by_slice: dict[int, list[Stage]] = defaultdict(list)
    for link in links:
        stages_by_slice[link.slice_id].append(link.stage)
    serving = _serving_stage_ids(models)
    by_record = {(a.model_id, a.record_id): a for a in assignments}
    return {
        "subject_id": subject_ref,
        "records": [_record_row(r) for r in records],
        "models": [
            _model_lineage(m, records, by_record, stages_by_slice, serving[m.pk]) for m in models
        ],
    }


def _record_row(record: Record) -> dict[str, Any]:
    return {
        "dataset": record.dataset_id,
        "external_id": record.external_id,
        "status": record.status,
        "created_at": record.created_at,
        "erased_at": record.erased_at,
    }


def _model_lineage(
    model: UnlearningModel,
    records: list[Record],
    by_record: dict[tuple[int, int], SliceAssignment],
    stages_by_slice: dict[int, list[Stage]],
    serving: tuple[int | None, set[int]],
) -> dict[str, Any]:
    version, serving_ids = serving
    trained, not_yet = [], []
    for record in (r for r in records if r.dataset_id == model.dataset_id):
        assignment = by_record.get((model.pk, record.pk))
        if assignment is None:
            not_yet.append(record.external_id)
            continue
        stages = sorted(stages_by_slice[assignment.slice_id], key=lambda s: (s.position, s.prefix))
        trained.append(
            {
                "external_id": record.external_id,
                "shard": assignment.slice.shard.index,
                "slice": assignment.slice.index,
                "stages": [
                    {
                        "id": s.pk,
                        "prefix": s.prefix,
                        "position": s.position,
                        "state": s.state,
                        "serving": s.pk in serving_ids,
                    }
                    for s in stages
                ],
            }
        )
    return {
        "model": model.pk,
        "name": model.name,
        "generation": model.generation,
        "manifest_version": version,
        "records": trained,
        "not_yet_trained": not_yet,
    }


def model_detail(*, model: UnlearningModel) -> dict[str, Any]:
    """Status, training progress and, per shard, the serving choice and deletions left."""
    from unlearning.policy import expected_deletions_left

    job = TrainingJob.objects.filter(model=model).order_by("-pk").first()
    manifest = ServingManifest.objects.filter(model=model).order_by("-version").first()
    serving = {e["shard"]: e for e in manifest.entries} if manifest else {}
    dirty: dict[int, set[int]] = defaultdict(set)
    for shard_index, slice_index in (
        SliceAssignment.objects.filter(
            model=model, generation=model.generation, record__status=Record.Status.ERASED
        )
        .values_list("slice__shard__index", "slice__index")
        .distinct()
    ):
        dirty[shard_index].add(slice_index)
    shards = []
    for shard in model.shards.filter(generation=model.generation).order_by("index"):
        sequences = [tuple(s.order) for s in shard.sequences.order_by("index")]
        entry = serving.get(shard.index)
        shards.append(
            {
                "index": shard.index,
                "serving_sequence": entry["sequence"] if entry else None,
                "depth": entry["depth"] if entry else 0,
                "deleted_slices": sorted(dirty[shard.index]),
                "deletions_left": round(
                    expected_deletions_left(
                        sequences, dirty[shard.index], model.num_slices, model.retrain_threshold
                    ),
                    2,
                ),
            }
        )
    return {
        "model": model,
        "job": job,
        "manifest_version": manifest.version if manifest else None,
        "shards": shards,
    }


def audit_event_list(
    *,
    after_seq: int = 0,
    limit: int = 100,
    action: str | None = None,
    actor: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    since: Any = None,
    until: Any = None,
) -> list[AuditEvent]:
    """Audit events after ``after_seq`` in chain order (keyset paging on the unique seq)."""
    events = AuditEvent.objects.filter(seq__gt=after_seq)
    exact = {"action": action, "actor": actor, "object_type": object_type, "object_id": object_id}
    events = events.filter(**{k: v for k, v in exact.items() if v is not None})
    if since is not None:
        events = events.filter(created_at__gte=since)
    if until is not None:
        events = events.filter(created_at__lt=until)
    return list(events.order_by("seq")[:limit])
