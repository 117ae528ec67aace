"""Record-keeping report of erasure requests (DESIGN §7 ``reports/erasures/``).

One row per request *received* in a half-open period ``[since, until)``, with the fields
auditors ask for (CCPA §7101: date, nature and channel of the request, date and nature of
the response, basis of a denial; GDPR Art. 5(2) accountability): who decided, what the
certificate says, the deadline in force and how long the answer took. Rendered as CSV
(RFC 4180, safe to open in a spreadsheet), JSON or a landscape PDF.

A report holds at most ``LETHE_REPORT_MAX_ROWS`` requests: a longer period is refused,
naming ``from``, rather than loaded whole into one process (and one PDF).

Reading a report writes nothing; exporting one (``erasure_report_export``) appends a
``report.exported`` audit event, since the file carries references to data subjects.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone
from fpdf.enums import XPos, YPos

from governance.errors import ApplicationError
from governance.models import ErasureEvent, ErasureRequest
from governance.pdf import FooterPDF, pdf_table, pdf_text
from governance.services.audit import audit_event_append
from governance.services.report_pdf import PDF_COLUMNS, pdf_summary, pdf_value

Status = ErasureRequest.Status
FORMATS = ("json", "csv", "pdf")
OUTCOMES = ("erased", "no_records_found", "rejected", "pending", "overdue")
DECISIONS = ("approved", "rejected")
COLUMNS: tuple[str, ...] = (
    "request_id",
    "type",
    "subject_ref",
    "channel",
    "status",
    "received_at",
    "due_at",
    "extended_due_at",
    "completed_at",
    "outcome",
    "records_erased",
    "reviewer",
    "certificate_id",
    "days_to_complete",
    "extension_reason",
    "decision_note",
    "confirmations",
)
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV
# injection"); subject references and notes come from outside, so such cells get a quote.
# Full-width forms too: some spreadsheet locales treat them as their ASCII twins.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")


@dataclass(frozen=True)
class ReportRow:
    """One erasure request as the record-keeping report shows it (times are aware UTC)."""

    request_id: int
    type: str
    subject_ref: str
    channel: str
    status: str
    received_at: datetime
    due_at: datetime
    extended_due_at: datetime | None
    deadline: datetime
    completed_at: datetime | None
    # completed: the certificate's "erased"/"no_records_found"; rejected: "rejected";
    # open (any other status): "overdue" once past the deadline in force, else "pending".
    outcome: str
    records_erased: int
    # Who decided: a username, or a system actor such as "policy:auto-approve-integration".
    reviewer: str
    decision_note: str
    certificate_id: str
    extension_reason: str
    # Whole days from receipt to the answer (completion or rejection); None while open.
    days_to_complete: int | None
    # Recipients told of the erasure (Art. 19) and their answers: "owner (url): erased; ...".
    confirmations: str = ""


@dataclass(frozen=True)
class ReportExport:
    """A rendered report, ready to send: what ``erasure_report_export`` returns."""

    format: str
    content: bytes
    content_type: str
    filename: str
    rows: int


# --- rows --------------------------------------------------------------------------------


def erasure_report(
    *,
    since: datetime | None,
    until: datetime | None,
    status: str | None = None,
    now: datetime | None = None,
) -> list[ReportRow]:
    """Requests received in ``[since, until)`` (either bound may be open), oldest first.

    ``status`` keeps one request status; ``now`` is when "overdue" is judged (default: now).
    More than ``LETHE_REPORT_MAX_ROWS`` requests is an ``ApplicationError`` naming ``from``.
    """
    _check_period(since, until)
    if status is not None and status not in Status.values:
        raise ApplicationError(
            f"status: must be one of {', '.join(Status.values)}",
            details={"status": [f"not a request status: {status!r}"]},
        )
    requests = ErasureRequest.objects.select_related("certificate", "approved_by").prefetch_related(
        Prefetch(
            "events",
            queryset=ErasureEvent.objects.filter(action__in=DECISIONS).order_by("at", "pk"),
            to_attr="decisions",
        ),
        "confirmations__owner",
    )
    if since is not None:
        requests = requests.filter(received_at__gte=since)
    if until is not None:
        requests = requests.filter(received_at__lt=until)
    if status is not None:
        requests = requests.filter(status=status)
    when = now or timezone.now()
    limit = settings.LETHE_REPORT_MAX_ROWS
    found = list(requests.order_by("received_at", "pk")[: limit + 1])
    if len(found) > limit:
        rule = f"the period holds more than {limit} requests; choose a shorter one"
        raise ApplicationError(
            f"from: {rule}", code="report_too_large", details={"from": [rule], "to": [rule]}
        )
    return [_row(r, now=when) for r in found]


def _check_period(since: datetime | None, until: datetime | None) -> None:
    for bound in (since, until):
        if bound is not None and timezone.is_naive(bound):
            raise ValueError("report bounds must be timezone-aware datetimes")
    if since is not None and until is not None and since >= until:
        raise ApplicationError(
            "since: must be before until", details={"since": ["not before until"]}
        )


def _row(req: ErasureRequest, *, now: datetime) -> ReportRow:
    certificate = getattr(req, "certificate", None)
    body: dict[str, Any] = {}
    if certificate is not None:
        envelope = certificate.envelope if isinstance(certificate.envelope, dict) else {}
        body = envelope.get("certificate") or {}
    return ReportRow(
        request_id=req.pk,
        type="erasure",
        subject_ref=req.subject_ref,
        channel=req.channel,
        status=req.status,
        received_at=req.received_at,
        due_at=req.due_at,
        extended_due_at=req.extended_due_at,
        deadline=req.deadline,
        completed_at=req.completed_at,
        outcome=_outcome(req, body, now=now),
        records_erased=len(body.get("records_erased") or [])
        if req.status == Status.COMPLETED
        else 0,
        reviewer=_reviewer(req),
        decision_note=req.decided_note,
        certificate_id=certificate.certificate_id if certificate else "",
        extension_reason=req.extension_reason,
        days_to_complete=(req.completed_at - req.received_at).days if req.completed_at else None,
        confirmations="; ".join(f"{c.recipient}: {c.status}" for c in req.confirmations.all()),
    )


def _outcome(req: ErasureRequest, body: dict[str, Any], *, now: datetime) -> str:
    if req.status == Status.COMPLETED:
        return str(body.get("outcome") or "erased")
    if req.status == Status.REJECTED:
        return "rejected"
    return "overdue" if req.is_overdue(now) else "pending"


def _reviewer(req: ErasureRequest) -> str:
    """The actor of the last decision event, as the trail recorded it then."""
    decisions: list[ErasureEvent] = getattr(req, "decisions", [])
    if decisions:
        actor = decisions[-1].actor
        return actor.removeprefix("user:")
    if req.approved_by is not None:
        return req.approved_by.get_username()
    return ""


# --- summary -----------------------------------------------------------------------------


def report_summary(rows: Sequence[ReportRow]) -> dict[str, Any]:
    """Counts and response times (CCPA §7102 style) over the rows given.

    Response times cover answered requests (completed or rejected): whole days from receipt,
    median, 95th percentile (nearest rank) and mean; ``within_deadline_pct`` is the share
    of them answered by the deadline in force (extended or not). None when nothing answered.
    """
    answered = [r for r in rows if r.completed_at is not None]
    days = sorted(r.days_to_complete for r in answered if r.days_to_complete is not None)
    on_time = sum(
        1 for r in answered if r.completed_at is not None and r.completed_at <= r.deadline
    )
    statuses = Counter(r.status for r in rows)
    outcomes = Counter(r.outcome for r in rows)
    return {
        "total": len(rows),
        "by_status": {s: statuses.get(s, 0) for s in Status.values},
        "by_outcome": {o: outcomes.get(o, 0) for o in OUTCOMES},
        "open": sum(1 for r in rows if r.completed_at is None),
        "overdue_open": outcomes.get("overdue", 0),
        "extended": sum(1 for r in rows if r.extended_due_at is not None),
        "records_erased": sum(r.records_erased for r in rows),
        "answered": len(answered),
        "median_days_to_complete": statistics.median(days) if days else None,
        "p95_days_to_complete": days[math.ceil(0.95 * len(days)) - 1] if days else None,
        "mean_days_to_complete": round(statistics.fmean(days), 1) if days else None,
        "within_deadline": on_time,
        "within_deadline_pct": round(100 * on_time / len(answered), 1) if answered else None,
    }


# --- renderings --------------------------------------------------------------------------


def iso_utc(value: datetime | None) -> str:
    """ISO 8601 in UTC to the second (``2025-01-31T09:30:00Z``); "" for no time."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def csv_safe(value: object) -> object:
    """A cell a spreadsheet shows as text: strings that would start a formula get a quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def report_csv(rows: Iterable[ReportRow]) -> str:
    """RFC 4180 CSV (CRLF line ends, quoted as needed), header row ``COLUMNS``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        values = _plain(row)
        writer.writerow([csv_safe(values[name]) for name in COLUMNS])
    return out.getvalue()


