"""Reads: lineage. Indexed lookups only, no scans.

``subject_lineage`` answers "which model components learned from this person?" with a fixed
number of queries, each driven by an index: records by subject, assignments by record,
stage links by slice, the current manifest by model.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import F

from governance.models import Record, SliceAssignment, Stage, UnlearningModel
from governance.selectors.manifests import manifest_latest


def _serving_stage_ids(models: list[UnlearningModel]) -> dict[int, tuple[int | None, set[int]]]:
    out: dict[int, tuple[int | None, set[int]]] = {}
    for model in models:
        manifest = manifest_latest(model)
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
