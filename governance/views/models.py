"""Models: the list, and per model a grid of every stage's state, training progress and
the manifest history. The progress JSON lets the page refresh itself while a job runs."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404

from governance.models import UnlearningModel
from governance.permissions import Action
from governance.selectors.manifests import manifest_latest
from governance.selectors.models import (
    STATES,
    model_detail,
    model_generations,
    model_manifests,
    model_stage_grids,
    training_job_latest,
    training_progress,
)
from governance.views.access import page, render_page

MANIFESTS_SHOWN = 50


@page(Action.MODEL_READ)
def model_list(request: HttpRequest) -> HttpResponse:
    models = [
        {"model": m, **training_progress(model_detail(model=m)["job"])}
        for m in UnlearningModel.objects.select_related("dataset").order_by("name")
    ]
    return render_page(request, "lethe/models/list.html", {"models": models}, section="models")


@page(Action.MODEL_READ)
def model_page(request: HttpRequest, pk: int) -> HttpResponse:
    """``?generation=N`` shows that generation's grid alone (404 if it has no shards)."""
    model = get_object_or_404(UnlearningModel.objects.select_related("dataset"), pk=pk)
    detail = model_detail(model=model)
    manifest = manifest_latest(model)
    available = model_generations(model=model)
    generation = _generation(request.GET.get("generation", ""), available)
    context = {
        "model": model,
        "detail": detail,
        "progress": training_progress(detail["job"]),
        "grids": model_stage_grids(model=model, manifest=manifest, generation=generation),
        "generations_available": available,
        "states": STATES,
        "manifest": manifest,
        "manifests": model_manifests(model=model, limit=MANIFESTS_SHOWN),
    }
    return render_page(request, "lethe/models/detail.html", context, section="models")


def _generation(requested: str, available: list[int]) -> int | None:
    if not requested:
        return None
    if not requested.isdigit() or int(requested) not in available:
        raise Http404("No such generation")
    return int(requested)


@page(Action.MODEL_READ)
def model_progress(request: HttpRequest, pk: int) -> JsonResponse:
    """What the model page polls while a job runs."""
    model = get_object_or_404(UnlearningModel, pk=pk)
    job = training_job_latest(model=model)
    body: dict[str, Any] = {"model": model.pk, "model_status": model.status, "job": None}
    if job is not None:
        progress = training_progress(job)
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
