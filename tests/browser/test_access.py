"""Who sees what, in a real browser: an auditor reads every page but has no decision
buttons and is refused (403) when posting a decision anyway; an anonymous visitor is sent
to the login page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from governance.models import AuditEvent, ErasureRequest, Record
from governance.services import erasure
from tests.browser.conftest import sign_in
from tests.governance.api_helpers import create_dataset, tiny_model

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]
DECISIONS = ("approve", "reject", "extend")


@pytest.fixture
def filed(officer, engineer, integration, sample):
    """A dataset, an (untrained) model and one received request, filed by the officer."""
    dataset_id = create_dataset(integration.client, sample)
    created = engineer.client.post(
        "/api/v1/models/", tiny_model(dataset_id, name="support-intents"), format="json"
    )
    assert created.status_code == 201, created.json()
    subject = sample.train[0].subject_id
    req, _ = erasure.erasure_request_create(
        actor=officer.user, subject_ref=subject, reason="Asked by phone."
    )
    return {"request": req, "model": created.json()["id"], "subject": subject}


def _no_decision_controls(page) -> None:
    for name in DECISIONS:
        expect(page.get_by_test_id(f"{name}-button")).to_have_count(0)
        expect(page.get_by_test_id(f"{name}-form")).to_have_count(0)
    expect(page.get_by_test_id("decisions")).to_have_count(0)
    expect(page.get_by_test_id("new-request-link")).to_have_count(0)
    decide = re.compile("approve|reject|extend", re.IGNORECASE)
    expect(page.get_by_role("button", name=decide)).to_have_count(0)


def test_auditor_reads_every_page_but_cannot_decide(page, auditor, filed):
    req, subject = filed["request"], filed["subject"]
    sign_in(page, auditor)

    expect(page.get_by_test_id("request-row")).to_have_attribute("data-request-id", str(req.pk))
    expect(page.get_by_test_id("model-health-card")).to_have_count(1)
    _no_decision_controls(page)

    page.goto("/requests/")
    expect(page.get_by_test_id("request-row")).to_have_attribute("data-status", "received")
    _no_decision_controls(page)

    page.get_by_role("link", name=f"#{req.pk}").click()
    page.wait_for_url(f"**/requests/{req.pk}/")
    expect(page.get_by_test_id("request-subject")).to_have_text(subject)
    expect(page.get_by_test_id("request-status")).to_have_attribute("data-status", "received")
    expect(page.get_by_test_id("impact-preview")).to_be_visible()
    expect(page.get_by_test_id("timeline-event")).to_have_count(1)
    _no_decision_controls(page)

    page.goto(f"/lineage/?subject_ref={subject}")
    expect(page.get_by_test_id("lineage-record")).to_have_count(
        Record.objects.filter(subject__external_ref=subject).count()
    )
    expect(page.get_by_test_id("file-for-subject")).to_have_count(0)

    page.goto("/models/")
    page.get_by_role("link", name="support-intents").click()
    page.wait_for_url(f"**/models/{filed['model']}/")
    expect(page.get_by_role("heading", name="support-intents", level=1)).to_be_visible()

    page.goto("/audit/")
    expect(
        page.locator('[data-testid="audit-event"][data-action="erasure.received"]')
    ).to_have_count(1)
    expect(page.get_by_test_id("audit-verify")).to_have_attribute("data-ok", "true")

    # Posting a decision anyway, with a valid CSRF token from the page: refused by role.
    page.goto(f"/requests/{req.pk}/")
    token = page.locator("input[name=csrfmiddlewaretoken]").first.input_value()
    audit_before = AuditEvent.objects.count()
    for name in DECISIONS:
        response = page.request.post(
            f"/requests/{req.pk}/{name}/",
            form={"csrfmiddlewaretoken": token, "note": "sneaky", "reason": "sneaky"},
            max_redirects=0,
        )
        assert response.status == 403, (name, response.status)
        # Refused for the role (the 403 page), not for a missing or bad CSRF token.
        assert "This page needs one of the roles: privacy_officer" in response.text(), name
    req.refresh_from_db()
    assert (req.status, req.approved_at, req.extended_due_at) == ("received", None, None)
    assert req.events.count() == 1
    assert AuditEvent.objects.count() == audit_before
    assert ErasureRequest.objects.count() == 1
    page.reload()
    expect(page.get_by_test_id("request-status")).to_have_attribute("data-status", "received")


@pytest.mark.parametrize("path", ["/", "/requests/"])
def test_anonymous_visitor_is_sent_to_login(page, path):
    response = page.goto(path)
    assert response.ok
    assert page.url.endswith(f"/accounts/login/?next={path}")
    expect(page.get_by_test_id("login-form")).to_be_visible()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_test_id("current-user")).to_have_count(0)
