"""Subject lineage: a person's records and every model component that read them."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

from governance.models import ErasureRequest, Stage
from governance.permissions import Action
from governance.selectors import lineage as lineage_selectors
from governance.selectors.datasets import datasets_visible
from governance.views.access import page, render_page
from governance.views.forms import SubjectLookupForm

State = Stage.State
STATE_LABELS = {
    "serving": "serving",
    State.TRAINED.value: "trained, not serving",
    State.PENDING.value: "pending (not trained yet)",
    State.TRAINING.value: "training",
    State.DEACTIVATED.value: "deactivated",
    State.DESTROYED.value: "destroyed",
    State.RETIRED.value: "retired",
}


def _stage_view(stage: dict[str, Any]) -> dict[str, Any]:
    state = "serving" if stage["serving"] else stage["state"]
    return {**stage, "display_state": state, "label": STATE_LABELS.get(state, state)}


def lineage_view_model(lineage: dict[str, Any]) -> dict[str, Any]:
    """The selector's answer with each stage's displayed state (serving wins over trained)."""
    models = [
        {
            **model,
            "records": [
                {**row, "stages": [_stage_view(s) for s in row["stages"]]}
                for row in model["records"]
            ],
        }
        for model in lineage["models"]
    ]
    return {**lineage, "models": models}


@page(Action.LINEAGE_READ)
def subject_lineage(request: HttpRequest) -> HttpResponse:
    form = SubjectLookupForm(request.GET if "subject_ref" in request.GET else None)
    context: dict[str, Any] = {"form": form}
    if form.is_valid():
        ref = form.cleaned_data["subject_ref"]
        lineage = lineage_selectors.subject_lineage(
            subject_ref=ref, datasets=datasets_visible(request.user)
        )
        context["lineage"] = lineage_view_model(lineage)
        context["requests"] = list(ErasureRequest.objects.filter(subject_ref=ref))
        context["subject_ref"] = ref
    return render_page(request, "lethe/lineage.html", context, section="lineage")