def _plain(row: ReportRow) -> dict[str, Any]:
    """The row with times as ISO 8601 UTC text and no value as ""."""
    out: dict[str, Any] = {}
    for f in fields(row):
        value = getattr(row, f.name)
        out[f.name] = iso_utc(value) if isinstance(value, datetime) else value
    return out


def report_json(
    rows: Sequence[ReportRow], *, since: datetime | None, until: datetime | None
) -> dict[str, Any]:
    """``{"period": {"from", "to"}, "generated_at", "summary", "rows"}``; ``to`` is exclusive."""
    return {
        "period": {"from": iso_utc(since) or None, "to": iso_utc(until) or None},
        "generated_at": iso_utc(timezone.now()),
        "summary": report_summary(rows),
        "rows": [
            {
                k: (iso_utc(v) or None) if isinstance(v, datetime) else v
                for k, v in asdict(r).items()
            }
            for r in rows
        ],
    }


def period_label(since: datetime | None, until: datetime | None) -> str:
    """The period for people: "2025-01-01 00:00 UTC up to 2025-02-01 00:00 UTC (excluded)"."""
    start = _human(since) if since else "the first request"
    end = f"{_human(until)} (excluded)" if until else "now"
    return f"received from {start} up to {end}"


def _human(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def report_pdf(
    rows: Sequence[ReportRow], *, since: datetime | None, until: datetime | None
) -> bytes:
    """Landscape A4: title, period, summary, then every row (headings repeat per page)."""
    pdf = FooterPDF(orientation="landscape", format="A4")
    pdf.set_margins(10, 10, 10)
    pdf.set_auto_page_break(auto=True, margin=14)
    pdf.set_title("Erasure requests: record-keeping report")
    pdf.footer_y = -10
    pdf.footer_text = f"Lethe erasure report, generated {_human(timezone.now())}  -  "
    pdf.add_page()
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(0, 9, "Erasure requests: record-keeping report", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", size=9)
    period = pdf_text(f"Period: {period_label(since, until)}.")
    pdf.multi_cell(0, 5, period, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf_summary(pdf, report_summary(rows))
    pdf.ln(3)
    pdf.set_font("helvetica", "B", 11)
    pdf.cell(0, 7, "Requests (times in UTC)", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if not rows:
        pdf.set_font("helvetica", size=9)
        pdf.cell(0, 5, "No request was received in this period.")
        return bytes(pdf.output())
    pdf_table(pdf, PDF_COLUMNS, rows, pdf_value, line_height=3.5)
    return bytes(pdf.output())


# --- period and export -------------------------------------------------------------------


def report_period(
    *, start: date | datetime | None, end: date | datetime | None
) -> tuple[datetime | None, datetime | None]:
    """``[since, until)`` from what a person gives: a date means its whole day, so an end
    date includes its day; a date-time is an instant (the end one excluded; naive is UTC).

    Raises ``ApplicationError`` naming ``from`` when the period is empty or reversed.
    """
    since = _instant(start, next_day=False)
    until = _instant(end, next_day=True)
    if since is not None and until is not None and since >= until:
        raise ApplicationError("from: must be before to", details={"from": ["not before to"]})
    return since, until


def _instant(value: date | datetime | None, *, next_day: bool) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)
    day = value + timedelta(days=1) if next_day else value
    return datetime.combine(day, time.min, tzinfo=UTC)


def report_filename(
    since: datetime | None, until: datetime | None, fmt: str, *, now: datetime | None = None
) -> str:
    """``erasure-report_2025-01-01_to_2025-01-31.csv``: the days the period covers."""
    start = _day_label(since, last=False) if since else "beginning"
    end = _day_label(until, last=True) if until else (now or timezone.now()).date().isoformat()
    return f"erasure-report_{start}_to_{end}.{fmt}"


def _day_label(value: datetime, *, last: bool) -> str:
    value = value.astimezone(UTC)
    if value.time() != time.min:
        return value.strftime("%Y%m%dT%H%M%SZ")
    # An exclusive midnight end is the day before it, included whole.
    return (value.date() - timedelta(days=1) if last else value.date()).isoformat()


def erasure_report_export(
    *,
    actor: Any,
    fmt: str,
    since: datetime | None,
    until: datetime | None,
    status: str | None = None,
) -> ReportExport:
    """Render the report as ``fmt`` and record the export in the audit trail.

    The file lists subject references, so who took which period out is itself a fact the
    trail keeps (``report.exported`` with period, status filter, format and row count).
    """
    if fmt not in FORMATS:
        raise ApplicationError(
            f"format: must be one of {', '.join(FORMATS)}", details={"format": [fmt]}
        )
    rows = erasure_report(since=since, until=until, status=status)
    if fmt == "csv":
        content, content_type = report_csv(rows).encode(), "text/csv; charset=utf-8"
    elif fmt == "pdf":
        content, content_type = report_pdf(rows, since=since, until=until), "application/pdf"
    else:
        body = report_json(rows, since=since, until=until)
        content, content_type = json.dumps(body, ensure_ascii=False).encode(), "application/json"
    with transaction.atomic():
        audit_event_append(
            actor=actor,
            action="report.exported",
            object_type="report",
            object_id="erasures",
            payload={
                "format": fmt,
                "from": iso_utc(since) or None,
                "to": iso_utc(until) or None,
                "status": status,
                "rows": len(rows),
            },
        )
    return ReportExport(
        format=fmt,
        content=content,
        content_type=content_type,
        filename=report_filename(since, until, fmt),
        rows=len(rows),
    )
