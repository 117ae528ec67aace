"""Reads: a model's status, training progress and per-shard serving state, and the stage
grid the model page draws (shards × sequences × stages, for the generations shown).

A cell is ``serving`` when its stage is trained and named by the manifest in force for that
generation; every other stage shows its own state, and a prefix with no stage is
``missing``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from governance import engine
from governance.models import (
    Record,
    Sequence,
    ServingManifest,
    Shard,
    SliceAssignment,
    Stage,
    TrainingJob,
    UnlearningModel,
)
from governance.selectors.manifests import manifest_latest

ACTIVE_JOB = (TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING)

# The grid's states in legend order, with their labels. Colour is never the only signal:
# every cell carries its label as text.
STATES = {
    "serving": "Trained, serving",
    Stage.State.TRAINED.value: "Trained, not serving",
    Stage.State.PENDING.value: "Pending",
    Stage.State.TRAINING.value: "Training",
    Stage.State.DEACTIVATED.value: "Deactivated",
    Stage.State.DESTROYED.value: "Destroyed",
    Stage.State.RETIRED.value: "Retired",
    "missing": "No stage",
}


def model_detail(*, model: UnlearningModel) -> dict[str, Any]:
    """Status, training progress and, per shard, the serving choice and deletions left."""
    from unlearning.policy import expected_deletions_left

    job = training_job_latest(model=model)
    manifest = manifest_latest(model)
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


def training_job_latest(*, model: UnlearningModel) -> TrainingJob | None:
    return TrainingJob.objects.filter(model=model).order_by("-pk").first()


def training_progress(job: TrainingJob | None) -> dict[str, Any]:
    """The job, whether it is still queued or running, and its share of stages done."""
    if job is None:
        return {"job": None, "active": False, "percent": 0}
    percent = round(100 * job.stages_done / job.stages_total) if job.stages_total else 0
    return {"job": job, "active": job.status in ACTIVE_JOB, "percent": percent}


def model_health(*, model: UnlearningModel) -> dict[str, Any]:
    """Per shard: serving sequence, depth and deletions left; and any retraining underway."""
    detail = model_detail(model=model)
    retrain = (
        TrainingJob.objects.filter(
            model=model, kind=TrainingJob.Kind.RETRAIN, status__in=ACTIVE_JOB
        )
        .order_by("-pk")
        .first()
    )
    return {
        "model": model,
        "job": detail["job"],
        "manifest_version": detail["manifest_version"],
        "shards": detail["shards"],
        "retrain": retrain,
    }


def model_manifests(*, model: UnlearningModel, limit: int) -> list[ServingManifest]:
    """The model's last ``limit`` manifests, newest first (the first is the one in force)."""
    return list(ServingManifest.objects.filter(model=model).order_by("-version")[:limit])


def model_generations(*, model: UnlearningModel) -> list[int]:
    """The generations that have shards, newest first."""
    generations = Shard.objects.filter(model=model).values_list("generation", flat=True)
    return sorted(set(generations), reverse=True)


def model_stage_grids(
    *, model: UnlearningModel, manifest: ServingManifest | None, generation: int | None = None
) -> list[dict[str, Any]]:
    """The grid of ``generation``; by default of the one training (newest) and the one serving."""
    if generation is not None:
        shown = [generation]
    else:
        current = {model.generation} | ({manifest.generation} if manifest else set())
        shown = sorted((g for g in current if g > 0), reverse=True)
    return [_stage_grid(model, g, manifest) for g in shown]


def _stage_grid(
    model: UnlearningModel, generation: int, manifest: ServingManifest | None
) -> dict[str, Any]:
    """Rows = shards; per shard its sequences (in order); cells = the sequence's stages."""
    serving = manifest is not None and manifest.generation == generation
    entries = manifest.entries if manifest is not None and serving else []
    serving_by_shard = {e["shard"]: e for e in entries}
    serving_ids = {s["id"] for e in entries for s in e["stages"]}
    shards = (
        Shard.objects.filter(model=model, generation=generation)
        .prefetch_related("sequences", "stages")
        .order_by("index")
    )
    return {
        "generation": generation,
        "serving": serving,
        "positions": range(1, model.num_slices + 1),
        "shards": [_shard_row(s, serving_by_shard.get(s.index), serving_ids) for s in shards],
    }


def _shard_row(shard: Shard, entry: dict[str, Any] | None, serving_ids: set[int]) -> dict[str, Any]:
    stages = {s.prefix: s for s in shard.stages.all()}
    sequences = []
    for seq in sorted(shard.sequences.all(), key=lambda s: s.index):
        serving = entry is not None and entry["sequence"] == seq.index
        sequences.append(
            {
                "index": seq.index,
                "order": seq.order,
                "serving": serving,
                "depth": entry["depth"] if serving and entry else None,
                "cells": _cells(seq, stages, serving_ids),
            }
        )
    return {"index": shard.index, "serving": entry, "sequences": sequences}


def _cells(seq: Sequence, stages: dict[str, Stage], serving_ids: set[int]) -> list[dict[str, Any]]:
    cells = []
    for depth in range(1, len(seq.order) + 1):
        prefix = engine.prefix_text(seq.order[:depth])
        stage = stages.get(prefix)
        state = cell_state(stage, serving_ids)
        cells.append(
            {
                "position": depth,
                "slice": seq.order[depth - 1],
                "prefix": prefix,
                "stage": stage,
                "state": state,
                "label": STATES[state],
            }
        )
    return cells


def cell_state(stage: Stage | None, serving_ids: set[int]) -> str:
    if stage is None:
        return "missing"
    if stage.state == Stage.State.TRAINED and stage.pk in serving_ids:
        return "serving"
    return str(stage.state)
