"""The landing page: open requests by deadline, and the health of every model."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from governance.models import TrainingJob, UnlearningModel
from governance.selectors.models import model_detail
from governance.views.access import MODEL_READERS, READERS, render_page, role_required, user_roles
from governance.views.requests import open_requests_by_deadline, request_row

OPEN_SHOWN = 50
ACTIVE_JOB = (TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING)


def model_health(model: UnlearningModel) -> dict[str, Any]:
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


@role_required(*MODEL_READERS)
def dashboard(request: HttpRequest) -> HttpResponse:
    """ML engineers see model health only: the request queue names data subjects."""
    now = timezone.now()
    rows = None
    total_open = 0
    if user_roles(request.user) & set(READERS):
        open_requests = open_requests_by_deadline()
        total_open = open_requests.count()
        rows = [request_row(r, now) for r in open_requests[:OPEN_SHOWN]]
    models = [
        model_health(m) for m in UnlearningModel.objects.select_related("dataset").order_by("name")
    ]
    context = {
        "rows": rows,
        "total_open": total_open,
        "overdue": sum(1 for r in rows or [] if r.due == "overdue"),
        "soon": sum(1 for r in rows or [] if r.due == "soon"),
        "models": models,
    }
    return render_page(request, "lethe/dashboard.html", context, section="dashboard")
