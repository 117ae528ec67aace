"""The Reports page: who may open it, the period and status filters, the summary, the rows
table and its paging, and the CSV/JSON/PDF downloads (each one audited, none on bad input).

Requests are filed and decided through governance.services.erasure; completed ones run
their execution inline. Subjects Lethe has no records for complete with no model at all.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from governance.models import AuditEvent, DeletionCertificate, ErasureRequest
from governance.services import erasure, erasure_execution
from tests.governance import web_helpers
from tests.governance.api_helpers import REPORT_HEADER
from tests.governance.web_helpers import browser, find, find_all, ids_on, parse

# Fixture: artifacts and the signing key in tmp_path (certificates are signed on completion).
artifacts = web_helpers.artifacts

URL = "/reports/"
MARCH = datetime(2024, 3, 1, tzinfo=UTC)
APRIL = datetime(2024, 4, 1, tzinfo=UTC)
IN_MARCH = {"from": "2024-03-01", "to": "2024-03-31"}
TICK = timedelta(microseconds=1)


@pytest.fixture
def desk(officer, artifacts, django_capture_on_commit_callbacks):
    """Files, rejects and completes requests through the services, execution inline."""

    class Desk:
        def file(self, subject, *, at=None, ago=timedelta(0)):
            received = at if at is not None else timezone.now() - ago
            with django_capture_on_commit_callbacks(execute=False):
                req, _ = erasure.erasure_request_create(
                    actor=officer.user, subject_ref=subject, channel="email", received_at=received
                )
            return req

        def complete(self, subject, **when):
            req = self.file(subject, **when)
            with django_capture_on_commit_callbacks(execute=False):
                erasure.erasure_request_approve(actor=officer.user, request=req, note="checked")
            assert erasure_execution.erasure_request_execute(request_id=req.pk) == "completed"
            return ErasureRequest.objects.get(pk=req.pk)

        def reject(self, subject, **when):
            req = self.file(subject, **when)
            return erasure.erasure_request_reject(actor=officer.user, request=req, reason="no id")

    return Desk()


def row_ids(page):
    return [int(r["data-request-id"]) for r in find_all(page, data_testid="report-row")]


def exports():
    return list(AuditEvent.objects.filter(action="report.exported").order_by("seq"))


# --- access ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "status"),
    [("officer", 200), ("auditor", 200), ("engineer", 403), ("integration", 403)],
)
def test_page_and_downloads_are_for_officers_and_auditors_only(request, desk, persona, status):
    desk.file("someone", at=MARCH)
    client = browser(request.getfixturevalue(persona))

    page = client.get(URL)
    download = client.get(URL, {**IN_MARCH, "format": "csv"})

    assert (page.status_code, download.status_code) == (status, status)
    assert len(exports()) == (1 if status == 200 else 0)
    if status == 200:
        assert "report-filters" in ids_on(page)
        assert download["Content-Disposition"].startswith("attachment")
    else:
        assert "forbidden" in ids_on(page)
        assert "Content-Disposition" not in download


def test_anonymous_visitors_are_sent_to_login_and_export_nothing(desk):
    desk.file("someone", at=MARCH)
    client = Client()

    for response in (client.get(URL), client.get(URL, {**IN_MARCH, "format": "pdf"})):
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=/reports/")
    assert exports() == []


def test_page_is_accessible_and_marked_current_in_the_nav(auditor, desk):
    desk.file("someone")
    page = browser(auditor).get(URL)
    elements = parse(page)

    assert [a["href"] for a in find_all(page, "a", aria_current="page")] == [URL]
    labels = {e["for"] for e in elements if e.tag == "label"}
    controls = {
        e.get("id") for e in elements if e.tag in ("input", "select") and e.get("type") != "hidden"
    }
    assert controls == {"id_from", "id_to", "id_status"}
    assert controls <= labels
    tables = [e for e in elements if e.tag == "table"]
    assert len(tables) == 3
    assert sum(1 for e in elements if e.tag == "caption") == len(tables)
    cols = [e.text for e in elements if e.tag == "th" and e.get("scope") == "col"]
    for name in ("Request", "Type", "Subject reference", "Channel", "Received", "Deadline",
                 "Completed", "Outcome", "Reviewer", "Certificate"):  # fmt: skip
        assert name in cols
    assert {b["value"] for b in find_all(page, "button", name="format")} == {"csv", "json", "pdf"}


# --- period, status, summary, rows --------------------------------------------------------


def test_period_shows_exactly_the_requests_received_in_it(officer, desk):
    desk.file("february", at=MARCH - TICK)
    first = desk.file("first", at=MARCH)
    last = desk.file("last", at=APRIL - TICK)
    desk.file("april", at=APRIL)

    page = browser(officer).get(URL, IN_MARCH)

    assert page.status_code == 200
    assert row_ids(page) == [first.pk, last.pk]
    assert find(page, data_testid="summary-total").text == "2"
    assert (
        "2024-03-01 00:00 UTC up to 2024-04-01 00:00 UTC"
        in find(page, data_testid="report-period").text
    )
    links = [
        a["href"] for row in (first, last) for a in find_all(page, "a", href=f"/requests/{row.pk}/")
    ]
    assert links == [f"/requests/{first.pk}/", f"/requests/{last.pk}/"]
    one_day = browser(officer).get(URL, {"from": "2024-03-31", "to": "2024-03-31"})
    assert row_ids(one_day) == [last.pk]


def test_default_period_is_the_current_calendar_month(officer, desk):
    today = timezone.now().astimezone(UTC).date()
    this_month = desk.file("now")
    desk.file("long-ago", ago=timedelta(days=40))  # always before the 1st of this month

    page = browser(officer).get(URL)

    assert row_ids(page) == [this_month.pk]
    assert find(page, "input", id="id_from")["value"] == today.replace(day=1).isoformat()
    end = find(page, "input", id="id_to")["value"]
    assert end.startswith(today.strftime("%Y-%m-"))
    assert end >= today.isoformat()
    next_day = datetime.fromisoformat(end) + timedelta(days=1)
    assert next_day.day == 1  # the last day of the month


def test_status_filter_and_summary_with_rows_details(officer, desk):
    done = desk.complete("nobody-known", ago=timedelta(days=3))
    refused = desk.reject("someone", ago=timedelta(days=2))
    late = desk.file("late", ago=timedelta(days=40))
    open_ = desk.file("fresh", ago=timedelta(days=1))
    period = {"from": (timezone.now() - timedelta(days=60)).date().isoformat(), "to": ""}
    client = browser(officer)

    page = client.get(URL, period)
    completed = client.get(URL, {**period, "status": "completed"})

    assert row_ids(page) == [late.pk, done.pk, refused.pk, open_.pk]
    assert find(page, data_testid="summary-total").text == "4"
    assert find(page, data_testid="summary-overdue").text == "1"
    assert find(page, data_testid="summary-answered").text == "2"
    assert find(page, data_testid="summary-within").text.startswith("100.0% (2 of 2)")
    assert find(page, data_testid="summary-median").text == "2.5"
    assert find(page, data_testid="summary-p95").text == "3"
    counts = {e["data-status"]: e["data-count"] for e in find_all(page, data_testid="status-total")}
    assert (counts["completed"], counts["rejected"], counts["received"]) == ("1", "1", "2")
    outcomes = {
        e["data-outcome"]: e["data-count"] for e in find_all(page, data_testid="outcome-total")
    }
    assert outcomes == {"erased": "0", "no_records_found": "1", "rejected": "1", "pending": "1",
                        "overdue": "1"}  # fmt: skip
    row = find(page, data_testid="report-row", data_request_id=str(done.pk)).text
    certificate = DeletionCertificate.objects.get(request=done).certificate_id
    assert certificate in row
    for shown in ("No records found", "olivia", "Email", "Completed"):
        assert shown in row
    assert row_ids(completed) == [done.pk]
    assert find(completed, data_testid="summary-total").text == "1"


def test_rows_are_paged_and_the_caption_says_so(officer, desk, monkeypatch):
    from governance.views import reports as report_views

    monkeypatch.setattr(report_views, "PAGE_SIZE", 2)
    made = [desk.file(f"s{i}", at=MARCH + timedelta(hours=i)) for i in range(3)]
    client = browser(officer)

    first = client.get(URL, IN_MARCH)
    second = client.get(URL + find(first, data_testid="page-next")["href"])

    assert row_ids(first) == [r.pk for r in made[:2]]
    assert "page 1 of 2" in find(first, "caption", id="report-caption").text
    assert find(first, data_testid="summary-total").text == "3"  # the summary covers all
    assert row_ids(second) == [made[2].pk]
    assert exports() == []  # viewing is not exporting


# --- downloads ---------------------------------------------------------------------------


def test_csv_download_has_the_header_and_one_row_per_request(officer, desk):
    inside = [desk.file("a", at=MARCH), desk.complete("b", at=MARCH + timedelta(days=3))]
    desk.file("outside", at=APRIL)

    response = browser(officer).get(URL, {**IN_MARCH, "format": "csv"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="erasure-report_2024-03-01_to_2024-03-31.csv"'
    )
    header, *rows = list(csv.reader(io.StringIO(response.content.decode(), newline="")))
    assert header == REPORT_HEADER
    assert [int(r[0]) for r in rows] == [r.pk for r in inside]
    assert [r[REPORT_HEADER.index("subject_ref")] for r in rows] == ["a", "b"]


@pytest.mark.parametrize("fmt", ["csv", "json", "pdf"])
def test_each_download_writes_one_audit_event(auditor, desk, fmt):
    desk.file("a", at=MARCH)
    desk.file("b", at=MARCH + timedelta(days=1))
    desk.reject("c", at=MARCH + timedelta(days=2))

    response = browser(auditor).get(URL, {**IN_MARCH, "status": "received", "format": fmt})

    assert response.status_code == 200
    assert response["Content-Disposition"].endswith(f'_2024-03-31.{fmt}"')
    assert response["Cache-Control"] == "no-store"
    if fmt == "pdf":
        assert response.content.startswith(b"%PDF")
    if fmt == "json":
        assert len(json.loads(response.content)["rows"]) == 2
    [event] = exports()
    assert event.actor == "user:arthur"
    assert event.payload == {
        "format": fmt,
        "from": "2024-03-01T00:00:00Z",
        "to": "2024-04-01T00:00:00Z",
        "status": "received",
        "rows": 2,
    }


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"from": "March", "to": "2024-03-31"}, "from", "YYYY-MM-DD"),
        ({"from": "2024-03-01", "to": "2024-02-30"}, "to", "YYYY-MM-DD"),
        ({"from": "2024-04-01", "to": "2024-03-31"}, "from", "after the end date"),
        ({**IN_MARCH, "status": "lost"}, "status", "listed statuses"),
        ({**IN_MARCH, "to": "9999-12-31"}, "to", "before 9999-12-31"),
    ],
)
@pytest.mark.parametrize("fmt", ["", "csv", "pdf"])
def test_invalid_input_is_shown_next_to_its_field_and_nothing_is_exported(
    officer, desk, query, field, message, fmt
):
    desk.file("a", at=MARCH)

    page = browser(officer).get(URL, {**query, "format": fmt} if fmt else query)

    assert page.status_code == 200
    assert "Content-Disposition" not in page
    assert page["Content-Type"].startswith("text/html")
    assert message in find(page, data_testid=f"error-{field}").text
    assert "error-summary" in ids_on(page)
    assert "report-table" not in ids_on(page)
    assert exports() == []


def test_unknown_format_is_refused_and_nothing_is_exported(officer, desk):
    desk.file("a", at=MARCH)

    page = browser(officer).get(URL, {**IN_MARCH, "format": "xlsx"})

    assert "Content-Disposition" not in page
    assert "Choose CSV, JSON or PDF" in find(page, data_testid="error-summary").text
    assert exports() == []
