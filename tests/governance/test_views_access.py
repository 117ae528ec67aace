"""Web UI access: login, logout, the role matrix of governance/views/access.py, CSRF,
navigation and the accessibility basics every page shares."""

from __future__ import annotations

import pytest
from django.test import Client

from governance.models import ErasureRequest
from governance.services import erasure
from tests.factories import UnlearningModelFactory
from tests.governance.web_helpers import browser, find, find_all, ids_on, parse

ALL = ("officer", "auditor", "engineer", "integration")
OFFICER = {"officer"}
READERS = {"officer", "auditor"}
MODEL_READERS = {"officer", "auditor", "engineer"}

PAGES = [
    ("/", MODEL_READERS),
    ("/requests/", READERS),
    ("/requests/?status=received&due=overdue&channel=web&q=subj", READERS),
    ("/requests/new/", OFFICER),
    ("/requests/new/?subject_ref=subj-a", OFFICER),
    ("/requests/{request}/", READERS),
    ("/lineage/", READERS),
    ("/lineage/?subject_ref=subj-a", READERS),
    ("/models/", MODEL_READERS),
    ("/models/{model}/", MODEL_READERS),
    ("/models/{model}/progress.json", MODEL_READERS),
    ("/audit/", READERS),
    ("/audit/?action=erasure.received&since=2020-01-01", READERS),
]
ACTIONS = [
    ("/requests/{request}/approve/", {"note": "ok"}),
    ("/requests/{request}/reject/", {"reason": "no"}),
    ("/requests/{request}/extend/", {"reason": "complex"}),
    ("/requests/{request}/retry/", {}),
    ("/requests/new/", {"subject_ref": "subj-b", "channel": "web"}),
]


@pytest.fixture
def objects(officer):
    req, _ = erasure.erasure_request_create(actor=officer.user, subject_ref="subj-a")
    model = UnlearningModelFactory(name="tiny", dataset__name="support", budget=1)
    return {"request": req.pk, "model": model.pk}


@pytest.mark.parametrize("persona", ALL)
@pytest.mark.parametrize(("path", "allowed"), PAGES)
def test_pages_render_for_allowed_roles_and_refuse_others(request, objects, persona, path, allowed):
    client = browser(request.getfixturevalue(persona))

    response = client.get(path.format(**objects))

    assert response.status_code == (200 if persona in allowed else 403), response.content[:300]
    if persona not in allowed:
        assert "forbidden" in ids_on(response)


@pytest.mark.parametrize("path", [p for p, _ in PAGES] + [p for p, _ in ACTIONS])
def test_anonymous_visitors_are_sent_to_login(objects, path):
    url = path.format(**objects)
    client = Client()

    for response in (client.get(url), client.post(url, {"reason": "x"})):
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
    assert ErasureRequest.objects.get(pk=objects["request"]).status == "received"
    assert ErasureRequest.objects.count() == 1


@pytest.mark.parametrize("persona", ["auditor", "engineer", "integration"])
@pytest.mark.parametrize(("path", "data"), ACTIONS)
def test_decisions_and_filing_are_403_for_everyone_but_officers(
    request, objects, persona, path, data
):
    req = ErasureRequest.objects.get(pk=objects["request"])
    client = browser(request.getfixturevalue(persona))

    response = client.post(path.format(**objects), data)

    assert response.status_code == 403
    after = ErasureRequest.objects.get(pk=req.pk)
    assert (after.status, after.extended_due_at, after.decided_note) == ("received", None, "")
    assert ErasureRequest.objects.count() == 1


@pytest.mark.parametrize(
    ("persona", "status"),
    [("officer", 302), ("auditor", 302), ("engineer", 403), ("integration", 403)],
)
def test_reverify_is_for_officers_and_auditors(request, persona, status):
    response = browser(request.getfixturevalue(persona)).post("/audit/verify/")
    assert response.status_code == status


def test_read_pages_refuse_other_methods(officer, objects):
    client = browser(officer)
    assert client.post("/requests/").status_code == 405
    assert client.get(f"/requests/{objects['request']}/approve/").status_code == 405
    assert client.get("/audit/verify/").status_code == 405
    assert ErasureRequest.objects.get(pk=objects["request"]).status == "received"


