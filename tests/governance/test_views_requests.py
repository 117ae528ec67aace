"""Erasure requests in the web UI: dashboard deadlines, list filters and paging, filing with
the impact preview, and the officer's decisions (POST-redirect-GET)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from governance.models import AuditEvent, ErasureRequest
from governance.services import erasure
from tests.governance.web_helpers import browser, find, find_all, ids_on, messages_text


def filed(persona, subject, *, days_ago=0, channel="web", **extra):
    received = timezone.now() - timedelta(days=days_ago)
    req, _ = erasure.erasure_request_create(
        actor=persona.user, subject_ref=subject, channel=channel, received_at=received, **extra
    )
    return req


def row_ids(page):
    return [int(r["data-request-id"]) for r in find_all(page, data_testid="request-row")]


# --- dashboard -----------------------------------------------------------------------------


def test_dashboard_lists_open_requests_by_deadline_with_overdue_and_near_due(officer):
    fresh = filed(officer, "fresh")
    late = filed(officer, "late", days_ago=40)
    near = filed(officer, "near", days_ago=26)
    extended = filed(officer, "extended", days_ago=45)
    erasure.erasure_request_extend(actor=officer.user, request=extended, reason="complex")
    closed = filed(officer, "closed", days_ago=50)
    erasure.erasure_request_reject(actor=officer.user, request=closed, reason="duplicate")

    page = browser(officer).get("/")

    rows = find_all(page, data_testid="request-row")
    assert [int(r["data-request-id"]) for r in rows] == [late.pk, near.pk, fresh.pk, extended.pk]
    assert [r["data-due"] for r in rows] == ["overdue", "soon", "ok", "ok"]
    assert re.search(r"Overdue by (9|1[0-2]) days", rows[0].text)  # a month is 28-31 days
    assert "Due in" in rows[1].text
    summary = find(page, data_testid="open-summary").text
    assert "4 open" in summary
    assert "1 overdue" in summary
    assert "1 due within 7 days" in summary


# --- list, filters, search, paging -------------------------------------------------------


def test_list_filters_by_status_deadline_window_channel_and_subject(officer):
    late = filed(officer, "alice-1", days_ago=40, channel="email")
    near = filed(officer, "bob-1", days_ago=26, channel="letter")
    later = filed(officer, "alice-2", channel="phone")
    rejected = filed(officer, "carol", days_ago=40, channel="email")
    erasure.erasure_request_reject(actor=officer.user, request=rejected, reason="no id")
    client = browser(officer)

    def listed(**query):
        page = client.get("/requests/", query)
        assert page.status_code == 200
        return set(row_ids(page))

    assert listed() == {late.pk, near.pk, later.pk, rejected.pk}
    assert listed(status="rejected") == {rejected.pk}
    assert listed(status="received") == {late.pk, near.pk, later.pk}
    assert listed(due="overdue") == {late.pk}  # the rejected one is closed, not overdue
    assert listed(due="week") == {near.pk}
    assert listed(due="later") == {later.pk}
    assert listed(channel="email") == {late.pk, rejected.pk}
    assert listed(q="alice") == {late.pk, later.pk}
    assert listed(q="alice", channel="phone") == {later.pk}
    assert listed(q="nobody") == set()


def test_invalid_filter_is_reported_next_to_its_field_and_not_applied(officer):
    a, b = filed(officer, "a"), filed(officer, "b")

    page = browser(officer).get("/requests/", {"status": "done", "q": "a"})

    assert "Select a valid choice" in find(page, data_testid="error-status").text
    assert find(page, "select", name="status")["aria-invalid"] == "true"
    assert row_ids(page) == [a.pk]  # the valid filter still applies
    assert b.pk not in row_ids(page)


def test_list_is_paginated_and_keeps_filters_across_pages(officer):
    ids = [filed(officer, f"subj-{i:02d}").pk for i in range(30)]
    filed(officer, "other", channel="email")
    client = browser(officer)

    first = client.get("/requests/", {"channel": "web"})
    next_link = find(first, data_testid="page-next")["href"]
    second = client.get(f"/requests/{next_link}")

    assert len(row_ids(first)) == 25
    assert "channel=web" in next_link
    assert "page=2" in next_link
    assert sorted(row_ids(first) + row_ids(second)) == ids
    assert "page-next" not in ids_on(second)


# --- filing with the impact preview --------------------------------------------------------


def test_lookup_shows_the_impact_preview_and_confirm_files_exactly_one_request(officer):
    client = browser(officer)

    start = client.get("/requests/new/")
    preview = client.get("/requests/new/", {"subject_ref": "subject-404"})

    assert "lookup-form" in ids_on(start)
    assert "impact-preview" not in ids_on(start)
    assert find(preview, data_testid="impact-preview")["data-records-found"] == "0"
    assert "impact-none" in ids_on(preview)
    assert not ErasureRequest.objects.exists()  # looking up files nothing

    form = find(preview, data_testid="confirm-form")
    key = find(preview, "input", name="idempotency_key")["value"]
    body = {"subject_ref": "subject-404", "channel": "letter", "received_at": "2026-01-05",
            "reason": "Letter of 3 January", "idempotency_key": key}  # fmt: skip
    response = client.post(form["action"], body)

    req = ErasureRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/requests/{req.pk}/"
    assert (req.subject_ref, req.channel, req.reason) == ("subject-404", "letter", body["reason"])
    assert req.received_at.isoformat() == "2026-01-05T00:00:00+00:00"
    assert req.filed_by == officer.user
    detail = client.get(response["Location"])
    assert f"Erasure request #{req.pk} filed" in messages_text(detail)
    # The same form submitted twice (a double click) files nothing more.
    again = client.post(form["action"], body)
    assert again["Location"] == f"/requests/{req.pk}/"
    assert ErasureRequest.objects.count() == 1


def test_lookup_without_a_subject_shows_the_fields_error(officer):
    page = browser(officer).get("/requests/new/", {"subject_ref": "  "})

    assert "Enter the subject reference" in find(page, data_testid="error-subject_ref").text
    assert find(page, "input", name="subject_ref")["aria-invalid"] == "true"
    assert "confirm-form" not in ids_on(page)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("channel", "pigeon", "Choose how the request was received."),
        ("channel", "api", "Choose how the request was received."),
        ("received_at", "yesterday", "Enter a date as YYYY-MM-DD."),
        ("received_at", "{tomorrow}", "cannot be in the future"),
        ("reason", "x" * 5001, "at most 5000 characters"),
    ],
)
def test_invalid_filing_shows_the_message_next_to_the_field_and_files_nothing(
    officer, field, value, message
):
    tomorrow = (timezone.now() + timedelta(days=2)).date().isoformat()
    body = {"subject_ref": "s-1", "channel": "web", "received_at": "", "reason": ""}
    body[field] = value.format(tomorrow=tomorrow)

    page = browser(officer).post("/requests/new/", body)

    assert page.status_code == 200
    assert message in find(page, data_testid=f"error-{field}").text
    assert find(page, data_testid="error-summary")
    assert "impact-preview" in ids_on(page)  # the preview stays in view
    assert not ErasureRequest.objects.exists()
    assert not AuditEvent.objects.filter(action="erasure.received").exists()


def test_confirm_without_a_subject_files_nothing(officer):
    page = browser(officer).post("/requests/new/", {"subject_ref": "", "channel": "web"})

    assert "Enter the subject reference" in find(page, data_testid="error-subject_ref").text
    assert not ErasureRequest.objects.exists()


def test_lookup_warns_about_an_open_request_for_the_same_subject(officer):
    req = filed(officer, "dup")

    page = browser(officer).get("/requests/new/", {"subject_ref": "dup"})

    assert f"#{req.pk}" in find(page, data_testid="open-duplicates").text


# --- detail and decisions ----------------------------------------------------------------


def test_detail_shows_status_deadline_impact_and_timeline(officer, auditor):
    req = filed(officer, "late-one", days_ago=40, reason="by phone")

    page = browser(auditor).get(f"/requests/{req.pk}/")

    assert find(page, data_testid="request-status")["data-status"] == "received"
    deadline = find(page, data_testid="request-deadline")
    assert (deadline["data-overdue"], deadline["data-due"]) == ("true", "overdue")
    assert "impact-preview" in ids_on(page)
    events = find_all(page, data_testid="timeline-event")
    assert [e["data-action"] for e in events] == ["received"]
    assert "olivia" in events[0].text
    assert "by phone" in events[0].text
    assert "certificate-json" not in ids_on(page)


def test_officer_approves_with_a_note(officer, django_capture_on_commit_callbacks):
    req = filed(officer, "s")
    client = browser(officer)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(f"/requests/{req.pk}/approve/", {"note": "identity checked"})

    req.refresh_from_db()
    assert response.status_code == 302
    assert response["Location"] == f"/requests/{req.pk}/"
    assert (req.status, req.decided_note, req.approved_by) == (
        "approved",
        "identity checked",
        officer.user,
    )
    assert len(queued) == 1  # execution, queued after commit
    page = client.get(response["Location"])
    assert "approved" in messages_text(page)
    assert [e["data-action"] for e in find_all(page, data_testid="timeline-event")] == [
        "received",
        "approved",
    ]
    assert "approve-button" not in ids_on(page)


def test_reject_needs_a_reason(officer):
    req = filed(officer, "s")
    client = browser(officer)

    missing = client.post(f"/requests/{req.pk}/reject/", {"reason": "   "})
    req.refresh_from_db()
    assert missing.status_code == 200
    assert "Give the reason for rejecting" in find(missing, data_testid="error-reason").text
    assert req.status == "received"

    done = client.post(f"/requests/{req.pk}/reject/", {"reason": "identity not verified"})
    req.refresh_from_db()
    assert done.status_code == 302
    assert (req.status, req.decided_note) == ("rejected", "identity not verified")
    page = client.get(done["Location"])
    assert find(page, data_testid="decision-note").text == "identity not verified"
    assert "decisions" not in ids_on(page)


def test_extend_needs_a_reason_and_happens_once(officer):
    req = filed(officer, "s", days_ago=40)
    client = browser(officer)

    missing = client.post(f"/requests/{req.pk}/extend/", {"reason": ""})
    assert "Give the reason for extending" in find(missing, data_testid="error-reason").text
    req.refresh_from_db()
    assert req.extended_due_at is None

    client.post(f"/requests/{req.pk}/extend/", {"reason": "complex request"})
    req.refresh_from_db()
    assert req.extended_due_at is not None
    assert req.extension_reason == "complex request"
    extended_to = req.extended_due_at
    page = client.get(f"/requests/{req.pk}/")
    assert find(page, data_testid="request-deadline")["data-overdue"] == "false"
    assert "extend-button" not in ids_on(page)

    again = client.post(f"/requests/{req.pk}/extend/", {"reason": "more"}, follow=True)
    req.refresh_from_db()
    assert "already extended" in messages_text(again)
    assert (req.extended_due_at, req.extension_reason) == (extended_to, "complex request")


def test_officer_retries_a_failed_request(officer, django_capture_on_commit_callbacks):
    req = filed(officer, "s")
    with django_capture_on_commit_callbacks(execute=False):
        erasure.erasure_request_approve(actor=officer.user, request=req)
    erasure.erasure_request_fail(request_id=req.pk, error="broker unreachable")
    client = browser(officer)
    page = client.get(f"/requests/{req.pk}/")
    assert "retry-button" in ids_on(page)
    assert "broker unreachable" in find(page, data_testid="request-error").text

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(f"/requests/{req.pk}/retry/")

    req.refresh_from_db()
    assert response.status_code == 302
    assert req.status == "approved"
    assert len(queued) == 1


def test_a_decision_the_state_no_longer_allows_changes_nothing(officer):
    req = filed(officer, "s")
    erasure.erasure_request_reject(actor=officer.user, request=req, reason="duplicate")
    client = browser(officer)

    page = client.post(f"/requests/{req.pk}/approve/", {"note": ""}, follow=True)
    retry = client.post(f"/requests/{req.pk}/retry/", follow=True)

    req.refresh_from_db()
    assert "Nothing changed" in messages_text(page)
    assert "rejected" in messages_text(page)
    assert "Nothing changed" in messages_text(retry)
    assert req.status == "rejected"


def test_unknown_request_and_missing_certificate_are_404(officer):
    req = filed(officer, "s")
    client = browser(officer)

    assert client.get("/requests/999999/").status_code == 404
    assert client.post("/requests/999999/approve/").status_code == 404
    assert client.get(f"/requests/{req.pk}/certificate.json").status_code == 404
    assert client.get(f"/requests/{req.pk}/certificate.pdf").status_code == 404
