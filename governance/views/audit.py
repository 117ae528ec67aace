"""The audit trail: filters, keyset paging on ``seq`` (newest first) and the chain check.

Re-hashing the chain reads every event, so the page shows the last result this session
obtained (with its time) and the "Re-verify" button runs it again.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone

from governance.permissions import Action
from governance.selectors.audit import audit_event_window, audit_events_filter
from governance.services.audit_integrity import audit_chain_verify
from governance.views.access import POST, page, render_page
from governance.views.forms import AuditFilterForm

PAGE_SIZE = 50
SESSION_KEY = "lethe_audit_verify"


def _chain_report(request: HttpRequest, *, fresh: bool) -> dict[str, Any]:
    report = request.session.get(SESSION_KEY)
    if fresh or not isinstance(report, dict):
        report = {**asdict(audit_chain_verify()), "at": timezone.now().isoformat()}
        request.session[SESSION_KEY] = report
    return {**report, "at": datetime.fromisoformat(report["at"])}


def _pretty(payload: Any) -> str:
    return json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False)


@page(Action.AUDIT_READ)
def audit_trail(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    form.is_valid()  # invalid filters are reported next to their field and not applied
    window = audit_event_window(
        events=audit_events_filter(**form.filters()),
        before=form.cleaned_data.get("before"),
        after=form.cleaned_data.get("after"),
        limit=PAGE_SIZE,
    )
    context = {
        "form": form,
        **window,
        "rows": [{"event": e, "payload": _pretty(e.payload)} for e in window["events"]],
        "report": _chain_report(request, fresh=False),
        "query": request.GET.urlencode(),
    }
    return render_page(request, "lethe/audit.html", context, section="audit")


@page(Action.AUDIT_READ, methods=POST)
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
