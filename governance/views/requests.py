"""Erasure requests: list with filters, filing with an impact preview, detail with the
timeline and the officer's decisions, certificate downloads.

Decisions are POSTs that redirect back to the detail page (POST-redirect-GET); a form
with an invalid field re-renders the detail page with the message next to that field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone

from governance.certificates.pdf import certificate_pdf
from governance.errors import ApplicationError
from governance.models import DeletionCertificate, ErasureRequest, ErasureRequestQuerySet
from governance.permissions import Action
from governance.selectors.erasure import Due, erasure_request_due, erasure_requests_due
from governance.selectors.impact import erasure_impact
from governance.selectors.webhooks import erasure_confirmations
from governance.services import erasure
from governance.views.access import POST, SAFE, page, render_page
from governance.views.forms import (
    ApproveForm,
    ExtendForm,
    RejectForm,
    RequestFileForm,
    RequestFilterForm,
    SubjectLookupForm,
    new_file_form,
)

PAGE_SIZE = 25
DAY = timedelta(days=1)


# --- deadlines ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRow:
    """A request with its deadline state (``selectors.erasure.Due``) and that state's text."""

    request: ErasureRequest
    due: Due
    due_text: str


def request_row(req: ErasureRequest, now: datetime) -> RequestRow:
    due = erasure_request_due(req, now=now)
    return RequestRow(req, due, _due_text(req, due, now))


def _due_text(req: ErasureRequest, due: Due, now: datetime) -> str:
    if due is Due.CLOSED:
        return req.get_status_display()
    left = req.deadline - now
    if due is Due.OVERDUE:
        days = -left // DAY
        return f"Overdue by {days} day{'s' * (days != 1)}"
    days = left // DAY
    return "Due today" if days == 0 else f"Due in {days} day{'s' * (days != 1)}"


def _filtered(data: dict[str, Any], now: datetime) -> ErasureRequestQuerySet:
    requests = ErasureRequest.objects.select_related("filed_by")
    if data.get("q"):
        requests = requests.filter(subject_ref__icontains=data["q"])
    if data.get("status"):
        requests = requests.filter(status=data["status"])
    if data.get("channel"):
        requests = requests.filter(channel=data["channel"])
    if data.get("due"):
        requests = erasure_requests_due(requests, due=data["due"], now=now)
    return requests.order_by("-received_at", "-pk")


# --- list and filing ---------------------------------------------------------------------


@page(Action.ERASURE_READ)
def request_list(request: HttpRequest) -> HttpResponse:
    form = RequestFilterForm(request.GET)
    form.is_valid()  # invalid filters are reported next to their field and not applied
    now = timezone.now()
    page = Paginator(_filtered(form.cleaned_data, now), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "rows": [request_row(r, now) for r in page],
    }
    return render_page(request, "lethe/requests/list.html", context, section="requests")


@page(Action.ERASURE_FILE, methods=(*SAFE, *POST))
def request_new(request: HttpRequest) -> HttpResponse:
    """Look up a subject (GET), see the impact preview, then confirm to file (POST)."""
    if request.method == "POST":
        return _request_file(request)
    lookup = SubjectLookupForm(request.GET if "subject_ref" in request.GET else None)
    file_form = None
    if lookup.is_valid():
        file_form = new_file_form(lookup.cleaned_data["subject_ref"])
    return _new_page(request, lookup, file_form)


def _request_file(request: HttpRequest) -> HttpResponse:
    form = RequestFileForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            req, created = erasure.erasure_request_create(
                actor=request.user,
                subject_ref=data["subject_ref"],
                reason=data["reason"],
                channel=data["channel"],
                received_at=form.received_datetime(),
                idempotency_key=data["idempotency_key"] or None,
            )
        except ApplicationError as exc:
            form.add_error(_field_of(exc, form), exc.message)
        else:
            if created:
                messages.success(request, f"Erasure request #{req.pk} filed.")
            else:
                messages.info(request, f"This request was already filed as #{req.pk}.")
            return redirect("web-request", pk=req.pk)
    lookup = SubjectLookupForm({"subject_ref": request.POST.get("subject_ref", "")})
    return _new_page(request, lookup, form)


def _field_of(exc: ApplicationError, form: forms.Form) -> str | None:
    """The visible form field a service error names, or None (shown above the form)."""
    names = list(exc.details) if isinstance(exc.details, dict) else []
    field = next((n for n in names if n in form.fields), None)
    return field if field is not None and not form.fields[field].widget.is_hidden else None


def _new_page(
    request: HttpRequest, lookup: SubjectLookupForm, file_form: RequestFileForm | None
) -> HttpResponse:
    context: dict[str, Any] = {"lookup": lookup, "file_form": file_form}
    if lookup.is_bound and lookup.is_valid():
        subject_ref = lookup.cleaned_data["subject_ref"]
        context["impact"] = erasure_impact(subject_ref=subject_ref)
        context["subject_ref"] = subject_ref
        context["open_requests"] = list(
            ErasureRequest.objects.open().filter(subject_ref=subject_ref)
        )
    else:
        context["file_form"] = None
    return render_page(request, "lethe/requests/new.html", context, section="requests")


