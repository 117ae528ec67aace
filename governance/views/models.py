"""Models: the list, and per model a grid of every stage's state, training progress and
the manifest history. The progress JSON lets the page refresh itself while a job runs."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404

from governance import engine
from governance.models import ServingManifest, Shard, Stage, TrainingJob, UnlearningModel
from governance.selectors.models import model_detail
from governance.views.access import MODEL_READERS, render_page, role_required

MANIFESTS_SHOWN = 50
ACTIVE_JOB = (TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING)

# The legend, in display order: state → label. Colour is never the only signal: every
# cell carries its label as text.
STATES = {
    "serving": "Trained, serving",
    "trained": "Trained, not serving",
    "pending": "Pending",
    "training": "Training",
    "deactivated": "Deactivated",
    "destroyed": "Destroyed",
    "retired": "Retired",
    "missing": "No stage",
}


def cell_state(stage: Stage | None, serving_ids: set[int]) -> str:
    if stage is None:
        return "missing"
    if stage.state == Stage.State.TRAINED and stage.pk in serving_ids:
        return "serving"
    return str(stage.state)


def stage_grid(
    model: UnlearningModel, generation: int, manifest: ServingManifest | None
) -> dict[str, Any]:
    """Rows = shards; per shard its sequences (in order); cells = the sequence's stages."""
    serving_ids: set[int] = set()
    serving_by_shard: dict[int, dict[str, Any]] = {}
    if manifest is not None and manifest.generation == generation:
        serving_by_shard = {e["shard"]: e for e in manifest.entries}
        serving_ids = {s["id"] for e in manifest.entries for s in e["stages"]}
    shards = (
        Shard.objects.filter(model=model, generation=generation)
        .prefetch_related("sequences", "stages")
        .order_by("index")
    )
    rows = []
    for shard in shards:
        stages = {s.prefix: s for s in shard.stages.all()}
        entry = serving_by_shard.get(shard.index)
        sequences = []
        for seq in sorted(shard.sequences.all(), key=lambda s: s.index):
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
            serving = entry is not None and entry["sequence"] == seq.index
            sequences.append(
                {
                    "index": seq.index,
                    "order": seq.order,
                    "serving": serving,
                    "depth": entry["depth"] if serving and entry else None,
                    "cells": cells,
                }
            )
        rows.append({"index": shard.index, "serving": entry, "sequences": sequences})
    return {
        "generation": generation,
        "serving": manifest is not None and manifest.generation == generation,
        "positions": range(1, model.num_slices + 1),
        "shards": rows,
    }


def _generations(model: UnlearningModel, manifest: ServingManifest | None) -> list[int]:
    """The generation being trained (newest) and the one serving, newest first."""
    shown = {model.generation} | ({manifest.generation} if manifest else set())
    return sorted((g for g in shown if g > 0), reverse=True)


@role_required(*MODEL_READERS)
def model_list(request: HttpRequest) -> HttpResponse:
    models = [
        {"model": m, **_progress(model_detail(model=m)["job"])}
        for m in UnlearningModel.objects.select_related("dataset").order_by("name")
    ]
    return render_page(request, "lethe/models/list.html", {"models": models}, section="models")


@role_required(*MODEL_READERS)
def model_page(request: HttpRequest, pk: int) -> HttpResponse:
    model = get_object_or_404(UnlearningModel.objects.select_related("dataset"), pk=pk)
    detail = model_detail(model=model)
    manifests = list(ServingManifest.objects.filter(model=model).order_by("-version"))
    manifest = manifests[0] if manifests else None
    available = sorted(
        set(Shard.objects.filter(model=model).values_list("generation", flat=True)), reverse=True
    )
    requested = request.GET.get("generation", "")
    if requested:
        if not requested.isdigit() or int(requested) not in available:
            raise Http404("No such generation")
        generations = [int(requested)]
    else:
        generations = _generations(model, manifest)
    context = {
        "model": model,
        "detail": detail,
        "progress": _progress(detail["job"]),
        "grids": [stage_grid(model, g, manifest) for g in generations],
        "generations_available": available,
        "states": STATES,
        "manifest": manifest,
        "manifests": manifests[:MANIFESTS_SHOWN],
    }
    return render_page(request, "lethe/models/detail.html", context, section="models")


def _progress(job: TrainingJob | None) -> dict[str, Any]:
    if job is None:
        return {"job": None, "active": False, "percent": 0}
    percent = round(100 * job.stages_done / job.stages_total) if job.stages_total else 0
    return {"job": job, "active": job.status in ACTIVE_JOB, "percent": percent}


@role_required(*MODEL_READERS)
def model_progress(request: HttpRequest, pk: int) -> JsonResponse:
    """What the model page polls while a job runs."""
    model = get_object_or_404(UnlearningModel, pk=pk)
    job = TrainingJob.objects.filter(model=model).order_by("-pk").first()
    body: dict[str, Any] = {"model": model.pk, "model_status": model.status, "job": None}
    if job is not None:
        progress = _progress(job)
        body["job"] = {
            "id": job.pk,
            "kind": job.kind,
            "status": job.status,
            "stages_done": job.stages_done,
            "stages_total": job.stages_total,
            "percent": progress["percent"],
            "active": progress["active"],
            "current_loss": job.current_loss,
        }
    return JsonResponse(body)
