"""``LETHE_FOUR_EYES``: with it on, the officer who filed a request cannot approve it; another
officer must. The rule is ``ErasureRequest.approval_refusal``; the service, the API and the
page's approve button all ask it."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from governance.models import AuditEvent, ErasureRequest
from governance.permissions import Role
from governance.services import erasure
from governance.services.accounts import user_create_with_role
from tests.governance.api_helpers import API, error_of
from tests.governance.web_helpers import browser, find, messages_text
from tests.personas import Persona

pytestmark = pytest.mark.django_db


@pytest.fixture
def second_officer(db):
    user, key = user_create_with_role(username="oscar", role=Role.PRIVACY_OFFICER)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return Persona(user, client, key)


@pytest.fixture
def on(settings):
    settings.LETHE_FOUR_EYES = True


def file_as(persona, subject="subj-4eyes"):
    req, _ = erasure.erasure_request_create(
        actor=persona.user, subject_ref=subject, channel="letter"
    )
    return req


def approve(persona, req):
    return persona.client.post(
        f"{API}/erasure-requests/{req.pk}/approve/", {"note": "ok"}, format="json"
    )


def status_of(req):
    return ErasureRequest.objects.get(pk=req.pk).status


def test_off_by_default_the_filer_may_approve(officer):
    req = file_as(officer)

    assert approve(officer, req).status_code in (200, 202)
    assert status_of(req) == "approved"


def test_on_the_filer_is_refused_with_403_and_nothing_changes(on, officer):
    req = file_as(officer)

    error = error_of(approve(officer, req), 403, "four_eyes", names="four_eyes")

    assert "another privacy officer" in error["message"]
    assert status_of(req) == "received"
    assert not AuditEvent.objects.filter(action="erasure.approved").exists()


def test_on_another_officer_approves(on, officer, second_officer):
    req = file_as(officer)

    assert approve(second_officer, req).status_code in (200, 202)

    approved = ErasureRequest.objects.get(pk=req.pk)
    assert (approved.status, approved.approved_by) == ("approved", second_officer.user)


def test_on_a_request_filed_by_an_integration_account_is_approved_by_any_officer(
    on, officer, integration
):
    req = file_as(integration)

    assert approve(officer, req).status_code in (200, 202)
    assert status_of(req) == "approved"


def test_the_service_refuses_too(on, officer):
    """The rule holds below the API: any caller of the service meets it."""
    req = file_as(officer)

    with pytest.raises(erasure.ApplicationError) as caught:
        erasure.erasure_request_approve(actor=officer.user, request=req)

    assert (caught.value.code, caught.value.status) == ("four_eyes", 403)


def test_the_page_disables_the_filers_approve_button_with_the_reason(on, officer, second_officer):
    req = file_as(officer)

    page = browser(officer).get(f"/requests/{req.pk}/")

    button = find(page, data_testid="approve-button")
    assert "disabled" in button.attrs
    assert "another privacy officer" in find(page, data_testid="approve-refusal").text
    other = find(browser(second_officer).get(f"/requests/{req.pk}/"), data_testid="approve-button")
    assert "disabled" not in other.attrs


def test_a_forced_post_from_the_filers_page_changes_nothing(on, officer):
    req = file_as(officer)

    page = browser(officer).post(f"/requests/{req.pk}/approve/", {"note": ""}, follow=True)

    assert "another privacy officer" in messages_text(page)
    assert status_of(req) == "received"


def test_off_the_page_shows_an_enabled_button(officer):
    req = file_as(officer)

    page = browser(officer).get(f"/requests/{req.pk}/")

    assert "disabled" not in find(page, data_testid="approve-button").attrs
