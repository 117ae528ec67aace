"""The audit trail: filters, keyset paging on ``seq`` (newest first) and the chain check.

Re-hashing the chain reads every event, so the page shows the last result this session
obtained (with its time) and the "Re-verify" button runs it again.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone

from governance.models import AuditEvent
from governance.services.audit import audit_chain_verify
from governance.views.access import POST, READERS, render_page, role_required
from governance.views.forms import AuditFilterForm

PAGE_SIZE = 50
SESSION_KEY = "lethe_audit_verify"
EXACT = ("action", "actor", "object_type", "object_id")


def _filtered(data: dict[str, Any]) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.all()
    for name in EXACT:
        if data.get(name):
            events = events.filter(**{name: data[name]})
    if data.get("since"):
        events = events.filter(created_at__gte=datetime.combine(data["since"], time.min, UTC))
    if data.get("until"):
        end = datetime.combine(data["until"], time.min, UTC) + timedelta(days=1)
        events = events.filter(created_at__lt=end)
    return events


def audit_window(data: dict[str, Any], limit: int = PAGE_SIZE) -> dict[str, Any]:
    """One page, newest first: before ``before``, after ``after``, or the newest events.

    The selector ``audit_event_list`` pages forward in chain order (what API clients
    replay); people read the latest first, so this pages both ways on the same index.
    """
    events = _filtered(data)
    if data.get("after") is not None:
        page = list(events.filter(seq__gt=data["after"]).order_by("seq")[:limit])[::-1]
    elif data.get("before") is not None:
        page = list(events.filter(seq__lt=data["before"]).order_by("-seq")[:limit])
    else:
        page = list(events.order_by("-seq")[:limit])
    newest, oldest = (page[0].seq, page[-1].seq) if page else (None, None)
    return {
        "events": page,
        "older": oldest if oldest and events.filter(seq__lt=oldest).exists() else None,
        "newer": newest if newest and events.filter(seq__gt=newest).exists() else None,
    }


def _chain_report(request: HttpRequest, *, fresh: bool) -> dict[str, Any]:
    report = request.session.get(SESSION_KEY)
    if fresh or not isinstance(report, dict):
        report = {**asdict(audit_chain_verify()), "at": timezone.now().isoformat()}
        request.session[SESSION_KEY] = report
    return {**report, "at": datetime.fromisoformat(report["at"])}


def _pretty(payload: Any) -> str:
    return json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False)


@role_required(*READERS)
def audit_trail(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    form.is_valid()  # invalid filters are reported next to their field and not applied
    window = audit_window(form.cleaned_data)
    context = {
        "form": form,
        **window,
        "rows": [{"event": e, "payload": _pretty(e.payload)} for e in window["events"]],
        "report": _chain_report(request, fresh=False),
        "query": request.GET.urlencode(),
    }
    return render_page(request, "lethe/audit.html", context, section="audit")


@role_required(*READERS, methods=POST)
def audit_verify(request: HttpRequest) -> HttpResponse:
    """Re-hash the whole chain now; back to the page (with its filters) to show the result."""
    report = _chain_report(request, fresh=True)
    if report["ok"]:
        messages.success(request, f"Audit chain verified: {report['checked']} events intact.")
    else:
        messages.error(
            request, f"Audit chain broken at event #{report['first_bad_seq']}: {report['reason']}"
        )
    query = QueryDict(request.POST.get("query", "")).urlencode()  # re-encoded: no injection
    return redirect(reverse("web-audit") + (f"?{query}" if query else ""))
