"""Models: the list, and per model a grid of every stage's state, training progress and
the manifest history. The progress JSON lets the page refresh itself while a job runs."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404

from governance.errors import ApplicationError
from governance.models import UnlearningModel
from governance.permissions import Action, Channel, user_can
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
from governance.views.access import POST, SAFE, page, render_page

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
    return _model_page(request, pk)


def _model_page(request: HttpRequest, pk: int, tried: dict[str, Any] | None = None) -> HttpResponse:
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
        "can_try": user_can(request.user, Action.MODEL_TRY, Channel.WEB),
        "tried": tried or {},
    }
    return render_page(request, "lethe/models/detail.html", context, section="models")


@page(Action.MODEL_TRY, methods=(*SAFE, *POST))
def model_try(request: HttpRequest, pk: int) -> HttpResponse:
    """The "try it" panel: one input through the serving manifest, shown on the model page.

    An officer sees what the model answers before and after an erasure; the answer names
    the manifest version, so the change of version is visible with the change of answer.
    """
    if request.method != "POST":
        return _model_page(request, pk)
    model = get_object_or_404(UnlearningModel.objects.select_related("dataset"), pk=pk)
    tried: dict[str, Any] = {"input": request.POST.get("input", "")}
    try:
        tried.update(try_model(model, request))
    except ApplicationError as exc:
        tried["error"] = exc.message
    return _model_page(request, pk, tried=tried)


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


def try_model(model: UnlearningModel, request: HttpRequest) -> dict[str, Any]:
    """Answer the panel's one input with the model's task: a label, or generated text."""
    from governance.services.serving import model_generate, model_predict

    task = model.dataset.task
    if task == "image_classification":
        upload = request.FILES.get("image")
        if upload is None:
            raise ApplicationError(code="invalid", message="image: choose a PNG or JPEG file")
        data = upload.read()
        _image_checked(data)
        result = model_predict(model=model, inputs=[data])
        return _labelled(result)
    text = request.POST.get("input", "")
    if not text.strip():
        raise ApplicationError(code="invalid", message="input: type something to try")
    if task == "generation":
        generated = model_generate(
            model=model, prompts=[text], max_new_tokens=32, temperature=0.0, top_p=1.0, seed=0
        )
        return {"text": generated.outputs[0]["text"], "version": generated.manifest_version}
    return _labelled(model_predict(model=model, inputs=[text[:20000]]))


def _labelled(result: Any) -> dict[str, Any]:
    prediction = result.predictions[0]
    scores = sorted(prediction.scores.items(), key=lambda item: -item[1])
    return {"label": prediction.label, "scores": scores, "version": result.manifest_version}


def _image_checked(data: bytes) -> None:
    from governance.images import image_accepted
    from unlearning.images import ImageError

    try:
        image_accepted(data)
    except ImageError as exc:
        raise ApplicationError(code="invalid", message=f"image: {exc}") from None
