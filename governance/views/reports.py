"""The record-keeping report page: erasure requests received in a period, their summary
(counts, response times, share answered in time) and downloads as CSV, JSON or PDF.

One URL serves both: the filter form is a GET; its download buttons submit the same form
with ``format``, so a file always holds exactly the period and status the form shows. A
period over ``LETHE_REPORT_MAX_ROWS`` requests is an error on its ``from`` field.
Viewing the page writes nothing; every download goes through ``erasure_report_export``,
which records a ``report.exported`` audit event. Invalid input is reported next to its
field and nothing is exported.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from django import forms
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from governance.errors import ApplicationError
from governance.models import ErasureRequest
from governance.permissions import Action
from governance.services import reports
from governance.views.access import page, render_page

PAGE_SIZE = 50
Status = ErasureRequest.Status
Channel = ErasureRequest.Channel
DATE_ERRORS = {"invalid": "Enter a date as YYYY-MM-DD."}
OUTCOME_LABELS = {
    "erased": "Erased",
    "no_records_found": "No records found",
    "rejected": "Rejected",
    "pending": "Pending",
    "overdue": "Overdue",
}
FORMAT_LABELS = {"csv": "CSV", "json": "JSON", "pdf": "PDF"}


def current_month(today: date | None = None) -> tuple[date, date]:
    """The first and last day of this calendar month (UTC, as reports are)."""
    today = today or timezone.now().astimezone(UTC).date()
    first = today.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return first, last


class ReportFilterForm(forms.Form):
    """``from``/``to`` (whole days, both included), ``status``, and ``format`` to download.

    ``from`` is a Python keyword, so the two date fields are added in ``__init__``.
    """

    status = forms.ChoiceField(
        label="Status",
        required=False,
        choices=[("", "Any status"), *Status.choices],
        error_messages={"invalid_choice": "Choose one of the listed statuses."},
    )
    format = forms.ChoiceField(
        required=False,
        choices=[("", ""), *((f, f) for f in reports.FORMATS)],
        widget=forms.HiddenInput,
        error_messages={"invalid_choice": "Choose CSV, JSON or PDF to download."},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields = {
            "from": forms.DateField(
                label="From (date received)",
                required=False,
                help_text="First day included. Leave empty to start at the first request.",
                widget=forms.DateInput(attrs={"type": "date"}),
                error_messages=DATE_ERRORS,
            ),
            "to": forms.DateField(
                label="To (date received, inclusive)",
                required=False,
                help_text="Last day included. Leave empty to run up to now.",
                widget=forms.DateInput(attrs={"type": "date"}),
                error_messages=DATE_ERRORS,
            ),
            **self.fields,
        }

    def clean_to(self) -> date | None:
        value: date | None = self.cleaned_data.get("to")
        if value is not None and value >= date.max:
            raise forms.ValidationError("Enter a date before 9999-12-31.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("from"), data.get("to")
        if start and end and start > end:
            self.add_error("from", "The start date is after the end date.")
        elif "from" in data and "to" in data:
            try:
                data["since"], data["until"] = reports.report_period(start=start, end=end)
            except ApplicationError as exc:  # the service's own rule, should it differ
                self.add_error("from", exc.message)
        return data


def filter_form(request: HttpRequest) -> ReportFilterForm:
    """Bound to the query string; the current calendar month when it names no period.

    A ``from`` or ``to`` given empty leaves that end of the period open.
    """
    data = request.GET.copy()
    if "from" not in data and "to" not in data:
        first, last = current_month()
        data.update({"from": first.isoformat(), "to": last.isoformat()})
    return ReportFilterForm(data)


@page(Action.REPORT_READ)
def report_page(request: HttpRequest) -> HttpResponse:
    """The report for the period in the form; a ``format`` (a download button) exports it."""
    form = filter_form(request)
    if form.is_valid():
        data = form.cleaned_data
        try:
            if data["format"] and request.method == "GET":  # a HEAD must not count as one
                return report_download(
                    request,
                    fmt=data["format"],
                    since=data["since"],
                    until=data["until"],
                    status=data["status"] or None,
                )
            context = _context(request, form)
        except ApplicationError as exc:  # a period over LETHE_REPORT_MAX_ROWS requests
            form.add_error("from", exc.message.removeprefix("from: "))
            context = _context(request, form)
    else:
        context = _context(request, form)
    return render_page(request, "lethe/reports.html", context, section="reports")


def report_download(
    request: HttpRequest,
    *,
    fmt: str,
    since: datetime | None,
    until: datetime | None,
    status: str | None,
) -> HttpResponse:
    """The file as an attachment, named after the period; the export is audited."""
    export = reports.erasure_report_export(
        actor=request.user, fmt=fmt, since=since, until=until, status=status
    )
    response = HttpResponse(export.content, content_type=export.content_type)
    response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    response["Cache-Control"] = "no-store"  # subject references: no shared cache keeps it
    return response


def _context(request: HttpRequest, form: ReportFilterForm) -> dict[str, Any]:
    context: dict[str, Any] = {"form": form, "formats": FORMAT_LABELS}
    if not form.is_valid():
        return context
    data = form.cleaned_data
    rows = reports.erasure_report(
        since=data["since"], until=data["until"], status=data["status"] or None
    )
    summary = reports.report_summary(rows)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    context.update(
        period=reports.period_label(data["since"], data["until"]),
        status_label=Status(data["status"]).label if data["status"] else "",
        summary=summary,
        by_status=[(Status(s).label, s, n) for s, n in summary["by_status"].items()],
        by_outcome=[(OUTCOME_LABELS[o], o, n) for o, n in summary["by_outcome"].items()],
        page=page,
        rows=[_display(row) for row in page],
    )
    return context


def _display(row: reports.ReportRow) -> dict[str, Any]:
    return {
        "row": row,
        "channel": Channel(row.channel).label if row.channel in Channel.values else row.channel,
        "status": Status(row.status).label if row.status in Status.values else row.status,
        "outcome": OUTCOME_LABELS.get(row.outcome, row.outcome),
    }