def test_auditor_sees_no_decision_buttons_but_officer_does(officer, auditor, objects):
    url = f"/requests/{objects['request']}/"

    officer_page = browser(officer).get(url)
    auditor_page = browser(auditor).get(url)

    decisions = {"approve-button", "reject-button", "extend-button", "new-request-link"}
    assert {"approve-button", "reject-button", "extend-button"} <= ids_on(officer_page)
    assert not decisions & ids_on(auditor_page)
    assert "new-request-link" not in ids_on(browser(auditor).get("/requests/"))
    assert "new-request-link" in ids_on(browser(officer).get("/requests/"))


def test_engineer_dashboard_shows_models_but_no_requests(engineer, objects):
    page = browser(engineer).get("/")

    ids = ids_on(page)
    assert "model-health" in ids
    assert "open-requests" not in ids
    assert b"subj-a" not in page.content
    nav = [a.text for a in find_all(page, "a") if a.get("href") in ("/requests/", "/audit/")]
    assert nav == []


def test_login_form_signs_in_and_logout_is_a_post(officer):
    officer.user.set_password("correct horse battery")
    officer.user.save()
    client = Client()

    form = client.get("/accounts/login/")
    wrong = client.post("/accounts/login/", {"username": "olivia", "password": "nope"})
    right = client.post(
        "/accounts/login/", {"username": "olivia", "password": "correct horse battery"}
    )

    assert form.status_code == 200
    assert find(form, "input", name="username")["id"] == "id_username"
    assert "error-summary" in ids_on(wrong)
    assert right.status_code == 302
    assert right["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.get("/accounts/logout/").status_code == 405
    out = client.post("/accounts/logout/")
    assert out.status_code == 302
    assert out["Location"] == "/accounts/login/"
    assert client.get("/").status_code == 302


def test_every_form_that_posts_carries_a_csrf_token_and_is_checked(officer, objects):
    client = browser(officer)
    for path in (
        "/",
        f"/requests/{objects['request']}/",
        "/requests/new/?subject_ref=s",
        "/audit/",
    ):
        page = parse(client.get(path))
        forms = [e for e in page if e.tag == "form" and e.get("method") == "post"]
        tokens = [e for e in page if e.tag == "input" and e.get("name") == "csrfmiddlewaretoken"]
        assert forms, path
        assert len(tokens) == len(forms), path

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(officer.user)
    response = strict.post(f"/requests/{objects['request']}/reject/", {"reason": "no"})
    assert response.status_code == 403
    assert ErasureRequest.objects.get(pk=objects["request"]).status == "received"


@pytest.mark.parametrize(
    ("path", "current"),
    [("/", "/"), ("/requests/", "/requests/"), ("/requests/{request}/", "/requests/"),
     ("/lineage/", "/lineage/"), ("/models/{model}/", "/models/"), ("/audit/", "/audit/")],
)  # fmt: skip
def test_pages_share_accessible_basics(officer, objects, path, current):
    page = browser(officer).get(path.format(**objects))
    elements = parse(page)

    assert find(page, "a", **{"class": "skip-link"})["href"] == "#main"
    assert find(page, "main")["id"] == "main"
    assert [a["href"] for a in find_all(page, "a", aria_current="page")] == [current]
    assert any(a.get("href") == "/reports/" for a in elements if a.tag == "a")
    labels = {e["for"] for e in elements if e.tag == "label"}
    for control in elements:
        hidden = control.get("type") == "hidden"
        if control.tag in ("input", "select", "textarea") and not hidden:
            assert control.get("id") in labels, f"{control.tag} {control.attrs} has no label"
    for table in find_all(page, "table"):
        assert table.text  # (captions are checked below)
    tables = sum(1 for e in elements if e.tag == "table")
    assert sum(1 for e in elements if e.tag == "caption") == tables
    assert tables == 0 or any(e.tag == "th" and e.get("scope") for e in elements)


def test_integration_account_is_told_to_use_the_api(integration):
    page = browser(integration).get("/")

    assert page.status_code == 403
    assert b"/api/v1/" in page.content
    assert not find_all(page, "nav", aria_label="Main")
