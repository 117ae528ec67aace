"""The landing page: open requests by deadline, and the health of every model."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from governance.models import UnlearningModel
from governance.permissions import Action, Channel, user_can
from governance.selectors.erasure import Due, erasure_requests_open_by_deadline
from governance.selectors.models import model_health
from governance.views.access import page, render_page
from governance.views.requests import request_row

OPEN_SHOWN = 50


@page(Action.MODEL_READ)
def dashboard(request: HttpRequest) -> HttpResponse:
    """ML engineers see model health only: the request queue names data subjects."""
    now = timezone.now()
    rows = None
    total_open = 0
    if user_can(request.user, Action.ERASURE_READ, Channel.WEB):
        open_requests = erasure_requests_open_by_deadline()
        total_open = open_requests.count()
        rows = [request_row(r, now) for r in open_requests[:OPEN_SHOWN]]
    models = [
        model_health(model=m)
        for m in UnlearningModel.objects.select_related("dataset").order_by("name")
    ]
    context = {
        "rows": rows,
        "total_open": total_open,
        "overdue": sum(1 for r in rows or [] if r.due is Due.OVERDUE),
        "soon": sum(1 for r in rows or [] if r.due is Due.SOON),
        "models": models,
    }
    return render_page(request, "lethe/dashboard.html", context, section="dashboard")
