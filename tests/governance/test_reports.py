"""The record-keeping export (GET reports/erasures/): rows, period, renderings, roles, audit.

Requests are made through the erasure services; completed ones run their execution inline.
Subjects Lethe has no records for complete with no model at all, so nothing trains here.
"""

from __future__ import annotations

import csv
import io
import re
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from governance.models import AuditEvent, DeletionCertificate, ErasureRequest
from governance.services import erasure, erasure_execution, reports
from governance.services.audit_integrity import audit_chain_verify
from governance.services.datasets import dataset_create, records_upsert
from governance.services.record_rows import ValidRow
from tests.governance.api_helpers import API, REPORT_HEADER, error_of

URL = f"{API}/reports/erasures/"
MARCH = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def artifacts(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.LETHE_SIGNING_KEY_PATH = tmp_path / "keys" / "signing.pem"


@pytest.fixture
def desk(officer, integration, artifacts, django_capture_on_commit_callbacks):
    """Files, decides and executes requests the way the API would, execution inline."""

    class Desk:
        def file(self, subject, *, ago=timedelta(0), at=None, reason="", actor=None):
            received = at if at is not None else timezone.now() - ago
            with django_capture_on_commit_callbacks(execute=False):
                req, _ = erasure.erasure_request_create(
                    actor=actor or integration.user,
                    subject_ref=subject,
                    reason=reason,
                    received_at=received,
                )
            return req

        def complete(self, subject, *, note="", **when):
            return self.decide_and_run(self.file(subject, **when), note=note)

        def decide_and_run(self, req, *, note=""):
            with django_capture_on_commit_callbacks(execute=False):
                erasure.erasure_request_approve(actor=officer.user, request=req, note=note)
            assert erasure_execution.erasure_request_execute(request_id=req.pk) == "completed"
            return ErasureRequest.objects.get(pk=req.pk)

        def reject(self, subject, reason="identity not verified", **when):
            req = self.file(subject, **when)
            return erasure.erasure_request_reject(actor=officer.user, request=req, reason=reason)

    return Desk()


def csv_rows(text):
    return list(csv.reader(io.StringIO(text, newline="")))


def by_id(rows):
    return {row.request_id: row for row in rows}


def pdf_text(content):
    """Text drawn in a PDF: its content streams inflated (fpdf2 compresses them)."""
    out = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", content, re.DOTALL):
        try:
            out.append(zlib.decompress(stream))
        except zlib.error:
            out.append(stream)
    return b"\n".join(out).decode("latin-1")


# --- rows --------------------------------------------------------------------------------


def test_csv_header_is_exact_and_one_row_per_request_in_the_period(officer, desk):
    inside = [desk.file("a", at=MARCH), desk.file("b", at=MARCH + timedelta(days=3))]
    desk.file("before", at=MARCH - timedelta(seconds=1))
    desk.file("after", at=MARCH + timedelta(days=31))

    response = officer.client.get(URL, {"format": "csv", "from": "2024-03-01", "to": "2024-03-30"})

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = response.content.decode()
    assert text.startswith(",".join(REPORT_HEADER) + "\r\n")  # RFC 4180 line ends
    header, *rows = csv_rows(text)
    assert header == REPORT_HEADER
    assert [int(r[0]) for r in rows] == [r.pk for r in inside]
    first = dict(zip(REPORT_HEADER, rows[0], strict=True))
    assert first["type"] == "erasure"
    assert first["subject_ref"] == "a"
    assert first["received_at"] == "2024-03-01T00:00:00Z"
    assert first["due_at"] == "2024-04-01T00:00:00Z"
    assert (first["completed_at"], first["days_to_complete"], first["certificate_id"]) == ("",) * 3


def test_period_is_half_open_and_ordered_by_receipt(desk):
    until = MARCH + timedelta(days=1)
    tick = timedelta(microseconds=1)
    last = desk.file("last", at=until - tick)
    before = desk.file("before", at=MARCH - tick)
    first = desk.file("first", at=MARCH)
    desk.file("at-until", at=until)

    rows = reports.erasure_report(since=MARCH, until=until)

    assert [r.request_id for r in rows] == [first.pk, last.pk]
    assert [r.request_id for r in reports.erasure_report(since=None, until=MARCH)] == [before.pk]
    assert len(reports.erasure_report(since=None, until=None)) == 4


def test_api_dates_cover_whole_days_and_to_includes_its_day(officer, desk):
    tick = timedelta(microseconds=1)
    first = desk.file("first", at=MARCH)
    last = desk.file("last", at=datetime(2024, 4, 1, tzinfo=UTC) - tick)
    desk.file("february", at=MARCH - tick)
    desk.file("april", at=datetime(2024, 4, 1, tzinfo=UTC))

    body = officer.client.get(URL, {"from": "2024-03-01", "to": "2024-03-31"}).json()

    assert [r["request_id"] for r in body["rows"]] == [first.pk, last.pk]
    assert body["period"] == {"from": "2024-03-01T00:00:00Z", "to": "2024-04-01T00:00:00Z"}
    by_instant = officer.client.get(
        URL, {"from": "2024-03-01T00:00:00.000001Z", "to": "2024-04-01T00:00:00Z"}
    ).json()
    assert [r["request_id"] for r in by_instant["rows"]] == [last.pk]


def test_completed_rejected_auto_approved_and_open_rows(settings, integration, officer, desk):
    done = desk.complete("nobody-known", ago=timedelta(days=10), note="identity checked")
    refused = desk.reject("someone", reason="=not verified", ago=timedelta(days=2))
    late = desk.file("late", ago=timedelta(days=40))
    fresh = desk.file("fresh", ago=timedelta(days=1))
    extended = desk.file("extended", ago=timedelta(days=40))
    erasure.erasure_request_extend(actor=officer.user, request=extended, reason="complex")
    settings.LETHE_AUTO_APPROVE_INTEGRATION = True
    auto = desk.file("bot-filed")
    assert auto.status == "approved"
    assert erasure_execution.erasure_request_execute(request_id=auto.pk) == "completed"

    rows = by_id(reports.erasure_report(since=None, until=None))

    certificate = DeletionCertificate.objects.get(request=done)
    assert rows[done.pk].outcome == "no_records_found"
    assert rows[done.pk].reviewer == "olivia"
    assert rows[done.pk].decision_note == "identity checked"
    assert rows[done.pk].certificate_id == certificate.certificate_id != ""
    assert (rows[done.pk].records_erased, rows[done.pk].days_to_complete) == (0, 10)
    assert rows[done.pk].completed_at == done.completed_at
    assert (rows[refused.pk].outcome, rows[refused.pk].reviewer) == ("rejected", "olivia")
    assert rows[refused.pk].decision_note == "=not verified"
    assert (rows[refused.pk].certificate_id, rows[refused.pk].days_to_complete) == ("", 2)
    assert rows[auto.pk].reviewer == "policy:auto-approve-integration"
    assert (
        rows[auto.pk].certificate_id == DeletionCertificate.objects.get(request=auto).certificate_id
    )
    assert (rows[late.pk].outcome, rows[late.pk].reviewer) == ("overdue", "")
    assert rows[fresh.pk].outcome == "pending"
    assert rows[fresh.pk].days_to_complete is None
    assert rows[extended.pk].outcome == "pending"  # the extended deadline is in force
    assert rows[extended.pk].extension_reason == "complex"
    assert rows[extended.pk].deadline == rows[extended.pk].extended_due_at is not None


def test_erased_records_are_counted_from_the_certificate(integration, desk):
    dataset = dataset_create(actor=integration.user, name="tickets", labels=["a", "b"])
    rows = [ValidRow(i, f"t{i}", "carol", f"text {i}", "a") for i in range(3)]
    records_upsert(actor=integration.user, dataset=dataset, rows=rows)

    req = desk.complete("carol")

    (row,) = reports.erasure_report(since=None, until=None)
    assert (row.request_id, row.outcome, row.records_erased) == (req.pk, "erased", 3)


def test_status_filter_keeps_one_status(officer, desk):
    desk.file("a")
    refused = desk.reject("b")

    rows = officer.client.get(URL, {"status": "rejected"}).json()["rows"]

    assert [r["request_id"] for r in rows] == [refused.pk]
    assert rows[0]["outcome"] == "rejected"


# --- renderings --------------------------------------------------------------------------


def test_csv_cells_that_would_run_as_formulas_are_neutralised(desk):
    for subject in ('=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        desk.reject(subject, reason="=cmd|' /C calc'!A0")
    desk.reject('plain, "quoted"\nsubject', reason="ok")

    _, *rows = csv_rows(reports.report_csv(reports.erasure_report(since=None, until=None)))

    subjects = [r[REPORT_HEADER.index("subject_ref")] for r in rows]
    assert subjects == [
        '\'=HYPERLINK("http://x")',
        "'+1",
        "'-2+3",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
        'plain, "quoted"\nsubject',
    ]
    notes = {r[REPORT_HEADER.index("decision_note")] for r in rows}
    assert notes == {"'=cmd|' /C calc'!A0", "ok"}
    assert all(r[REPORT_HEADER.index("request_id")].isdigit() for r in rows)


def test_json_summary_counts_and_response_times(officer, desk):
    for days in (2, 10, 40):  # answered after 2, 10 and 40 days; the last one late
        desk.complete(f"done-{days}", ago=timedelta(days=days))
    slow = desk.file("extended", ago=timedelta(days=50))  # late, but for its extension
    erasure.erasure_request_extend(actor=officer.user, request=slow, reason="complex")
    desk.decide_and_run(slow)
    desk.reject("refused", ago=timedelta(days=1))
    desk.file("open")
    desk.file("overdue", ago=timedelta(days=45))

    body = officer.client.get(URL).json()

    summary = body["summary"]
    assert summary["total"] == len(body["rows"]) == 7
    assert summary["by_status"] == {
        "received": 2,
        "approved": 0,
        "rejected": 1,
        "executing": 0,
        "completed": 4,
        "failed": 0,
    }
    assert summary["by_outcome"] == {
        "erased": 0,
        "no_records_found": 4,
        "rejected": 1,
        "pending": 1,
        "overdue": 1,
    }
    assert (summary["open"], summary["overdue_open"], summary["answered"]) == (2, 1, 5)
    assert summary["extended"] == 1
    # Days to answer: 1, 2, 10, 40, 50 -> median 10, p95 (nearest rank) 50, mean 20.6.
    assert summary["median_days_to_complete"] == 10
    assert summary["p95_days_to_complete"] == 50
    assert summary["mean_days_to_complete"] == 20.6
    assert (summary["within_deadline"], summary["within_deadline_pct"]) == (4, 80.0)
    assert body["period"] == {"from": None, "to": None}
    assert datetime.fromisoformat(body["generated_at"]) <= timezone.now()


def test_median_of_an_even_count_is_the_midpoint(desk):
    for days in (2, 5):
        desk.complete(f"done-{days}", ago=timedelta(days=days))
    summary = reports.report_summary(reports.erasure_report(since=None, until=None))
    assert (summary["median_days_to_complete"], summary["p95_days_to_complete"]) == (3.5, 5)


def test_summary_of_nothing_has_no_times():
    summary = reports.report_summary([])
    assert summary["total"] == 0
    assert summary["median_days_to_complete"] is None
    assert summary["within_deadline_pct"] is None


def test_pdf_renders_rows_summary_and_long_values(officer, desk):
    long_subject = "x" * 200
    reqs = [desk.reject(long_subject, reason="why " * 1250)]  # 5,000 characters
    reqs += [desk.file(f"subject-{i}", at=MARCH + timedelta(hours=i)) for i in range(60)]

    response = officer.client.get(URL, {"format": "pdf"})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    text = pdf_text(response.content)
    assert "record-keeping report" in text
    assert "subject-59" in text
    assert f"({reqs[-1].pk})" in text  # the request id, in its own cell
    assert "Summary" in text
    assert "page 2/" in text  # 61 rows do not fit one page; footers number the pages
    assert len(re.findall(rb"/Type /Page\b", response.content)) >= 2


# --- API ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("persona", "expected"), [("officer", 200), ("auditor", 200)])
def test_officers_and_auditors_may_export(request, persona, expected):
    client = request.getfixturevalue(persona).client
    for fmt in ("json", "csv", "pdf"):
        assert client.get(URL, {"format": fmt}).status_code == expected


@pytest.mark.parametrize("persona", ["integration", "engineer"])
def test_other_roles_are_403_and_nothing_is_audited(request, persona):
    response = request.getfixturevalue(persona).client.get(URL, {"format": "csv"})
    error_of(response, 403, "permission_denied")
    assert not AuditEvent.objects.filter(action="report.exported").exists()


def test_anonymous_is_401(client, db):
    error_of(client.get(URL, {"format": "csv"}), 401, "not_authenticated")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2024-13-01"}, "from"),
        ({"from": "2024-02-30"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"to": "2024-03-01T25:00"}, "to"),
        ({"from": "2024-03-02", "to": "2024-03-01"}, "from"),
        ({"from": "2024-03-01T10:00Z", "to": "2024-03-01T10:00Z"}, "from"),
        ({"format": "xml"}, "format"),
        ({"status": "done"}, "status"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(officer, query, field):
    error_of(officer.client.get(URL, query), 400, "invalid", field)
    assert not AuditEvent.objects.filter(action="report.exported").exists()


def test_csv_and_pdf_are_attachments_named_after_the_period(officer):
    period = {"from": "2024-03-01", "to": "2024-03-31"}
    for fmt in ("csv", "pdf"):
        response = officer.client.get(URL, {"format": fmt, **period})
        expected = f'attachment; filename="erasure-report_2024-03-01_to_2024-03-31.{fmt}"'
        assert response["Content-Disposition"] == expected
        assert response["Cache-Control"] == "no-store"
    assert "Content-Disposition" not in officer.client.get(URL, period)


def test_an_export_is_written_to_the_audit_trail(auditor, desk):
    desk.file("a", at=MARCH)
    desk.file("b", at=MARCH + timedelta(days=1))
    desk.file("april", at=datetime(2024, 4, 2, tzinfo=UTC))

    response = auditor.client.get(
        URL, {"format": "csv", "from": "2024-03-01", "to": "2024-03-31", "status": "received"}
    )

    assert response.status_code == 200
    (event,) = AuditEvent.objects.filter(action="report.exported")
    assert event.actor == "user:arthur"
    assert (event.object_type, event.object_id) == ("report", "erasures")
    assert event.payload == {
        "format": "csv",
        "from": "2024-03-01T00:00:00Z",
        "to": "2024-04-01T00:00:00Z",
        "status": "received",
        "rows": 2,
    }
    assert audit_chain_verify().ok
