"""Downstream confirmations (GDPR Art. 19): recipients that must confirm are told of a
completed erasure and answer with their own tokens; the request (API, page, export) shows
who confirmed and who is pending, and a pending answer past the deadline is overdue by
the one overdue rule."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from governance.models import ErasureConfirmation, ErasureRequest, WebhookDelivery
from governance.permissions import Role
from governance.selectors.erasure import Due, erasure_request_due, erasure_requests_due
from governance.services import erasure, erasure_execution
from governance.services.confirmations import erasure_confirmations_remind
from tests.governance import web_helpers, webhook_receiver
from tests.governance.api_helpers import API, REPORT_HEADER, error_of
from tests.personas import _persona

artifacts = web_helpers.artifacts
receiver = webhook_receiver.receiver
REQUESTS = f"{API}/erasure-requests/"


@pytest.fixture
def second(db):
    """Another integration account: a second data platform that received the data."""
    return _persona("dora-bot", Role.INTEGRATION)


def subscribe(persona, url, confirm=True):
    body = {"url": url, "event_types": ["erasure_request.completed"]}
    response = persona.client.post(
        f"{API}/webhooks/", {**body, "requires_confirmation": confirm}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def completed(officer, integration, second, receiver, artifacts):
    """A completed erasure told to two recipients that must confirm and one that need not."""
    subscribe(integration, receiver.url)
    subscribe(second, receiver.url)
    subscribe(officer, receiver.url, confirm=False)
    request, _ = erasure.erasure_request_create(actor=officer.user, subject_ref="subject-9")
    erasure.erasure_request_approve(actor=officer.user, request=request)
    erasure_execution.erasure_request_execute(request_id=request.pk)
    return ErasureRequest.objects.get(pk=request.pk)


def confirm(persona, request_id, status, detail=""):
    return persona.client.post(
        f"{REQUESTS}{request_id}/confirmations/",
        {"status": status, "detail": detail},
        format="json",
    )


def test_confirmations_complete_only_when_both_recipients_confirm(
    officer, integration, second, completed
):
    body = officer.client.get(f"{REQUESTS}{completed.pk}/").json()
    assert completed.status == "completed"
    assert WebhookDelivery.objects.filter(event__type="erasure_request.completed").count() == 3
    assert (body["confirmations"]["expected"], body["confirmations"]["pending"]) == (2, 2)
    assert body["confirmations"]["complete"] is False
    assert {r["owner"] for r in body["confirmations"]["recipients"]} == {"ingrid-bot", "dora-bot"}

    first = confirm(integration, completed.pk, "erased", "feature store purged")
    assert first.status_code == 200, first.content
    assert (first.json()["pending"], first.json()["complete"]) == (1, False)

    last = confirm(second, completed.pk, "not_held")
    assert (last.json()["pending"], last.json()["complete"]) == (0, True)
    after = officer.client.get(f"{REQUESTS}{completed.pk}/").json()
    assert after["confirmations"]["complete"] is True
    statuses = {r["owner"]: r["status"] for r in after["confirmations"]["recipients"]}
    assert statuses == {"ingrid-bot": "erased", "dora-bot": "not_held"}
    assert [e["action"] for e in after["history"]].count("confirmed") == 2


def test_only_a_recipient_may_confirm_and_only_once(officer, integration, auditor, completed):
    error_of(confirm(officer, completed.pk, "erased"), 403, "not_a_recipient")
    assert confirm(auditor, completed.pk, "erased").status_code == 403  # no webhook_manage
    error_of(confirm(integration, completed.pk, "gone"), 400, "invalid", names="status")
    assert confirm(integration, completed.pk, "failed", "warehouse locked").status_code == 200
    assert confirm(integration, completed.pk, "erased").status_code == 200  # after failed
    error_of(confirm(integration, completed.pk, "erased"), 409, "conflict", names="status")
    assert confirm(integration, 999999, "erased").status_code == 404


def test_a_recipient_reads_the_confirmations_of_a_request_it_did_not_file(integration, completed):
    # integration did not file this request (the officer did): it may still see its
    # confirmations, because it was asked to confirm, but not the request itself.
    assert integration.client.get(f"{REQUESTS}{completed.pk}/").status_code == 404
    listed = integration.client.get(f"{REQUESTS}{completed.pk}/confirmations/")
    assert listed.status_code == 200
    assert listed.json()["expected"] == 2


def test_pending_confirmations_past_the_deadline_are_overdue(
    officer, integration, second, completed
):
    past = timezone.now() - timedelta(days=1)
    ErasureRequest.objects.filter(pk=completed.pk).update(due_at=past)
    now = timezone.now()
    request = ErasureRequest.objects.get(pk=completed.pk)

    assert request.is_overdue(now)
    assert list(ErasureRequest.objects.overdue(now)) == [request]
    assert erasure_request_due(request, now=now) is Due.OVERDUE
    assert list(erasure_requests_due(ErasureRequest.objects.all(), due=Due.CLOSED, now=now)) == []
    listed = officer.client.get(REQUESTS, {"overdue": "true"}).json()
    assert [r["id"] for r in listed["results"]] == [request.pk]
    assert officer.client.get(f"{REQUESTS}{request.pk}/").json()["overdue"] is True

    confirm(integration, request.pk, "erased")
    assert request.is_overdue(now)  # one recipient is still pending
    confirm(second, request.pk, "erased")
    assert not request.is_overdue(now)
    assert not ErasureRequest.objects.overdue(now).exists()
    assert erasure_request_due(request, now=now) is Due.CLOSED


def test_the_reminder_repeats_while_pending(integration, second, completed, settings):
    settings.LETHE_CONFIRMATION_REMINDER_S = 3600
    assert erasure_confirmations_remind() == []  # not yet due
    later = timezone.now() + timedelta(hours=2)
    assert len(erasure_confirmations_remind(now=later)) == 2
    assert erasure_confirmations_remind(now=later) == []  # reminded just now
    confirm(integration, completed.pk, "erased")
    again = erasure_confirmations_remind(now=later + timedelta(hours=2))
    pending = ErasureConfirmation.objects.get(owner=second.user)
    assert again == [pending.pk]
    reminders = WebhookDelivery.objects.filter(event__type="erasure_request.confirmation_pending")
    assert {d.subscription.owner.get_username() for d in reminders} == {"ingrid-bot", "dora-bot"}
    assert reminders.filter(subscription__owner=second.user).count() == 2


def test_the_export_and_the_page_show_the_recipients(officer, integration, completed, client):
    confirm(integration, completed.pk, "erased")

    response = officer.client.get(f"{API}/reports/erasures/", {"format": "csv"})
    header, *rows = list(csv.reader(io.StringIO(response.content.decode(), newline="")))
    assert header == REPORT_HEADER
    row = dict(zip(header, rows[0], strict=True))
    assert "ingrid-bot (http://127.0.0.1:" in row["confirmations"]
    assert row["confirmations"].count(": erased") == 1
    assert row["confirmations"].count(": pending") == 1
    assert "dora-bot" in row["confirmations"]
    as_json = officer.client.get(f"{API}/reports/erasures/", {"format": "json"}).json()
    assert as_json["rows"][0]["confirmations"] == row["confirmations"]

    client.force_login(officer.user)
    page = client.get(f"/requests/{completed.pk}/")
    rows = web_helpers.find_all(page, "tr", **{"data-testid": "confirmation"})
    assert sorted(r["data-status"] for r in rows) == ["erased", "pending"]
    timeline = web_helpers.find_all(page, "tr", **{"data-testid": "timeline-event"})
    assert "confirmed" in [r["data-action"] for r in timeline]
