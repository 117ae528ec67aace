"""Reads: lineage. Indexed lookups only, no scans.

``subject_lineage`` answers "which model components learned from this person?" with a fixed
number of queries, each driven by an index: records by subject, assignments by record,
stage links by slice, the current manifest by model.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from governance.models import Dataset, Record, SliceAssignment, Stage, UnlearningModel
from governance.selectors.manifests import manifest_latest


@dataclass(frozen=True)
class _Serving:
    version: int | None
    stage_ids: frozenset[int]
    # The generations whose stages serve or may serve: the manifest's, and the newest
    # (training, or waiting to swap in). Lineage shows both while a retrain runs.
    generations: frozenset[int]


def _serving(models: list[UnlearningModel]) -> dict[int, _Serving]:
    out = {}
    for model in models:
        manifest = manifest_latest(model)
        ids = {s["id"] for e in manifest.entries for s in e["stages"]} if manifest else set()
        generations = {model.generation, *([manifest.generation] if manifest else [])}
        out[model.pk] = _Serving(
            manifest.version if manifest else None, frozenset(ids), frozenset(generations)
        )
    return out


def subject_lineage(
    *, subject_ref: str, datasets: QuerySet[Dataset] | None = None
) -> dict[str, Any]:
    """A subject's records and, per model, the shard, slice and stages that read them.

    ``subject_ref`` is in its comparable form (``governance.subject_refs``). Every
    generation that serves or may serve is shown: during a retrain, the serving
    generation's stages and the new generation's, each entry naming its generation.
    ``datasets`` limits the answer to the viewer's scope (the API and the pages pass
    ``selectors.datasets.datasets_visible(user)``); None means every dataset.
    """
    found = Record.objects.filter(subject__external_ref=subject_ref)
    if datasets is not None:
        found = found.filter(dataset__in=datasets)
    records = list(found.select_related("dataset").order_by("dataset_id", "external_id"))
    models = list(
        UnlearningModel.objects.filter(
            dataset__in={r.dataset_id for r in records}, generation__gt=0
        )
    )
    serving = _serving(models)
    wanted = {(m, g) for m, s in serving.items() for g in s.generations}
    assignments = [
        a
        for a in SliceAssignment.objects.filter(
            record__in=records,
            model__in=models,
            generation__in={g for _, g in wanted},
        )
        .select_related("slice__shard")
        .order_by("generation")
        if (a.model_id, a.generation) in wanted
    ]
    links = Stage.slices.through.objects.filter(
        slice_id__in={a.slice_id for a in assignments}
    ).select_related("stage")
    stages_by_slice: dict[int, list[Stage]] = defaultdict(list)
    for link in links:
        stages_by_slice[link.slice_id].append(link.stage)
    by_record: dict[tuple[int, int], list[SliceAssignment]] = defaultdict(list)
    for a in assignments:
        by_record[(a.model_id, a.record_id)].append(a)
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
    by_record: dict[tuple[int, int], list[SliceAssignment]],
    stages_by_slice: dict[int, list[Stage]],
    serving: _Serving,
) -> dict[str, Any]:
    trained: list[dict[str, Any]] = []
    not_yet: list[str] = []
    for record in (r for r in records if r.dataset_id == model.dataset_id):
        placed = by_record.get((model.pk, record.pk), [])
        if not placed:
            not_yet.append(record.external_id)
        trained.extend(
            _trained_row(record, a, stages_by_slice[a.slice_id], serving.stage_ids) for a in placed
        )
    return {
        "model": model.pk,
        "name": model.name,
        "generation": model.generation,
        "manifest_version": serving.version,
        "records": trained,
        "not_yet_trained": not_yet,
    }


def _trained_row(
    record: Record, assignment: SliceAssignment, stages: list[Stage], serving_ids: frozenset[int]
) -> dict[str, Any]:
    return {
        "external_id": record.external_id,
        "generation": assignment.generation,
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
            for s in sorted(stages, key=lambda s: (s.position, s.prefix))
        ],
    }