# --- detail and decisions ----------------------------------------------------------------


def _get(pk: int) -> ErasureRequest:
    return get_object_or_404(
        ErasureRequest.objects.select_related("filed_by", "approved_by"), pk=pk
    )


@page(Action.ERASURE_READ)
def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail_page(request, _get(pk))


def _detail_page(request: HttpRequest, req: ErasureRequest, **bound: forms.Form) -> HttpResponse:
    certificate = DeletionCertificate.objects.filter(request=req).first()
    now = timezone.now()
    context = {
        "req": req,
        "row": request_row(req, now),
        "overdue": req.is_overdue(now),
        "impact": req.impact or None,
        "events": list(req.events.all()),
        "confirmations": erasure_confirmations(req),
        "certificate": certificate,
        "can": {
            "approve": req.can_approve,
            # Why this officer may not approve (four eyes); the page says so on the button.
            "approve_refusal": req.approval_refusal(request.user) if req.can_approve else None,
            "reject": req.can_reject,
            "extend": req.can_extend,
            "retry": req.can_retry,
        },
        "approve_form": bound.get("approve_form") or ApproveForm(),
        "reject_form": bound.get("reject_form") or RejectForm(),
        "extend_form": bound.get("extend_form") or ExtendForm(),
    }
    return render_page(request, "lethe/requests/detail.html", context, section="requests")


def _decide(
    request: HttpRequest,
    pk: int,
    form: forms.Form,
    form_name: str,
    act: Callable[[ErasureRequest, dict[str, Any]], Any],
    done: str,
) -> HttpResponse:
    req = _get(pk)
    if not form.is_valid():
        return _detail_page(request, req, **{form_name: form})
    try:
        act(req, form.cleaned_data)
    except ApplicationError as exc:
        messages.error(request, f"Nothing changed: {exc.message}")
    else:
        messages.success(request, done.format(pk=req.pk))
    return redirect("web-request", pk=req.pk)


@page(Action.ERASURE_DECIDE, methods=POST)
def request_approve(request: HttpRequest, pk: int) -> HttpResponse:
    def act(req: ErasureRequest, data: dict[str, Any]) -> Any:
        return erasure.erasure_request_approve(actor=request.user, request=req, note=data["note"])

    done = "Request #{pk} approved; the erasure is queued."
    return _decide(request, pk, ApproveForm(request.POST), "approve_form", act, done)


@page(Action.ERASURE_DECIDE, methods=POST)
def request_reject(request: HttpRequest, pk: int) -> HttpResponse:
    def act(req: ErasureRequest, data: dict[str, Any]) -> Any:
        return erasure.erasure_request_reject(
            actor=request.user, request=req, reason=data["reason"]
        )

    done = "Request #{pk} rejected."
    return _decide(request, pk, RejectForm(request.POST), "reject_form", act, done)


@page(Action.ERASURE_DECIDE, methods=POST)
def request_extend(request: HttpRequest, pk: int) -> HttpResponse:
    def act(req: ErasureRequest, data: dict[str, Any]) -> Any:
        return erasure.erasure_request_extend(
            actor=request.user, request=req, reason=data["reason"]
        )

    done = "The deadline of request #{pk} was extended by two months."
    return _decide(request, pk, ExtendForm(request.POST), "extend_form", act, done)


@page(Action.ERASURE_DECIDE, methods=POST)
def request_retry(request: HttpRequest, pk: int) -> HttpResponse:
    def act(req: ErasureRequest, data: dict[str, Any]) -> Any:
        return erasure.erasure_request_retry(actor=request.user, request=req)

    done = "Request #{pk} queued again."
    return _decide(request, pk, forms.Form(request.POST), "retry_form", act, done)


# --- certificates ------------------------------------------------------------------------


def _certificate(pk: int) -> DeletionCertificate:
    certificate = DeletionCertificate.objects.filter(request_id=pk).first()
    if certificate is None:
        raise Http404("No certificate: one is issued when the request completes.")
    return certificate


def _attachment(body: bytes, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@page(Action.ERASURE_READ)
def certificate_json(request: HttpRequest, pk: int) -> HttpResponse:
    """The signed envelope exactly as stored (the JSON is authoritative)."""
    envelope = _certificate(pk).envelope
    body = json.dumps(envelope, indent=2, ensure_ascii=False).encode()
    return _attachment(body, "application/json", f"erasure-certificate-{pk}.json")


@page(Action.ERASURE_READ)
def certificate_pdf_download(request: HttpRequest, pk: int) -> HttpResponse:
    pdf = certificate_pdf(_certificate(pk).envelope)
    return _attachment(pdf, "application/pdf", f"erasure-certificate-{pk}.pdf")
